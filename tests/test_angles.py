"""Anatomical joint angles on synthetic bodies posed with known angles; signs are checked
against where the posed body's joints actually move, not only against the input rotation."""
import numpy as np
import pytest
import torch

from maed_cli.body.angles import ANGLE_NAMES, angle_table, cardan_xzy, joint_angles


def rx(d):
    t = np.radians(d)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def ry(d):
    t = np.radians(d)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


def rz(d):
    t = np.radians(d)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def posed(body, rotations: dict[int, np.ndarray]):
    """(angles, SMPL joints (24, 3), body frame y up) of one body with the given local joint
    rotations (every other joint at rest)."""
    rot = np.tile(np.eye(3), (1, 24, 1, 1))
    for joint, r in rotations.items():
        rot[0, joint] = r
    with torch.no_grad():
        out = body(rotmat=torch.tensor(rot, dtype=torch.float32))
    return joint_angles(rot, global_orient=rot[:, 0]), out.smpl24[0].double().numpy()


def angle_between(u, v):
    return np.degrees(np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)))


def test_cardan_round_trip():
    rng = np.random.default_rng(0)
    for a, b, c in rng.uniform([-170, -85, -170], [170, 85, 170], (50, 3)):
        np.testing.assert_allclose(cardan_xzy(rx(a) @ rz(b) @ ry(c)), [a, b, c], atol=1e-9)


def test_rest_pose_is_neutral_except_the_t_pose_arms(synthetic_body):
    angles, _ = posed(synthetic_body, {16: rz(-90), 17: rz(90)})  # arms hanging down
    for name in ANGLE_NAMES:
        assert abs(angles[name][0]) < 1e-6, name
    angles, _ = posed(synthetic_body, {})
    assert angles["left_shoulder_abduction"][0] == pytest.approx(90, abs=1e-6)
    assert angles["right_shoulder_abduction"][0] == pytest.approx(90, abs=1e-6)


@pytest.mark.parametrize("side,knee,hip,ankle", [("left", 4, 1, 7), ("right", 5, 2, 8)])
def test_a_90_degree_knee(synthetic_body, side, knee, hip, ankle):
    angles, j = posed(synthetic_body, {knee: rx(90)})
    assert angles[f"{side}_knee_flexion"][0] == pytest.approx(90, abs=0.5)
    # the posed body: the shank turned by a right angle from its rest direction, the foot
    # behind the knee (the synthetic rest legs are a few degrees off vertical)
    _, rest = posed(synthetic_body, {})
    assert angle_between(rest[ankle] - rest[knee], j[ankle] - j[knee]) == pytest.approx(90, abs=0.5)
    assert j[ankle, 2] < j[knee, 2] - 0.3


def test_hip_flexion_abduction_and_internal_rotation(synthetic_body):
    angles, j = posed(synthetic_body, {1: rx(-45), 2: rz(-30)})
    assert angles["left_hip_flexion"][0] == pytest.approx(45, abs=0.5)
    assert j[4, 2] > j[1, 2] + 0.2  # left knee forward
    assert angles["right_hip_abduction"][0] == pytest.approx(30, abs=0.5)
    assert j[5, 0] < j[2, 0] - 0.15  # right knee out to the right (-x)
    angles, j = posed(synthetic_body, {1: ry(-30)})
    assert angles["left_hip_rotation"][0] == pytest.approx(30, abs=0.5)
    toe = j[10] - j[7]
    assert toe[0] < 0  # internal: the left toes turn toward the midline


@pytest.mark.parametrize("side,shoulder,elbow,wrist,down", [
    ("left", 16, 18, 20, rz(-90)), ("right", 17, 19, 21, rz(90))])
def test_a_90_degree_elbow_and_a_forward_arm(synthetic_body, side, shoulder, elbow, wrist, down):
    bend = ry(-90) if side == "left" else ry(90)
    angles, j = posed(synthetic_body, {elbow: bend})
    assert angles[f"{side}_elbow_flexion"][0] == pytest.approx(90, abs=0.5)
    _, rest = posed(synthetic_body, {})
    assert angle_between(rest[wrist] - rest[elbow], j[wrist] - j[elbow]) == pytest.approx(90, abs=0.5)
    assert j[wrist, 2] > j[elbow, 2] + 0.2  # the forearm comes forward
    # from hanging down, 60 degrees forward flexion: the elbow in front, 30 degrees below level
    angles, j = posed(synthetic_body, {shoulder: rx(-60) @ down})
    assert angles[f"{side}_shoulder_flexion"][0] == pytest.approx(60, abs=0.5)
    assert angles[f"{side}_shoulder_abduction"][0] == pytest.approx(0, abs=0.5)
    arm = j[elbow] - j[shoulder]
    assert arm[2] > 0 and angle_between(arm, [0, -1, 0]) == pytest.approx(60, abs=4)  # rest arm ~3 deg back


def test_spine_neck_and_trunk_lean(synthetic_body):
    angles, j = posed(synthetic_body, {3: rx(10), 6: rx(10), 9: rx(10), 12: rz(-20)})
    assert angles["spine_flexion"][0] == pytest.approx(30, abs=0.5)
    assert angles["trunk_lean"][0] == pytest.approx(30, abs=0.5)
    assert angles["neck_lateral"][0] == pytest.approx(20, abs=0.5)
    assert j[15, 0] > j[12, 0]  # the head tilts to the body's left
    angles, _ = posed(synthetic_body, {9: ry(25)})
    assert angles["spine_axial"][0] == pytest.approx(25, abs=0.5)


def test_trunk_lean_against_the_camera_up():
    # a person standing upright in the OpenCV camera frame has global orient Rx(180)
    rot = np.tile(np.eye(3), (2, 24, 1, 1))
    rot[0, 0] = rx(180)
    rot[1, 0] = rx(180) @ rz(15)  # leaning sideways 15 degrees
    table = angle_table(rot)
    lean = table[:, ANGLE_NAMES.index("trunk_lean")]
    np.testing.assert_allclose(lean, [0, 15], atol=1e-4)
    assert table.shape == (2, len(ANGLE_NAMES)) and table.dtype == np.float32


def test_export_angles_csv_and_json(synthetic_body, tmp_path):
    import csv
    import json

    from maed_cli.export import export_results
    from maed_cli.results import ResultSet, TrackResult
    rot = np.tile(np.eye(3), (3, 24, 1, 1))
    rot[:, 0] = rx(180)
    rot[:, 4] = [rx(0), rx(45), rx(90)]  # the left knee bends over three frames
    track = TrackResult(track_id=2, frame_ids=np.array([5, 6, 7]), rotmat=rot.astype(np.float32))
    files = export_results(ResultSet(tracks={2: track}, fps=10.0), tmp_path, "angles")
    assert sorted(f.name for f in files) == ["angles.csv", "angles.json"]
    rows = list(csv.DictReader(open(tmp_path / "angles.csv")))
    assert [float(r["left_knee_flexion"]) for r in rows] == pytest.approx([0, 45, 90], abs=0.01)
    assert [r["time_s"] for r in rows] == ["0.5000", "0.6000", "0.7000"]
    assert rows[0]["trunk_lean_up"] == "camera" and float(rows[0]["trunk_lean"]) == 0
    doc = json.loads((tmp_path / "angles.json").read_text())
    entry = doc["tracks"]["2"]
    assert entry["frame_ids"] == [5, 6, 7] and doc["units"] == "degrees"
    assert entry["angles"]["left_knee_flexion"] == pytest.approx([0, 45, 90], abs=0.01)
    assert set(entry["angles"]) == set(ANGLE_NAMES)
