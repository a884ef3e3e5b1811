"""Shared builders for the evaluation tests: a synthetic SMPL body and a synthetic 3DPW."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from maed_cli.body.joints import H36M_TO_J14
from maed_cli.body.smpl import BodyModel
from maed_cli.body.synthetic import build_synthetic_smpl
from maed_cli.data.synthetic_3dpw import write_synthetic_3dpw


@functools.lru_cache(maxsize=1)
def synthetic_body() -> BodyModel:
    synth = build_synthetic_smpl(seed=0)
    return BodyModel(synth.model, synth.j_regressor_extra, synth.j_regressor_h36m,
                     source="synthetic").eval()


def _run(pose, betas, trans=None):
    body = synthetic_body()
    f32 = torch.float32
    with torch.no_grad():
        return body(pose=torch.as_tensor(np.asarray(pose), dtype=f32),
                    betas=torch.as_tensor(np.asarray(betas), dtype=f32),
                    transl=None if trans is None else torch.as_tensor(np.asarray(trans),
                                                                      dtype=f32))


def body_fn(pose, betas, trans):
    """World pose -> (vertices, 24 joints): what the synthetic 3DPW writer renders."""
    out = _run(pose, betas, trans)
    return out.vertices.numpy(), out.smpl24.numpy()


def gt_joints_fn(pose, betas, trans):
    """The 3DPW ground truth: J_regressor_h36m -> H36M_TO_J14."""
    return _run(pose, betas, trans).joints_h36m17[:, list(H36M_TO_J14)].numpy()


def make_3dpw(root: Path, **kwargs):
    return write_synthetic_3dpw(root, body_fn, **kwargs)
