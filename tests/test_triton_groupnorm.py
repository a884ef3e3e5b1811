"""The GroupNorm Triton kernel experiment (benchmarks/triton_groupnorm.py), run by Triton's
interpreter on CPU: the math and the rewired trunk, not the speed (that needs a GPU)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, torch, torch.nn.functional as F
sys.path.insert(0, "benchmarks")
import triton_groupnorm as t
from maed_cli.model import MAED

torch.manual_seed(0)
x = torch.randn(2, 64, 9, 7) * 3 + 1
r, w, b = torch.randn_like(x), torch.randn(64), torch.randn(64)
ref = F.group_norm(x, 32, w, b, 1e-5)
for block in (16, 1024):  # several chunks per group, and one
    torch.testing.assert_close(t.group_norm_act(x, 32, w, b, 1e-5, block=block), ref)
    torch.testing.assert_close(
        t.group_norm_act(x, 32, w, b, 1e-5, residual=r, relu=True, block=block),
        (ref + r).relu())
out = t.group_norm_act(x.bfloat16(), 32, w, b, 1e-5, relu=True, out_dtype=torch.float32)
assert out.dtype == torch.float32
torch.testing.assert_close(out, F.group_norm(x.bfloat16().float(), 32, w, b, 1e-5).relu(),
                           atol=1e-4, rtol=1e-4)

model = MAED(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96,
             backbone_layers=(1, 1, 1)).eval()
clip = torch.randn(1, 2, 3, 224, 224)
with torch.no_grad():
    plain = model(clip)
    undo = t.install(cpu_too=True)
    rewired = model(clip)
    undo()
    again = model(clip)
for key in ("feature", "pose6d", "cam"):
    torch.testing.assert_close(rewired[key], plain[key], atol=1e-5, rtol=1e-5)
    assert torch.equal(again[key], plain[key])
print("ok")
"""


def test_kernel_and_rewired_trunk_equal_pytorch_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
