"""KTD: the Kinematic Topology Decoder of MAED.

feature (B, 768) -> fc1 -> dropout -> fc2 -> dropout (no non-linearity, as trained) -> h (B, 1024)
  shape  = decshape(h)            (B, 10)
  camera = deccam(h)              (B, 3)   weak perspective (s, tx, ty)
  pose   = for each SMPL joint j in order 0..23:
           w_j = joint_regs[j]([h, w_a for a in ancestors(j), root first])   (B, 6)
The raw 6D outputs of every ancestor (not rotation matrices) feed each joint's head.
"""
from __future__ import annotations

import torch
from torch import nn

from ..body.joints import SMPL_PARENTS


def ancestor_chains(parents: tuple[int, ...] = SMPL_PARENTS) -> list[list[int]]:
    """For every joint, its ancestors from the root down to its parent."""
    chains: list[list[int]] = []
    for joint, parent in enumerate(parents):
        chains.append([] if parent < 0 else chains[parent] + [parent])
    return chains


class KTDDecoder(nn.Module):
    def __init__(self, feature_dim: int = 768, hidden_dim: int = 1024, num_betas: int = 10,
                 dropout: float = 0.5, parents: tuple[int, ...] = SMPL_PARENTS):
        super().__init__()
        self.ancestors = ancestor_chains(parents)
        self.fc1 = nn.Linear(feature_dim, hidden_dim)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.drop2 = nn.Dropout(dropout)
        self.joint_regs = nn.ModuleList([
            nn.Linear(hidden_dim + 6 * len(chain), 6) for chain in self.ancestors])
        self.decshape = nn.Linear(hidden_dim, num_betas)
        self.deccam = nn.Linear(hidden_dim, 3)
        for head in [*self.joint_regs, self.decshape, self.deccam]:
            nn.init.xavier_uniform_(head.weight, gain=0.01)

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        """feature (B, 768) -> pose6d (B, 144), betas (B, 10), cam (B, 3)."""
        h = self.drop2(self.fc2(self.drop1(self.fc1(feature))))
        outputs: list[torch.Tensor] = []
        for head, chain in zip(self.joint_regs, self.ancestors):
            outputs.append(head(torch.cat([h] + [outputs[a] for a in chain], dim=-1)))
        return {
            "pose6d": torch.cat(outputs, dim=-1),
            "betas": self.decshape(h),
            "cam": self.deccam(h),
        }
