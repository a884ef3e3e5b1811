"""A synthetic SMPL-format body model, for tests and examples (no licensed data).

It has SMPL's structure exactly — 6890 vertices, 13776 faces, the 24-joint kinematic tree,
10 shape directions, 207 pose blend shapes, a J_regressor and the two extra regressors — so
the real loading, skinning, joint-selection and rendering code runs end to end. The surface
is a humanoid made of capsules around the bones of a 1.7 m T-pose, skinned to their bones
with smooth weights; shape direction 0 changes height, 1 girth, 2 shoulder width, 3 leg
length, 4 belly; the rest are small smooth variations. Its J_regressor averages a ring of
vertices centred exactly on each joint, so it reproduces the joints for every shape.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .joints import SMPL_PARENTS
from .smpl import VERTEX_JOINT_IDS, VERTEX_JOINT_NAMES
from .smpl_files import write_smpl_npz

NUM_VERTICES = 6890
NUM_FACES = 13776

# T-pose joint positions in metres; SMPL axes: x = the body's left, y = up, z = forward.
TPOSE_JOINTS = np.array([
    [0.000, 0.000, 0.000],    # 0 pelvis
    [0.070, -0.090, 0.000],   # 1 left_hip
    [-0.070, -0.090, 0.000],  # 2 right_hip
    [0.000, 0.110, -0.010],   # 3 spine1
    [0.095, -0.470, 0.005],   # 4 left_knee
    [-0.095, -0.470, 0.005],  # 5 right_knee
    [0.000, 0.240, 0.000],    # 6 spine2
    [0.090, -0.870, -0.030],  # 7 left_ankle
    [-0.090, -0.870, -0.030], # 8 right_ankle
    [0.000, 0.300, 0.010],    # 9 spine3
    [0.105, -0.930, 0.090],   # 10 left_foot
    [-0.105, -0.930, 0.090],  # 11 right_foot
    [0.000, 0.510, -0.010],   # 12 neck
    [0.075, 0.420, -0.005],   # 13 left_collar
    [-0.075, 0.420, -0.005],  # 14 right_collar
    [0.000, 0.600, 0.030],    # 15 head
    [0.180, 0.440, -0.015],   # 16 left_shoulder
    [-0.180, 0.440, -0.015],  # 17 right_shoulder
    [0.440, 0.440, -0.030],   # 18 left_elbow
    [-0.440, 0.440, -0.030],  # 19 right_elbow
    [0.690, 0.440, -0.020],   # 20 left_wrist
    [-0.690, 0.440, -0.020],  # 21 right_wrist
    [0.770, 0.440, -0.020],   # 22 left_hand
    [-0.770, 0.440, -0.020],  # 23 right_hand
], dtype=np.float64)

# Bone radius by child joint (the capsule parent(j) -> j).
BONE_RADIUS = {1: 0.085, 2: 0.085, 3: 0.125, 4: 0.075, 5: 0.075, 6: 0.13, 7: 0.05, 8: 0.05,
               9: 0.135, 10: 0.04, 11: 0.04, 12: 0.055, 13: 0.06, 14: 0.06, 15: 0.05,
               16: 0.055, 17: 0.055, 18: 0.045, 19: 0.045, 20: 0.037, 21: 0.037, 22: 0.03,
               23: 0.03}
SEGMENTS = 16
CAP_RINGS = 3


@dataclass
class Capsule:
    start: np.ndarray
    end: np.ndarray
    radius: float
    joint: int  # the joint whose rotation drives it
    cyl_rings: int = 2


@dataclass
class SyntheticSMPL:
    model: dict  # official pkl layout, plain arrays
    j_regressor_extra: np.ndarray  # (9, 6890)
    j_regressor_h36m: np.ndarray  # (17, 6890)
    joints: np.ndarray  # (24, 3) T-pose joints


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def _capsule_mesh(c: Capsule, segments: int = SEGMENTS, cap_rings: int = CAP_RINGS):
    """Closed tube: pole, cap rings, cylinder rings (first at start, last at end), cap, pole.

    Returns vertices (V, 3), faces (2V-4, 3), axial parameter t per vertex (0 at start,
    1 at end), ring index per vertex (-1 for poles) and the ring ids at start and end.
    """
    axis = c.end - c.start
    length = np.linalg.norm(axis)
    axis = axis / length
    u, v = _frame(axis)
    angles = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    circle = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v  # (S, 3)
    rings = []  # (centre offset along axis in metres, radius)
    for k in range(cap_rings, 0, -1):
        phi = k / (cap_rings + 1) * (np.pi / 2)
        rings.append((-c.radius * np.sin(phi), c.radius * np.cos(phi)))
    start_ring = len(rings)
    for t in np.linspace(0.0, 1.0, c.cyl_rings):
        rings.append((t * length, c.radius))
    end_ring = len(rings) - 1
    for k in range(1, cap_rings + 1):
        phi = k / (cap_rings + 1) * (np.pi / 2)
        rings.append((length + c.radius * np.sin(phi), c.radius * np.cos(phi)))
    verts = [c.start - c.radius * axis]
    ring_id = [-1]
    for index, (offset, radius) in enumerate(rings):
        verts.extend(c.start + offset * axis + radius * circle)
        ring_id.extend([index] * segments)
    verts.append(c.end + c.radius * axis)
    ring_id.append(-1)
    verts = np.asarray(verts)
    faces = []
    last = len(verts) - 1
    for s in range(segments):  # bottom fan, outward normals
        faces.append([0, 1 + (s + 1) % segments, 1 + s])
    for r in range(len(rings) - 1):
        a0, b0 = 1 + r * segments, 1 + (r + 1) * segments
        for s in range(segments):
            s1 = (s + 1) % segments
            faces.append([a0 + s, a0 + s1, b0 + s])
            faces.append([a0 + s1, b0 + s1, b0 + s])
    top = 1 + (len(rings) - 1) * segments
    for s in range(segments):
        faces.append([top + s, top + (s + 1) % segments, last])
    t = ((verts - c.start) @ axis) / length
    return verts, np.asarray(faces), t, np.asarray(ring_id), start_ring, end_ring


def _capsules() -> list[Capsule]:
    j = TPOSE_JOINTS
    caps = [Capsule(j[SMPL_PARENTS[i]], j[i], BONE_RADIUS[i], SMPL_PARENTS[i])
            for i in range(1, 24)]
    caps.append(Capsule(j[15], j[15] + [0.0, 0.13, 0.0], 0.095, 15))  # skull
    caps.append(Capsule(j[10], j[10] + [0.0, -0.01, 0.07], 0.035, 10))  # left toes
    caps.append(Capsule(j[11], j[11] + [0.0, -0.01, 0.07], 0.035, 11))  # right toes
    caps.append(Capsule(j[22], j[22] + [0.08, 0.0, 0.0], 0.026, 22))  # left fingers
    caps.append(Capsule(j[23], j[23] + [-0.08, 0.0, 0.0], 0.026, 23))  # right fingers
    # More rings on long capsules (smoother bending), fill the vertex budget on the torso.
    for cap in caps:
        cap.cyl_rings = max(2, int(round(np.linalg.norm(cap.end - cap.start) / 0.02)))
    per_ring = SEGMENTS
    used = sum(per_ring * (c.cyl_rings + 2 * CAP_RINGS) + 2 for c in caps)
    spare = NUM_VERTICES - used
    caps[2].cyl_rings += (spare - 5) // per_ring  # pelvis -> spine1; leave 5..20 spare
    return caps


def build_synthetic_smpl(seed: int = 0) -> SyntheticSMPL:
    rng = np.random.default_rng(seed)
    caps = _capsules()
    verts, faces, weights_joint, t_all, cap_index = [], [], [], [], []
    ring_members: dict[tuple[int, int], np.ndarray] = {}
    offset = 0
    for ci, cap in enumerate(caps):
        v, f, t, ring, start_ring, end_ring = _capsule_mesh(cap)
        verts.append(v)
        faces.append(f + offset)
        t_all.append(t)
        weights_joint.append(np.full(len(v), cap.joint))
        cap_index.append(np.full(len(v), ci))
        ring_members[(ci, 0)] = offset + np.flatnonzero(ring == start_ring)
        ring_members[(ci, 1)] = offset + np.flatnonzero(ring == end_ring)
        offset += len(v)
    # The spare vertices (fewer than one ring): a tiny closed fan hidden inside the pelvis.
    rest = NUM_VERTICES - offset
    if rest:
        if rest < 5:
            raise AssertionError("vertex budget arithmetic")
        ring_n = rest - 2
        ang = np.linspace(0, 2 * np.pi, ring_n, endpoint=False)
        hidden = np.concatenate([[[0, 0.0, 0.0 - 0.01]],
                                 np.stack([0.01 * np.cos(ang), 0.01 * np.sin(ang),
                                           np.zeros(ring_n)], 1),
                                 [[0, 0.0, 0.01]]])
        hf = [[0, 1 + (s + 1) % ring_n, 1 + s] for s in range(ring_n)]
        hf += [[1 + s, 1 + (s + 1) % ring_n, ring_n + 1] for s in range(ring_n)]
        verts.append(hidden)
        faces.append(np.asarray(hf) + offset)
        t_all.append(np.zeros(rest))
        weights_joint.append(np.zeros(rest, dtype=int))
        cap_index.append(np.full(rest, -1))
    v_template = np.concatenate(verts)
    f = np.concatenate(faces)
    # SMPL is one closed surface (F = 2V - 4); several closed parts have fewer faces: pad with
    # repeats of real triangles (they render exactly as the originals).
    f = np.concatenate([f, f[: NUM_FACES - len(f)]])
    t_all = np.concatenate(t_all)
    joint_of = np.concatenate(weights_joint)
    cap_of = np.concatenate(cap_index)
    assert v_template.shape == (NUM_VERTICES, 3) and f.shape == (NUM_FACES, 3)

    # Skinning: each capsule follows its joint, blending into the parent joint near its start
    # so that bends are smooth.
    weights = np.zeros((NUM_VERTICES, 24))
    rows = np.arange(NUM_VERTICES)
    parent_of = np.array([SMPL_PARENTS[j] if j > 0 else 0 for j in joint_of])
    blend = np.clip(0.5 * (1.0 - t_all / 0.2), 0.0, 0.5)
    blend[joint_of == 0] = 0.0
    weights[rows, joint_of] += 1.0 - blend
    weights[rows, parent_of] += blend

    # Joint regressor: the ring of the capsule parent(j) -> j that sits on joint j
    # (for the root, the first ring of pelvis -> spine1).
    def ring(joint: int, at_end: bool = True) -> np.ndarray:
        if joint == 0:
            return ring_members[(2, 0)]
        return ring_members[(joint - 1, 1 if at_end else 0)]

    j_regressor = np.zeros((24, NUM_VERTICES))
    for joint in range(24):
        members = ring(joint)
        j_regressor[joint, members] = 1.0 / len(members)

    # Shape directions.
    y = v_template[:, 1]
    foot = y.min()
    shapedirs = np.zeros((NUM_VERTICES, 3, 10))
    shapedirs[:, 1, 0] = 0.04 * (y - foot) / 1.7  # height
    axis_point = np.zeros_like(v_template)  # nearest point on the capsule axis
    for ci, cap in enumerate(caps):
        sel = cap_of == ci
        axis = cap.end - cap.start
        tt = np.clip(((v_template[sel] - cap.start) @ axis) / (axis @ axis), 0, 1)
        axis_point[sel] = cap.start + tt[:, None] * axis
    radial = v_template - axis_point
    radial_norm = np.linalg.norm(radial, axis=1, keepdims=True)
    radial_unit = np.where(radial_norm > 1e-9, radial / np.maximum(radial_norm, 1e-9), 0.0)
    shapedirs[:, :, 1] = 0.012 * radial_unit  # girth
    arm = np.isin(joint_of, [13, 14, 16, 17, 18, 19, 20, 21, 22, 23])
    shapedirs[arm, 0, 2] = 0.02 * np.sign(v_template[arm, 0])  # shoulder width
    leg = np.isin(joint_of, [1, 2, 4, 5, 7, 8, 10, 11]) & (y < -0.09)
    shapedirs[leg, 1, 3] = -0.04 * (-0.09 - y[leg]) / 0.84  # leg length (feet go down)
    belly = np.isin(joint_of, [0, 3, 6]) & (v_template[:, 2] > 0)
    shapedirs[belly, 2, 4] = 0.02 * radial_unit[belly, 2]
    for k in range(5, 10):  # small smooth per-segment girth variations
        gains = rng.normal(0.0, 0.004, size=len(caps))
        gain_of = np.where(cap_of >= 0, gains[np.maximum(cap_of, 0)], 0.0)
        shapedirs[:, :, k] = gain_of[:, None] * radial_unit

    # Small pose blend shapes: smooth (a few random patterns per joint), millimetre scale.
    basis = rng.normal(0.0, 1.0, size=(207, 3)) * 0.0005
    posedirs = np.einsum("vc,pc->vcp", np.tanh(v_template * 3.0), basis)  # (6890, 3, 207)

    # Put plausible vertices at smplx's landmark indices (nose, eyes, ears, toes, heels,
    # fingertips), so the 49-joint set picks meaningful points on this body too.
    head = TPOSE_JOINTS[15] + [0.0, 0.085, 0.0]
    j = TPOSE_JOINTS
    landmarks = {
        "nose": head + [0.0, -0.01, 0.095], "reye": head + [-0.035, 0.02, 0.085],
        "leye": head + [0.035, 0.02, 0.085], "rear": head + [-0.095, 0.0, 0.0],
        "lear": head + [0.095, 0.0, 0.0],
        "LBigToe": j[10] + [0.02, -0.01, 0.105], "LSmallToe": j[10] + [0.045, -0.02, 0.09],
        "LHeel": j[7] + [0.0, -0.05, -0.05], "RBigToe": j[11] + [-0.02, -0.01, 0.105],
        "RSmallToe": j[11] + [-0.045, -0.02, 0.09], "RHeel": j[8] + [0.0, -0.05, -0.05],
    }
    for side, sign, tip in (("l", 1.0, j[22]), ("r", -1.0, j[23])):
        for k, name in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            landmarks[side + name] = tip + [sign * 0.1, 0.0, 0.02 - 0.01 * k]
    perm = np.arange(NUM_VERTICES)
    taken: set[int] = set()
    for name, target_index in zip(VERTEX_JOINT_NAMES, VERTEX_JOINT_IDS):
        dist = np.linalg.norm(v_template[perm] - landmarks[name], axis=1)
        dist[list(taken)] = np.inf
        source = int(np.argmin(dist))  # position in the current order
        perm[[target_index, source]] = perm[[source, target_index]]
        taken.add(target_index)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(NUM_VERTICES)

    def reorder(a: np.ndarray) -> np.ndarray:
        return a[perm]

    v_template, weights, shapedirs, posedirs = map(reorder, (v_template, weights, shapedirs,
                                                             posedirs))
    f = inverse[f]
    j_regressor = j_regressor[:, perm]
    ring_of = {k: inverse[v] for k, v in ring_members.items()}

    def ring_row(members: np.ndarray) -> np.ndarray:
        row = np.zeros(NUM_VERTICES)
        row[members] = 1.0 / len(members)
        return row

    def ring_p(joint: int) -> np.ndarray:
        return ring_of[(2, 0)] if joint == 0 else ring_of[(joint - 1, 1)]

    skull = len(caps) - 5
    skull_top = ring_of[(skull, 1)]
    jaw_point = np.argsort(np.linalg.norm(v_template - (j[15] + [0, -0.01, 0.08]), axis=1))[:6]
    extra = np.stack([
        ring_row(ring_p(2)), ring_row(ring_p(1)),  # LSP right/left hip
        ring_row(ring_p(12)),  # neck (LSP)
        ring_row(skull_top),  # head top (LSP)
        ring_row(ring_p(0)),  # pelvis (MPII)
        0.5 * (ring_row(ring_p(9)) + ring_row(ring_p(12))),  # thorax (MPII)
        ring_row(ring_p(6)),  # spine (H36M)
        ring_row(jaw_point),  # jaw (H36M)
        ring_row(ring_of[(skull, 0)]),  # head (H36M)
    ])
    h36m = np.stack([
        ring_row(ring_p(0)), ring_row(ring_p(1)), ring_row(ring_p(4)), ring_row(ring_p(7)),
        ring_row(ring_p(2)), ring_row(ring_p(5)), ring_row(ring_p(8)),
        ring_row(ring_p(6)), ring_row(ring_p(12)), ring_row(jaw_point),
        ring_row(skull_top),
        ring_row(ring_p(16)), ring_row(ring_p(18)), ring_row(ring_p(20)),
        ring_row(ring_p(17)), ring_row(ring_p(19)), ring_row(ring_p(21)),
    ])
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(24)])
    kintree[0, 0] = 4294967295
    model = {
        "v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs,
        "J_regressor": j_regressor, "weights": weights, "kintree_table": kintree,
        "f": f.astype(np.int64),
    }
    return SyntheticSMPL(model=model, j_regressor_extra=extra, j_regressor_h36m=h36m,
                         joints=j_regressor @ v_template)


def write_synthetic_assets(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write SMPL_NEUTRAL.pkl (plain arrays, smplx-readable), SMPL_NEUTRAL.npz and the two
    regressors into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    synth = build_synthetic_smpl(seed)
    paths = {"pkl": folder / "SMPL_NEUTRAL.pkl", "npz": folder / "SMPL_NEUTRAL.npz",
             "extra": folder / "J_regressor_extra.npy", "h36m": folder / "J_regressor_h36m.npy"}
    with atomic_path(paths["pkl"]) as tmp, open(tmp, "wb") as handle:
        pickle.dump(synth.model, handle, protocol=2)
    write_smpl_npz(synth.model, paths["npz"])
    for key, array in (("extra", synth.j_regressor_extra), ("h36m", synth.j_regressor_h36m)):
        with atomic_path(paths[key]) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    return paths
