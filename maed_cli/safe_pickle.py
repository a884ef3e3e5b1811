"""Read pickle-based files (SMPL models, dataset db files, 3DPW) without letting them run code.

3DPW sequence files are Python-2 pickles and VIBE/MAED db files (`*_db.pt`) are joblib
pickles; a plain `pickle.load`/`joblib.load` of such a file can execute anything. These
readers resolve only numpy's array and dtype reconstructors (and joblib's array wrapper), so a
file that names any other global is refused with a `DataFormatError`.
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("_codecs", "encode"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a Python global that plain data never needs."""


def resolve_global(module: str, name: str) -> Any:
    """The object a pickle names, if it is one of numpy's plain-data reconstructors; else
    UnsafePickleError."""
    allowed = (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType"))
    if not allowed:
        raise UnsafePickleError(f"refused to load the global {module}.{name}")
    if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
        try:
            return getattr(importlib.import_module("numpy._core" + module[10:]), name)
        except (ImportError, AttributeError):
            pass
    return getattr(importlib.import_module(module), name)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


def load_pickle(path: str | Path, encoding: str = "latin1") -> Any:
    """A pickle of plain data and numpy arrays (latin1 decodes Python-2 files such as 3DPW's)."""
    with open(path, "rb") as handle:
        return _SafeUnpickler(handle, encoding=encoding).load()


def load_joblib(path: str | Path) -> Any:
    """A joblib file (compressed or not) of plain data and numpy arrays."""
    from joblib import numpy_pickle as jp
    from joblib import numpy_pickle_utils as jpu

    class SafeNumpyUnpickler(jp.NumpyUnpickler):
        dispatch = jp.NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str) -> Any:
            return resolve_global(module, name)

        def load_build(self) -> None:
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            wrapper = self.stack[-1]
            if isinstance(wrapper, jp.NumpyArrayWrapper):
                self.stack.pop()
                if wrapper.dtype.hasobject:
                    # Object arrays are a nested pickle stream: read it through the same
                    # whitelist (older joblib versions would use an unrestricted pickle.load).
                    array = _SafeUnpickler(self.file_handle).load()
                else:
                    try:
                        array = wrapper.read(self, True)
                    except TypeError:  # joblib < 1.5: read(unpickler)
                        array = wrapper.read(self)
                self.stack.append(array)
            elif type(wrapper).__name__ == "NDArrayWrapper":
                raise UnsafePickleError("joblib < 0.10 file format is not supported")

        dispatch[pickle.BUILD[0]] = load_build

    opener = getattr(jpu, "_validate_fileobject_and_memmap", None) or getattr(
        jpu, "_read_fileobject")
    with open(path, "rb") as handle, opener(handle, str(path), None) as opened:
        fobj = opened[0] if isinstance(opened, tuple) else opened
        if isinstance(fobj, str):
            raise UnsafePickleError("joblib < 0.10 file format is not supported")
        try:
            unpickler = SafeNumpyUnpickler(str(path), fobj, True)
        except TypeError:  # joblib < 1.5: (filename, file_handle, mmap_mode=None)
            unpickler = SafeNumpyUnpickler(str(path), fobj)
        return unpickler.load()


def as_str_array(values: Any) -> np.ndarray:
    """Strings from a db field (bytes, str or object array) as a numpy unicode array."""
    array = np.asarray(values)
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8")
    if array.dtype.kind == "O":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array])
    return array.astype(str)
