"""`maed setup`: install SMPL, checkpoints and regressors into the asset home, idempotently."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import assets
from .atomic import atomic_path, check_writable
from .body.smpl_files import read_smpl_file, write_smpl_npz
from .errors import AssetMissingError, InputError, MaedError
from .model.checkpoint import file_sha256, load_checkpoint


@dataclass
class Installed:
    asset: str
    path: Path
    status: str  # "installed", "unchanged"
    detail: str = ""


def install_target(name: str, home: Path | None = None) -> Path:
    """`<home>/<name>`, once a file can be written there: checked before the slow reading and
    converting, and in one line naming $MAED_HOME when that is where the home comes from."""
    option = f"${assets.ENV_HOME}" if home is None and os.environ.get(assets.ENV_HOME) \
        else "asset folder"
    target = (home or assets.asset_home()) / name
    check_writable(target, "file", option)
    return target


def install_smpl(source: str | Path, home: Path | None = None) -> Installed:
    """SMPL pkl/zip/npz -> `<home>/smpl/SMPL_NEUTRAL.npz` (plain arrays, no pickle)."""
    assets.refuse_folder(source, assets.SMPL_PKL_NAMES[0])
    target = install_target(assets.SMPL_NPZ, home)
    model = read_smpl_file(source)
    if target.is_file():
        try:
            existing = read_smpl_file(target)
            if all(np.array_equal(existing[k], model[k]) for k in model):
                return Installed("SMPL (neutral)", target, "unchanged", str(source))
        except MaedError:
            pass
    write_smpl_npz(model, target)
    return Installed("SMPL (neutral)", target, "installed", f"from {source}")


def install_weights(source: str | Path, home: Path | None = None) -> list[Installed]:
    """Verify a checkpoint loads, copy it into the home, record its sha256 beside it."""
    source = Path(source)
    home = install_target(assets.CHECKPOINT_NAMES[0], home).parent  # both names live there
    loaded = load_checkpoint(source)  # raises CheckpointError with one clear line
    name = assets.CHECKPOINT_NAMES[0] if loaded.kind == "official" else assets.CHECKPOINT_NAMES[1]
    target = home / name
    digest = file_sha256(source)
    detail = (f"{loaded.kind}, {loaded.config.num_blocks} blocks {loaded.config.st_mode}, "
              f"sha256 {digest[:12]}…")
    results = []
    if target.is_file() and file_sha256(target) == digest:
        results.append(Installed("checkpoint", target, "unchanged", detail))
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        results.append(Installed("checkpoint", target, "installed", detail))
    with atomic_path(target.with_name(target.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {target.name}\n")
    if "v_template" in loaded.smpl_buffers:
        results.append(Installed("SMPL (from checkpoint)", target, "available",
                                 "the checkpoint carries a neutral SMPL model"))
    return results


def install_regressors(folder: str | Path, home: Path | None = None) -> list[Installed]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder (give the folder that holds "
                         f"{assets.REGRESSOR_EXTRA} and/or {assets.REGRESSOR_H36M})")
    home = install_target(assets.REGRESSOR_EXTRA, home).parent  # both names live there
    results = []
    for name, rows in ((assets.REGRESSOR_EXTRA, 9), (assets.REGRESSOR_H36M, 17)):
        source = folder / name
        if not source.is_file():
            continue
        try:
            array = np.load(source, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{source}: not a readable .npy file ({exc})") from None
        if array.shape != (rows, 6890):
            raise InputError(f"{source}: shape {array.shape}, expected ({rows}, 6890)")
        target = home / name
        if target.is_file() and np.array_equal(np.load(target, allow_pickle=False), array):
            results.append(Installed(name, target, "unchanged"))
            continue
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        results.append(Installed(name, target, "installed", f"from {source}"))
    if not results:
        raise AssetMissingError(f"neither {assets.REGRESSOR_EXTRA} nor {assets.REGRESSOR_H36M} "
                                f"is in {folder}")
    return results


def download_checkpoint(home: Path | None = None) -> list[Installed]:
    """Fetch the official checkpoint from its public Google Drive file (resumable)."""
    partial = install_target(assets.CHECKPOINT_NAMES[0] + ".download", home)
    home = partial.parent
    home.mkdir(parents=True, exist_ok=True)
    try:
        import gdown
    except ImportError:
        raise AssetMissingError("downloading needs gdown: pip install gdown") from None
    try:
        result = gdown.download(id=assets.CHECKPOINT_GDRIVE_ID, output=str(partial),
                                quiet=False, resume=True)
    except Exception as exc:  # gdown raises many kinds; all mean "no file"
        raise AssetMissingError(
            f"could not download the checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}); are you "
            f"offline? Download model_best.pth.tar by hand (Google Drive id "
            f"{assets.CHECKPOINT_GDRIVE_ID}) and run `maed setup weights PATH`") from None
    if not result or not partial.is_file():
        raise AssetMissingError("the checkpoint download produced no file; download it by hand "
                                f"(Google Drive id {assets.CHECKPOINT_GDRIVE_ID})")
    try:
        return install_weights(partial, home)
    finally:
        partial.unlink(missing_ok=True)
