"""The network side of the protocol: windowing, batching over pools, crops, scatter back."""
import cv2
import numpy as np
import pytest
import torch
from eval_fixtures import gt_joints_fn, make_3dpw
from torch import nn

from maed_cli.clips import plan_clips
from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
from maed_cli.errors import InputError
from maed_cli.evaluate.inference import predict
from maed_cli.video.crop import crop_and_normalize, crop_regions


class CropProbe(nn.Module):
    """Stands in for MAED: reports what it was fed, per frame.

    betas[0..2] = the crop's mean per channel, betas[3] = the frame's position in its clip,
    betas[4] = how many clips were in the forward batch; rotmat = a rotation about z by
    betas[0] radians; cam = the crop's top-left pixel."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x):
        n, t = x.shape[:2]
        self.batches.append(n)
        mean = x.mean(dim=(-1, -2))  # (N, T, 3)
        betas = torch.zeros(n, t, 10)
        betas[..., :3] = mean
        betas[..., 3] = torch.arange(t, dtype=torch.float32)
        betas[..., 4] = n
        angle = mean[..., 0]
        c, s = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(n, t, 24, 3, 3)
        rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1] = (
            c[..., None], -s[..., None], s[..., None], c[..., None])
        rot[..., 2, 2] = 1
        return {"rotmat": rot, "betas": betas, "cam": x[..., :, 0, 0]}


@pytest.fixture(scope="module")
def evalset(tmp_path_factory, synthetic_body):
    root = tmp_path_factory.mktemp("3dpw")
    make_3dpw(root, synthetic_body, sequences=1, frames=150, people=2)
    return build_from_sequences(root, "test", gt_joints_fn(synthetic_body))


def expected_inputs(evalset, rows):
    """The normalised crop of each row, computed directly: 1.3 x the db box."""
    out = []
    for row in rows:
        image = cv2.cvtColor(cv2.imread(str(evalset.img_name[row])), cv2.COLOR_BGR2RGB)
        out.append(crop_and_normalize(image, crop_regions(evalset.bbox[row:row + 1], 1.3))[0])
    return np.stack(out)


def test_every_frame_gets_its_own_crop_once(evalset):
    probe = CropProbe()
    preds = predict(evalset, probe, batch_pools=3, workers=0)
    rows = np.arange(len(evalset))
    crops = expected_inputs(evalset, rows)
    np.testing.assert_allclose(preds.betas[:, :3], crops.mean(axis=(-1, -2)), atol=1e-4)
    np.testing.assert_allclose(preds.cam, crops[:, :, 0, 0], atol=1e-5)
    # each frame's position in its clip is its index within the 128-frame pool // 8
    for _, a, b in evalset.tracks():
        np.testing.assert_array_equal(preds.betas[a:b, 3], (np.arange(b - a) % 128) // 8)
    # batching: up to 3 pools of 8 clips per forward; tracks of 145 and 143 frames have 2
    # pools each (the second with only the clips that hold a real frame)
    plans = [plan_clips(b - a) for _, a, b in evalset.tracks()]
    assert sum(probe.batches) == sum(p.num_clips for p in plans)
    assert max(probe.batches) <= 3 * 8 and len(probe.batches) == 2


def test_interpolation_runs_every_kth_frame(evalset):
    part = evalset.take(slice(0, 40))
    probe = CropProbe()
    preds = predict(part, probe, interp=2, workers=1)
    plan = plan_clips(40, interp=2)
    sampled = plan.sample
    assert sampled.tolist() == list(range(0, 40, 2)) + [39]
    crops = expected_inputs(part, sampled)
    np.testing.assert_allclose(preds.betas[sampled, 0], crops.mean(axis=(-1, -2))[:, 0],
                               atol=1e-4)
    skipped = np.setdiff1d(np.arange(40), sampled)
    np.testing.assert_allclose(preds.betas[skipped, 0],
                               (preds.betas[skipped - 1, 0] + preds.betas[skipped + 1, 0]) / 2,
                               atol=1e-5)
    # rotations are interpolated on SO(3): still rotations
    r = preds.rotmat[skipped, 0]
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-5)


def test_unreadable_image_is_named(evalset, tmp_path):
    part = evalset.take(slice(0, 5))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    part.img_name = part.img_name.copy()
    part.img_name[2] = str(broken)
    with pytest.raises(InputError, match="broken.jpg"):
        predict(part, CropProbe(), workers=0)
