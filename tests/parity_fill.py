"""The parity fixture's deterministic weights and input (see tests/fixtures and its README).

Shared by tests/test_parity.py and benchmarks/model_speed.py (which checks fp32/bf16 on a GPU
against the same official outputs)."""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "maed_b6_parallel_s0_n1_t16.npz"
EMBEDDINGS = ("cls_token", "pos_embed", "temp_embed")


def filled_state_dict(state: dict) -> dict:
    """The fixture's deterministic fill rule: one generator per key seeded with CRC-32(name)."""
    out = {}
    for name in sorted(state):
        t = state[name]
        if not torch.is_floating_point(t):
            out[name] = t.clone()
            continue
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        r = torch.randn(tuple(t.shape), generator=g, dtype=torch.float64)
        if name.endswith(EMBEDDINGS):
            v = 0.02 * r
        elif t.ndim >= 2:
            v = r / math.sqrt(t[0].numel())
        elif name.endswith("weight"):
            v = 1.0 + 0.1 * r
        else:
            v = 0.02 * r
        out[name] = v.to(t.dtype)
    return out


def clip_input(seed: int, n: int, t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, t, 3, 224, 224), generator=g, dtype=torch.float32)


def load_fixture() -> tuple[dict[str, np.ndarray], dict]:
    """The official outputs (arrays by name) and the fixture's meta dict."""
    ref = np.load(FIXTURE)
    return {k: ref[k] for k in ref.files if k != "meta"}, json.loads(str(ref["meta"]))
