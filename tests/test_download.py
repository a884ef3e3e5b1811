"""The official checkpoint's download (issue #16), with Google Drive replaced by a local
stand-in that speaks enough HTTP (Range, Content-Range, its confirmation and quota pages);
the real fetching, resuming and verification code runs. Never the network."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import requests
import torch

from maed_cli import assets, installer
from maed_cli.cli import main
from maed_cli.errors import AssetMissingError
from maed_cli.model import MAED
from maed_cli.model.maed import MAEDConfig

CONFIRM_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>
</head><body><form id="download-form" action="https://drive.usercontent.google.com/download"
method="get"><input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="1raRMRCbMGTZNHCHAStoWM0EWoTfOg4-m">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="0b7c-uuid"></form></body></html>"""
QUOTA_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>
<body><p class="uc-error-caption">Sorry, you can't view or download this file at this time.
</p><p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.
Please try accessing the file again later.</p></body></html>"""


class _Response:
    def __init__(self, status, headers, body: bytes, cut_at: int | None = None):
        self.status_code, self.headers, self._body, self._cut = status, headers, body, cut_at

    @property
    def text(self) -> str:
        return self._body.decode()

    def iter_content(self, size):
        end = len(self._body) if self._cut is None else self._cut
        for i in range(0, end, size):
            yield self._body[i:min(i + size, end)]
        if self._cut is not None:
            raise requests.exceptions.ChunkedEncodingError("Connection broken: reset by peer")

    def close(self):
        pass


class FakeDrive:
    """Serves `payload` as Drive does. pages: what the first answers are instead of the file
    ('confirm' or 'quota'); cut_first: the first file answer breaks after this many bytes."""

    def __init__(self, payload: bytes, pages=(), cut_first: int | None = None):
        self.payload, self.pages, self.cut = payload, list(pages), cut_first
        self.calls: list[tuple[dict, dict]] = []

    def get(self, url, params=None, headers=None, stream=False, timeout=None):
        assert url == installer.DRIVE_URL and stream
        self.calls.append((dict(params or {}), dict(headers or {})))
        html = {"Content-Type": "text/html; charset=utf-8"}
        if self.pages and self.pages[0] == "quota":
            return _Response(200, html, QUOTA_PAGE)
        if self.pages and self.pages[0] == "confirm":
            if "uuid" not in (params or {}):
                return _Response(200, html, CONFIRM_PAGE)
            self.pages.pop(0)
        start = 0
        if headers and "Range" in headers:
            start = int(headers["Range"].removeprefix("bytes=").rstrip("-"))
        total = len(self.payload)
        body = self.payload[start:]
        head = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
        if start:
            head["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        cut, self.cut = self.cut, None
        return _Response(206 if start else 200, head, body, cut)


def _official_bytes(tmp_path, blocks: int) -> bytes:
    """An official-layout model_best.pth.tar of a MAED with `blocks` blocks."""
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in MAED(num_blocks=blocks).state_dict().items()}
    path = tmp_path / "source.pth.tar"
    torch.save({"epoch": 7, "state_dict": state, "performance": 45.7}, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    return _official_bytes(tmp_path_factory.mktemp("drive"), blocks=1)


@pytest.fixture
def drive(monkeypatch, payload):
    """Downloads allowed, Drive replaced, a 1-block network accepted as 'the official' one."""
    monkeypatch.delenv(installer.ENV_OFFLINE, raising=False)
    monkeypatch.setattr(installer, "OFFICIAL", MAEDConfig(num_blocks=1))
    fake = FakeDrive(payload)
    monkeypatch.setattr(installer, "open_session", lambda: fake)
    return fake


def _installed(home):
    return home / assets.CHECKPOINT_NAMES[0]


def _part(home):
    return home / (assets.CHECKPOINT_NAMES[0] + installer.PART_SUFFIX)


def test_an_interrupted_download_resumes_and_installs_verified(drive, payload,
                                                               _isolated_asset_home):
    home = _isolated_asset_home
    cut = drive.cut = len(payload) * 2 // 5 // installer.CHUNK * installer.CHUNK
    with pytest.raises(AssetMissingError, match="kept in .*the next try resumes"):
        installer.download_checkpoint(quiet=True)
    assert _part(home).stat().st_size == cut
    assert not _installed(home).exists()  # nothing half-written where it is looked for
    assert assets.find_asset(assets.CHECKPOINT_NAMES) is None
    results = installer.download_checkpoint(quiet=True)
    assert drive.calls[-1][1] == {"Range": f"bytes={cut}-"}
    assert _installed(home).read_bytes() == payload
    assert not _part(home).exists()
    digest = hashlib.sha256(payload).hexdigest()
    assert (home / "model_best.pth.tar.sha256").read_text().split()[0] == digest
    assert results[0].status == "installed" and digest[:12] in results[0].detail


def test_a_download_starts_over_when_the_server_ignores_the_range(drive, payload,
                                                                  _isolated_asset_home):
    _part(_isolated_asset_home).write_bytes(b"stale bytes of another file")

    def no_range(url, params=None, headers=None, stream=False, timeout=None):
        return FakeDrive.get(drive, url, params, {}, stream, timeout)
    drive.get = no_range
    installer.download_checkpoint(quiet=True)
    assert _installed(_isolated_asset_home).read_bytes() == payload


def test_drive_confirmation_page_is_followed(drive, payload, _isolated_asset_home):
    drive.pages = ["confirm"]
    installer.download_checkpoint(quiet=True)
    assert drive.calls[-1][0]["uuid"] == "0b7c-uuid"
    assert _installed(_isolated_asset_home).read_bytes() == payload


def test_quota_page_is_one_line_and_never_written(drive, payload, _isolated_asset_home):
    home = _isolated_asset_home
    drive.pages = ["quota"]
    with pytest.raises(AssetMissingError) as info:
        installer.download_checkpoint(quiet=True)
    message = str(info.value)
    assert "\n" not in message and "Too many users" in message
    assert "maed setup weights PATH" in message and assets.CHECKPOINT_GDRIVE_ID in message
    assert not _part(home).exists() and not _installed(home).exists()
    # with a partial download already there, the page is not appended to it
    _part(home).write_bytes(payload[:1000])
    with pytest.raises(AssetMissingError, match="kept in"):
        installer.download_checkpoint(quiet=True)
    assert _part(home).read_bytes() == payload[:1000]
    drive.pages = []
    installer.download_checkpoint(quiet=True)  # later, the quota is back: it resumes
    assert drive.calls[-1][1] == {"Range": "bytes=1000-"}
    assert _installed(home).read_bytes() == payload


def test_a_file_that_is_not_the_official_network_is_removed(drive, monkeypatch,
                                                            _isolated_asset_home):
    monkeypatch.setattr(installer, "OFFICIAL", MAEDConfig())  # the real requirement
    with pytest.raises(AssetMissingError, match="not the official MAED checkpoint.*1 blocks"):
        installer.download_checkpoint(quiet=True)
    assert not _part(_isolated_asset_home).exists()
    assert not _installed(_isolated_asset_home).exists()


def test_a_corrupt_download_is_removed(drive, payload, _isolated_asset_home):
    drive.payload = payload[: len(payload) // 2]  # the server's own copy is short
    with pytest.raises(AssetMissingError, match="did not verify"):
        installer.download_checkpoint(quiet=True)
    assert not _part(_isolated_asset_home).exists()
    assert not _installed(_isolated_asset_home).exists()


def test_offline_is_one_line(monkeypatch, _isolated_asset_home):
    monkeypatch.delenv(installer.ENV_OFFLINE, raising=False)

    class Offline:
        def get(self, *args, **kwargs):
            raise requests.exceptions.ConnectionError("Max retries exceeded (Network is "
                                                      "unreachable)")
    monkeypatch.setattr(installer, "open_session", Offline)
    with pytest.raises(AssetMissingError) as info:
        installer.ensure_checkpoint()
    message = str(info.value)
    assert "cannot reach Google Drive" in message and "Offline?" in message
    assert "maed setup weights PATH" in message and "\n" not in message
    assert not list(_isolated_asset_home.iterdir())


def test_ensure_checkpoint_leaves_given_or_installed_ones_alone(drive, payload, tmp_path,
                                                                _isolated_asset_home):
    installer.ensure_checkpoint(tmp_path / "elsewhere.pth.tar")  # given: the caller checks it
    installer.ensure_checkpoint(download=False)
    assert drive.calls == []
    installer.ensure_checkpoint()
    assert len(drive.calls) == 1
    installer.ensure_checkpoint()  # installed now
    assert len(drive.calls) == 1


def test_maed_offline_env_forbids_downloads(drive, monkeypatch):
    monkeypatch.setenv(installer.ENV_OFFLINE, "1")
    installer.ensure_checkpoint()
    assert drive.calls == []


def _eval_predictions_stub(monkeypatch):
    """The network's predictions replaced by the ground truth (the run itself is tested
    elsewhere): what matters here is that it gets that far with the downloaded file."""
    from maed_cli.evaluate import inference
    from maed_cli.evaluate.protocol import Predictions

    def predict(evalset, model, **kwargs):
        assert isinstance(model, MAED) and model.config.num_blocks == 1
        return Predictions(betas=evalset.shape, pose=evalset.pose)
    monkeypatch.setattr(inference, "predict", predict)


def test_eval_downloads_the_checkpoint_then_runs(drive, monkeypatch, tmp_path, capsys,
                                                 synthetic_assets, synthetic_body,
                                                 _isolated_asset_home):
    from eval_fixtures import install_synthetic_smpl, make_3dpw
    install_synthetic_smpl(synthetic_assets, _isolated_asset_home)
    root = tmp_path / "3dpw"
    make_3dpw(root, synthetic_body, sequences=1, frames=40, people=1)
    _eval_predictions_stub(monkeypatch)
    out = tmp_path / "report.json"
    code = main(["eval", "--data-dir", str(root), "--quiet", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert _installed(_isolated_asset_home).is_file() and len(drive.calls) == 1
    report = json.loads(out.read_text())
    assert report["checkpoint"]["path"] == str(_installed(_isolated_asset_home))
    assert report["metrics"]["mpjpe"] == pytest.approx(0, abs=1e-3)


def test_no_download_option_names_the_missing_checkpoint(drive, tmp_path, capsys):
    code = main(["eval", "--data-dir", str(tmp_path), "--quiet", "--no-download"])
    err = capsys.readouterr().err
    assert code == 2 and "no MAED checkpoint found" in err and "--no-download" in err
    assert drive.calls == []


def test_demo_preflight_downloads_only_when_nothing_else_is_missing(drive, monkeypatch,
                                                                    _isolated_asset_home):
    from maed_cli import runner
    from maed_cli.video import detect

    def no_detector(weights):
        raise AssetMissingError("detector weights 'yolo.pt' not found")
    monkeypatch.setattr(detect, "resolve_detector_weights", no_detector)
    with pytest.raises(AssetMissingError, match="no MAED checkpoint found.*yolo.pt"):
        runner.preflight_demo(None, None, None, download=True)
    assert drive.calls == []  # two things missing: named together, nothing downloaded
    runner.preflight_demo(None, "boxes.json", None, download=True)  # only the checkpoint
    assert len(drive.calls) == 1 and _installed(_isolated_asset_home).is_file()


def test_demo_no_download_is_one_line(drive, tmp_path, capsys):
    from maed_cli.video.io import VideoWriter
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, 8.0) as writer:
        for _ in range(3):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"frame": 0, "box": [10, 10, 30, 40]}]))
    code = main(["demo", str(video), "--boxes", str(boxes), "--no-download", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no MAED checkpoint found" in err and "Traceback" not in err
    assert drive.calls == []
