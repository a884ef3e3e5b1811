"""The SMPL body layer: theta -> vertices and joints, on smplx's linear blend skinning.

    BodyModel.forward(rotmat (N, 24, 3, 3) | pose (N, 72), betas (N, 10), transl (N, 3) | None)
      -> BodyOutput(vertices (N, 6890, 3), joints49 (N, 49, 3), smpl24 (N, 24, 3),
                    joints_h36m17 (N, 17, 3) | None)   metres, float32, CPU or GPU

Long sequences go through in chunks, so their vertices are never all in memory at once:
`BodyModel.chunks(rotmat, betas)` yields numpy (vertices, joints49) a chunk at a time, and
`LazyVertices` is an (N, 6890, 3) sequence that computes a chunk of rows when indexed.

Where the SMPL model comes from (`load_body_model`), in this order: an explicit file, the
installed `smpl/SMPL_NEUTRAL.npz` (or an official pkl in an asset folder), the neutral SMPL
buffers stored in a MAED checkpoint, else an error saying how to fix it. The joint
regressors (`J_regressor_extra.npy`, needed for the 49 joints; `J_regressor_h36m.npy`, needed
for evaluation) are looked up in the same folders (a checkpoint carries the extra one).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import lbs, vertices2joints
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import nn

from .. import assets
from ..errors import AssetMissingError, InputError
from .geometry import axis_angle_to_rotmat
from .joints import JOINT49_FROM_54
from .smpl_files import read_smpl_file, smpl_arrays_from_buffers

# smplx's VertexJointSelector order for SMPL: face, feet, then fingertips (left, right).
VERTEX_JOINT_NAMES = ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe",
                      "LHeel", "RBigToe", "RSmallToe", "RHeel",
                      "lthumb", "lindex", "lmiddle", "lring", "lpinky",
                      "rthumb", "rindex", "rmiddle", "rring", "rpinky")
VERTEX_JOINT_IDS = tuple(SMPLX_VERTEX_IDS["smplh"][name] for name in VERTEX_JOINT_NAMES)


@dataclass
class BodyOutput:
    vertices: torch.Tensor  # (N, 6890, 3)
    joints49: torch.Tensor  # (N, 49, 3)
    smpl24: torch.Tensor  # (N, 24, 3)
    joints_h36m17: torch.Tensor | None  # (N, 17, 3), when the H36M regressor is loaded


class BodyModel(nn.Module):
    """Neutral SMPL with MAED's joint sets. Buffers are in smplx's tensor layout."""

    def __init__(self, model: dict[str, np.ndarray], j_regressor_extra: np.ndarray | None,
                 j_regressor_h36m: np.ndarray | None = None, num_betas: int = 10,
                 source: str = ""):
        super().__init__()
        self.source = source
        shapedirs = np.asarray(model["shapedirs"])[:, :, :num_betas]
        if shapedirs.shape[-1] < num_betas:
            raise InputError(f"{source}: the model has only {shapedirs.shape[-1]} shape "
                             f"directions, MAED needs {num_betas}")
        num_pose = model["posedirs"].shape[-1]
        parents = np.asarray(model["kintree_table"])[0].astype(np.int64)
        parents[0] = -1
        f32 = torch.float32

        def buf(name: str, value, dtype=f32) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=dtype),
                                 persistent=False)

        buf("v_template", model["v_template"])
        buf("shapedirs", shapedirs)
        buf("posedirs", np.reshape(model["posedirs"], (-1, num_pose)).T)
        buf("J_regressor", model["J_regressor"])
        buf("lbs_weights", model["weights"])
        buf("parents", parents, torch.long)
        buf("faces_tensor", np.asarray(model["f"]).astype(np.int64), torch.long)
        buf("vertex_joint_ids", np.asarray(VERTEX_JOINT_IDS), torch.long)
        buf("joint_map", np.asarray(JOINT49_FROM_54), torch.long)
        if j_regressor_extra is not None:
            check_regressor(j_regressor_extra, 9, "J_regressor_extra")
            buf("J_regressor_extra", j_regressor_extra)
        else:
            self.J_regressor_extra = None
        if j_regressor_h36m is not None:
            check_regressor(j_regressor_h36m, 17, "J_regressor_h36m")
            buf("J_regressor_h36m", j_regressor_h36m)
        else:
            self.J_regressor_h36m = None

    @property
    def faces(self) -> np.ndarray:
        return self.faces_tensor.cpu().numpy()

    @property
    def has_h36m(self) -> bool:
        return self.J_regressor_h36m is not None

    def forward(self, rotmat: torch.Tensor | None = None, betas: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, pose: torch.Tensor | None = None
                ) -> BodyOutput:
        """Either `rotmat` (N, 24, 3, 3) or axis-angle `pose` (N, 72); betas (N, 10)."""
        if rotmat is None:
            if pose is None:
                raise ValueError("give rotmat or pose")
            rotmat = axis_angle_to_rotmat(pose.reshape(pose.shape[0], 24, 3))
        n = rotmat.shape[0]
        dtype = self.v_template.dtype
        rotmat = rotmat.reshape(n, 24, 3, 3).to(dtype).contiguous()
        if betas is None:
            betas = torch.zeros(n, self.shapedirs.shape[-1], dtype=dtype,
                                device=rotmat.device)
        vertices, smpl24 = lbs(betas.to(dtype), rotmat, self.v_template, self.shapedirs,
                               self.posedirs, self.J_regressor, self.parents,
                               self.lbs_weights, pose2rot=False)
        if transl is not None:
            vertices = vertices + transl.to(dtype)[:, None]
            smpl24 = smpl24 + transl.to(dtype)[:, None]
        if self.J_regressor_extra is None:
            raise AssetMissingError(_regressor_missing_message(assets.REGRESSOR_EXTRA))
        candidates = torch.cat([
            smpl24,
            vertices[:, self.vertex_joint_ids],
            vertices2joints(self.J_regressor_extra, vertices),
        ], dim=1)  # (N, 54, 3)
        h36m = (vertices2joints(self.J_regressor_h36m, vertices)
                if self.J_regressor_h36m is not None else None)
        return BodyOutput(vertices=vertices, joints49=candidates[:, self.joint_map],
                          smpl24=smpl24, joints_h36m17=h36m)


    @torch.inference_mode()
    def chunks(self, rotmat, betas, chunk: int = 256
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vertices (c, 6890, 3), joints49 (c, 49, 3)) float32 numpy arrays for successive
        `chunk` rows of rotmat (N, 24, 3, 3) and betas (N, 10) (tensors or arrays, any
        device), computed on the body model's device."""
        device = self.v_template.device
        rotmat, betas = torch.as_tensor(rotmat), torch.as_tensor(betas)
        for start in range(0, len(rotmat), chunk):
            out = self(rotmat=rotmat[start:start + chunk].to(device),
                       betas=betas[start:start + chunk].to(device))
            yield out.vertices.cpu().numpy(), out.joints49.cpu().numpy()


class LazyVertices:
    """The (N, 6890, 3) float32 vertices of a sequence, computed when read.

    Indexing by one row computes (and keeps) the chunk that holds it, so reading frame after
    frame (a renderer, an exporter) costs one body forward per `chunk` frames and memory for
    one chunk; other indexing and `np.asarray` compute what they select."""

    def __init__(self, body: BodyModel, rotmat, betas, chunk: int = 64):
        self.body, self.chunk = body, chunk
        self.rotmat, self.betas = torch.as_tensor(rotmat), torch.as_tensor(betas)
        self.shape = (len(self.rotmat), self.body.v_template.shape[0], 3)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        parts = [v for v, _ in self.body.chunks(self.rotmat[rows], self.betas[rows],
                                                self.chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.shape[1:]), np.float32)

    def __getitem__(self, index):
        rest: tuple = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            row = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {index} of {len(self)}")
            start = row - row % self.chunk
            if self._cached is None or self._cached[0] != start:
                rows = np.arange(start, min(start + self.chunk, len(self)))
                self._cached = (start, self._rows(rows))
            value = self._cached[1][row - start]
            return value[rest] if rest else value
        value = self._rows(np.arange(len(self))[index])
        return value[(slice(None),) + rest] if rest else value

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self._rows(np.arange(len(self)))
        return full if dtype is None else full.astype(dtype)


def check_regressor(array: np.ndarray, rows: int, name: str) -> None:
    if np.asarray(array).shape != (rows, 6890):
        raise InputError(f"{name} has shape {np.asarray(array).shape}, expected ({rows}, 6890)")


def _regressor_missing_message(name: str) -> str:
    return (f"{name} not found in {', '.join(str(d) for d in assets.search_dirs())}; it is "
            f"part of the SPIN/VIBE/MAED data files: run `maed setup regressors DIR` with the "
            f"folder that holds it")


def load_regressor(name: str, explicit: str | Path | None = None) -> np.ndarray | None:
    path = assets.find_asset(name, explicit)
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy regressor ({exc})") from None


def find_smpl_file(explicit: str | Path | None = None) -> Path | None:
    if explicit is not None:
        path = Path(explicit).expanduser()
        assets.refuse_folder(path, assets.SMPL_PKL_NAMES[0])
        if not path.is_file():
            raise AssetMissingError(f"SMPL file not found: {path}")
        return path
    names = (assets.SMPL_NPZ,) + tuple(f"smpl/{n}" for n in assets.SMPL_PKL_NAMES) \
        + assets.SMPL_PKL_NAMES
    return assets.find_asset(names)


def load_body_model(smpl_path: str | Path | None = None,
                    checkpoint_buffers: dict | None = None,
                    require_h36m: bool = False,
                    device: str | torch.device = "cpu") -> BodyModel:
    """SMPL from a file, else from a checkpoint's buffers, else a clear error."""
    path = find_smpl_file(smpl_path)
    buffers = checkpoint_buffers or {}
    missing = []  # every missing piece in one message, not one per run
    if path is None and "v_template" not in buffers:
        missing.append(
            "no SMPL model: either install the neutral SMPL model (`maed setup smpl "
            "SMPL_NEUTRAL.pkl` or the SMPL zip from smpl.is.tue.mpg.de), or install the "
            "official MAED checkpoint (`maed setup weights model_best.pth.tar`), which "
            "carries one")
    extra = load_regressor(assets.REGRESSOR_EXTRA)
    if extra is None and "J_regressor_extra" in buffers:
        extra = buffers["J_regressor_extra"].detach().cpu().numpy()
    if extra is None:
        missing.append(_regressor_missing_message(assets.REGRESSOR_EXTRA))
    h36m = load_regressor(assets.REGRESSOR_H36M)
    if require_h36m and h36m is None:
        missing.append(_regressor_missing_message(assets.REGRESSOR_H36M))
    if missing:
        raise AssetMissingError.naming_all(missing)
    if path is not None:
        model, source = read_smpl_file(path), str(path)
    else:
        model, source = smpl_arrays_from_buffers(buffers), "checkpoint"
    return BodyModel(model, extra, h36m, source=source).to(device)
