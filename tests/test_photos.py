"""Photos as inputs of `maed demo`: one image, independent images, MAED's image mode (T = 1)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maed_cli.body.geometry import axis_angle_to_rotmat
from maed_cli.errors import InputError
from maed_cli.model import MAED, save_checkpoint
from maed_cli.results import load_result_set, load_results
from maed_cli.video.crop import IMAGENET_MEAN, IMAGENET_STD
from maed_cli.video.images import (INDEPENDENT, SEQUENCE, choose_mode, collect_images,
                                   is_image_input, numbered_frames)

from synthetic_video import draw_body, write_boxes
from test_demo import TINY, run

BACKGROUND = 200
FOCAL = 400.0


def standing_rotmat() -> torch.Tensor:
    """(1, 24, 3, 3): SMPL turned into the image's y-down frame, arms lowered."""
    pose = torch.zeros(1, 72)
    pose[0, 0] = np.pi
    pose[0, 3 * 16 + 2] = -1.2
    pose[0, 3 * 17 + 2] = 1.2
    return axis_angle_to_rotmat(pose.reshape(1, 24, 3))


def make_photo(path: Path, body, size=(480, 320), people=((-1.2, 5.0), (1.2, 6.0))) -> dict:
    """A photo of standing synthetic people at (x, depth) metres, pinhole focal 400 px;
    returns their boxes (for --boxes: frame 0) and each one's pixel mask."""
    import cv2
    w, h = size
    with torch.no_grad():
        verts = body(rotmat=standing_rotmat()).vertices[0].numpy().astype(np.float64)
    photo = np.full((h, w, 3), BACKGROUND, np.uint8)
    boxes, masks = [], []
    for p, (x, depth) in enumerate(people):
        cam = verts + [x, 0.0, depth]
        px = FOCAL * cam[:, :2] / cam[:, 2:3] + [w / 2, h / 2]
        colour = (60 + 120 * p, 90, 200 - 100 * p)
        alone = np.full_like(photo, BACKGROUND)
        draw_body(alone, px, cam[:, 2], body.faces, colour)
        draw_body(photo, px, cam[:, 2], body.faces, colour)
        masks.append((alone != BACKGROUND).any(axis=2))
        (x1, y1), (x2, y2) = px.min(0), px.max(0)
        boxes.append({"frame": 0, "x1": float(x1), "y1": float(y1), "x2": float(x2),
                      "y2": float(y2)})
    ok, data = cv2.imencode(path.suffix, photo[..., ::-1])
    assert ok
    path.write_bytes(data.tobytes())
    return {"photo": photo, "boxes": boxes, "masks": masks}


class SilhouetteFit(nn.Module):
    """Stands in for MAED where the answer must be right: the standing pose, and the crop
    camera (s, tx, ty) that lays that mesh's extent over the person's silhouette in the crop
    (any pixel neither background grey nor the black outside the image)."""

    def __init__(self, verts: torch.Tensor):
        super().__init__()
        self.register_buffer("rotmat", standing_rotmat()[0])
        lo, hi = verts[:, :2].min(0).values, verts[:, :2].max(0).values
        self.register_buffer("centre", (lo + hi) / 2)
        self.register_buffer("height", hi[1] - lo[1])
        self.shapes = []  # the input shape of every forward

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        n, t = x.shape[:2]
        mean = torch.as_tensor(IMAGENET_MEAN).reshape(3, 1, 1)
        std = torch.as_tensor(IMAGENET_STD).reshape(3, 1, 1)
        rgb = (x.float().reshape(n * t, 3, *x.shape[-2:]) * std + mean) * 255
        person = ((rgb - BACKGROUND).abs() > 8).any(1) & (rgb > 10).any(1)
        cams = []
        for mask in person:
            ys, xs = torch.nonzero(mask, as_tuple=True)
            u = 2 * (torch.stack([xs.min(), xs.max() + 1]).float()) / mask.shape[1] - 1
            v = 2 * (torch.stack([ys.min(), ys.max() + 1]).float()) / mask.shape[0] - 1
            s = (v[1] - v[0]) / self.height
            cams.append(torch.stack([s, u.mean() / s - self.centre[0],
                                     v.mean() / s - self.centre[1]]))
        return {"rotmat": self.rotmat.expand(n, t, 24, 3, 3),
                "betas": torch.zeros(n, t, 10),
                "cam": torch.stack(cams).reshape(n, t, 3)}


class GivenBoxes:
    """A detector stand-in (PersonDetector.stream's interface) with known boxes and scores."""

    def __init__(self, per_image: list[list[tuple]]):
        self.per_image = per_image
        self.seen = []

    def stream(self, frames):
        from maed_cli.video.detect import Detections
        for index, frame in frames:
            self.seen.append(frame.shape)
            rows = self.per_image[index]
            yield index, frame, Detections(np.array([r[:4] for r in rows]).reshape(-1, 4),
                                           np.array([r[4] for r in rows]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory, synthetic_body, synthetic_assets):
    root = tmp_path_factory.mktemp("photos")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", MAED(**TINY))
    two = make_photo(root / "two.png", synthetic_body)
    write_boxes(root / "two.boxes.json", two["boxes"])
    return {"root": root, "ckpt": ckpt, "two": two, "smpl": synthetic_assets["npz"],
            "extra": synthetic_assets["extra"]}


@pytest.fixture
def regressor(photos, _isolated_asset_home):
    shutil.copy(photos["extra"], _isolated_asset_home / "J_regressor_extra.npy")


def _box_row(box: dict, score: float = 0.9) -> tuple:
    return (box["x1"], box["y1"], box["x2"], box["y2"], score)


# --- discovery and the mode ---------------------------------------------------------------

def _write(path: Path, size=(32, 24)) -> Path:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((size[1], size[0], 3), np.uint8))
    return path


def test_mode_sequence_for_numbered_frames_of_one_size(tmp_path):
    for i in (0, 1, 2, 10):
        _write(tmp_path / "frames" / f"frame_{i:03d}.jpg")
    images = collect_images([tmp_path / "frames"])
    assert "not evenly spaced" in choose_mode(images).reason  # 3..10 is a gap
    assert choose_mode(images).mode == INDEPENDENT
    (tmp_path / "frames" / "frame_010.jpg").unlink()
    images = collect_images([tmp_path / "frames"])
    choice = choose_mode(images)
    assert (choice.mode, choice.reason) == (SEQUENCE, "numbered frames of one size")
    assert choose_mode(images, "independent").mode == INDEPENDENT
    _write(tmp_path / "frames" / "frame_003.jpg", size=(40, 24))
    choice = choose_mode(collect_images([tmp_path / "frames"]))
    assert choice.mode == INDEPENDENT and "2 different sizes" in choice.reason


def test_mode_independent_for_photos_globs_and_lists(tmp_path):
    for name in ("beach.jpg", "party.png", "IMG_2.jpg", "IMG_10.jpg"):
        _write(tmp_path / "shoot" / name)
    images = collect_images([tmp_path / "shoot"])
    assert images.names == ("beach.jpg", "IMG_2.jpg", "IMG_10.jpg", "party.png")  # natural
    assert choose_mode(images).reason == "not every name carries a frame number"
    assert numbered_frames(["IMG_2.jpg", "DSC_3.jpg"]) == \
        "the names do not share one pattern around their numbers"
    glob = collect_images([str(tmp_path / "shoot" / "IMG_*.jpg")])
    assert glob.names == ("IMG_2.jpg", "IMG_10.jpg") and glob.folder is None
    assert choose_mode(glob).mode == INDEPENDENT
    with pytest.raises(InputError, match="give the folder"):
        choose_mode(glob, "sequence")
    listing = tmp_path / "picked.txt"
    listing.write_text("# two of them\nshoot/beach.jpg\n\nshoot/party.png\n")
    listed = collect_images([listing])
    assert listed.names == ("beach.jpg", "party.png") and listed.one_path == listing
    assert numbered_frames(["a_1.png"]) == "a single image"
    assert is_image_input([str(tmp_path / "shoot")]) and is_image_input([str(listing)])
    assert is_image_input(["x.jpg", "y.jpg"]) and not is_image_input(["clip.mp4"])
    with pytest.raises(InputError, match="matches no image file"):
        collect_images([str(tmp_path / "shoot" / "*.gif")])
    with pytest.raises(InputError, match="expected one of"):
        choose_mode(images, "photos")
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="takes one video at a time"):
        collect_images([tmp_path / "clip.mp4", tmp_path / "shoot" / "beach.jpg"])
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(InputError, match="not an image, a folder or a list of images"):
        collect_images([tmp_path / "shoot" / "beach.jpg", tmp_path / "notes.md"])


# --- MAED's image mode ------------------------------------------------------------------------

def _reference_encoder_tail(model: MAED, tokens: torch.Tensor, seqlen: int) -> torch.Tensor:
    """The official STE after the patch embedding, written out from the reference's formulas
    (vision_transformer.py: Attention 'parallel', Block, forward_features) with plain tensor
    ops and none of our encoder's code: tokens (N*T, 196, C) -> features (N*T, C)."""
    enc = model.encoder
    b, _, c = tokens.shape
    heads = enc.blocks[0].attn.num_heads
    d = c // heads
    x = torch.cat([enc.cls_token.expand(b, -1, -1), tokens], dim=1) + enc.pos_embed
    x = (x.reshape(-1, seqlen, x.shape[1], c) + enc.temp_embed[:, :seqlen]).reshape(b, -1, c)
    for block in enc.blocks:
        a = block.attn
        h = nn.functional.layer_norm(x, (c,), block.norm1.weight, block.norm1.bias, 1e-6)
        qkv = (h @ a.qkv.weight.T + a.qkv.bias).reshape(b, -1, 3, heads, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, H, L, d) each
        spatial = ((q @ k.transpose(-2, -1)) * d ** -0.5).softmax(-1) @ v
        x_s = spatial.transpose(1, 2).reshape(b, -1, c)
        qt, kt, vt = (t.reshape(-1, seqlen, heads, t.shape[2], d).permute(0, 2, 3, 1, 4)
                      for t in (q, k, v))  # (N, H, L, T, d)
        weights = ((qt @ kt.transpose(-2, -1)) * d ** -0.5).softmax(-1)
        if seqlen == 1:  # one frame: the temporal branch hands V through unchanged
            assert torch.equal(weights, torch.ones_like(weights))
        x_t = (weights @ vt).permute(0, 3, 2, 1, 4).reshape(b, -1, c)
        gate = torch.cat([x_s, x_t], -1).mean(1, keepdim=True) @ a.ts_attn.weight.T \
            + a.ts_attn.bias
        gate = gate.reshape(b, 1, c, 2).softmax(-1)
        attended = x_t * gate[..., 1] + x_s * gate[..., 0]
        x = x + attended @ a.proj.weight.T + a.proj.bias
        h = nn.functional.layer_norm(x, (c,), block.norm2.weight, block.norm2.bias, 1e-6)
        mlp = block.mlp
        hidden = nn.functional.gelu(h @ mlp.fc1.weight.T + mlp.fc1.bias)
        x = x + hidden @ mlp.fc2.weight.T + mlp.fc2.bias
    x = nn.functional.layer_norm(x, (c,), enc.norm.weight, enc.norm.bias, 1e-6)[:, 0]
    return torch.tanh(x @ enc.pre_logits.fc.weight.T + enc.pre_logits.fc.bias)


@pytest.mark.parametrize("frames", [1, 3])
def test_image_mode_is_the_written_out_official_forward(frames):
    """Our forward of one-frame clips (images), and of short clips, against the official
    formulas written out, on a small random network (the slow test below ties the written-out
    forward to the official code's own outputs)."""
    torch.manual_seed(0)
    model = MAED(**TINY).eval()
    for p in (model.encoder.temp_embed, model.encoder.pos_embed):
        p.data.normal_(0, 0.5)  # make the embeddings matter
    x = torch.randn(2, frames, 3, 224, 224)
    with torch.no_grad():
        ours = model(x)
        tokens = model.encoder.patch_embed(x.reshape(-1, 3, 224, 224))
        official = _reference_encoder_tail(model, tokens, seqlen=frames)
    np.testing.assert_allclose(ours["feature"].reshape(-1, 96).numpy(), official.numpy(),
                               atol=1e-5, rtol=0)


@pytest.mark.slow
def test_image_mode_is_the_official_one_frame_forward():
    """With the parity fixture's weights: the written-out official forward reproduces the
    official outputs for the fixture's 16-frame clip, and our T = 1 forward of its first
    frame equals that same official forward run on one frame."""
    from parity_fill import clip_input, filled_state_dict, load_fixture
    ref, meta = load_fixture()
    model = MAED(num_blocks=meta["num_blocks"], st_mode=meta["st_mode"])
    model.load_state_dict(filled_state_dict(model.state_dict()), strict=True)
    model.eval()
    x = clip_input(meta["seed"], meta["n"], meta["t"])  # (1, 16, 3, 224, 224)
    with torch.no_grad():
        tokens = model.encoder.patch_embed(x[0])  # (16, 196, 768): per frame, no time in it
        clip = _reference_encoder_tail(model, tokens, seqlen=16)
        np.testing.assert_allclose(clip.numpy(), ref["feature"][0], atol=1e-4, rtol=0)
        official = _reference_encoder_tail(model, tokens[:1], seqlen=1)
        ours = model(x[:, :1])  # (1, 1, ...): one image
        decoded = model.decoder(official)
    np.testing.assert_allclose(ours["feature"][0].numpy(), official.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours["cam"][0].numpy(), decoded["cam"].numpy(), atol=1e-4)
    np.testing.assert_allclose(ours["pose6d"][0].numpy(), decoded["pose6d"].numpy(), atol=1e-4)
    # an image is not frame 0 of a clip: without the other 15 frames the result differs
    assert np.abs(ours["feature"][0, 0].numpy() - ref["feature"][0, 0]).max() > 1e-2


def test_one_frame_costs_a_sixteenth_of_a_clip():
    from maed_cli.profiling import count_maed
    clip, image = count_maed(frames=16), count_maed(frames=1)
    assert clip.network_frames == 16 and image.network_frames == 1
    ratio = image.macs_per_clip / clip.macs_per_clip
    # linear in T but for the temporal attention (T x T per token), which is tiny
    assert 1 / 16 * 0.99 < ratio <= 1 / 16


# --- end to end ---------------------------------------------------------------------------

def test_photo_of_two_people_gives_two_people_and_a_png_overlay(photos, synthetic_body,
                                                                tmp_path):
    from maed_cli.photo_pipeline import run_photos
    from maed_cli.demo_options import DemoOptions
    from maed_cli.render import make_overlay_hook
    two = photos["two"]
    with torch.no_grad():
        verts = synthetic_body(rotmat=standing_rotmat()).vertices[0]
    model = SilhouetteFit(verts)
    # a third, unsure box is below --conf: not a person
    detector = GivenBoxes([[_box_row(b) for b in two["boxes"]] + [(5, 5, 60, 90, 0.2)]])
    images = collect_images([photos["root"] / "two.png"])
    options = DemoOptions(batch_size=1)
    report = run_photos(images, tmp_path / "out", options, model, synthetic_body,
                        choose_mode(images), detector=detector,
                        outputs=lambda path: make_overlay_hook(path, options,
                                                               smpl=photos["smpl"], side=True))
    assert detector.seen == [(320, 480, 3)]
    assert model.shapes == [(2, 1, 3, 224, 224)]  # both people in one pass, one frame each
    tracks, summary = load_results(tmp_path / "out")
    assert [t.track_id for t in tracks] == [1, 2]  # left to right
    for t in tracks:
        assert list(t.frame_ids) == [0] and t.verts.shape == (1, 6890, 3)
    assert summary["input"]["kind"] == "image" and summary["input"]["num_frames"] == 1
    assert summary["input"]["images"]["mode"] == INDEPENDENT
    assert [e["file"] for e in summary["tracks"]] == ["tracks/track_0001.npz",
                                                      "tracks/track_0002.npz"]
    import cv2
    overlay = cv2.imread(str(tmp_path / "out" / "overlay.png"))[..., ::-1]
    assert overlay.shape == (320, 2 * 480, 3)  # the side panel in the same image
    drawn = (overlay[:, :480] != two["photo"]).any(axis=2)
    for mask in two["masks"]:
        assert drawn[mask].mean() > 0.85  # the mesh covers the person
    people = np.logical_or(*two["masks"])
    near = cv2.dilate(people.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert drawn[~near].mean() < 0.01 and drawn[near].sum() > 0.9 * drawn.sum()
    assert (overlay[:, 480:] != 255).any(axis=2).sum() > 0.5 * people.sum()  # side meshes


def test_demo_cli_on_one_photo_with_boxes(capsys, photos, regressor):
    out = photos["root"] / "out_cli"
    code, text = run(capsys, "demo", photos["root"] / "two.png", "--boxes",
                     photos["root"] / "two.boxes.json", "--checkpoint", photos["ckpt"],
                     "--smpl", photos["smpl"], "--output", out, "--quiet")
    assert code == 0, text
    tracks, summary = load_results(out)
    assert len(tracks) == 2 and summary["input"]["width"] == 480
    assert summary["settings"]["min_track"] == 25  # no minimum track length for a photo
    assert not (out / "overlay.mp4").exists()
    results = load_result_set(out)  # what `maed render` / `maed export` read
    assert results.video == photos["root"] / "two.png" and sorted(results.tracks) == [1, 2]
    code, text = run(capsys, "demo", photos["root"] / "two.png", "--checkpoint",
                     photos["ckpt"], "--output", out, "--start", "2", "--quiet")
    assert code == 2 and "selects frames of a video" in text


def test_folder_of_mixed_photos_runs_each_on_its_own(capsys, photos, synthetic_body, regressor,
                                                     tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    wide = make_photo(folder / "beach.jpg", synthetic_body)
    small = make_photo(folder / "party.png", synthetic_body, size=(320, 240),
                       people=((0.0, 5.0),))
    boxes = [dict(b, frame=0) for b in wide["boxes"]] + [dict(small["boxes"][0], frame=1)]
    write_boxes(tmp_path / "boxes.json", boxes)
    out = tmp_path / "out"
    code, text = run(capsys, "demo", folder, "--boxes", tmp_path / "boxes.json",
                     "--checkpoint", photos["ckpt"], "--smpl", photos["smpl"], "--output",
                     out, "--render", "--export", "json")
    assert code == 0, text
    assert "2 images: independent (not every name carries a frame number)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["images"] == {"mode": "independent", "requested": "auto",
                                          "reason": "not every name carries a frame number"}
    assert [(r["name"], r["people"], r["width"]) for r in summary["images"]] == \
        [("beach.jpg", 2, 480), ("party.png", 1, 320)]
    assert summary["people"] == 3
    for name, people, size, overlay in (("beach.jpg", 2, (320, 480), "overlay.jpg"),
                                        ("party.png", 1, (240, 320), "overlay.png")):
        tracks, own = load_results(out / name)
        assert len(tracks) == people and own["input"]["path"] == str(folder / name)
        import cv2
        assert cv2.imread(str(out / name / overlay)).shape[:2] == size
        exported = json.loads((out / name / "export" / "joints.json").read_text())
        assert len(exported["tracks"]) == people  # the image's people, as for a video
        assert all(e["frame_ids"] == [0] for e in exported["tracks"].values())
    assert not (out / "overlay.mp4").exists()


def test_numbered_frames_run_as_a_video_and_say_so(capsys, photos, synthetic_body, regressor,
                                                   tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    boxes = []
    for i in range(4):
        shutil.copy(photos["root"] / "two.png", folder / f"{i:05d}.png")
        boxes += [dict(b, frame=i, track_id=p + 1) for p, b in enumerate(photos["two"]["boxes"])]
    write_boxes(tmp_path / "boxes.json", boxes)
    out = tmp_path / "out"
    code, text = run(capsys, "demo", folder, "--boxes", tmp_path / "boxes.json",
                     "--checkpoint", photos["ckpt"], "--smpl", photos["smpl"], "--output",
                     out, "--min-track", 2)
    assert code == 0, text
    assert "4 images: sequence (numbered frames of one size)" in text
    tracks, summary = load_results(out)
    assert [list(t.frame_ids) for t in tracks] == [[0, 1, 2, 3]] * 2  # tracked over frames
    assert summary["input"]["kind"] == "images"
    assert summary["input"]["images"]["mode"] == SEQUENCE


def test_render_and_export_read_the_results_of_a_photo(capsys, photos, regressor, tmp_path):
    out = tmp_path / "out"
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    shutil.copy(photos["root"] / "two.png", shoot / "a.png")
    shutil.copy(photos["root"] / "two.png", shoot / "b.png")
    boxes = [dict(b, frame=f) for f in (0, 1) for b in photos["two"]["boxes"]]
    write_boxes(tmp_path / "boxes.json", boxes)
    code, text = run(capsys, "demo", str(shoot / "*.png"), "--boxes", tmp_path / "boxes.json",
                     "--checkpoint", photos["ckpt"], "--smpl", photos["smpl"], "--output",
                     out, "--quiet")
    assert code == 0, text
    code, text = run(capsys, "render", out, "--smpl", photos["smpl"])
    assert code == 2 and "holds one results folder per image (a.png, b.png)" in text
    code, text = run(capsys, "render", out / "a.png", "--smpl", photos["smpl"], "--side-view")
    assert code == 0, text
    import cv2
    assert cv2.imread(str(out / "a.png" / "render.png")).shape == (320, 960, 3)
    code, text = run(capsys, "export", out / "b.png", "--format", "obj", "--smpl",
                     photos["smpl"])
    assert code == 0, text
    assert any((out / "b.png" / "export").rglob("*.obj"))
