"""Anatomical joint angles (degrees) from SMPL joint rotations. Pure numpy, batched over frames.

SMPL's rest pose is a T-pose whose joint frames all share the body's axes: x = the body's left,
y = up, z = forward. Every angle below is a Cardan decomposition of a distal segment's
rotation relative to its proximal segment, taken in that segment's anatomical frame:

    R = Rx(a) @ Rz(b) @ Ry(c)        (intrinsic X, then Z', then Y'')

    a: flexion/extension about the medio-lateral axis x,
    b: abduction/adduction (spine, neck: lateral flexion) about the antero-posterior axis z',
    c: axial rotation about the segment's long axis y''.

Segments (SMPL joint indices in brackets) and the rotation decomposed:
    hip        thigh vs pelvis: the hip's own rotation [1, 2]
    knee       shank vs thigh [4, 5]: flexion only (a hinge), = a
    shoulder   upper arm vs thorax: collar @ shoulder [13 @ 16, 14 @ 17], expressed from the
               anatomical neutral (arm hanging at the side) rather than SMPL's T-pose:
               R_anat = R @ Rz(+90°) (left) or R @ Rz(-90°) (right), so the T-pose is 90°
               abduction
    elbow      forearm vs upper arm [18, 19] in the same arm-down frame:
               Rz(-+90°) @ R @ Rz(+-90°): flexion only, = a
    spine      thorax vs pelvis: spine1 @ spine2 @ spine3 [3 @ 6 @ 9]
    neck       head vs thorax: neck @ head [12 @ 15]

Signs (0 everywhere in the anatomical neutral: standing, arms at the sides):
    flexion    + = hip/shoulder: segment forward; knee: shank backward (bent knee);
               elbow: forearm forward (bent elbow); spine/neck: bending forward
    abduction  + = limb away from the midline (left and right alike)
    rotation   + = internal rotation (front of the limb turning toward the midline)
    lateral    spine/neck: + = bending toward the body's left
    axial      spine/neck: + = turning toward the body's left
    trunk_lean the angle between the thorax's long axis (spine3's y axis) and "up", 0..180:
               the world's up (y) when the world layer gave the body's world orientation,
               else the camera's up (-y of the OpenCV camera frame; not gravity unless the
               camera is level).

The decomposition is singular where the middle angle b is +-90° (a limb straight out to the
side: hip or shoulder at 90° abduction); there flexion and rotation are not separable.
"""
from __future__ import annotations

import numpy as np

# SMPL joint indices.
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2 = 0, 1, 2, 3, 4, 5, 6
SPINE3, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = 9, 12, 13, 14, 15, 16, 17
L_ELBOW, R_ELBOW = 18, 19

ANGLE_NAMES = (
    "left_hip_flexion", "left_hip_abduction", "left_hip_rotation",
    "right_hip_flexion", "right_hip_abduction", "right_hip_rotation",
    "left_knee_flexion", "right_knee_flexion",
    "left_shoulder_flexion", "left_shoulder_abduction", "left_shoulder_rotation",
    "right_shoulder_flexion", "right_shoulder_abduction", "right_shoulder_rotation",
    "left_elbow_flexion", "right_elbow_flexion",
    "spine_flexion", "spine_lateral", "spine_axial",
    "neck_flexion", "neck_lateral", "neck_axial",
    "trunk_lean",
)
CAMERA_UP = np.array([0.0, -1.0, 0.0])  # OpenCV camera frame: y points down
WORLD_UP = np.array([0.0, 1.0, 0.0])


def rot_z(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


ARM_NEUTRAL = {"left": rot_z(90.0), "right": rot_z(-90.0)}  # arm-down frame -> SMPL T-pose arm


def cardan_xzy(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) angles (a, b, c) in degrees with rot = Rx(a) Rz(b) Ry(c).

    b is in [-90, 90]; a, c in (-180, 180]."""
    r = np.asarray(rot, dtype=np.float64)
    # Rx(a) Rz(b) Ry(c): r[0,1] = -sin b; r[2,1] = sin a cos b, r[1,1] = cos a cos b;
    # r[0,2] = cos b sin c, r[0,0] = cos b cos c
    b = np.arcsin(np.clip(-r[..., 0, 1], -1.0, 1.0))
    a = np.arctan2(r[..., 2, 1], r[..., 1, 1])
    c = np.arctan2(r[..., 0, 2], r[..., 0, 0])
    return np.degrees(np.stack([a, b, c], axis=-1))


def joint_angles(rotmat: np.ndarray, *, global_orient: np.ndarray | None = None,
                 up: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every angle of ANGLE_NAMES, each (n,) degrees, from SMPL rotations (n, 24, 3, 3).

    `global_orient` (n, 3, 3) replaces rotmat[:, 0] for the trunk lean (the world
    orientation), with `up` the up direction in that frame (default: WORLD_UP when
    global_orient is given, else CAMERA_UP with the camera-frame rotmat[:, 0])."""
    r = np.asarray(rotmat, dtype=np.float64)
    if r.ndim != 4 or r.shape[1:] != (24, 3, 3):
        raise ValueError(f"rotmat must be (n, 24, 3, 3), got {r.shape}")
    out: dict[str, np.ndarray] = {}
    for side, hip, knee, collar, shoulder, elbow, sign in (
            ("left", L_HIP, L_KNEE, L_COLLAR, L_SHOULDER, L_ELBOW, 1.0),
            ("right", R_HIP, R_KNEE, R_COLLAR, R_SHOULDER, R_ELBOW, -1.0)):
        a, b, c = np.moveaxis(cardan_xzy(r[:, hip]), -1, 0)
        out[f"{side}_hip_flexion"] = -a
        out[f"{side}_hip_abduction"] = sign * b
        out[f"{side}_hip_rotation"] = -sign * c
        out[f"{side}_knee_flexion"] = cardan_xzy(r[:, knee])[:, 0]
        neutral = ARM_NEUTRAL[side]
        a, b, c = np.moveaxis(cardan_xzy(r[:, collar] @ r[:, shoulder] @ neutral), -1, 0)
        out[f"{side}_shoulder_flexion"] = -a
        out[f"{side}_shoulder_abduction"] = sign * b
        out[f"{side}_shoulder_rotation"] = -sign * c
        out[f"{side}_elbow_flexion"] = -cardan_xzy(neutral.T @ r[:, elbow] @ neutral)[:, 0]
    for name, rot in (("spine", r[:, SPINE1] @ r[:, SPINE2] @ r[:, SPINE3]),
                      ("neck", r[:, NECK] @ r[:, HEAD])):
        a, b, c = np.moveaxis(cardan_xzy(rot), -1, 0)
        out[f"{name}_flexion"] = a
        out[f"{name}_lateral"] = -b
        out[f"{name}_axial"] = c
    orient = r[:, PELVIS] if global_orient is None else np.asarray(global_orient, np.float64)
    if up is None:
        up = CAMERA_UP if global_orient is None else WORLD_UP
    up = np.asarray(up, dtype=np.float64)
    thorax_axis = (orient @ r[:, SPINE1] @ r[:, SPINE2] @ r[:, SPINE3])[:, :, 1]
    cos = thorax_axis @ (up / np.linalg.norm(up))
    out["trunk_lean"] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {name: out[name] for name in ANGLE_NAMES}


def angle_table(rotmat: np.ndarray, **kwargs) -> np.ndarray:
    """joint_angles as one (n, len(ANGLE_NAMES)) float32 array, columns in ANGLE_NAMES order."""
    angles = joint_angles(rotmat, **kwargs)
    return np.stack([angles[name] for name in ANGLE_NAMES], axis=1).astype(np.float32)
