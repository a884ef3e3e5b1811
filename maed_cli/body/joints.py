"""Joint sets: SMPL's 24, the 49 "SPIN" joints MAED is trained on, and evaluation subsets.

The 49 joints are picked from 54 candidates built by the body layer:
  0..23   SMPL joints (kinematic tree order)
  24..44  vertex-selected joints, smplx's VertexJointSelector order: nose, reye, leye, rear,
          lear, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel, then the ten fingertips
  45..53  J_regressor_extra: R hip, L hip, neck (LSP), head top (LSP), pelvis (MPII),
          thorax (MPII), spine (H36M), jaw (H36M), head (H36M)
"""
from __future__ import annotations

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# (name, index among the 54 candidates), in the 49-joint order.
JOINTS49 = (
    ("OP Nose", 24), ("OP Neck", 12), ("OP RShoulder", 17), ("OP RElbow", 19),
    ("OP RWrist", 21), ("OP LShoulder", 16), ("OP LElbow", 18), ("OP LWrist", 20),
    ("OP MidHip", 0), ("OP RHip", 2), ("OP RKnee", 5), ("OP RAnkle", 8), ("OP LHip", 1),
    ("OP LKnee", 4), ("OP LAnkle", 7), ("OP REye", 25), ("OP LEye", 26), ("OP REar", 27),
    ("OP LEar", 28), ("OP LBigToe", 29), ("OP LSmallToe", 30), ("OP LHeel", 31),
    ("OP RBigToe", 32), ("OP RSmallToe", 33), ("OP RHeel", 34),
    ("Right Ankle", 8), ("Right Knee", 5), ("Right Hip", 45), ("Left Hip", 46),
    ("Left Knee", 4), ("Left Ankle", 7), ("Right Wrist", 21), ("Right Elbow", 19),
    ("Right Shoulder", 17), ("Left Shoulder", 16), ("Left Elbow", 18), ("Left Wrist", 20),
    ("Neck (LSP)", 47), ("Top of Head (LSP)", 48), ("Pelvis (MPII)", 49),
    ("Thorax (MPII)", 50), ("Spine (H36M)", 51), ("Jaw (H36M)", 52), ("Head (H36M)", 53),
    ("Nose", 24), ("Left Eye", 26), ("Right Eye", 25), ("Left Ear", 28), ("Right Ear", 27),
)
JOINT49_NAMES = tuple(name for name, _ in JOINTS49)
JOINT49_FROM_54 = tuple(index for _, index in JOINTS49)

# Indices into the 49 set.
LSP14_IN_49 = tuple(range(25, 39))  # the 14 LSP joints, rankle .. headtop
RHIP49, LHIP49 = 27, 28
PELVIS49 = 8  # OP MidHip: SMPL's root joint, fixed under the root rotation

# The H36M regressor's 17 joints, in the order H36M_TO_J14 / H36M_TO_J17 assume.
H36M17_NAMES = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "spine", "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]
J49_TO_MPII3D = tuple(range(25, 39)) + (39, 41, 43)
