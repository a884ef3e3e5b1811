"""3DPW for evaluation: the official release (`sequenceFiles/`, `imageFiles/`) -> an EvalSet.

The set is built as MAED's (and VIBE's) `3dpw_{val,test}_db.pt`, step by step as in the
reference (maed_reference.md, §5.1 and Appendix A):

1. every person track of every sequence of the split;
2. the global orientation rotated into the camera frame: R = R_cam · R_world;
3. ground-truth joints: neutral SMPL(pose, betas[:10], trans) -> J_regressor_h36m ->
   H36M_TO_J14 (14 LSP-ordered joints, metres) — computed by a callable the caller passes,
   so this module knows nothing of the body model;
4. a box per frame from the 2D keypoints (visible = confidence > 0.3): side 1.1 × the
   keypoint-extent diagonal, centre the extent's midpoint; frames without one are linearly
   interpolated between frames with one; the range is cut to [first, last] frame with a box;
   then (cx, cy, scale = 150/diagonal) are median-filtered (kernel 11, zero-padded ends as in
   scipy.signal.medfilt) and Gaussian-filtered (sigma 8);
5. rows: frames in that range with more than 6 of the 12 limb keypoints visible.

Sequences are taken in file-name order (the official script used the file system's listing
order, which only changes which frames meet at the few track boundaries of the concatenated
acceleration metrics).

One deliberate difference: the official script leaves the smoothed boxes offset by the first
visible frame for persons who are not visible from frame 0 (it pads them with zero rows and
never cuts them like the other fields). Here every box belongs to its own frame; compared with
a preprocessed db file, boxes differ exactly for such tracks (and every later track of the
same file) and nothing else.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import medfilt

from ...body.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from ...errors import InputError
from .evalset import EvalSet, check_images
from ...safe_pickle import UnsafePickleError, load_pickle

SPLIT_DIRS = {"train": "train", "val": "validation", "test": "test"}
VIS_THRESH = 0.3
MIN_KP = 6  # rows need strictly more visible limb keypoints than this
#: 3DPW's 18 COCO-order keypoints -> the 12 limb joints of the 14-joint "common" order
#: (r-ankle, r-knee, r-hip, l-hip, l-knee, l-ankle, r-wrist, r-elbow, r-shoulder, l-shoulder,
#: l-elbow, l-wrist); the common neck and head-top have confidence 0 for 3DPW.
COCO18_TO_COMMON12 = [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7]
BOX_KERNEL = 11
BOX_SIGMA = 8.0
BOX_SCALE = 1.1
REQUIRED_KEYS = ("poses", "betas", "trans", "poses2d", "cam_poses", "campose_valid",
                 "img_frame_ids")
BUILD_VERSION = 1  # bump when the rows or the ground truth change: invalidates caches

#: (pose (B,72) camera-frame axis-angle, betas (B,10), trans (B,3)) -> joints (B,14,3) metres
GtJointsFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class SequenceFile:
    """The fields of one 3DPW sequence file that the evaluation uses.

    poses[p] (F, 72), betas[p] (10,), trans[p] (F, 3), keypoints[p] (F, 18, 3) = x, y, conf,
    campose_valid[p] (F,) bool, cam_poses (F, 4, 4) world -> camera.
    """

    name: str
    path: Path
    poses: list[np.ndarray]
    betas: list[np.ndarray]
    trans: list[np.ndarray]
    keypoints: list[np.ndarray]
    campose_valid: list[np.ndarray]
    cam_poses: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.cam_poses)

    @property
    def num_people(self) -> int:
        return len(self.poses)


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def read_sequence_file(path: str | Path) -> SequenceFile:
    """Read and check one `sequenceFiles/<split>/<seq>.pkl`; any problem is one InputError
    that names the file."""
    path = Path(path)
    try:
        raw = load_pickle(path)
    except UnsafePickleError as exc:
        raise _fail(path, f"not a 3DPW sequence file ({exc}; refused, it could run code)"
                    ) from None
    except FileNotFoundError:
        raise _fail(path, "file not found") from None
    except Exception as exc:  # truncated, not a pickle, ...
        raise _fail(path, f"not a readable 3DPW sequence file "
                          f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(raw, dict):
        raise _fail(path, f"not a 3DPW sequence file (holds a {type(raw).__name__}, "
                          f"not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise _fail(path, f"lacks {', '.join(missing)} — not a sequence file of the 3DPW "
                          f"release this evaluation expects (v1.1 has them; an older or "
                          f"modified release?)")
    frames = len(raw["img_frame_ids"])
    cam_poses = np.asarray(raw["cam_poses"], dtype=np.float64)
    if cam_poses.shape != (frames, 4, 4):
        raise _fail(path, f"cam_poses has shape {cam_poses.shape}, expected ({frames}, 4, 4)")
    people = len(raw["poses"])
    for key in ("betas", "trans", "poses2d", "campose_valid"):
        if len(raw[key]) != people:
            raise _fail(path, f"'{key}' lists {len(raw[key])} people but 'poses' {people}")
    poses, betas, trans, keypoints, valid = [], [], [], [], []
    for p in range(people):
        pose = np.asarray(raw["poses"][p], dtype=np.float64)
        tr = np.asarray(raw["trans"][p], dtype=np.float64)
        kp = np.asarray(raw["poses2d"][p], dtype=np.float64)
        ok = np.asarray(raw["campose_valid"][p]).astype(bool)
        beta = np.asarray(raw["betas"][p], dtype=np.float64).reshape(-1)
        checks = [("poses", pose.shape, (frames, 72)), ("trans", tr.shape, (frames, 3)),
                  ("poses2d", kp.shape, (frames, 3, 18)), ("campose_valid", ok.shape, (frames,))]
        for key, got, want in checks:
            if got != want:
                raise _fail(path, f"person {p}: '{key}' has shape {got}, expected {want} "
                                  f"(the file has {frames} frames)")
        if beta.size < 10:
            raise _fail(path, f"person {p}: 'betas' has {beta.size} values, expected >= 10")
        poses.append(pose)
        trans.append(tr)
        keypoints.append(kp.transpose(0, 2, 1))
        valid.append(ok)
        betas.append(beta[:10])
    return SequenceFile(name=path.stem, path=path, poses=poses, betas=betas, trans=trans,
                        keypoints=keypoints, campose_valid=valid, cam_poses=cam_poses)


# -- boxes ------------------------------------------------------------------------------------
def keypoint_box_params(keypoints: np.ndarray, vis_thresh: float = VIS_THRESH
                        ) -> tuple[np.ndarray, int, int] | None:
    """Per-frame (cx, cy, scale) from the visible 2D keypoints, before smoothing.

    keypoints (F, K, 3) pixels + confidence. A frame has a box when it has a visible point
    and the extent's diagonal is >= 0.5 px; scale = 150 / diagonal. Returns
    (params (end-start, 3), start, end): frames [start, end) run from the first to the last
    frame with a box, frames between without one linearly interpolated. None when no frame
    has a box.
    """
    vis = keypoints[..., 2] > vis_thresh  # (F, K)
    has_point = vis.any(axis=1)
    # Frames without a visible point get a zero extent here and are excluded just below.
    lo = np.where(vis[..., None], keypoints[..., :2], np.inf).min(axis=1)  # (F, 2)
    hi = np.where(vis[..., None], keypoints[..., :2], -np.inf).max(axis=1)
    lo[~has_point] = 0.0
    hi[~has_point] = 0.0
    diagonal = np.linalg.norm(hi - lo, axis=1)
    has_box = has_point & (diagonal >= 0.5)
    frames = np.flatnonzero(has_box)
    if len(frames) == 0:
        return None
    start, end = int(frames[0]), int(frames[-1]) + 1
    centre = (lo + hi) / 2.0
    known = np.concatenate([centre[frames], (150.0 / diagonal[frames])[:, None]], axis=1)
    span = np.arange(start, end)
    params = np.stack([np.interp(span, frames, known[:, i]) for i in range(3)], axis=1)
    return params, start, end


def smooth_box_params(params: np.ndarray, kernel: int = BOX_KERNEL,
                      sigma: float = BOX_SIGMA) -> np.ndarray:
    """Median (zero-padded ends, as scipy.signal.medfilt) then Gaussian filter per column."""
    with warnings.catch_warnings():  # short tracks: medfilt warns that it zero-pads
        warnings.simplefilter("ignore")
        median = np.stack([medfilt(params[:, i], kernel) for i in range(params.shape[1])],
                          axis=1)
    return np.stack([gaussian_filter1d(median[:, i], sigma) for i in range(params.shape[1])],
                    axis=1)


def boxes_from_keypoints(keypoints: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """keypoints (F, 18, 3) -> (boxes (end-start, 4) = cx, cy, w, h pixels, start, end),
    each box belonging to its own frame start + i. None when the person is never visible."""
    found = keypoint_box_params(keypoints)
    if found is None:
        return None
    params, start, end = found
    smooth = smooth_box_params(params)
    side = BOX_SCALE * 150.0 / smooth[:, 2]
    return np.stack([smooth[:, 0], smooth[:, 1], side, side], axis=1), start, end


def visible_limb_count(keypoints: np.ndarray) -> np.ndarray:
    """(F, 18, 3) -> (F,) number of the 12 limb keypoints with confidence > 0.3."""
    return (keypoints[:, COCO18_TO_COMMON12, 2] > VIS_THRESH).sum(axis=1)


def camera_frame_pose(pose: np.ndarray, cam_poses: np.ndarray) -> np.ndarray:
    """(F, 72) world-frame SMPL pose -> the same with the global orientation rotated into the
    camera frame, R = R_cam · R_root (cam_poses (F, 4, 4) world -> camera)."""
    root = axis_angle_to_rotmat(torch.from_numpy(pose[:, :3]))
    rotated = torch.from_numpy(cam_poses[:, :3, :3]) @ root
    out = pose.copy()
    out[:, :3] = rotmat_to_axis_angle(rotated).numpy()
    return out


# -- the set ------------------------------------------------------------------------------------
def sequence_dir(data_dir: Path, split: str) -> Path:
    return Path(data_dir) / "sequenceFiles" / SPLIT_DIRS[split]


def list_sequence_files(data_dir: str | Path, split: str) -> list[Path]:
    """The split's sequence files in name order; InputError when the folder is missing/empty."""
    folder = sequence_dir(Path(data_dir), split)
    if not folder.is_dir():
        raise InputError(f"3DPW sequence folder not found: {folder} (expected the official "
                         f"release layout: sequenceFiles/{{train,validation,test}}/*.pkl and "
                         f"imageFiles/)")
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise InputError(f"{folder} holds no sequence files (*.pkl): an incomplete 3DPW "
                         f"download? Re-extract sequenceFiles.zip")
    return files


def image_path(data_dir: Path, sequence: str, frame: int) -> Path:
    return Path(data_dir) / "imageFiles" / sequence / f"image_{frame:05d}.jpg"


def build_from_sequences(data_dir: str | Path, split: str, gt_joints: GtJointsFn,
                         progress: Callable[[str], None] | None = None,
                         chunk: int = 2048) -> EvalSet:
    """The 3DPW evaluation set of a split from the official release (see module docstring)."""
    data_dir = Path(data_dir)
    files = list_sequence_files(data_dir, split)
    columns: dict[str, list] = {k: [] for k in ("vid_name", "frame_id", "img_name", "bbox",
                                                "pose", "shape", "trans", "valid")}
    notes = []
    for path in files:
        seq = read_sequence_file(path)
        if progress:
            progress(seq.name)
        for p in range(seq.num_people):
            found = boxes_from_keypoints(seq.keypoints[p])
            if found is None:
                notes.append(f"{seq.name}_{p}: never visible, skipped")
                continue
            boxes, start, end = found
            keep = np.flatnonzero(visible_limb_count(seq.keypoints[p][start:end]) > MIN_KP)
            if len(keep) == 0:
                notes.append(f"{seq.name}_{p}: no frame with > {MIN_KP} visible joints")
                continue
            frames = start + keep
            pose = camera_frame_pose(seq.poses[p][frames], seq.cam_poses[frames])
            columns["vid_name"].append(np.full(len(frames), f"{seq.name}_{p}"))
            columns["frame_id"].append(frames.astype(np.int64))
            columns["img_name"].append(np.array(
                [str(image_path(data_dir, seq.name, int(f))) for f in frames]))
            columns["bbox"].append(boxes[keep])
            columns["pose"].append(pose)
            columns["shape"].append(np.repeat(seq.betas[p][None], len(frames), axis=0))
            columns["trans"].append(seq.trans[p][frames])
            columns["valid"].append(seq.campose_valid[p][frames])
    if not columns["vid_name"]:
        raise InputError(f"{sequence_dir(data_dir, split)}: no person has a frame with more "
                         f"than {MIN_KP} visible keypoints — nothing to evaluate")
    cat = {k: np.concatenate(v) for k, v in columns.items()}
    check_images(cat["img_name"], "3DPW")
    joints = [np.asarray(gt_joints(cat["pose"][i:i + chunk], cat["shape"][i:i + chunk],
                                   cat["trans"][i:i + chunk]), dtype=np.float64)
              for i in range(0, len(cat["pose"]), chunk)]
    return EvalSet(dataset="3dpw", split=split, joint_set="lsp14", vid_name=cat["vid_name"],
                   frame_id=cat["frame_id"], img_name=cat["img_name"], bbox=cat["bbox"],
                   joints3d=np.concatenate(joints), valid=cat["valid"], pose=cat["pose"],
                   shape=cat["shape"], source=f"3DPW release, {sequence_dir(data_dir, split)}",
                   notes=notes)


def cache_key(data_dir: str | Path, split: str, body_fingerprint: str) -> str:
    """Changes whenever a sequence file, the data folder, the body model or this code does."""
    files = list_sequence_files(data_dir, split)
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps([BUILD_VERSION, str(Path(data_dir).resolve()), split, stats,
                       body_fingerprint])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_build(data_dir: str | Path, split: str, gt_joints: GtJointsFn,
                  body_fingerprint: str, cache_dir: str | Path | None,
                  rebuild: bool = False, progress: Callable[[str], None] | None = None
                  ) -> tuple[EvalSet, str, Callable[[], None]]:
    """The set from the cache when it is there and current, else built.

    Returns (set, 'cache' | 'built', commit): `commit()` writes a freshly built set to the
    cache, atomically; the caller calls it once its whole run has succeeded, so a failed run
    leaves nothing cached (it is a no-op for a set read from the cache).
    """
    cache_file = None
    if cache_dir is not None:
        key = cache_key(data_dir, split, body_fingerprint)
        cache_file = Path(cache_dir) / f"3dpw_{split}_{key}.npz"
        if cache_file.is_file() and not rebuild:
            try:
                evalset = EvalSet.load(cache_file)
            except (ValueError, KeyError, OSError, zipfile.BadZipFile):
                pass  # unreadable or older cache: rebuild it
            else:
                check_images(evalset.img_name, "3DPW")
                return evalset, "cache", lambda: None
    evalset = build_from_sequences(data_dir, split, gt_joints, progress=progress)

    def commit() -> None:
        if cache_file is not None:
            evalset.save(cache_file, meta={"data_dir": str(Path(data_dir).resolve())})

    return evalset, "built", commit
