import os
from pathlib import Path

import pytest

# Tests never reach the network and never read the user's own asset folder.
os.environ.setdefault("YOLO_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_asset_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("maed_home")
    monkeypatch.setenv("MAED_HOME", str(home))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(home / "ultralytics"))
    yield home


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
