"""Distributed data-parallel helpers: torchrun sets the env, fit() shards data and syncs grads.

Launch with ``torchrun --nproc_per_node=N -m edgeslim.train.ddp RECIPE`` (gloo on CPU,
nccl on CUDA). With one process every helper is a no-op.
"""

from __future__ import annotations

import os

import torch
from torch import nn


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group torchrun describes (RANK/WORLD_SIZE env); False without torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or world_size() > 1:
        return world_size() > 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)
    return True


def local_device(requested: torch.device) -> torch.device:
    """Each rank's own GPU under torchrun; the requested device otherwise."""
    if requested.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return requested


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP-wrap for this epoch (re-wrapped each epoch because freezing changes the trained set)."""
    if world_size() <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BN statistics) to every rank.

    DDP syncs buffers at the start of each forward, so after the last batch every rank holds
    statistics updated by its own shard; without this the ranks' saved models would differ.
    """
    if world_size() <= 1:
        return
    for b in model.buffers():
        torch.distributed.broadcast(b.data, src=0)


def sharded_loader(data, batch_size: int, seed: int, epoch: int) -> torch.utils.data.DataLoader:
    """This rank's share of the training set; every rank sees a disjoint 1/world slice."""
    from torch.utils.data import DataLoader, DistributedSampler

    ds = data.dataset("train", augment=True)
    sampler = DistributedSampler(
        ds, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=0)
