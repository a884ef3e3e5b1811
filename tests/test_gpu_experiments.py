"""The GPU speed experiments of benchmarks/ checked on CPU: the math and the rewired network,
not the speed (that needs a GPU). The Triton kernels (triton_groupnorm.py, triton_temporal.py)
run under Triton's interpreter, which computes `tl.dot` wrongly on bf16, so the temporal
kernel is checked in fp32 here and in bf16/fp16 by its script on a GPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

GROUPNORM_SCRIPT = """
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
"""


TEMPORAL_SCRIPT = """
import sys, torch
sys.path.insert(0, "benchmarks")
import triton_temporal as t
from maed_cli.model import MAED

t.check(torch.device("cpu"))  # T = 16, 5 and 1 against the branch's matmuls
q, k, v = t._qkv(6, 5, 2, 64, "cpu", torch.float32)
q = q.contiguous()  # strides that differ from k's and v's: copied, same result
torch.testing.assert_close(t.temporal_attention(q, k, v, 3, 0.2), t._plain(q, k, v, 3, 0.2))
"""

# The rewired network (`t.install(cpu_too=True)`) against the plain one; `undo` restores it.
REWIRED_SCRIPT = """
model = MAED(num_blocks={blocks}, num_heads=2, hidden_dim=64, embed_dim={embed_dim},
             backbone_layers=(1, 1, 1)).eval()
clip = torch.randn(1, {frames}, 3, 224, 224)
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


def _run_under_interpreter(script: str) -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_groupnorm_kernel_and_rewired_trunk_equal_pytorch_under_the_interpreter():
    _run_under_interpreter(GROUPNORM_SCRIPT
                           + REWIRED_SCRIPT.format(blocks=1, embed_dim=96, frames=2))


def test_temporal_kernel_and_rewired_encoder_equal_pytorch_under_the_interpreter():
    _run_under_interpreter(TEMPORAL_SCRIPT  # two blocks, three frames: several clips' rows
                           + REWIRED_SCRIPT.format(blocks=2, embed_dim=128, frames=3))


def test_gelu_epilogue_mlp_equals_the_plain_mlp(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from gpu_variants import mlp_with_gelu_epilogue

    from maed_cli.model.encoder import Mlp

    torch.manual_seed(0)
    mlp = Mlp(32, 128).eval()
    x = torch.randn(3, 7, 32)
    with torch.no_grad():  # on CPU the fused op's GELU is the exact one, as in the model
        torch.testing.assert_close(mlp_with_gelu_epilogue(mlp, x, torch.float32), mlp(x))
