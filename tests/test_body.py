"""The SMPL body layer, the synthetic model, safe SMPL file reading, cameras."""
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from maed_cli.body import geometry
from maed_cli.body.joints import JOINT49_NAMES, SMPL_PARENTS
from maed_cli.body.smpl import VERTEX_JOINT_IDS, BodyModel, load_body_model
from maed_cli.body.smpl_files import read_smpl_file, smpl_arrays_from_buffers
from maed_cli.body.synthetic import TPOSE_JOINTS, build_synthetic_smpl
from maed_cli.errors import AssetMissingError, InputError


def random_theta(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.4 * torch.randn(n, 72, generator=g), torch.randn(n, 10, generator=g)


def test_synthetic_structure():
    synth = build_synthetic_smpl()
    m = synth.model
    assert m["v_template"].shape == (6890, 3) and m["f"].shape == (13776, 3)
    assert m["shapedirs"].shape == (6890, 3, 10) and m["posedirs"].shape == (6890, 3, 207)
    assert list(m["kintree_table"][0, 1:]) == list(SMPL_PARENTS[1:])
    np.testing.assert_allclose(m["weights"].sum(1), 1.0)
    assert m["f"].min() >= 0 and m["f"].max() < 6890
    height = m["v_template"][:, 1].max() - m["v_template"][:, 1].min()
    assert 1.6 < height < 1.85
    np.testing.assert_allclose(synth.joints, TPOSE_JOINTS, atol=1e-9)


def test_zero_pose_gives_tpose_joints(synthetic_body):
    out = synthetic_body(pose=torch.zeros(2, 72), betas=torch.zeros(2, 10))
    np.testing.assert_allclose(out.smpl24[0].numpy(), TPOSE_JOINTS, atol=1e-5)


def test_shape_changes_height_and_joints_follow(synthetic_body):
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0
    out = synthetic_body(pose=torch.zeros(2, 72), betas=betas)
    heights = out.vertices[..., 1].amax(1) - out.vertices[..., 1].amin(1)
    assert heights[1] - heights[0] == pytest.approx(0.08, abs=0.005)
    assert out.smpl24[1, 15, 1] > out.smpl24[0, 15, 1] + 0.03  # the head joint rose


def test_matches_smplx_on_the_same_file(synthetic_assets, synthetic_body):
    import smplx
    reference = smplx.SMPL(model_path=str(synthetic_assets["pkl"]))
    pose, betas = random_theta(3)
    ours = synthetic_body(pose=pose, betas=betas)
    theirs = reference(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
    torch.testing.assert_close(ours.vertices, theirs.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.smpl24, theirs.joints[:, :24], atol=1e-5, rtol=0)
    # smplx's own vertex-selected joints (nose, eyes, ..., fingertips) follow the SMPL 24.
    torch.testing.assert_close(ours.vertices[:, list(VERTEX_JOINT_IDS)],
                               theirs.joints[:, 24:45], atol=1e-5, rtol=0)


def test_joint49_hand_picked_indices(synthetic_body, synthetic_assets):
    pose, betas = random_theta(2, seed=3)
    rotmat = geometry.axis_angle_to_rotmat(pose.reshape(2, 24, 3))
    out = synthetic_body(rotmat=rotmat, betas=betas)
    j49, j24, v = out.joints49, out.smpl24, out.vertices
    extra = torch.from_numpy(np.load(synthetic_assets["extra"])).float()
    assert j49.shape == (2, 49, 3) and len(JOINT49_NAMES) == 49
    torch.testing.assert_close(j49[:, 8], j24[:, 0])  # OP MidHip = pelvis
    torch.testing.assert_close(j49[:, 1], j24[:, 12])  # OP Neck = SMPL neck
    torch.testing.assert_close(j49[:, 25], j24[:, 8])  # Right Ankle
    torch.testing.assert_close(j49[:, 36], j24[:, 20])  # Left Wrist
    torch.testing.assert_close(j49[:, 0], v[:, 332])  # OP Nose: smplx vertex 332
    torch.testing.assert_close(j49[:, 45], v[:, 2800])  # Left Eye
    torch.testing.assert_close(j49[:, 19], v[:, 3216])  # OP LBigToe
    torch.testing.assert_close(j49[:, 27], torch.einsum("jv,nvc->njc", extra, v)[:, 0],
                               atol=1e-6, rtol=0)  # LSP right hip from J_regressor_extra
    torch.testing.assert_close(j49[:, 38], torch.einsum("jv,nvc->njc", extra, v)[:, 3],
                               atol=1e-6, rtol=0)  # head top


def test_left_is_plus_x_and_landmarks_are_plausible(synthetic_body):
    out = synthetic_body(pose=torch.zeros(1, 72))
    j = out.joints49[0]
    assert j[34, 0] > 0.1 and j[33, 0] < -0.1  # left / right shoulder
    assert j[0, 1] > j[1, 1] > j[8, 1]  # nose above neck above mid-hip
    assert j[38, 1] > j[0, 1]  # head top above the nose
    assert j[0, 2] > 0.05  # the nose points forward (+z)
    assert out.joints_h36m17.shape == (1, 17, 3)


def test_network_theta_through_body(synthetic_body):
    from maed_cli.model import MAED
    torch.manual_seed(0)
    with torch.no_grad():
        theta = MAED(num_blocks=1).eval()(torch.randn(1, 2, 3, 224, 224))
        out = synthetic_body(rotmat=theta["rotmat"].reshape(-1, 24, 3, 3),
                             betas=theta["betas"].reshape(-1, 10))
    assert out.vertices.shape == (2, 6890, 3) and out.joints49.shape == (2, 49, 3)
    assert torch.isfinite(out.vertices).all()


# --- official pkl layout without chumpy ------------------------------------------------------

def _official_pickle_bytes(model: dict) -> bytes:
    """Pickle the model the way the official SMPL files are: chumpy Ch objects, a scipy
    csc J_regressor. A stand-in `chumpy` module exists only while pickling."""
    import scipy.sparse
    fake = types.ModuleType("chumpy")
    fake_ch = types.ModuleType("chumpy.ch")

    class Ch:  # what matters is the pickled module/class name and the 'x' state
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    fake_ch.Ch = Ch
    fake.ch = fake_ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = fake, fake_ch
    try:
        official = dict(model)
        for key in ("v_template", "shapedirs", "posedirs", "weights"):
            official[key] = Ch(model[key])
        official["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
        official["J"] = Ch(np.zeros((24, 3)))
        official["bs_style"] = "lbs"
        return pickle.dumps(official, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_official_chumpy_layout_loads_without_chumpy(tmp_path):
    model = build_synthetic_smpl().model
    path = tmp_path / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    path.write_bytes(_official_pickle_bytes(model))
    assert "chumpy" not in sys.modules
    loaded = read_smpl_file(path)
    for key in model:
        np.testing.assert_allclose(loaded[key], model[key])
    assert "chumpy" not in sys.modules


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_pkl_with_other_globals_is_refused(tmp_path):
    evil = _Evil()
    evil.marker = tmp_path / "pwned"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": evil}, protocol=2))
    with pytest.raises(InputError, match="refused") as exc:
        read_smpl_file(path)
    assert "\n" not in str(exc.value)
    assert not evil.marker.exists()


def test_smpl_zip_and_wrong_zip(tmp_path, synthetic_assets):
    good = tmp_path / "SMPL_python_v.1.1.0.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.write(synthetic_assets["pkl"],
                "SMPL_python_v.1.1.0/smpl/models/basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
    assert read_smpl_file(good)["v_template"].shape == (6890, 3)
    bad = tmp_path / "other.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("models/basicModel_f_lbs_10_207_0_v1.0.0.pkl", b"x")
    with pytest.raises(InputError, match="no neutral SMPL"):
        read_smpl_file(bad)


def test_not_smpl_files(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"hello": np.zeros(3)}, protocol=2))
    with pytest.raises(InputError, match="missing"):
        read_smpl_file(path)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(InputError, match="not a readable"):
        read_smpl_file(path)


# --- SMPL from a checkpoint's buffers ------------------------------------------------------

def checkpoint_buffers(body: BodyModel) -> dict:
    """The decoder.smpl.* buffers as an official checkpoint stores them (smplx layout)."""
    return {"v_template": body.v_template, "shapedirs": body.shapedirs,
            "posedirs": body.posedirs, "J_regressor": body.J_regressor,
            "lbs_weights": body.lbs_weights, "parents": body.parents,
            "faces_tensor": body.faces_tensor, "J_regressor_extra": body.J_regressor_extra,
            "vertex_joint_selector.extra_joints_idxs": body.vertex_joint_ids}


def test_smpl_from_checkpoint_equals_smpl_from_file(tmp_path, synthetic_assets, synthetic_body):
    from maed_cli.model import MAED, load_checkpoint
    state = {f"module.{k}": v for k, v in MAED(num_blocks=1).state_dict().items()}
    state.update({f"module.decoder.smpl.{k}": v for k, v in
                  checkpoint_buffers(synthetic_body).items()})
    ckpt = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 1, "state_dict": state, "performance": 50.0}, ckpt)
    buffers = load_checkpoint(ckpt).smpl_buffers
    from_checkpoint = load_body_model(checkpoint_buffers=buffers)
    from_file = load_body_model(smpl_path=synthetic_assets["npz"], checkpoint_buffers=buffers)
    assert from_checkpoint.source == "checkpoint"
    pose, betas = random_theta(4, seed=7)
    a, b = from_checkpoint(pose=pose, betas=betas), from_file(pose=pose, betas=betas)
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(a.joints49, b.joints49, atol=1e-6, rtol=0)
    roundtrip = smpl_arrays_from_buffers(buffers)
    np.testing.assert_allclose(roundtrip["posedirs"], read_smpl_file(synthetic_assets["npz"])
                               ["posedirs"], atol=1e-7)


def test_no_smpl_anywhere_says_both_fixes():
    with pytest.raises(AssetMissingError) as exc:
        load_body_model()
    assert "maed setup smpl" in str(exc.value) and "maed setup weights" in str(exc.value)


def test_every_missing_body_asset_is_named_in_one_error():
    with pytest.raises(AssetMissingError) as exc:
        load_body_model(require_h36m=True)  # nothing installed in the test's asset home
    message = str(exc.value)
    assert message.startswith("(1) no SMPL model") and "\n" not in message
    assert "(2) " in message and "J_regressor_extra.npy" in message
    assert "(3) " in message and "J_regressor_h36m.npy" in message


# --- cameras --------------------------------------------------------------------------------

def test_crop_camera_to_full_image_orthographic():
    g = torch.Generator().manual_seed(0)
    points = 0.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    cam = torch.tensor([0.9, 0.05, -0.1], dtype=torch.float64)
    bbox = torch.tensor([700.0, 400.0, 300.0, 300.0], dtype=torch.float64)  # crop region
    w, h = 1280.0, 720.0
    # weak perspective in the crop, mapped to image pixels through the crop box
    crop_xy = cam[0] * (points[:, :2] + cam[1:])
    expected = bbox[:2] + crop_xy * bbox[2:] / 2.0
    full = geometry.project_full_orthographic(points, geometry.crop_cam_to_full(cam, bbox, w, h),
                                              w, h)
    torch.testing.assert_close(full, expected)


def test_full_perspective_translation_places_joints_within_2px(synthetic_body):
    pose, betas = random_theta(1, seed=2)
    joints = synthetic_body(pose=pose * 0.5, betas=betas).joints49[0].double()
    cam = torch.tensor([0.85, 0.02, 0.2], dtype=torch.float64)
    bbox = torch.tensor([300.0, 260.0, 240.0, 240.0], dtype=torch.float64)
    w, h = 640.0, 480.0
    weak = geometry.project_full_orthographic(joints, geometry.crop_cam_to_full(cam, bbox, w, h),
                                              w, h)
    focal = 5000.0 * 240.0 / 224.0  # the training camera, scaled to this crop
    t = geometry.crop_cam_to_translation(cam, bbox, w, h, focal)
    persp = geometry.project_perspective(joints, t, focal, w, h)
    assert (persp - weak).norm(dim=-1).max() < 2.0
    # The training projection inside the crop: the same picture up to the off-axis
    # perspective, and exactly the same when the crop is centred in the image.
    crop = geometry.project_to_crop(joints, cam)
    in_image = bbox[:2] + crop * bbox[2:] / 2.0
    assert (in_image - persp).norm(dim=-1).max() < 2.0
    centred = torch.tensor([w / 2, h / 2, 240.0, 240.0], dtype=torch.float64)
    t_centred = geometry.crop_cam_to_translation(cam, centred, w, h, focal)
    torch.testing.assert_close(centred[:2] + crop * 120.0,
                               geometry.project_perspective(joints, t_centred, focal, w, h),
                               atol=1e-6, rtol=0)
    t_default = geometry.crop_cam_to_translation(cam, bbox, w, h)
    assert t_default[2] == pytest.approx(2 * 800.0 / (0.85 * 240.0), rel=1e-6)
