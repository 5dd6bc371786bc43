"""Atomic file writes: write beside the target, fsync, then rename, so a crash never leaves half a file.

Every failure to write (full disk, a file where a folder should be, a folder where the file should go)
becomes an EdgekdError naming the target, and the temporary file is removed. Temporary files and folders
are created private (mkstemp/mkdtemp) and given the modes the user's umask asks for before they are
renamed into place, so teammates and CI upload steps can read what edgekd writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from edgekd.errors import EdgekdError

# errno values that mean "no room": a full file system, a quota, or a file-size limit (ulimit -f).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Below this many free bytes a failed write is reported as a full disk (libraries that hide the errno).
FULL_DISK_BYTES = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike[str]) -> None:
    """Give a file 0666 and a folder 0777, less the umask (what open()/mkdir() would have given it)."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def disk_full(path: str | os.PathLike[str]) -> bool:
    """True when the file system holding ``path`` (or its nearest existing parent) is (almost) full."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free < FULL_DISK_BYTES
    except OSError:
        return False


class WriteError(EdgekdError):
    """A file could not be written; ``no_space`` when the disk (or a size limit) was full."""

    def __init__(self, message: str, no_space: bool) -> None:
        super().__init__(message)
        self.no_space = no_space


def write_error(target: str | os.PathLike[str], exc: BaseException) -> WriteError:
    """The one-line error for a failed write of ``target``."""
    code = getattr(exc, "errno", None)
    if code is None:  # Rust-backed writers (safetensors) put the OS error in the text only
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code in NO_SPACE or disk_full(target):
        return WriteError(f"{target}: disk full (nothing was written)", no_space=True)
    reason = getattr(exc, "strerror", None) or str(exc)
    return WriteError(f"{target}: cannot write ({reason})", no_space=False)


def prepare_target(target: str | os.PathLike[str]) -> Path:
    """Check that ``target`` can be a file and create its folder; EdgekdError naming it otherwise."""
    target = Path(target)
    if target.is_dir():
        raise EdgekdError(f"{target}: is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise EdgekdError(f"{target}: cannot write here ({_file_in_path(target)} is a file, not a folder)") from None
    except OSError as exc:
        raise write_error(target, exc) from None
    return target


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create a folder (and its parents); EdgekdError naming it when a file is in the way or the disk is full."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise EdgekdError(f"{path}: cannot create this folder ({_file_in_path(path / 'x')} is a file)") from None
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def _file_in_path(target: Path) -> Path:
    for parent in reversed(target.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return target.parent


@contextlib.contextmanager
def atomic_paths(targets: Sequence[str | os.PathLike[str]], suffixes: Sequence[str] | None = None
                 ) -> Iterator[list[Path]]:
    """Temporary paths beside several targets, renamed onto them only when the block (and every write in it)
    succeeds: a failure leaves every target as it was. ``suffixes`` keep extensions on the temporary names
    for writers that insist on one (e.g. ``np.savez``)."""
    paths = [prepare_target(t) for t in targets]
    tmps: list[Path] = []
    try:
        for target, suffix in zip(paths, suffixes or [""] * len(paths)):
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
            except OSError as exc:
                raise write_error(target, exc) from None
            os.close(fd)
            tmps.append(Path(tmp))
        try:
            yield tmps
        except OSError as exc:
            raise write_error(paths[0] if len(paths) == 1 else ", ".join(map(str, paths)), exc) from None
        for target, tmp in zip(paths, tmps):
            try:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                public_mode(tmp)
            except OSError as exc:
                raise write_error(target, exc) from None
        for target, tmp in zip(paths, tmps):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` only if the block succeeds."""
    with atomic_paths([target], [suffix]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``target`` atomically when closed without error."""
    with atomic_path(target) as tmp:
        try:
            with open(tmp, mode) as fh:
                yield fh
        except OSError as exc:
            raise write_error(target, exc) from None


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(target) as fh:
        fh.write(json_text(obj))


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(target, "wb") as fh:
        fh.write(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_open(target, "w") as fh:
        fh.write(text)


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays turn up in metrics; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
