"""Devices and precisions, chosen once for every command that runs the network."""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .errors import InputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: "str | torch.device | None") -> torch.device:
    """auto | cpu | cuda | cuda:N -> torch.device (auto: the GPU when there is one).

    A missing or unknown device is an InputError, so the CLI prints one line.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA GPU is available here (use --device "
                             "cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: there are only {torch.cuda.device_count()} "
                             "CUDA device(s)")
    elif device.type != "cpu":
        raise InputError(f"--device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
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
    """auto | fp32 | bf16 | fp16 -> torch.dtype for inference (auto: fp16 on CUDA, else fp32).

    fp16 rather than bf16 on CUDA: the same tensor-core rate, but 3 more mantissa bits; on an
    H200 its outputs stayed about 6x closer to fp32's (rotations 0.44 against 2.5 degrees on
    average on the parity fixture, README "Measured on a GPU"), and every CUDA GPU has it.
    Its narrower range is guarded by `model.inference.forward_mixed` (a batch with non-finite
    fp16 outputs runs again in fp32). fp16 needs CUDA (CPU fp16 kernels are slow); bf16
    autocast works on recent CPUs too. Training chooses its own precision (train.config).
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: use auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type != "cuda":
        raise InputError("--dtype fp16 runs on CUDA only; on the CPU use fp32 or bf16")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for `dtype` on `device` (weights stay fp32); fp32 -> a no-op context.

    Under autocast the matmuls and convolutions run in bf16/fp16 while norms, softmax and
    reductions stay in fp32, which keeps the rotations and the gate well conditioned.
    """
    if dtype is torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# --- processes (torchrun, Slurm) ---------------------------------------------------------

@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"  # single | torchrun | slurm

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def can_sync(self) -> bool:
        """Whether the ranks can meet at the end (torchrun, or MASTER_ADDR/PORT exported)."""
        return self.world_size > 1 and bool(os.environ.get("MASTER_ADDR")) and \
            bool(os.environ.get("MASTER_PORT"))


def rank_info(environ: dict[str, str] | None = None) -> RankInfo:
    """This process's rank from torchrun's RANK/WORLD_SIZE/LOCAL_RANK or Slurm's
    SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID; a single process otherwise."""
    env = os.environ if environ is None else environ

    def number(name: str) -> int:
        try:
            return int(env[name])
        except ValueError:
            raise InputError(f"${name}={env[name]!r}: expected an integer") from None

    if "RANK" in env and "WORLD_SIZE" in env:
        info = RankInfo(number("RANK"), number("WORLD_SIZE"),
                        number("LOCAL_RANK") if "LOCAL_RANK" in env else 0, "torchrun")
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        info = RankInfo(number("SLURM_PROCID"), number("SLURM_NTASKS"),
                        number("SLURM_LOCALID") if "SLURM_LOCALID" in env else 0, "slurm")
    else:
        return RankInfo()
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise InputError(f"rank {info.rank} of {info.world_size} processes: out of range")
    return info
