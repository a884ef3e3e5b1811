"""Training data: clip sampling, augmentation, db validation, config loading (fast)."""
from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from maed_cli.data.training_sets import augment as A
from maed_cli.data.training_sets.synthetic_train import write_synthetic_train_data
from maed_cli.data.training_sets.datasets import (AugmentSpec, ImageRows, VideoClips, plan_pools,
                                          read_table, reflect_indices)
from maed_cli.errors import InputError
from maed_cli.model import MAED
from maed_cli.model.encoder import ST_MODES
from maed_cli.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_data")
    write_synthetic_train_data(folder)
    return folder


# --- sampling (16 frames at interval 8 out of 128-row pools) --------------------------------

def test_pools_and_clip_sampling_match_maed():
    vid = np.array(["a"] * 300 + ["b"] * 100)
    pools = plan_pools(vid, pool=128, stride=64)
    # a: 300 rows padded to 384 -> windows at 0, 64, ..., 256 (5); b: 100 -> 128 -> 1 window
    assert len(pools) == 6
    assert all(len(rows) == 128 for _, rows in pools)
    first, rows = pools[-1]
    assert first == 300 and rows.min() >= 300 and rows.max() <= 399
    # the padding reflects: ... 398, 399, 398, 397 ...
    assert list(rows[98:103] - 300) == [98, 99, 98, 97, 96]
    clips = VideoClips.__new__(VideoClips)  # only clip_rows, no db needed
    clips.seqlen, clips.interval = 16, 8
    _, rows = pools[0]
    for start in range(8):
        clip = clips.clip_rows(rows, start)
        assert len(clip) == 16
        assert np.all(np.diff(clip) == 8) and clip[0] == start


def test_reflect_indices():
    assert list(reflect_indices(3, 8)) == [0, 1, 2, 1, 0, 1, 2, 1]
    assert list(reflect_indices(1, 3)) == [0, 0, 0]


def test_video_items_random_start_and_determinism(synth):
    table = read_table("3dpw", synth / "database/3dpw_train_db.pt", synth / "3dpw", True, True,
                       True)
    clips = VideoClips(table, seqlen=2, sample_pool=8, stride=4, aug=AugmentSpec(), seed=3)
    a, b = clips[(0, 1)], clips[(0, 1)]
    assert a["images"].shape == (2, 3, 224, 224) and a["kp2d"].shape == (2, 49, 3)
    assert a["kp3d"].shape == (2, 49, 4) and a["pose"].shape == (2, 72)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["kp2d"], b["kp2d"])
    assert a["w_smpl"].tolist() == [1.0, 1.0] and a["w_3d"].tolist() == [1.0, 1.0]
    others = [clips[(p, 1)]["images"] for p in range(1, 6)]
    assert any(not torch.equal(a["images"], o) for o in others)  # a new pass re-augments


# --- augmentation -------------------------------------------------------------------------

def test_flip_permutations_are_involutions_and_swap_sides():
    assert np.array_equal(A.FLIP_PERM_49[A.FLIP_PERM_49], np.arange(49))
    assert np.array_equal(A.FLIP_PERM_SMPL[A.FLIP_PERM_SMPL], np.arange(24))
    assert A.FLIP_PERM_49[27] == 28 and A.FLIP_PERM_49[25] == 30  # LSP hips, ankles
    assert A.FLIP_PERM_49[2] == 5 and A.FLIP_PERM_49[0] == 0  # OP shoulders, nose
    assert A.FLIP_PERM_SMPL[22] == 23 and A.FLIP_PERM_SMPL[0] == 0


def test_flip_pose_includes_right_hand_and_is_involution():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=72).astype(np.float32)
    flipped = A.flip_pose(pose)
    aa, fa = pose.reshape(24, 3), flipped.reshape(24, 3)
    # joint 23 (right hand) becomes the mirrored left hand (22): the official bug skipped it
    assert np.allclose(fa[22], aa[23] * [1, -1, -1]) and np.allclose(fa[23], aa[22] * [1, -1, -1])
    assert np.allclose(A.flip_pose(flipped), pose)


def test_flip_matches_mirrored_body(synthetic_body):
    """Mirroring the pose must mirror the body's joints (x -> -x, left <-> right)."""
    rng = np.random.default_rng(1)
    pose = (rng.normal(size=72) * 0.3).astype(np.float32)
    j = synthetic_body(pose=torch.from_numpy(pose)[None]).joints49[0].numpy()
    jf = synthetic_body(pose=torch.from_numpy(A.flip_pose(pose))[None]).joints49[0].numpy()
    mirrored = A.flip_keypoints(np.concatenate([j, np.ones((49, 1))], 1))[:, :3]
    # compare the SMPL-joint based ones (25..36), relative to the pelvis
    sel = list(range(25, 37))
    err = (jf[sel] - jf[8]) - (mirrored[sel] - mirrored[8])
    assert np.abs(err).max() < 0.02


def test_random_erase_erases_columns_from_one_side():
    frames = np.full((40, 16, 20, 3), 200, np.uint8)
    out = A.random_erase(frames, np.random.default_rng(5), p=1.0, max_ratio=0.7)
    erased = out[..., 0] == 0
    touched = [t for t in range(40) if erased[t].any()]
    assert touched
    for t in touched:
        cols = erased[t].all(axis=0)  # whole columns, all rows
        assert erased[t].sum() == cols.sum() * 16
        idx = np.flatnonzero(cols)
        assert idx[0] == 0 or idx[-1] == 19  # starts at an edge
    sides = {bool(erased[t][:, 0].any()) for t in touched}
    assert len(sides) == 1  # one side for the whole clip


def test_keypoints_follow_the_crop():
    region = np.array([50.0, 60.0, 100.0])
    kp = np.array([[[50.0, 60.0, 1.0], [0.0, 10.0, 1.0], [100.0, 110.0, 0.5]]])
    out = A.keypoints_to_crop(kp, region)
    assert np.allclose(out[0, :, :2], [[0, 0], [-1, -1], [1, 1]])
    assert np.allclose(out[0, :, 2], [1, 1, 0.5])
    image = np.zeros((120, 120, 3), np.uint8)
    image[55:65, 45:55] = 255  # a square at the region centre lands at the crop centre
    crop = A.warp_crop(image, region)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(ys.mean() - 111.5) < 1.5 and abs(xs.mean() - 111.5) < 1.5


# --- bad data -------------------------------------------------------------------------------

def _copy_db(synth: Path, name: str, tmp_path: Path, edit) -> Path:
    from maed_cli.safe_pickle import load_joblib
    db = load_joblib(synth / f"database/{name}_train_db.pt")
    edit(db)
    path = tmp_path / f"{name}_train_db.pt"
    joblib.dump(db, path)
    return path


def test_db_missing_keys_names_file_and_key(synth, tmp_path):
    path = _copy_db(synth, "3dpw", tmp_path, lambda db: db.pop("joints3D"))
    with pytest.raises(InputError, match=r"3dpw_train_db\.pt: lacks joints3D"):
        read_table("3dpw", path, synth / "3dpw", True, True, True)


def test_missing_image_names_file_and_row_or_is_skipped(synth, tmp_path):
    def edit(db):
        db["img_name"] = db["img_name"].astype(object)
        db["img_name"][3] = "coco2014-all/coco/missing.png"
        db["img_name"] = db["img_name"].astype(str)
    path = _copy_db(synth, "coco2014-all", tmp_path, edit)
    table = read_table("coco2014-all", path, synth / "coco2014-all", False, False, True)
    with pytest.raises(InputError, match=r"coco2014-all_train_db\.pt: row 3: image .*missing"):
        ImageRows(table)
    rows = ImageRows(table, skip_bad=True)
    assert rows.skipped == 1 and len(rows) == 5 and 3 not in rows.rows


def test_short_video_names_row_or_is_skipped(synth, tmp_path):
    def edit(db):  # make the second video only 1 frame long
        db["vid_name"] = np.array(["seq0_0"] * 23 + ["short"])
    path = _copy_db(synth, "3dpw", tmp_path, edit)
    table = read_table("3dpw", path, synth / "3dpw", True, True, True)
    with pytest.raises(InputError, match=r"row 23: video short .* 1 frames, fewer than the 2"):
        VideoClips(table, seqlen=2, sample_pool=8, stride=4)
    clips = VideoClips(table, seqlen=2, sample_pool=8, stride=4, skip_bad=True)
    assert clips.skipped == 1 and all(23 not in p for p in clips.pools)


def test_non_finite_row_is_named(synth, tmp_path):
    def edit(db):
        db["joints2D"][5, 3, 0] = np.nan
    path = _copy_db(synth, "coco2014-all", tmp_path, edit)
    table = read_table("coco2014-all", path, synth / "coco2014-all", False, False, True)
    with pytest.raises(InputError, match="row 5: kp2d is not finite"):
        ImageRows(table)


def test_unsafe_db_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "x_train_db.pt"
    path.write_bytes(pickle.dumps({"img_name": Evil()}))
    with pytest.raises(InputError, match="not a readable db file"):
        read_table("x", path, tmp_path, False, False, False)


def test_image_without_smpl_fit_has_zero_weight(synth):
    table = read_table("coco2014-all", synth / "database/coco2014-all_train_db.pt",
                       synth / "coco2014-all", False, False, True)
    rows = ImageRows(table, AugmentSpec(training=False))
    assert rows[0]["w_smpl"].item() == 1.0 and rows[1]["w_smpl"].item() == 0.0
    assert rows[0]["w_3d"].item() == 0.0


# --- config ---------------------------------------------------------------------------------

def test_configs_load_and_override():
    cfg = load_config(ROOT / "configs/stage2.yaml", ["optim.lr=5e-5", "model.num_blocks=3",
                                                     "data.video_3d=[3dpw]"])
    assert cfg.optim.lr == 5e-5 and cfg.model.num_blocks == 3 and cfg.data.video_3d == ["3dpw"]
    assert cfg.loss.kp_3d == 600 and cfg.optim.milestones == [60, 90]
    s1 = load_config(ROOT / "configs/stage1.yaml")
    assert s1.stage == 1 and s1.model.st_mode == "vanilla" and not s1.augment.color
    assert s1.data.batch_img == 128 and s1.optim.weight_decay == 1e-5
    for preset in sorted((ROOT / "configs/presets").glob("*.yaml")):
        load_config(preset)
    smoke = load_config(ROOT / "configs/cpu-smoke.yaml")
    assert smoke.model.num_blocks == 1 and smoke.optim.amp == "off"


def test_config_errors_name_the_key():
    with pytest.raises(InputError, match="unknown key 'lrr'"):
        load_config(ROOT / "configs/stage2.yaml", ["optim.lrr=1"])
    with pytest.raises(InputError, match="num_blocks must be in 1..12"):
        load_config(ROOT / "configs/stage2.yaml", ["model.num_blocks=13"])
    with pytest.raises(InputError, match="stage 1 trains images only"):
        load_config(ROOT / "configs/stage2.yaml", ["stage=1"])
    with pytest.raises(InputError, match="st_mode 'coupled' is unknown; use one of parallel"):
        load_config(ROOT / "configs/stage2.yaml", ["model.st_mode=coupled"])


@pytest.mark.parametrize("st_mode", ST_MODES)
def test_every_attention_mode_of_the_model_can_be_trained(st_mode):
    cfg = load_config(ROOT / "configs/stage2.yaml", [f"model.st_mode={st_mode}"])
    MAED(cfg.model.num_blocks, cfg.model.num_heads, cfg.model.st_mode, cfg.model.hidden_dim)


def test_unreadable_image_names_row_or_is_replaced(synth, tmp_path):
    import shutil
    root = tmp_path / "coco2014-all"
    shutil.copytree(synth / "coco2014-all", root)
    table = read_table("coco2014-all", synth / "database/coco2014-all_train_db.pt", root,
                       False, False, True)
    Path(table.img[2]).write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"coco2014-all_train_db\.pt: row 2: cannot read image"):
        ImageRows(table, AugmentSpec(training=False))[(0, 2)]
    rows = ImageRows(table, AugmentSpec(training=False), skip_bad=True)
    item = rows[(0, 2)]
    assert item["replaced"].item() == 1.0 and item["id"].endswith(":3")
    assert rows[(0, 1)]["replaced"].item() == 0.0


def test_config_by_preset_name():
    assert load_config("presets/vibe").data.images == []
    assert load_config("stage1").stage == 1
    with pytest.raises(InputError, match="config file not found: nope"):
        load_config("nope")


@pytest.mark.parametrize("override, message", [
    ("optim.epochs=-1", r"optim\.epochs must be a whole number >= 1, got -1"),
    ("optim.epochs=0", r"optim\.epochs must be a whole number >= 1, got 0"),
    ("optim.epochs=1.5", r"optim\.epochs must be a whole number >= 1, got 1\.5"),
    ("optim.lr=-1", r"optim\.lr must be a number > 0, got -1\.0"),
    ("optim.lr=0", r"optim\.lr must be a number > 0, got 0\.0"),
    ("optim.lr=.nan", r"optim\.lr must be a number > 0, got nan"),
    ("data.batch_3d=0", r"data\.batch_3d must be a whole number >= 1 while data\.video_3d "
                        r"lists datasets \(set data\.video_3d=\[\] to train without them\)"),
    ("data.batch_img=0", r"data\.batch_img must be a whole number >= 1 while data\.images"),
    ("data.batch_2d=-1", r"data\.batch_2d must be a whole number >= 1"),
])
def test_config_numbers_are_checked_naming_the_key(override, message):
    with pytest.raises(InputError, match=message):
        load_config(ROOT / "configs/stage2.yaml", [override])


def test_batch_of_a_stream_that_is_not_built_may_be_zero():
    cfg = load_config(ROOT / "configs/stage2.yaml", ["data.video_3d=[]", "data.batch_3d=0",
                                                     "data.images=[]", "data.batch_img=0"])
    assert cfg.data.batch_3d == 0 and cfg.data.batch_img == 0
    stage1 = load_config(ROOT / "configs/stage1.yaml", ["data.batch_2d=0", "data.batch_3d=0"])
    assert stage1.data.batch_2d == 0
    with pytest.raises(InputError, match=r"data\.batch_2d must be a whole number >= 0"):
        load_config(ROOT / "configs/stage1.yaml", ["data.batch_2d=-2"])


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "null\n"])
def test_empty_config_file_is_refused(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"empty\.yaml: the file holds no settings"):
        load_config(path)


def test_stream_refuses_batch_zero_instead_of_dividing_by_it():
    from maed_cli.train.distributed import DistInfo
    from maed_cli.train.trainer import Stream
    info = DistInfo(rank=0, world_size=1, local_rank=0)
    with pytest.raises(InputError, match=r"video_3d datasets need a batch size >= 1.*got 0"):
        Stream("video_3d", list(range(8)), 0, 0, info, 0, torch.device("cpu"))
