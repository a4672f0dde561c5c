"""Process groups, devices and global reductions: one code path for 1 CPU process, N CPU ranks (gloo) or N GPUs (NCCL)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def select_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The one place that names accelerators: CUDA when asked for or available, else CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


DEVICE_CHOICES = ("auto", "cpu", "cuda")
"""What ``--device`` accepts."""


def has_accelerator() -> bool:
    return torch.cuda.is_available()


def accelerator_rng_state() -> list[torch.Tensor] | None:
    """RNG states of the visible GPUs (None without any), for exact resume."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def set_accelerator_rng_state(states: list[torch.Tensor] | None) -> None:
    if states is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states)


def init_process_group(device: torch.device) -> tuple[int, int]:
    """Join the group that torchrun set up (env:// variables); returns (rank, world size)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo" if device.type == "cpu" else "nccl")
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of ``value`` over all ranks (itself when not distributed), without a gradient path."""
    total = value.detach().clone()
    if is_distributed():
        dist.all_reduce(total)
    return total


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0
