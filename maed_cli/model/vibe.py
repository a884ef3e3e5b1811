"""A VIBE-shaped network, for cost comparisons only (`maed profile --compare vibe`).

Same layer shapes as VIBE (Kocabas et al., CVPR 2020) at inference, written from the paper's
description: per-frame ResNet-50 features (2048, after global average pooling) -> a 2-layer
unidirectional GRU with 1024 hidden units -> Linear 1024->2048 added back to the features
(residual) -> the iterative SMPL regressor of SPIN/HMR (3 iterations of
`[feature, pose6d, betas, cam] -> 1024 -> 1024 -> (+pose6d, +betas, +cam)`).

Weights are random (torchvision's ResNet-50 without pretrained weights); it cannot estimate
anything, it exists so that parameters, multiply-accumulates and speed can be measured side by
side with MAED in one run. The SMPL layer is excluded, as in MAED's counts.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50

from ..errors import InputError

POSE6D_DIM = 24 * 6
BETAS_DIM = 10
CAM_DIM = 3


class IterativeRegressor(nn.Module):
    """HMR/SPIN-style iterative error feedback: (B, F) features -> pose6d, betas, cam."""

    def __init__(self, feature_dim: int = 2048, hidden: int = 1024, iterations: int = 3):
        super().__init__()
        params_dim = POSE6D_DIM + BETAS_DIM + CAM_DIM
        self.iterations = iterations
        self.fc1 = nn.Linear(feature_dim + params_dim, hidden)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(0.5)
        self.decpose = nn.Linear(hidden, POSE6D_DIM)
        self.decshape = nn.Linear(hidden, BETAS_DIM)
        self.deccam = nn.Linear(hidden, CAM_DIM)
        # Starting point of the iterations (the mean pose/shape/camera in VIBE; zeros here).
        self.register_buffer("init_pose", torch.zeros(1, POSE6D_DIM))
        self.register_buffer("init_shape", torch.zeros(1, BETAS_DIM))
        self.register_buffer("init_cam", torch.zeros(1, CAM_DIM))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = x.shape[0]
        pose = self.init_pose.expand(batch, -1)
        shape = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        for _ in range(self.iterations):
            h = self.drop1(self.fc1(torch.cat([x, pose, shape, cam], dim=1)))
            h = self.drop2(self.fc2(h))
            pose = pose + self.decpose(h)
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)
        return {"pose6d": pose, "betas": shape, "cam": cam}


class TemporalGRU(nn.Module):
    """(N, T, 2048) -> (N, T, 2048): GRU over time, linear back to 2048, residual."""

    def __init__(self, feature_dim: int = 2048, hidden: int = 1024, num_layers: int = 2):
        super().__init__()
        self.gru = nn.GRU(feature_dim, hidden, num_layers=num_layers, batch_first=True)
        self.linear = nn.Linear(hidden, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(x)
        return self.linear(y) + x


class VIBELike(nn.Module):
    """ResNet-50 features + 2-layer GRU(1024) + iterative regressor; random weights.

    `forward(x)` takes `(N, T, 3, 224, 224)` and returns `(N, T, ...)` tensors `feature` (2048),
    `pose6d` (144), `betas` (10), `cam` (3).
    """

    def __init__(self, hidden: int = 1024, gru_layers: int = 2, iterations: int = 3):
        super().__init__()
        trunk = resnet50(weights=None)
        trunk.fc = nn.Identity()  # keep the 2048-d pooled features
        self.backbone = trunk
        self.temporal = TemporalGRU(2048, hidden, gru_layers)
        self.regressor = IterativeRegressor(2048, 1024, iterations)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 5 or x.shape[2] != 3:
            raise InputError(f"VIBE expects (N, T, 3, H, W) clips, got {tuple(x.shape)}")
        n, t = x.shape[:2]
        feature = self.backbone(x.reshape(n * t, *x.shape[2:])).reshape(n, t, -1)
        feature = self.temporal(feature).reshape(n * t, -1)
        out = {"feature": feature, **self.regressor(feature)}
        return {k: v.reshape(n, t, *v.shape[1:]) for k, v in out.items()}
