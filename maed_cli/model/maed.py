"""MAED = STE encoder + KTD decoder. Images of clips in, SMPL parameters (theta) out.

The network stops at theta; there is no SMPL layer inside (see maed_cli.body for vertices
and joints). Frames of a clip are contiguous in the batch, T the fastest index.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..body.geometry import rot6d_to_rotmat, rotmat_to_axis_angle
from ..errors import InputError
from .decoder import KTDDecoder
from .encoder import ST_MODES, STEncoder, StMode


@dataclass(frozen=True)
class MAEDConfig:
    """Everything needed to rebuild the network; stored in our checkpoints."""

    num_blocks: int = 6
    num_heads: int = 12
    st_mode: StMode = "parallel"
    hidden_dim: int = 1024
    # Only small test/smoke networks change these; the paper's model uses the defaults.
    embed_dim: int = 768
    backbone_layers: tuple[int, ...] = (3, 4, 9)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbone_layers", tuple(int(v) for v in self.backbone_layers))

    def to_dict(self) -> dict:
        return asdict(self)


class MAED(nn.Module):
    def __init__(self, num_blocks: int = 6, num_heads: int = 12, st_mode: StMode = "parallel",
                 hidden_dim: int = 1024, embed_dim: int = 768,
                 backbone_layers: tuple[int, ...] = (3, 4, 9)):
        super().__init__()
        if st_mode not in ST_MODES:
            raise ValueError(f"st_mode must be one of {ST_MODES}, got {st_mode!r}")
        if not 1 <= num_blocks <= 12:
            raise ValueError(f"num_blocks must be in 1..12 (ViT-B/16 depth), got {num_blocks}")
        self.config = MAEDConfig(num_blocks, num_heads, st_mode, hidden_dim, embed_dim,
                                 tuple(backbone_layers))
        self.encoder = STEncoder(num_blocks=num_blocks, num_heads=num_heads, st_mode=st_mode,
                                 embed_dim=embed_dim, layers=tuple(backbone_layers))
        self.decoder = KTDDecoder(self.encoder.embed_dim, hidden_dim)

    @classmethod
    def from_config(cls, config: MAEDConfig) -> "MAED":
        return cls(**config.to_dict())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (N, T, 3, 224, 224), ImageNet-normalised RGB crops -> dict of (N, T, ...):

        feature (768) | pose6d (144) | rotmat (24, 3, 3) | pose (72, axis-angle)
        | betas (10) | cam (3: s, tx, ty weak perspective in the crop)
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise InputError(f"MAED expects (N, T, 3, H, W) clips, got {tuple(x.shape)}")
        n, t = x.shape[:2]
        feature = self.encoder(x.reshape(n * t, *x.shape[2:]), seqlen=t)  # (N*T, 768)
        out = self.decoder(feature)
        rotmat = rot6d_to_rotmat(out["pose6d"])  # (N*T, 24, 3, 3)
        pose = rotmat_to_axis_angle(rotmat).reshape(n * t, 72)
        result = {"feature": feature, **out, "rotmat": rotmat, "pose": pose}
        return {k: v.reshape(n, t, *v.shape[1:]) for k, v in result.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
