"""MAED against the official code: the parity fixture in tests/fixtures (see its README)."""
import hashlib

import numpy as np
import pytest
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.model import MAED, count_parameters
from parity_fill import clip_input, filled_state_dict, load_fixture


@pytest.fixture(scope="module")
def parity(request):
    ref, meta = load_fixture()
    model = MAED(num_blocks=meta["num_blocks"], st_mode=meta["st_mode"])
    model.load_state_dict(filled_state_dict(model.state_dict()), strict=True)
    model.eval()
    x = clip_input(meta["seed"], meta["n"], meta["t"])
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == meta["input_sha256"]
    with torch.no_grad():
        out = model(x)
    return ref, meta, model, out


def test_parameter_count_matches_official(parity):
    _, meta, model, _ = parity
    assert count_parameters(model) == meta["params"] == 72_132_153
    assert len(model.state_dict()) == meta["keys"]


@pytest.mark.parametrize("ours,theirs", [("feature", "feature"), ("pose6d", "pose6d"),
                                         ("rotmat", "rotmat"), ("betas", "shape"),
                                         ("cam", "cam")])
def test_outputs_match_official(parity, ours, theirs):
    ref, _, _, out = parity
    np.testing.assert_allclose(out[ours].numpy(), ref[theirs], atol=1e-4, rtol=0)


def test_axis_angle_matches_official(parity):
    ref, _, _, out = parity
    ours = out["pose"].reshape(-1, 24, 3)
    theirs = torch.from_numpy(ref["pose_aa"]).reshape(-1, 24, 3)
    angle = theirs.norm(dim=-1)
    away_from_pi = angle < 3.0
    assert away_from_pi.any()
    np.testing.assert_allclose(ours[away_from_pi].numpy(), theirs[away_from_pi].numpy(),
                               atol=1e-3, rtol=0)
    # Near pi the axis sign is ambiguous: compare the rotations the vectors encode.
    np.testing.assert_allclose(axis_angle_to_rotmat(ours).numpy(),
                               axis_angle_to_rotmat(theirs).numpy(), atol=1e-3, rtol=0)


def test_standardized_weight_cache_is_invisible(parity):
    """Second forward (cached standardised weights) equals the first bit for bit."""
    _, meta, model, out = parity
    with torch.no_grad():
        again = model(clip_input(meta["seed"], meta["n"], meta["t"]))
    assert torch.equal(again["feature"], out["feature"])
