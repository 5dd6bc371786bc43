"""Build an artifact into test firmware against a TFLM tree: the TFLM library (cached per target, kernel set
and flags), the generated main, the link, and the linker map read back as flash and RAM per component.

Only the files the artifact's ``kernel_sources.txt`` lists are compiled (the core, the kernels its ops need,
CMSIS-NN's C library for ``cmsis-nn``), into three static archives, so the linker keeps only what is called.
Optimisation follows TFLM's own Makefile: -Os for the core, -O2 for kernels and CMSIS-NN. Objects are compiled
aside and renamed, so a killed build never leaves a half-written object in the cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from tqdm import tqdm

from edgekd.errors import EdgekdError
from edgekd.layout import KERNEL_SOURCES, MODEL_DATA_CC
from edgekd.tflm_ops import KERNEL_SETS, parse_sources_manifest
from edgekd.firmware_targets import Target

SRC = Path(str(resources.files("firmware_bench.firmware") / "src"))
TRACKER_C = ("hr_spectral.c", "hr_tracker.c")
FLAGS = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_STRIP_ERROR_STRINGS", "-ffunction-sections", "-fdata-sections")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-fno-unwind-tables",
             "-fno-asynchronous-unwind-tables", "-fno-use-cxa-atexit")
C_FLAGS = ("-std=gnu11",)
CORE_OPT, KERNEL_OPT = "-Os", "-O2"  # TFLM's Makefile: CORE_OPTIMIZATION_LEVEL, KERNEL_OPTIMIZATION_LEVEL
APT_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
# Components of the linked image, by the archive or object an input section came from.
LIBRARY_ARCHIVES = {"libtflm-core.a": "tflm", "libtflm-kernels.a": "kernels", "libcmsis-nn.a": "kernels"}
FLASH_SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array", ".data")
APP_OBJECTS = {"model_data.o": "model", "hr_spectral.o": "tracker", "hr_tracker.o": "tracker",
               "main.o": "app", "startup.o": "app"}


@dataclass(frozen=True)
class Toolchain:
    cc: str
    cxx: str
    ar: str


def toolchain(target: Target) -> Toolchain:
    """The compilers for the target; a clear error naming the packages when they are not installed."""
    prefix = "arm-none-eabi-" if target.cortex_m else ""
    names = (f"{prefix}gcc", f"{prefix}g++", f"{prefix}ar" if prefix else "ar")
    found = [shutil.which(n) for n in names]
    if not all(found):
        missing = ", ".join(n for n, f in zip(names, found) if not f)
        hint = f"apt-get install {APT_PACKAGES}" if target.cortex_m else "install gcc and g++"
        raise EdgekdError(f"firmware target {target.name}: {missing} not found on PATH ({hint})")
    return Toolchain(*found)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=None)
def _version_line(tool: str) -> str:
    proc = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0].strip() if proc.returncode == 0 and proc.stdout else tool


def compiler_version(tools: Toolchain) -> str:
    return _version_line(tools.cxx)


def one_line(text: str) -> str:
    """The line of a tool's output that says what went wrong (its first 'error' line, else its last line)."""
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    found = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
    return found[:300]


def find_tree(tflm: Path | None, kernels: str) -> Path:
    """The TFLM source tree for ``kernels``: --tflm, else $EDGEKD_TFLM, else ../shared/tflm. A folder holding
    ``reference/`` and ``cmsis-nn/`` trees (as ../shared/tflm does) or one create_tflm_tree.py export."""
    if tflm is not None:
        candidates, source = [Path(tflm)], "--tflm"
    elif os.environ.get("EDGEKD_TFLM"):
        candidates, source = [Path(os.environ["EDGEKD_TFLM"])], "$EDGEKD_TFLM"
    else:
        repo_sibling = Path(__file__).resolve().parents[2].parent / "shared" / "tflm"
        candidates, source = [Path("../shared/tflm"), repo_sibling], "../shared/tflm"
    for root in candidates:
        for tree in (root / kernels, root):
            if (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
                if kernels == "cmsis-nn" and not (tree / "tensorflow/lite/micro/kernels/cmsis_nn").is_dir():
                    continue
                return tree.resolve()
    raise EdgekdError(f"{candidates[0]}: no TFLM source tree with {kernels} kernels ({source}; pass --tflm DIR, a "
                      f"tree exported by TFLM's create_tflm_tree.py, or set EDGEKD_TFLM)")


def default_cache() -> Path:
    base = os.environ.get("EDGEKD_FIRMWARE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgekd", "firmware")
    return Path(base)


@dataclass(frozen=True)
class Library:
    archives: tuple[Path, ...]  # core, kernels[, cmsis-nn]: link order
    includes: tuple[Path, ...]
    flags: tuple[str, ...]  # the flags everything linked with it must share (core, defines)
    cache: Path


def _expand(tree: Path, paths: list[str], source: str) -> list[Path]:
    out = []
    for p in paths:
        if p.endswith("/*.c"):
            found = sorted((tree / p[:-4]).rglob("*.c"))
            if not found:
                raise EdgekdError(f"{tree}: no C files under {p[:-4]} ({source} lists them)")
            out += found
        elif not (tree / p).is_file():
            raise EdgekdError(f"{tree}: lacks {p} ({source} lists it; a different TFLM revision?)")
        else:
            out.append(tree / p)
    return out


def _object_name(tree: Path, src: Path) -> str:
    """Path-derived (two kernel_util.cc exist) plus a fingerprint of the source, so an edited file recompiles."""
    st = src.stat()
    tag = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:8]
    return str(src.relative_to(tree)).replace("/", "__").rsplit(".", 1)[0] + f"-{tag}.o"


def _compile(tool: str, flags: list[str], src: Path, obj: Path) -> None:
    """Compile ``src`` to ``obj`` aside and rename, so a killed build never leaves a half-written object."""
    tmp = obj.with_name(f".{obj.name}.{os.getpid()}.tmp")
    proc = subprocess.run([tool, *flags, "-c", str(src), "-o", str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise EdgekdError(f"{src}: does not compile for this target: {one_line(proc.stderr)}")
    os.replace(tmp, obj)


def build_library(artifact: Path, target: Target, kernels: str, tree: Path, tools: Toolchain, cache: Path,
                  progress: bool = True) -> Library:
    """Compile (or reuse from the cache) the TFLM files the artifact's kernel_sources.txt lists."""
    if kernels not in KERNEL_SETS:
        raise EdgekdError(f"unknown kernel set '{kernels}'; known: {', '.join(KERNEL_SETS)}")
    if kernels == "cmsis-nn" and not target.cortex_m:
        raise EdgekdError(f"--kernels cmsis-nn needs a Cortex-M target (CMSIS-NN is Arm code); {target.name} "
                          f"builds the reference kernels")
    manifest_path = artifact / KERNEL_SOURCES
    manifest = parse_sources_manifest(manifest_path.read_text(), str(manifest_path))
    includes = tuple(tree / p for p in manifest[f"includes {kernels}"])
    defines = FLAGS + (("-DCMSIS_NN",) if kernels == "cmsis-nn" else ())
    flags = (*target.cpu_flags, *defines)
    key = hashlib.sha256("\0".join([target.name, kernels, str(tree), tools.cxx, compiler_version(tools), *flags,
                                    *CXX_FLAGS, *C_FLAGS, CORE_OPT, KERNEL_OPT]).encode()).hexdigest()[:16]
    folder = cache / f"{target.name}-{kernels}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{p}" for p in includes]
    core = manifest["core"] + manifest[f"platform {kernels}"]
    groups = {"libtflm-core.a": (_expand(tree, core, str(manifest_path)), CORE_OPT),
              "libtflm-kernels.a": ([], KERNEL_OPT), "libcmsis-nn.a": ([], KERNEL_OPT)}
    for src in _expand(tree, manifest[f"kernels {kernels}"], str(manifest_path)):
        groups["libcmsis-nn.a" if src.suffix == ".c" else "libtflm-kernels.a"][0].append(src)
    jobs = []
    for archive, (sources, opt) in groups.items():
        for src in sources:
            c = src.suffix == ".c"
            jobs.append((tools.cc if c else tools.cxx, [opt, *flags, *(C_FLAGS if c else CXX_FLAGS), *inc], src,
                         folder / "obj" / archive / _object_name(tree, src)))
    for archive in groups:
        (folder / "obj" / archive).mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not j[3].is_file()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool, \
            tqdm(total=len(todo), desc=f"TFLM {target.name}/{kernels}", disable=None if progress and todo else True,
                 leave=False, dynamic_ncols=True) as bar:
        for _ in pool.map(lambda j: _compile(*j), todo):
            bar.update(1)
    archives = []
    for archive, (sources, _) in groups.items():
        if not sources:
            continue
        objs = sorted(str(folder / "obj" / archive / _object_name(tree, s)) for s in sources)
        digest = hashlib.sha256("\0".join(objs).encode()).hexdigest()[:12]
        path = folder / f"{archive[:-2]}-{digest}.a"
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            proc = subprocess.run([tools.ar, "rcs", str(tmp), *objs], capture_output=True, text=True)
            if proc.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise EdgekdError(f"{path}: {tools.ar} failed: {one_line(proc.stderr)}")
            os.replace(tmp, path)
        archives.append(path)
    return Library(tuple(archives), includes, flags, folder)


def write_sources(artifact: Path, work: Path, ident: str, target: Target) -> None:
    """The generated main (and for Cortex-M the startup and linker script) in ``work``."""
    main = Template((SRC / "main.cc.in").read_text()).substitute(ident=ident, IDENT=ident.upper())
    (work / "main.cc").write_text(main)
    shutil.copy(SRC / "edgekd_target.h", work / "edgekd_target.h")
    if target.cortex_m:
        shutil.copy(SRC / "startup.c", work / "startup.c")
        ld = Template((SRC / "link.ld.in").read_text()).substitute(
            target=target.name, machine=target.machine, flash_origin=hex(target.flash[0]),
            flash_length=hex(target.flash[1]), ram_origin=hex(target.ram[0]), ram_length=hex(target.ram[1]))
        (work / "link.ld").write_text(ld)


def link(artifact: Path, work: Path, lib: Library, target: Target, tools: Toolchain, size_build: bool) -> Path:
    """Compile the application files and link them with the library; the ELF (or host executable) path.

    The run build has stdio (semihosting on Cortex-M); the size build (``size_build``) has none: newlib-nano
    without system calls, one inference, so the map measures what a product image would hold."""
    name = "size" if size_build else "run"
    out = work / name
    out.mkdir(exist_ok=True)
    inc = [f"-I{artifact}", f"-I{work}", *(f"-I{p}" for p in lib.includes)]
    defines = ["-DEDGEKD_CORTEX_M"] if target.cortex_m else []
    defines += ["-DEDGEKD_SIZE_BUILD"] if size_build else (["-DEDGEKD_SEMIHOSTING"] if target.cortex_m else [])
    objs = []
    units = [(work / "main.cc", "main.o"), (artifact / MODEL_DATA_CC, "model_data.o")]
    units += [(artifact / c, c.replace(".c", ".o")) for c in TRACKER_C]
    if target.cortex_m:
        units.append((work / "startup.c", "startup.o"))
    for src, obj in units:
        c = src.suffix == ".c"
        tool = tools.cc if c else tools.cxx
        # The tracker C is compiled as firmware would: no FP contraction, so it stays NumPy's float arithmetic.
        flags = [KERNEL_OPT, *lib.flags, *defines, *(C_FLAGS if c else CXX_FLAGS), "-ffp-contract=off", *inc]
        _compile(tool, flags, src, out / obj)
        objs.append(str(out / obj))
    exe = out / ("firmware.elf" if target.cortex_m else "firmware")
    # A group: kernels call the core, the core calls kernels' registration through the resolver.
    cmd = [tools.cxx, *target.cpu_flags, *objs, "-Wl,--start-group", *(str(a) for a in lib.archives),
           "-Wl,--end-group"]
    if target.cortex_m:
        specs = ["--specs=nano.specs", "--specs=nosys.specs"] if size_build else ["--specs=nano.specs",
                                                                                   "--specs=rdimon.specs"]
        cmd += [*specs, "-nostartfiles", f"-T{work / 'link.ld'}", "-Wl,--gc-sections", f"-Wl,-Map={out / 'firmware.map'}",
                "-lm"]
    else:
        cmd += ["-Wl,--gc-sections", "-lm"]
    proc = subprocess.run([*cmd, "-o", str(exe)], capture_output=True, text=True)
    if proc.returncode != 0:
        undefined = sorted(set(re.findall(r"undefined reference to `([^']+)'", proc.stderr)))
        why = f"undefined: {', '.join(undefined[:5])}" if undefined else one_line(proc.stderr)
        raise EdgekdError(f"{artifact / KERNEL_SOURCES}: the firmware does not link ({why})")
    return exe


_MAP_LINE = re.compile(r"^\s+(?:(\S+)\s+)?0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S+))?$")
PADDING = "padding"  # alignment fill and what no input section accounts for


def image_sizes(map_path: Path) -> dict[str, dict[str, int]]:
    """{"flash": {component: bytes}, "ram": {...}} from a GNU ld map: flash = everything loaded into FLASH
    (code, constants, .data's initial values), RAM = .data + .bss (the arena and every static buffer; the stack
    is measured separately). Totals are the output sections' sizes; input sections are attributed to components
    by the address range they add (merged string sections overlap and are counted once); the rest is padding."""
    totals: dict[str, int] = {}
    parts: dict[str, dict[str, int]] = {}
    output = None
    pending = None
    cursor = 0
    in_map = False
    for line in map_path.read_text(errors="replace").splitlines():
        if line.startswith("Linker script and memory map"):
            in_map = True
            continue
        if not in_map:
            continue
        head = re.match(r"^(\.[\w.]+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+))?", line)
        if head:
            output = head.group(1)
            if head.group(2) is not None:
                totals[output] = int(head.group(3), 16)
                cursor = int(head.group(2), 16)
            else:
                pending = ("header", output)
            continue
        if re.match(r"^ (?:\.[\w.$]+|COMMON)$", line):  # a long input section name; its address and size follow
            pending = ("input", line.strip())
            continue
        m = _MAP_LINE.match(line)
        if not m or output is None:
            pending = None
            continue
        addr, size = int(m.group(2), 16), int(m.group(3), 16)
        if pending and pending[0] == "header":  # the output section's own address line
            totals[output], cursor, pending = size, addr, None
            continue
        section = m.group(1) or (pending[1] if pending else None)
        pending = None
        origin = m.group(4)
        if section is None or origin is None or not (section.startswith(".") or section == "COMMON"):
            continue
        added = max(0, addr + size - max(addr, cursor))
        cursor = max(cursor, addr + size)
        if added:
            component = "arena" if "g_arena" in section else _component(origin)  # main.cc's tensor arena
            into = parts.setdefault(output, {})
            into[component] = into.get(component, 0) + added
    flash: dict[str, int] = {}
    ram: dict[str, int] = {}
    for out_sec, total in totals.items():
        regions = ([flash] if out_sec in FLASH_SECTIONS else []) + ([ram] if out_sec in (".data", ".bss") else [])
        known = parts.get(out_sec, {})
        for region in regions:
            for component, size in known.items():
                region[component] = region.get(component, 0) + size
            if total > sum(known.values()):
                region[PADDING] = region.get(PADDING, 0) + total - sum(known.values())
    return {"flash": flash, "ram": ram}


def _component(origin: str) -> str:
    archive = re.match(r"^.*/([^/(]+)\(", origin)
    if archive:
        name = archive.group(1)
        for prefix, component in LIBRARY_ARCHIVES.items():
            if name.startswith(prefix[:-2]):
                return component
        return "libc"  # libc_nano, libm, libgcc, libstdc++/libsupc++, libnosys
    return APP_OBJECTS.get(Path(origin).name, "libc")  # crt objects of the toolchain


def temp_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgekd-firmware-"))
