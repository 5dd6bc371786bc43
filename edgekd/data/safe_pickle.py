"""A pickle reader that builds only plain containers and NumPy arrays, never arbitrary objects.

Loading a pickle normally calls whatever callable the file names (``os.system`` included). PPG-DaLiA ships
as pickles, so they go through this unpickler: every global a pickle asks for is refused except the few
NumPy functions that rebuild arrays, dtypes and scalars (which call no user code).
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import DataError

# (module, name) a pickle may reference -> the object to hand it. Python 2 / NumPy 1 pickles name
# numpy.core.*, NumPy 2 pickles numpy._core.*; both map to the same functions without importing numpy.core.
_MULTIARRAY = np._core.multiarray  # type: ignore[attr-defined]
ALLOWED: dict[tuple[str, str], Any] = {
    **{(mod, "_reconstruct"): _MULTIARRAY._reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _MULTIARRAY.scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): np._core.numeric._frombuffer  # type: ignore[attr-defined]
       for mod in ("numpy.core.numeric", "numpy._core.numeric")},  # protocol 5 array buffers
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # protocol-2 pickles written by Python 3 store bytes (the array buffers) as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load '{module}.{name}' (only plain containers and "
                                         f"NumPy arrays are allowed)") from None


def load_pickle(path: Path, encoding: str = "latin1") -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; any refusal or corruption is a DataError."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, encoding=encoding).load()
    except OSError as exc:
        raise DataError(f"{path}: cannot read pickle ({exc})") from None
    except Exception as exc:  # UnpicklingError, EOFError (truncated), ValueError, ... : all mean a bad file
        raise DataError(f"{path}: unsafe or corrupt pickle ({type(exc).__name__}: {exc})") from None
