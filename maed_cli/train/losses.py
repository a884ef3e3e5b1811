"""MAED training losses (reference §4.1), with the supplementary's weights.

    total = 300·L2D + 600·L3D + 60·Lpose + 0.06·Lshape + 1.0·Lnorm

- L2D: mean over all N·T·49·2 values of conf·(pred − gt)², normalised crop coordinates.
- L3D: both sides centred on the LSP mid-hip (joints 27, 28), mean of conf·Δ² over the 49·3
  values of the frames that have 3D labels.
- Lpose: MSE between rotation matrices (24×3×3) of prediction and label, over frames with SMPL
  labels only — also for images (the official image loss ignored the mask; fixed here).
- Lshape: MSE over the 10 betas of frames with SMPL labels.
- Lnorm: ‖[pose, betas]‖_F / (N·T), the Frobenius norm (not squared) of all frames' 82 values.

The 49 joints come from the body layer, projected with the training camera (f = 5000).
"""
from __future__ import annotations

import torch
from torch import nn

from ..body.geometry import axis_angle_to_rotmat, project_to_crop
from ..body.joints import LHIP49, RHIP49
from .config import LossConfig


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` (F, ...) over the frames where mask (F,) is set; 0 when none is."""
    keep = mask > 0
    if not bool(keep.any()):
        return values.sum() * 0.0  # keeps the graph (DDP needs every loss to touch params)
    return values[keep].mean()


def centre_on_hips(joints: torch.Tensor) -> torch.Tensor:
    """(..., 49, 3) minus the midpoint of the LSP hips."""
    mid = 0.5 * (joints[..., RHIP49:RHIP49 + 1, :] + joints[..., LHIP49:LHIP49 + 1, :])
    return joints - mid


class MAEDLoss(nn.Module):
    """Predictions (model output + body joints) and a batch of targets -> total and terms."""

    def __init__(self, body: nn.Module, weights: LossConfig | None = None):
        super().__init__()
        self.body = body
        self.w = weights or LossConfig()

    def forward(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, float]]:
        n, t = pred["pose"].shape[:2]
        f = n * t
        rotmat = pred["rotmat"].reshape(f, 24, 3, 3).float()
        betas = pred["betas"].reshape(f, 10).float()
        cam = pred["cam"].reshape(f, 3).float()
        pose = pred["pose"].reshape(f, 72).float()
        joints = self.body(rotmat=rotmat, betas=betas).joints49  # (F, 49, 3)
        kp2d_pred = project_to_crop(joints, cam)

        kp2d = batch["kp2d"].reshape(f, 49, 3)
        kp3d = batch["kp3d"].reshape(f, 49, 4)
        w_3d = batch["w_3d"].reshape(f)
        w_smpl = batch["w_smpl"].reshape(f)

        l2d = (kp2d[..., 2:] * (kp2d_pred - kp2d[..., :2]) ** 2).mean()
        d3 = centre_on_hips(joints) - centre_on_hips(kp3d[..., :3])
        l3d = _masked_mean(kp3d[..., 3:] * d3 ** 2, w_3d)
        gt_rot = axis_angle_to_rotmat(batch["pose"].reshape(f, 24, 3))
        pred_rot = axis_angle_to_rotmat(pose.reshape(f, 24, 3))
        lpose = _masked_mean((pred_rot - gt_rot) ** 2, w_smpl)
        lshape = _masked_mean((betas - batch["shape"].reshape(f, 10)) ** 2, w_smpl)
        lnorm = torch.linalg.norm(torch.cat([pose, betas], dim=1)) / f

        total = (self.w.kp_2d * l2d + self.w.kp_3d * l3d + self.w.pose * lpose
                 + self.w.shape * lshape + self.w.norm * lnorm)
        terms = {"loss": total, "kp_2d": l2d, "kp_3d": l3d, "pose": lpose, "shape": lshape,
                 "norm": lnorm}
        return total, {k: float(v.detach()) for k, v in terms.items()}
