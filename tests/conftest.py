import os
from pathlib import Path

import pytest

# Tests never reach the network and never read the user's own asset folder.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MAED_OFFLINE", "1")  # no checkpoint download (tests of it unset it)

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


@pytest.fixture(scope="session")
def synthetic_assets(tmp_path_factory) -> dict:
    """Synthetic SMPL pkl/npz and regressors, written once per test session."""
    from maed_cli.body.synthetic import write_synthetic_assets
    return write_synthetic_assets(tmp_path_factory.mktemp("synthetic_smpl"))


@pytest.fixture(scope="session")
def synthetic_body(synthetic_assets):
    """A BodyModel on the synthetic SMPL with both regressors."""
    import numpy as np
    from maed_cli.body.smpl import BodyModel
    from maed_cli.body.smpl_files import read_smpl_file
    return BodyModel(read_smpl_file(synthetic_assets["npz"]),
                     np.load(synthetic_assets["extra"]), np.load(synthetic_assets["h36m"]),
                     source="synthetic")
