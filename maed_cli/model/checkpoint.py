"""Checkpoints: the official `model_best.pth.tar` and this project's own format.

Official file: {'epoch', 'state_dict' (keys prefixed 'module.'), 'performance', 'optimizer'}.
Its `decoder.smpl.*` entries are a complete neutral SMPL model; they are kept aside (our
network has no SMPL inside) and every other key is loaded strictly.

Own format: {'format': 'maed_cli', 'format_version': 1, 'config': {...}, 'state_dict': {...},
'meta': {...}}, written atomically.

Every file is read with `torch.load(weights_only=True)`: a checkpoint can never run code.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..assets import CHECKPOINT_NAMES, refuse_folder
from ..atomic import atomic_path
from ..errors import CheckpointError
from .maed import MAED, MAEDConfig

FORMAT = "maed_cli"
FORMAT_VERSION = 1
SMPL_PREFIX = "decoder.smpl."


def _numpy_safe_globals() -> list:
    """Numpy scalar/dtype reconstructors: plain data, needed for e.g. a numpy 'performance'."""
    found = []
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["scalar"])
            found.append(module.scalar)
        except (ImportError, AttributeError):
            continue
    found.append(np.dtype)
    found.extend(type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG")
    return found


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint_file(path: str | Path) -> Any:
    """torch.load with weights_only=True, turning every failure into one CheckpointError."""
    path = Path(path)
    refuse_folder(path, CHECKPOINT_NAMES[0])
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            detail = next((line.strip() for line in text.splitlines()
                           if "Unsupported global" in line or "GLOBAL" in line), "")
            detail = f" ({detail.rstrip('.')})" if detail else ""
            raise CheckpointError(
                f"{path}: refused to load — the file contains Python objects other than "
                f"tensors and plain data, and loading it could run code{detail}") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            AttributeError, TypeError, IndexError, struct.error) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or another kind of file: "
            f"{message})") from None


def extract_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint object, with any DDP 'module.' prefix removed."""
    state = raw
    if isinstance(raw, dict):
        for key in ("state_dict", "model", "model_state", "gen_state_dict"):
            if key in raw and isinstance(raw[key], dict):
                state = raw[key]
                break
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError("the file holds no MAED state_dict (no mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def checkpoint_filter_fn(state: dict[str, torch.Tensor]
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Official keys -> (network state, SMPL buffers named as in the SMPL layer)."""
    network, smpl = {}, {}
    for key, value in state.items():
        if key.startswith(SMPL_PREFIX):
            smpl[key[len(SMPL_PREFIX):]] = value
        elif "smpl" in key:  # anything else SMPL-related is not part of the network
            smpl[key] = value
        else:
            network[key] = value
    return network, smpl


def infer_config(state: dict[str, torch.Tensor]) -> MAEDConfig:
    """Architecture from key names and shapes (heads cannot be seen; 12 as in the paper)."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.blocks\.(\d+)\.", k))}
    if not blocks or "decoder.fc1.weight" not in state:
        raise CheckpointError(
            "this is not a MAED checkpoint: it has no 'encoder.blocks.*' / 'decoder.fc1' "
            "weights (a checkpoint of another architecture?)")
    has_gate = any(k.endswith("attn.ts_attn.weight") for k in state)
    has_temporal = "encoder.temp_embed" in state
    st_mode = "parallel" if has_gate else ("series" if has_temporal else "vanilla")
    hidden_dim = int(state["decoder.fc1.weight"].shape[0])
    return MAEDConfig(num_blocks=max(blocks) + 1, num_heads=12, st_mode=st_mode,
                      hidden_dim=hidden_dim)


def load_state_strict(model: MAED, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with one readable error naming what does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {show(unexpected)}")
        if wrong:
            parts.append(f"{len(wrong)} with another shape: {show(wrong)}")
        raise CheckpointError(f"{source} does not fit MAED({model.config.num_blocks} blocks, "
                              f"{model.config.st_mode}): " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


@dataclass
class LoadedCheckpoint:
    model: MAED
    config: MAEDConfig
    kind: str  # "official" or "maed_cli"
    smpl_buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass
class CheckpointContents:
    """What a checkpoint holds, before any network is built from it."""
    state: dict[str, torch.Tensor]
    config: MAEDConfig
    kind: str  # "official" or "maed_cli"
    smpl_buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | Path, config: MAEDConfig | None = None) -> CheckpointContents:
    """Read and check a checkpoint as far as can be done without building the network (a
    second, for `maed doctor`): a safe, readable file, MAED weights and their configuration."""
    path = Path(path)
    raw = read_checkpoint_file(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        if raw.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"{path} was written by a newer maed (format "
                                  f"{raw['format_version']}); upgrade maed to read it")
        kind = "maed_cli"
        state, smpl = checkpoint_filter_fn(extract_state_dict(raw))
        try:
            stored = MAEDConfig(**raw.get("config", {}))
        except TypeError as exc:
            raise CheckpointError(f"{path}: invalid 'config' entry ({exc})") from None
        config = config or stored
        smpl.update(raw.get("smpl", {}) or {})
        meta = dict(raw.get("meta", {}) or {})
    else:
        kind = "official"
        state, smpl = checkpoint_filter_fn(extract_state_dict(raw))
        config = config or infer_config(state)
        meta = {k: raw[k] for k in ("epoch", "performance") if isinstance(raw, dict) and k in raw}
    return CheckpointContents(state, config, kind, smpl, meta)


def load_checkpoint(path: str | Path, config: MAEDConfig | None = None,
                    device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Build the network a checkpoint describes and load it strictly; the model is in eval mode."""
    path = Path(path)
    contents = read_checkpoint(path, config)
    model = MAED.from_config(contents.config)
    load_state_strict(model, contents.state, str(path))
    model.to(device).eval()
    return LoadedCheckpoint(model=model, config=contents.config, kind=contents.kind,
                            smpl_buffers=contents.smpl_buffers, meta=contents.meta, path=path)


def save_checkpoint(path: str | Path, model: MAED, meta: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write our own format atomically (temp file + rename). `extra` holds e.g. optimizer state."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    payload.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_smpl_buffers(path: str | Path) -> dict[str, torch.Tensor]:
    """Only the SMPL buffers a checkpoint carries (empty for ours), without building the
    network: what rendering and exporting need from the official file."""
    return checkpoint_filter_fn(extract_state_dict(read_checkpoint_file(path)))[1]
