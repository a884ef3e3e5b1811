"""`maed eval` against the official evaluation, computed here independently on a small case
(issue #16): a synthetic 3DPW-format db, a fixed network stand-in, and the reference's
protocol step by step in plain numpy (maed_reference.md §3.1, §3.2, §5.1): the official crop
(three-point affine), to_tensor then Normalize, 128-frame pools cut into 8 interleaved
16-frame clips, SMPL, J_regressor_h36m -> H36M_TO_J14, hip-midpoint centring, MPJPE,
PA-MPJPE (per-frame Procrustes), PVE, and the acceleration error over all frames
concatenated in the db's order."""
from __future__ import annotations

import types

import cv2
import joblib
import numpy as np
import pytest
import torch
from eval_fixtures import gt_joints_fn, install_synthetic_smpl, make_3dpw
from test_crop_official import official_matrix
from torch import nn
from torch.nn import functional as F

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.data.evaluation_sets.threedpw import build_from_sequences
from maed_cli.evaluate.runner import EvalOptions, run_evaluation
from maed_cli.model.maed import MAEDConfig

H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]  # reference §3.5
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TOLERANCE_MM = 0.02


class StandIn(nn.Module):
    """A fixed function in MAED's interface, sensitive to every crop pixel (8 x 8 mean pooling
    of the normalised crop) and to the other frames of its clip (the clip mean)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(16)
        self.register_buffer("w_pose", 0.01 * torch.randn(192, 72, generator=g))
        self.register_buffer("w_betas", 0.02 * torch.randn(192, 10, generator=g))

    def forward(self, x):
        n, t = x.shape[:2]
        f = F.avg_pool2d(x.reshape(n * t, 3, 224, 224), 28).reshape(n, t, 192)
        f = f + 0.5 * f.mean(dim=1, keepdim=True)
        aa = (f @ self.w_pose).reshape(n, t, 24, 3)
        aa[..., 0, 0] += torch.pi  # upright in the camera frame (image y points down)
        cam = torch.tensor([0.9, 0.0, 0.0]).expand(n, t, 3)
        return {"rotmat": axis_angle_to_rotmat(aa), "betas": f @ self.w_betas, "cam": cam}


@pytest.fixture(scope="module")
def case(tmp_path_factory, synthetic_body):
    """A db of 2 tracks of 128 frames each, deliberately not in name order."""
    root = tmp_path_factory.mktemp("official_case")
    make_3dpw(root, synthetic_body, sequences=1, frames=140, people=2)
    evalset = build_from_sequences(root, "test", gt_joints_fn(synthetic_body))
    rows = []
    for name, a, _ in sorted(evalset.tracks(), reverse=True):
        rows.append(np.arange(a, a + 128))
    part = evalset.take(np.concatenate(rows))
    joints = np.zeros((len(part), 49, 4))
    joints[:, 25:39, :3] = part.joints3d
    joints[:, 25:39, 3] = 1
    db = {"vid_name": part.vid_name, "frame_id": part.frame_id, "img_name": part.img_name,
          "joints3D": joints, "pose": part.pose, "shape": part.shape, "bbox": part.bbox,
          "valid": part.valid}
    path = root / "3dpw_test_db.pt"
    joblib.dump(db, path)
    return path, db


def half_pixel_matrix(cx, cy, w, h):
    """The crop this project used before issue #16: pixel centres at i + ½ on both sides."""
    a = 224.0 / w
    return np.array([[a, 0, a * (0.5 - (cx - w / 2)) - 0.5],
                     [0, a, a * (0.5 - (cy - h / 2)) - 0.5]])


def official_inputs(db, rows, matrix=official_matrix) -> torch.Tensor:
    """(n, 3, 224, 224): crop of 1.3 x the db box, to_tensor (/255), Normalize."""
    crops = []
    for row in rows:
        image = cv2.cvtColor(cv2.imread(str(db["img_name"][row])), cv2.COLOR_BGR2RGB)
        cx, cy, w, h = db["bbox"][row]
        crops.append(cv2.warpAffine(image, matrix(cx, cy, 1.3 * w, 1.3 * h), (224, 224),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0))
    t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255)
    return (t - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def similarity_transform(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """The classic per-frame Procrustes of the SPIN/VIBE/MAED code: points as columns,
    scale = trace(R K) / var, reflection fixed through det(U Vᵀ)."""
    s1, s2 = s1.T, s2.T  # (3, J)
    mu1, mu2 = s1.mean(axis=1, keepdims=True), s2.mean(axis=1, keepdims=True)
    x1, x2 = s1 - mu1, s2 - mu2
    var1 = np.sum(x1 ** 2)
    k = x1 @ x2.T
    u, _, vh = np.linalg.svd(k)
    v = vh.T
    z = np.eye(3)
    z[-1, -1] *= np.sign(np.linalg.det(u @ v.T))
    r = v @ z @ u.T
    scale = np.trace(r @ k) / var1
    t = mu2 - scale * (r @ mu1)
    return (scale * r @ s1 + t).T


def official_metrics(db, body, net, matrix=official_matrix) -> dict:
    names = db["vid_name"]
    order = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    rotmat = np.zeros((len(names), 24, 3, 3), np.float32)
    betas = np.zeros((len(names), 10), np.float32)
    with torch.no_grad():
        for name in order:  # each track is one 128-frame pool
            rows = np.flatnonzero(names == name)
            assert len(rows) == 128
            x = official_inputs(db, rows, matrix)
            clips = torch.stack([x[i::8] for i in range(8)])  # (8, 16, 3, 224, 224)
            out = net(clips)
            for i in range(8):
                rotmat[rows[i::8]] = out["rotmat"][i].numpy()
                betas[rows[i::8]] = out["betas"][i].numpy()
        pred = body(rotmat=torch.from_numpy(rotmat), betas=torch.from_numpy(betas))
        target = body(pose=torch.as_tensor(db["pose"], dtype=torch.float32),
                      betas=torch.as_tensor(db["shape"], dtype=torch.float32))
    regressor = body.J_regressor_h36m.numpy()
    pred_verts = pred.vertices.numpy()
    pred_j3d = np.einsum("jv,nvc->njc", regressor, pred_verts)[:, H36M_TO_J14]
    target_j3d = db["joints3D"][:, 25:39, :3].astype(np.float32)
    pred_j3d = pred_j3d - (pred_j3d[:, 2] + pred_j3d[:, 3])[:, None] / 2
    target_j3d = target_j3d - (target_j3d[:, 2] + target_j3d[:, 3])[:, None] / 2
    mpjpe = np.sqrt(((pred_j3d - target_j3d) ** 2).sum(-1)).mean(-1)
    aligned = np.stack([similarity_transform(p, t) for p, t in zip(pred_j3d, target_j3d)])
    pa_mpjpe = np.sqrt(((aligned - target_j3d) ** 2).sum(-1)).mean(-1)
    pve = np.sqrt(((pred_verts - target.vertices.numpy()) ** 2).sum(-1)).mean(-1)
    accel_pred = pred_j3d[:-2] - 2 * pred_j3d[1:-1] + pred_j3d[2:]
    accel_gt = target_j3d[:-2] - 2 * target_j3d[1:-1] + target_j3d[2:]
    accel_err = np.linalg.norm(accel_pred - accel_gt, axis=2).mean(axis=1)
    return {k: float(np.mean(v) * 1000) for k, v in (
        ("mpjpe", mpjpe), ("pa_mpjpe", pa_mpjpe), ("pve", pve), ("accel_error", accel_err))}


def ours(case, home, monkeypatch, order="listdir") -> dict:
    from maed_cli.model import checkpoint

    path, _ = case
    dummy = home / "stand-in.pt"
    dummy.write_bytes(b"")
    loaded = types.SimpleNamespace(model=StandIn(), smpl_buffers={}, path=dummy,
                                   kind="official", config=MAEDConfig(), meta={})
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda *a, **k: loaded)
    report = run_evaluation(EvalOptions(db=path, checkpoint=dummy, workers=0, device="cpu",
                                        amp=False, quiet=True, sequence_order=order))
    m = report["metrics"]
    return {"mpjpe": m["mpjpe"], "pa_mpjpe": m["pa_mpjpe"], "pve": m["pve"],
            "accel_error": m["accel_error"]["concatenated"],
            "accel_error_per_sequence": m["accel_error"]["per_sequence"],
            "report": report}


def test_eval_equals_the_official_evaluation(case, synthetic_assets, synthetic_body,
                                             _isolated_asset_home, monkeypatch):
    install_synthetic_smpl(synthetic_assets, _isolated_asset_home)
    _, db = case
    expected = official_metrics(db, synthetic_body, StandIn())
    got = ours(case, _isolated_asset_home, monkeypatch)
    print("\nofficial:", {k: round(v, 4) for k, v in expected.items()})
    print("maed eval:", {k: round(got[k], 4) for k in expected})
    print("|difference| mm:", {k: f"{abs(got[k] - expected[k]):.1e}" for k in expected})
    for key in expected:
        assert abs(got[key] - expected[key]) < TOLERANCE_MM, (key, got[key], expected[key])
    assert expected["mpjpe"] > 20 and expected["pve"] > 20  # a case with real errors
    # the crop this replaces is measurably off on the same case: the test can tell them apart
    old = official_metrics(db, synthetic_body, StandIn(), matrix=half_pixel_matrix)
    print("old crop:", {k: round(v, 4) for k, v in old.items()})
    assert max(abs(old[k] - expected[k]) for k in ("mpjpe", "pa_mpjpe", "pve")) > TOLERANCE_MM

    # sorted order: the same errors, another concatenated acceleration error; each track's
    # own figures do not move
    resorted = ours(case, _isolated_asset_home, monkeypatch, order="sorted")
    for key in ("mpjpe", "pa_mpjpe", "pve", "accel_error_per_sequence"):
        assert resorted[key] == pytest.approx(got[key], abs=1e-9)
    assert abs(resorted["accel_error"] - got["accel_error"]) > 1e-6
    listed = got["report"]["protocol"]["sequence_order"]["sequences"]
    assert listed == [n for i, n in enumerate(db["vid_name"]) if i == 0 or
                      db["vid_name"][i - 1] != n] and listed != sorted(listed)
    assert resorted["report"]["protocol"]["sequence_order"]["sequences"] == sorted(listed)
    by_name = {t["name"]: t for t in got["report"]["per_sequence"]}
    for track in resorted["report"]["per_sequence"]:
        assert track == pytest.approx(by_name[track["name"]])
