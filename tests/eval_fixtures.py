"""Shared builders for the evaluation tests: closures over the synthetic SMPL body (the
`synthetic_body` fixture of conftest) and a synthetic 3DPW written with it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from maed_cli import assets
from maed_cli.body.joints import H36M_TO_J14
from maed_cli.data.evaluation_sets.synthetic_3dpw import write_synthetic_3dpw


def _run(body, pose, betas, trans=None):
    f32 = torch.float32
    with torch.no_grad():
        return body(pose=torch.as_tensor(np.asarray(pose), dtype=f32),
                    betas=torch.as_tensor(np.asarray(betas), dtype=f32),
                    transl=None if trans is None else torch.as_tensor(np.asarray(trans),
                                                                      dtype=f32))


def body_fn(body):
    """World pose -> (vertices, 24 joints): what the synthetic 3DPW writer renders."""
    def run(pose, betas, trans):
        out = _run(body, pose, betas, trans)
        return out.vertices.numpy(), out.smpl24.numpy()
    return run


def gt_joints_fn(body):
    """The 3DPW ground truth: J_regressor_h36m -> H36M_TO_J14."""
    def run(pose, betas, trans):
        return _run(body, pose, betas, trans).joints_h36m17[:, list(H36M_TO_J14)].numpy()
    return run


def make_3dpw(root: Path, body, **kwargs):
    return write_synthetic_3dpw(root, body_fn(body), **kwargs)


def install_synthetic_smpl(synthetic_assets: dict, home: Path) -> None:
    """Put the synthetic SMPL and both regressors where `maed` looks for them."""
    (home / "smpl").mkdir(parents=True, exist_ok=True)
    shutil.copy(synthetic_assets["npz"], home / assets.SMPL_NPZ)
    shutil.copy(synthetic_assets["extra"], home / assets.REGRESSOR_EXTRA)
    shutil.copy(synthetic_assets["h36m"], home / assets.REGRESSOR_H36M)
