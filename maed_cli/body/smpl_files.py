"""Reading SMPL model files safely, and converting them once into a plain `.npz`.

Official SMPL `.pkl` files hold chumpy objects and a scipy sparse J_regressor, and chumpy no
longer installs. They are read with a restricted unpickler: chumpy classes become plain
arrays, scipy sparse matrices become dense arrays, numpy's own reconstructors are allowed,
and every other global is refused (a pickle can otherwise run arbitrary code).

The arrays are returned in the layout of the official pkl (what smplx reads):
  v_template (6890, 3), shapedirs (6890, 3, B), posedirs (6890, 3, 207), J_regressor (24, 6890),
  weights (6890, 24), kintree_table (2, 24), f (13776, 3)
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..safe_pickle import UnsafePickleError, resolve_global
from ..errors import AssetMissingError, InputError

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps its state dict.

    Instances may be created without __init__ (pickle's NEWOBJ), hence class defaults.
    """

    state: Any = None

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def to_array(self) -> np.ndarray:
        state = self.state if isinstance(self.state, dict) else {}
        for key in ("x", "_x", "r"):
            value = state.get(key)
            if isinstance(value, np.ndarray):
                return value
            if isinstance(value, _ChumpyStandIn):
                return value.to_array()
        raise InputError("a chumpy object in the SMPL file holds no plain array ('x'); "
                         "this file is not a supported SMPL model")


class _SparseStandIn:
    """Takes the place of scipy.sparse csc/csr matrices; rebuilt as a dense array."""

    state: dict = {}
    kind = "csc"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    def to_array(self) -> np.ndarray:
        s = self.state
        shape = tuple(int(v) for v in s.get("_shape", s.get("shape", ())))
        data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        dense = np.zeros(shape, dtype=np.float64)
        if self.kind == "csc":
            for col in range(shape[1]):
                rows = indices[indptr[col]:indptr[col + 1]]
                dense[rows, col] += data[indptr[col]:indptr[col + 1]]
        else:
            for row in range(shape[0]):
                cols = indices[indptr[row]:indptr[row + 1]]
                dense[row, cols] += data[indptr[row]:indptr[row + 1]]
        return dense


class _CscStandIn(_SparseStandIn):
    kind = "csc"


class _CsrStandIn(_SparseStandIn):
    kind = "csr"


_BUILTINS_ALLOWED = {"object": object, "set": set, "frozenset": frozenset, "slice": slice,
                     "complex": complex, "bytearray": bytearray}


class SafeSmplUnpickler(pickle.Unpickler):
    """Allows numpy arrays, chumpy stand-ins, scipy sparse stand-ins; refuses anything else."""

    def find_class(self, module: str, name: str):
        if module == "copy_reg" or module == "copyreg":
            if name == "_reconstructor":
                return _safe_reconstructor
        if module == "__builtin__" or module == "builtins":
            if name in _BUILTINS_ALLOWED:  # plain data containers, no side effects
                return _BUILTINS_ALLOWED[name]
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        if module.startswith("scipy.sparse"):
            if "csr" in module or name.startswith("csr"):
                return _CsrStandIn
            return _CscStandIn
        return resolve_global(module, name)  # numpy's reconstructors, or UnsafePickleError


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor, limited to our stand-in classes."""
    if isinstance(cls, type) and issubclass(cls, (_ChumpyStandIn, _SparseStandIn)):
        return cls()
    raise UnsafePickleError(f"refused to reconstruct {cls!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        return value.to_array()
    return value


def read_smpl_pkl(data: bytes, source: str = "SMPL file") -> dict[str, np.ndarray]:
    """Official or plain-array SMPL pkl bytes -> dict of arrays (official layout)."""
    try:
        raw = SafeSmplUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise InputError(f"{source}: refused to load ({exc}); an SMPL pkl holds only "
                         "arrays, chumpy objects and a sparse regressor") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise InputError(f"{source}: not a readable SMPL pkl ({type(exc).__name__}: "
                         f"{str(exc)[:120]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: not an SMPL model (the pickle holds a "
                         f"{type(raw).__name__}, expected a dict)")
    model = {k: _plain(v) for k, v in raw.items()}
    return validate_smpl_arrays(model, source)


def validate_smpl_arrays(model: dict, source: str) -> dict[str, np.ndarray]:
    missing = [k for k in REQUIRED_KEYS if k not in model]
    if missing:
        raise InputError(f"{source}: not an SMPL model, missing {', '.join(missing)}")
    out = {k: np.asarray(_plain(model[k])) for k in REQUIRED_KEYS}
    shapes = {"v_template": (6890, 3), "J_regressor": (24, 6890), "weights": (6890, 24),
              "kintree_table": (2, 24), "f": (13776, 3)}
    for key, shape in shapes.items():
        if out[key].shape != shape:
            raise InputError(f"{source}: {key} has shape {out[key].shape}, SMPL has {shape} "
                             "(is this SMPL-H/SMPL-X or another model?)")
    if out["shapedirs"].ndim != 3 or out["shapedirs"].shape[:2] != (6890, 3):
        raise InputError(f"{source}: shapedirs has shape {out['shapedirs'].shape}")
    if out["posedirs"].shape != (6890, 3, 207):
        raise InputError(f"{source}: posedirs has shape {out['posedirs'].shape}")
    return out


def read_smpl_file(path: str | Path) -> dict[str, np.ndarray]:
    """A `.pkl`, our `.npz`, or the SMPL download `.zip` (neutral model inside)."""
    path = Path(path)
    if not path.is_file():
        raise AssetMissingError(f"SMPL file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return validate_smpl_arrays(dict(data), str(path))
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path}: not a readable SMPL npz ({exc})") from None
    if suffix == ".zip":
        return read_smpl_pkl(*_neutral_from_zip(path))
    return read_smpl_pkl(path.read_bytes(), str(path))


def _neutral_from_zip(path: Path) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".pkl")]
            neutral = [n for n in names if "neutral" in Path(n).name.lower()]
            if not neutral:
                raise InputError(f"{path}: no neutral SMPL model inside (found "
                                 f"{', '.join(Path(n).name for n in names) or 'no .pkl'}); "
                                 "MAED uses the gender-neutral model")
            choice = sorted(neutral)[-1]
            return archive.read(choice), f"{path}:{choice}"
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a readable zip file") from None


def write_smpl_npz(model: dict[str, np.ndarray], path: str | Path) -> Path:
    """Plain-array npz (no pickle), written atomically."""
    arrays = {k: np.asarray(model[k]) for k in REQUIRED_KEYS}
    arrays["f"] = arrays["f"].astype(np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return Path(path)


def smpl_arrays_from_buffers(buffers: dict) -> dict[str, np.ndarray]:
    """The SMPL buffers of an official checkpoint (smplx layout) -> official pkl layout."""
    needed = ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "parents",
              "faces_tensor")
    missing = [k for k in needed if k not in buffers]
    if missing:
        raise InputError(f"the checkpoint's SMPL buffers are incomplete (missing "
                         f"{', '.join(missing)})")
    arr = {k: buffers[k].detach().cpu().numpy() if hasattr(buffers[k], "detach")
           else np.asarray(buffers[k]) for k in needed}
    parents = arr["parents"].astype(np.int64).copy()
    kintree = np.stack([parents, np.arange(len(parents))])
    kintree[0, 0] = 4294967295  # the official files store the root's parent as uint32 -1
    num_pose = arr["posedirs"].shape[0]
    model = {
        "v_template": arr["v_template"],
        "shapedirs": arr["shapedirs"],
        "posedirs": arr["posedirs"].T.reshape(6890, 3, num_pose),
        "J_regressor": arr["J_regressor"],
        "weights": arr["lbs_weights"],
        "kintree_table": kintree,
        "f": arr["faces_tensor"],
    }
    return validate_smpl_arrays(model, "checkpoint SMPL buffers")
