"""`maed profile`: MAC counts against the supplementary's Table 3, the fast inference path
against the plain network, and the command line."""
import json

import pytest
import torch
import torch.nn.functional as F

from maed_cli.cli import main
from maed_cli.errors import InputError
from maed_cli.model import MAED
from maed_cli.model.backbone import StdConv2dSame, conv_stride2_as_space_to_depth
from maed_cli.model.encoder import SpatioTemporalAttention
from maed_cli.devices import resolve_device, resolve_dtype
from maed_cli.model.inference import (default_channels_last, forward_batched,
                                      freeze_weight_standardization, prepare_for_inference)
from maed_cli.model.vibe import VIBELike
from maed_cli.profiling import (count_maed, count_vibe, matmul_peak_flops, measure_speed,
                                network_frames)

# ---------------------------------------------------------------- counts (meta device, ~1 s each)


@pytest.fixture(scope="module")
def maed6_16():
    return count_maed(blocks=6, frames=16)


@pytest.mark.parametrize("blocks,frames,interp,paper", [(6, 16, 1, 201.1), (6, 16, 2, 100.4),
                                                        (1, 16, 1, 91.1)])
def test_table3_within_3_percent(blocks, frames, interp, paper, maed6_16):
    count = maed6_16 if (blocks, interp) == (6, 1) else count_maed(blocks, frames, interp)
    assert count.paper_gmacs == paper
    assert abs(count.gmacs_per_clip / paper - 1) < 0.03, count.gmacs_per_clip


def test_vibe_within_5_percent():
    vibe = count_vibe(16)
    assert abs(vibe.gmacs_per_clip / 67.6 - 1) < 0.05, vibe.gmacs_per_clip
    parts = {p.name: p for p in vibe.parts}
    # ResNet-50 without its classifier: 23.5 M parameters, 4.09 GMACs per 224x224 image
    assert parts["backbone"].params == 23_508_032
    assert abs(parts["backbone"].macs / 16 / 1e9 - 4.089) < 0.01
    # 2-layer GRU, 2048 -> 1024 -> 1024: 3 gates x (input + hidden) weights per frame
    gru = 3 * (2048 * 1024 + 1024 * 1024) + 3 * (1024 * 1024 + 1024 * 1024)
    assert parts["temporal"].macs == 16 * (gru + 1024 * 2048)


def test_counting_is_deterministic(maed6_16):
    again = count_maed(blocks=6, frames=16)
    assert again.macs_per_clip == maed6_16.macs_per_clip
    assert [(p.name, p.params, p.macs) for p in again.parts] == \
        [(p.name, p.params, p.macs) for p in maed6_16.parts]


def test_parts_add_up_and_match_hand_counts(maed6_16):
    c = maed6_16
    parts = {p.name: p for p in c.parts}
    assert c.params == 72_132_153 == sum(p.params for p in c.parts)
    assert c.macs_per_clip == sum(p.macs for p in c.parts)
    assert parts["backbone"].params == 11_894_848
    assert parts["blocks"].params == 6 * 9_448_704
    t, n, d = 16, 197, 768
    assert parts["projection"].macs == t * 196 * 1024 * 768
    linears = n * d * (3 * d + d + 4 * d + 4 * d)  # qkv, proj, mlp fc1, fc2
    spatial = 2 * n * n * d                          # Q K^T and A V, all heads, per frame
    temporal = 2 * n * t * d                         # the same over T frames per token
    gate = (2 * d) ** 2                              # ts_attn on the pooled token
    assert parts["blocks"].macs == 6 * t * (linears + spatial + temporal + gate)
    assert parts["embed+head"].macs == t * d * d          # pre_logits
    assert abs(parts["backbone"].macs / t / 1e9 - 3.933) < 0.001  # = ResNet-50's trunk
    assert c.gmacs_per_frame == pytest.approx(c.gmacs_per_clip / 16)


def test_interp_runs_fewer_frames(maed6_16):
    eight = count_maed(blocks=6, frames=16, interp=2)
    assert (eight.frames, eight.interp, eight.network_frames) == (16, 2, 8)
    assert eight.macs_per_clip == count_maed(blocks=6, frames=8).macs_per_clip
    assert eight.gmacs_per_frame == pytest.approx(eight.gmacs_per_clip / 16)
    assert eight.gmacs_per_network_frame == pytest.approx(eight.gmacs_per_clip / 8)
    assert 0.49 < eight.macs_per_clip / maed6_16.macs_per_clip < 0.5  # temporal part ~ T^2
    assert network_frames(16, 3) == 6


def test_too_many_network_frames_is_a_user_error():
    with pytest.raises(InputError, match="at most 16"):
        count_maed(frames=32, interp=1)
    assert count_maed(blocks=1, frames=32, interp=2).network_frames == 16


# ---------------------------------------------------------------- the fast inference path


def explicit_attention(q, k, v, scale):
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v


def test_temporal_and_spatial_attention_equal_the_explicit_math():
    torch.manual_seed(0)
    attn = SpatioTemporalAttention(dim=48, num_heads=4, st_mode="parallel")
    n, t, tokens = 2, 3, 5
    q, k, v = torch.randn(3, n * t, 4, tokens, 12).unbind(0)
    spatial = explicit_attention(q, k, v, attn.scale).transpose(1, 2).reshape(n * t, tokens, 48)
    torch.testing.assert_close(attn._spatial(q, k, v), spatial)
    # temporal: for every clip, head and token position, attend across the t frames
    to_time = lambda x: x.reshape(n, t, 4, tokens, 12).permute(0, 2, 3, 1, 4)  # noqa: E731
    out = explicit_attention(to_time(q), to_time(k), to_time(v), attn.scale)  # (n,H,L,t,d)
    temporal = out.permute(0, 3, 2, 1, 4).reshape(n * t, tokens, 48)
    torch.testing.assert_close(attn._temporal(q, k, v, t), temporal)


# a small network with every part of the real one (the paper's sizes cost seconds per clip)
TINY = dict(num_blocks=1, num_heads=2, hidden_dim=64, embed_dim=96, backbone_layers=(1, 1, 1))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return MAED(**TINY).eval()


def test_prepared_model_gives_the_plain_outputs(small_model):
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        reference = small_model(x)
    fast = prepare_for_inference(MAED(**TINY), "cpu")  # channels-last by default on CPU
    fast.load_state_dict(small_model.state_dict())
    freeze_weight_standardization(fast)  # loading dropped the frozen weights
    assert not any(p.requires_grad for p in fast.parameters())
    conv = fast.encoder.patch_embed.backbone.stem.conv
    assert conv.frozen_weight is not None
    assert conv.frozen_weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = fast(x)
    for key in ("feature", "pose6d", "betas", "cam"):
        torch.testing.assert_close(out[key], reference[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("channels,kernel,size,pads", [
    (3, 7, (224, 224), (2, 3, 2, 3)),  # the stem: SAME padding of 224 for 7x7/2
    (3, 7, (17, 20), (1, 3, 2, 3)),  # odd padded height: a row more that nothing reads
    (5, 4, (9, 11), (0, 0, 1, 0)),  # an even kernel, channels not a multiple of 4
])
def test_space_to_depth_convolution_equals_the_strided_one(channels, kernel, size, pads):
    torch.manual_seed(0)
    top, bottom, left, right = pads
    x = torch.randn(2, channels, *size)
    w = torch.randn(6, channels, kernel, kernel)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), w, stride=2)
    out = conv_stride2_as_space_to_depth(x, w, top, bottom, left, right)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


def test_space_to_depth_stem_gives_the_plain_outputs(small_model):
    """The CUDA default, checked on CPU: the same network outputs."""
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        reference = small_model(x)
    fast = MAED(**TINY)
    fast.load_state_dict(small_model.state_dict())
    fast = prepare_for_inference(fast, "cpu", stem_space_to_depth=True)
    assert fast.encoder.patch_embed.backbone.stem.conv.space_to_depth
    assert not small_model.encoder.patch_embed.backbone.stem.conv.space_to_depth
    with torch.inference_mode():
        out = fast(x)
    for key in ("feature", "pose6d", "betas", "cam"):
        torch.testing.assert_close(out[key], reference[key], atol=1e-4, rtol=0)
    # the CPU default keeps the 7x7/2 convolution (fewer MACs there)
    assert not prepare_for_inference(MAED(**TINY), "cpu").encoder.patch_embed.backbone \
        .stem.conv.space_to_depth


def test_channels_last_by_default_on_cpu_and_on_cuda_without_groupnorm():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    maed, vibe = MAED(**TINY), VIBELike()
    assert default_channels_last(maed, cpu) and default_channels_last(vibe, cpu)
    assert not default_channels_last(maed, cuda)  # GroupNorm would copy to NCHW and back
    assert default_channels_last(vibe, cuda)  # BatchNorm


def test_frozen_standardisation_is_the_formula_and_is_dropped_when_stale():
    torch.manual_seed(0)
    conv = StdConv2dSame(4, 6, 3).eval()
    conv.freeze_standardization()
    w = conv.weight.detach()
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(conv.frozen_weight, (w - mean) / (std + 1e-5))
    # new weights through a state_dict: the frozen copy must not survive
    conv.load_state_dict({"weight": torch.randn(6, 4, 3, 3)})
    assert conv.frozen_weight is None
    x = torch.randn(1, 4, 9, 9)
    w = conv.weight.detach()
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1)), (w - w.mean(dim=(1, 2, 3), keepdim=True))
                        / (w.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1e-5))
    torch.testing.assert_close(conv(x), expected)
    conv.freeze_standardization()
    conv.train()  # training recomputes from the raw weight, with gradients
    assert conv.frozen_weight is None
    assert conv.standardized_weight().requires_grad
    assert "frozen_weight" not in conv.state_dict()


def test_asymmetric_same_padding_still_pads_after():
    torch.manual_seed(0)
    conv = StdConv2dSame(2, 3, 3, stride=2).eval()
    x = torch.randn(1, 2, 8, 8)  # SAME: one row/column of zeros after, none before
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.standardized_weight(), stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-2:] == (4, 4)


def test_forward_batched_equals_one_forward(small_model):
    x = torch.randn(3, 2, 3, 224, 224)
    with torch.no_grad():
        whole = small_model(x)
    parts = forward_batched(small_model, x, batch_size=2)
    for key in ("pose6d", "cam"):
        torch.testing.assert_close(parts[key], whole[key], atol=1e-5, rtol=0)


def test_device_and_dtype_errors_are_user_errors():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        resolve_device("tpu")
    with pytest.raises(InputError):
        resolve_dtype("fp8", torch.device("cpu"))
    with pytest.raises(InputError, match="CUDA only"):
        resolve_dtype("fp16", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")


def test_vibe_like_shapes():
    torch.manual_seed(0)
    model = VIBELike().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 3, 64, 64))
    assert out["feature"].shape == (1, 3, 2048) and out["pose6d"].shape == (1, 3, 144)
    assert out["betas"].shape == (1, 3, 10) and out["cam"].shape == (1, 3, 3)


def test_measure_speed_and_matmul_peak(small_model):
    result = measure_speed(small_model, "MAED-1", batch_size=1, frames=4, interp=2,
                           device=torch.device("cpu"), warmup=0, iters=2,
                           macs_per_clip=10**9)
    assert result.network_frames == 2 and len(result.timings_ms) == 2
    assert result.frames_per_s == pytest.approx(4 * 1000 / result.latency_ms)
    assert result.gmacs_per_s == pytest.approx(1000 / result.latency_ms)
    assert result.peak_memory_mb > 0 and result.memory_kind == "process_peak_rss"
    assert matmul_peak_flops(torch.device("cpu"), sizes=(128,), reps=2) > 1e8


@pytest.mark.slow
def test_compiled_model_gives_the_plain_outputs(small_model):
    """torch.compile of the prepared network (Inductor, CPU): minutes on a small machine."""
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        reference = small_model(x)
    fast = prepare_for_inference(MAED(**TINY), "cpu", channels_last=True)
    fast.load_state_dict(small_model.state_dict())
    compiled = prepare_for_inference(fast, "cpu", channels_last=True, compile=True)
    with torch.inference_mode():
        out = compiled(x)
    for key in ("feature", "pose6d", "betas", "cam"):
        torch.testing.assert_close(out[key], reference[key], atol=1e-4, rtol=0)


# ---------------------------------------------------------------- command line


def test_cli_json_counts_with_vibe(capsys):
    assert main(["profile", "--blocks", "6", "--frames", "16", "--interp", "2",
                 "--compare", "vibe", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["blocks"], out["frames"], out["interp"], out["network_frames"]) == (6, 16, 2, 8)
    assert out["params"] == 72_132_153
    assert abs(out["gmacs_per_clip"] / 100.4 - 1) < 0.03
    assert out["gmacs_per_frame"] == pytest.approx(out["gmacs_per_clip"] / 16, rel=1e-3)
    # executed: the last block's projection and MLP for the cls token alone, 8 frames
    dead = 8 * 196 * (768 * 768 + 2 * 768 * 3072) / 1e9
    assert out["gmacs_executed_per_clip"] == pytest.approx(out["gmacs_per_clip"] - dead,
                                                           abs=1e-3)
    vibe = out["vibe"]
    for key in ("params", "gmacs_per_clip", "gmacs_per_frame", "blocks", "frames", "interp"):
        assert key in vibe
    assert vibe["frames"] == 16 and vibe["interp"] == 1
    assert "FLOPs / 2" in out["convention"] and out["speed"] == []


def test_cli_table_and_speed(capsys):
    assert main(["profile", "--blocks", "1", "--frames", "2", "--batch-size", "1",
                 "--device", "cpu", "--warmup", "0", "--iters", "1"]) == 0
    out = capsys.readouterr().out
    assert "backbone" in out and "blocks" in out and "GMACs" in out
    assert "frames/s" in out and "ms" in out


def test_cli_json_speed(capsys):
    assert main(["profile", "--blocks", "1", "--frames", "1", "--batch-size", "1,2",
                 "--device", "cpu", "--warmup", "0", "--iters", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["batch_size"] for s in out["speed"]] == [1, 2]
    assert all(s["frames_per_s"] > 0 and s["device"] == "cpu" for s in out["speed"])


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "two"], "--batch-size"),
    (["--frames", "32"], "at most 16"),
    (["--compare", "hmr"], "--compare"),
    (["--dtype", "fp16", "--device", "cpu", "--batch-size", "1"], "CUDA only"),
])
def test_cli_user_errors_are_one_line(args, message, capsys):
    assert main(["profile", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class _Scale(torch.nn.Module):
    """A dict-returning network whose output overflows fp16 for large inputs."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2, bias=False)
        torch.nn.init.constant_(self.lin.weight, 1000.0)

    def forward(self, x):
        return {"out": self.lin(x)}


def test_fp16_overflow_reruns_the_batch_in_fp32(recwarn):
    from maed_cli.model import inference
    model = _Scale()
    cpu = torch.device("cpu")
    small = torch.ones(3, 4)
    out = inference.forward_mixed(model, small, cpu, torch.float16)
    assert out["out"].dtype == torch.float16  # within range: fp16 result kept
    inference._FELL_BACK = False
    big = torch.full((3, 4), 100.0)  # 4 x 100 x 1000 = 400,000 > 65,504
    out = inference.forward_mixed(model, big, cpu, torch.float16)
    assert out["out"].dtype == torch.float32
    torch.testing.assert_close(out["out"], torch.full((3, 2), 400_000.0))
    assert any("fp16 overflowed" in str(w.message) for w in recwarn.list)


def test_auto_precision_is_fp16_on_cuda_and_fp32_on_cpu():
    from maed_cli.devices import resolve_dtype
    assert resolve_dtype("auto", torch.device("cuda")) is torch.float16
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_padding_gives_the_compiled_network_one_shape():
    from maed_cli.model import inference
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return {"out": x * 2}

    x = torch.arange(6.0).reshape(3, 2)
    out = inference.forward_mixed(Recorder(), x, torch.device("cpu"), torch.float32, pad_to=5)
    assert seen == [5]
    torch.testing.assert_close(out["out"], x * 2)  # the padding is dropped
    out = inference.forward_mixed(Recorder(), x, torch.device("cpu"), torch.float32, pad_to=3)
    assert seen == [5, 3] and out["out"].shape == (3, 2)
