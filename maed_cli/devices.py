"""Devices and precisions, chosen once for every command that runs the network."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from .errors import InputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | None) -> torch.device:
    """auto | cpu | cuda | cuda:N -> torch.device (auto: the GPU when there is one)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available here (use --device cpu)")
    return device


def device_for_rank(name: str | None, local_rank: int) -> str:
    """--device for one of several processes on a node (torchrun/Slurm LOCAL_RANK): auto and
    cuda become that process's own GPU, and it is made the current one; others unchanged."""
    if (name or "auto").strip().lower() in ("auto", "cuda") and torch.cuda.is_available():
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return name or "auto"


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """auto | fp32 | bf16 | fp16 -> torch.dtype (auto: bf16 on a GPU that has it, else fp32)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: use auto, fp32, bf16 or fp16")
    if DTYPES[name] is not torch.float32 and device.type != "cuda":
        raise InputError(f"--dtype {name}: half precision needs a CUDA device here")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed-precision context for `dtype` (nothing for fp32)."""
    if dtype is torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)
