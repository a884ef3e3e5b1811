from pathlib import Path

import pytest
import torch

from maed_cli.errors import InputError
from maed_cli.model import MAED, count_parameters
from maed_cli.model.decoder import ancestor_chains
from maed_cli.model.encoder import attend, attend_short

FIXTURES = Path(__file__).parent / "fixtures"


def read_keys(name: str) -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in (FIXTURES / name).read_text().splitlines() if line]
    return [(key, shape) for key, shape, _ in rows]


@pytest.mark.parametrize("st_mode,keys_file", [("parallel", "keys_b6_parallel.txt"),
                                               ("vanilla", "keys_b6_vanilla.txt")])
def test_state_dict_keys_and_shapes_equal_official(st_mode, keys_file):
    model = MAED(num_blocks=6, st_mode=st_mode)
    ours = [(k, str(tuple(v.shape))) for k, v in model.state_dict().items()]
    assert ours == read_keys(keys_file)


def test_default_model_parameter_count():
    assert count_parameters(MAED()) == 72_132_153


def test_vanilla_parameter_count():
    assert round(count_parameters(MAED(st_mode="vanilla")) / 1e6, 2) == 57.95


def test_ktd_ancestors():
    chains = ancestor_chains()
    assert chains[0] == []
    assert chains[15] == [0, 3, 6, 9, 12]
    assert chains[22] == [0, 3, 6, 9, 13, 16, 18, 20]
    sizes = [1024 + 6 * len(c) for c in chains]
    assert sizes[10:15] == [1048] * 5 and sizes[22] == 1072


SHAPES = {"feature": (768,), "pose6d": (144,), "rotmat": (24, 3, 3), "pose": (72,),
          "betas": (10,), "cam": (3,)}


def check_outputs(out: dict, n: int, t: int) -> None:
    for key, shape in SHAPES.items():
        assert out[key].shape == (n, t, *shape), key
        assert torch.isfinite(out[key]).all(), key
    assert (out["feature"].abs() < 1).all()  # tanh-bounded
    eye = torch.eye(3).expand_as(out["rotmat"])
    torch.testing.assert_close(out["rotmat"] @ out["rotmat"].transpose(-1, -2), eye,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_blocks", range(1, 13))
@pytest.mark.parametrize("st_mode", ["parallel", "vanilla"])
def test_every_depth_single_frame(num_blocks, st_mode):
    torch.manual_seed(num_blocks)
    model = MAED(num_blocks=num_blocks, st_mode=st_mode).eval()
    with torch.no_grad():
        check_outputs(model(torch.randn(1, 1, 3, 224, 224)), 1, 1)


CLIP_CASES = [(blocks, mode, t) for t in (8, 16)
              for blocks, mode in ((1, "parallel"), (1, "vanilla"), (1, "series"),
                                   (1, "coupling"), (12, "parallel"), (12, "vanilla"))]


@pytest.mark.parametrize("num_blocks,st_mode,t", CLIP_CASES)
def test_clip_lengths(num_blocks, st_mode, t):
    torch.manual_seed(0)
    model = MAED(num_blocks=num_blocks, st_mode=st_mode).eval()
    with torch.no_grad():
        check_outputs(model(torch.randn(1, t, 3, 224, 224)), 1, t)


def test_batch_of_clips_is_independent():
    """Each clip's result depends only on its own frames (no cross-clip attention)."""
    torch.manual_seed(0)
    model = MAED(num_blocks=1).eval()
    x = torch.randn(2, 4, 3, 224, 224)
    with torch.no_grad():
        both = model(x)
        first = model(x[:1])
    torch.testing.assert_close(both["feature"][:1], first["feature"], atol=1e-5, rtol=0)


def test_temporal_mode_mixes_frames_and_vanilla_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 224, 224)
    y = x.clone()
    y[0, 3] = torch.randn(3, 224, 224)  # change only the last frame
    for st_mode, mixes in (("parallel", True), ("vanilla", False)):
        model = MAED(num_blocks=1, st_mode=st_mode).eval()
        with torch.no_grad():
            a, b = model(x)["feature"][0, 0], model(y)["feature"][0, 0]
        assert (not torch.allclose(a, b, atol=1e-7)) == mixes, st_mode


def test_more_than_16_frames_is_a_clear_error():
    model = MAED(num_blocks=1).eval()
    with pytest.raises(InputError, match="at most 16 frames"):
        with torch.no_grad():
            model(torch.zeros(1, 17, 3, 224, 224))


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(InputError, match=r"\(N, T, 3, H, W\)"):
        MAED(num_blocks=1)(torch.zeros(2, 3, 224, 224))


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError):
        MAED(num_blocks=0)
    with pytest.raises(ValueError):
        MAED(st_mode="temporal-only")


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = MAED(num_blocks=1)
    x = torch.randn(1, 2, 3, 224, 224)
    model.train()
    a, b = model(x)["cam"], model(x)["cam"]
    assert not torch.equal(a, b)  # KTD dropout 0.5
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["cam"], model(x)["cam"])


@pytest.mark.parametrize("shape", [(2, 5, 16, 8), (1, 3, 2, 4), (7, 9, 8)])
def test_short_sequence_attention_equals_fused(shape):
    q, k, v = (torch.randn(shape) for _ in range(3))
    out = attend_short(q, k, v, scale=0.3)
    assert out.shape == q.shape
    torch.testing.assert_close(out, attend(q, k, v, scale=0.3), atol=1e-5, rtol=1e-5)
    # each sequence attends only within itself
    q2 = q.clone()
    q2.reshape(-1, *shape[-2:])[0] += 1.0
    changed = (attend_short(q2, k, v, 0.3) != out).reshape(-1, *shape[-2:]).flatten(1)
    assert changed[0].any() and not changed[1:].any()


@pytest.mark.parametrize("st_mode", ["parallel", "series", "coupling", "vanilla"])
def test_skipping_the_last_blocks_dead_tokens_changes_nothing(st_mode):
    torch.manual_seed(0)
    model = MAED(num_blocks=2, num_heads=2, st_mode=st_mode, hidden_dim=64, embed_dim=96,
                 backbone_layers=(1, 1, 1)).eval()
    x = torch.randn(2, 3, 3, 224, 224)
    with torch.no_grad():
        pruned = model(x)
        model.encoder.full_last_block = True
        full = model(x)
    for key in ("feature", "pose6d", "betas", "cam"):
        torch.testing.assert_close(pruned[key], full[key], atol=1e-5, rtol=1e-5)


def test_counted_macs_are_the_architectures_and_executed_ones_fewer():
    from maed_cli.profiling import count_maed
    counted, executed = count_maed(), count_maed(executed=True)
    # the last block's projection and MLP for 196 of 197 tokens, per frame
    dead = 16 * 196 * (768 * 768 + 2 * 768 * 3072)
    assert counted.macs_per_clip - executed.macs_per_clip == dead
