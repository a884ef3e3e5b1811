"""Track files: streamed vertices, memory-mapped reading, and vertices computed on demand."""
import numpy as np
import pytest
import torch

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.body.smpl import LazyVertices
from maed_cli.errors import InputError
from maed_cli.results import (TrackResult, load_track, open_track_file, save_track,
                              track_path)


def make_track(n: int = 7, seed: int = 0) -> TrackResult:
    rng = np.random.default_rng(seed)
    return TrackResult(track_id=5, frame_ids=np.arange(10, 10 + n), pose=rng.normal(size=(n, 72)),
                       betas=rng.normal(size=(n, 10)), verts=rng.normal(size=(n, 6890, 3)),
                       cam_t=rng.normal(size=(n, 3)), focal=812.5)


def test_saved_track_is_a_plain_npz_and_loads_with_mapped_vertices(tmp_path):
    track = make_track()
    path = save_track(tmp_path, track)
    assert path == track_path(tmp_path, 5) == tmp_path / "tracks" / "track_0005.npz"
    with np.load(path, allow_pickle=False) as data:  # what users get with numpy alone
        assert set(data.files) == {"track_id", "frame_ids", "pose", "betas", "verts", "cam_t",
                                   "focal", "rotmat"} - {"rotmat"}
        np.testing.assert_array_equal(data["verts"], track.verts.astype(np.float32))
        assert data["frame_ids"].dtype == np.int64 and data["pose"].dtype == np.float32
    loaded = load_track(path)
    assert isinstance(loaded.verts.base, np.memmap) and not loaded.verts.flags.writeable
    np.testing.assert_array_equal(loaded.verts, track.verts.astype(np.float32))
    np.testing.assert_array_equal(loaded.frame_ids, track.frame_ids)
    assert loaded.focal == 812.5 and loaded.track_id == 5
    assert loaded.rotmat.shape == (7, 24, 3, 3)  # derived from pose on loading


def test_streamed_vertices_equal_the_whole_array(tmp_path):
    track = make_track(n=9)
    path = tmp_path / "tracks" / "track_0005.npz"
    verts = track.verts.astype(np.float32)
    with open_track_file(path) as archive:
        with archive.stream("verts", verts.shape) as write:
            for start in range(0, 9, 4):  # chunks of 4, 4, 1
                write(verts[start:start + 4])
        archive.add_track(track.with_arrays(verts=None))
    loaded = load_track(path)
    np.testing.assert_array_equal(loaded.verts, verts)
    np.testing.assert_allclose(loaded.pose, track.pose.astype(np.float32))


@pytest.mark.parametrize("chunks", [[4], [4, 4, 4], [9, 1]])
def test_wrong_row_count_keeps_no_file(tmp_path, chunks):
    path = tmp_path / "tracks" / "track_0001.npz"
    with pytest.raises(ValueError):
        with open_track_file(path) as archive:
            with archive.stream("verts", (9, 6890, 3)) as write:
                for rows in chunks:
                    write(np.zeros((rows, 6890, 3), np.float32))
    assert list((tmp_path / "tracks").iterdir()) == []


def test_a_member_is_written_once(tmp_path):
    with pytest.raises(ValueError, match="already"):
        with open_track_file(tmp_path / "t.npz") as archive:
            archive.add("pose", np.zeros((1, 72)))
            archive.add("pose", np.zeros((1, 72)))
    assert not (tmp_path / "t.npz").exists()


def test_compressed_npz_from_elsewhere_still_loads(tmp_path):
    track = make_track(n=3)
    path = tmp_path / "track_0005.npz"
    np.savez_compressed(path, track_id=np.int64(5), frame_ids=track.frame_ids,
                        verts=track.verts.astype(np.float32))
    loaded = load_track(path)
    assert not isinstance(loaded.verts.base, np.memmap)  # read, since it cannot be mapped
    np.testing.assert_array_equal(loaded.verts, track.verts.astype(np.float32))


def test_not_a_track_file_is_one_clear_error(tmp_path):
    path = tmp_path / "track_0001.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="not a maed track result"):
        load_track(path)


def test_lazy_vertices_equal_the_body_layer(synthetic_body):
    n = 11
    g = torch.Generator().manual_seed(1)
    rotmat = axis_angle_to_rotmat(0.3 * torch.randn(n, 24, 3, generator=g))
    betas = torch.randn(n, 10, generator=g)
    with torch.no_grad():
        ref = synthetic_body(rotmat=rotmat, betas=betas).vertices.numpy()
    lazy = LazyVertices(synthetic_body, rotmat, betas, chunk=4)
    assert lazy.shape == ref.shape and len(lazy) == n
    for row in (0, 3, 4, 10, -1):
        np.testing.assert_allclose(lazy[row], ref[row], atol=1e-6)
    assert lazy._cached[0] == 8  # holds one chunk: the one of the last row read
    np.testing.assert_allclose(lazy[2:7], ref[2:7], atol=1e-6)
    np.testing.assert_allclose(lazy[5, :10], ref[5, :10], atol=1e-6)
    np.testing.assert_allclose(np.asarray(lazy), ref, atol=1e-6)
    with pytest.raises(IndexError):
        lazy[n]
    # chunks() gives the same vertices and joints, a chunk at a time
    parts = list(synthetic_body.chunks(rotmat, betas, chunk=5))
    assert [len(v) for v, _ in parts] == [5, 5, 1]
    np.testing.assert_allclose(np.concatenate([v for v, _ in parts]), ref, atol=1e-6)
