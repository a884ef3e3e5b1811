"""Process-group helpers: one code path for a single process and for `torchrun`.

`torchrun --nproc_per_node N -m maed_cli train ...` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; without them training runs in one process and every helper here
is a no-op. NCCL on GPUs, gloo on CPUs.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..devices import RankInfo, rank_info

DistInfo = RankInfo  # rank, world size, local rank: one reader for torchrun and Slurm


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group torchrun (or Slurm with MASTER_ADDR/PORT) describes, if any."""
    info = rank_info()
    if not info.enabled:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" and dist.is_nccl_available() else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (so all ranks stop together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device
                    ) -> dict[str, float]:
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's `obj` (e.g. RNG states), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
