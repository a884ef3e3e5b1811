"""Fallback safe joblib reader for training db files, used until the eval branch's
`maed_cli.data.safe_pickle` (issue #6) is in the package; delete this file then.

Only numpy's array/dtype reconstructors and joblib's array wrapper are resolved: a db file
that names any other Python global is refused instead of being executed.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
}


def load_joblib(path: str | Path) -> Any:
    import importlib

    from joblib import numpy_pickle as jp

    class Restricted(jp.NumpyUnpickler):
        dispatch = jp.NumpyUnpickler.dispatch.copy()

        def load_build(self) -> None:
            # joblib reads object arrays with an unrestricted pickle.load: refuse them here.
            wrapper = self.stack[-1]
            if isinstance(wrapper, jp.NumpyArrayWrapper) and wrapper.dtype.hasobject:
                raise pickle.UnpicklingError("object arrays are not supported by this reader")
            jp.NumpyUnpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in _ALLOWED and not (
                    module == "numpy.dtypes" and name.endswith("DType")):
                raise pickle.UnpicklingError(f"refused to load the global {module}.{name}")
            if module.startswith("numpy.core"):
                module = "numpy._core" + module[10:]
            return getattr(importlib.import_module(module), name)

    with open(path, "rb") as handle:
        try:
            unpickler = Restricted(str(path), handle, True)
        except TypeError:  # joblib < 1.5
            unpickler = Restricted(str(path), handle)
        return unpickler.load()
