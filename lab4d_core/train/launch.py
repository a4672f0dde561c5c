"""Start training in this process, or as N ranks under torchrun (NCCL on GPUs, gloo for CPU ranks).

``lab4d train --ngpu N`` with N >= 2 re-executes itself through
``torch.distributed.run --standalone``; with 0 GPUs (what ``--resources gpu=0``
gives a Snakemake job) it trains on the CPU, and ``--nproc N`` runs N CPU ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lab4d_core.config import load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.train.distributed import has_accelerator, init_process_group, select_device
from lab4d_core.train.presets import parse_overrides, resolve


@dataclass
class TrainRequest:
    config: Path
    data: Path
    out: Path
    overrides: list[str] = field(default_factory=list)
    ngpu: int = 0
    nproc: int = 1
    device: str = "auto"
    until: int | None = None

    def processes(self) -> int:
        if self.ngpu > 0 and not has_accelerator():
            warnings.warn(f"--ngpu {self.ngpu} but no CUDA device is visible: training on the CPU", stacklevel=2)
            return max(self.nproc, 1)
        if self.ngpu > 0:
            visible = torch.cuda.device_count()
            if self.ngpu > visible:
                warnings.warn(
                    f"--ngpu {self.ngpu} but {visible} CUDA device(s) are visible: using {visible}", stacklevel=2
                )
            return min(self.ngpu, visible)
        return max(self.nproc, 1)

    def argv(self) -> list[str]:
        args = ["--config", str(self.config), "--data", str(self.data), "--out", str(self.out), "--device", self.device]
        for item in self.overrides:
            args += ["--set", item]
        if self.until is not None:
            args += ["--until", str(self.until)]
        return args


def launch(request: TrainRequest) -> None:
    """Train in-process, or spawn ranks with torchrun and wait for them."""
    processes = request.processes()
    device = "cpu" if request.ngpu == 0 or not has_accelerator() else request.device
    if processes == 1:
        run(request, device)
        return
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
        "--nproc-per-node", str(processes), "-m", "lab4d_core.cli", "train", *request.argv(), "--worker",
    ]  # fmt: skip
    command[command.index("--device") + 1] = device
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes))),
    }
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise Lab4dError(f"training ranks failed (exit status {result.returncode}); see the messages above")


def build_trainer(request: TrainRequest, device: torch.device, rank: int = 0, world: int = 1):
    """The Trainer for a request: config resolved with the preset of ``device``'s kind."""
    from lab4d_core.train.trainer import Trainer

    data = load_yaml(request.config)
    cfg = resolve(data, parse_overrides(request.overrides), device.type != "cpu", str(request.config))
    return Trainer(cfg, read_manifest(request.data), request.out, device, rank, world)


def run(request: TrainRequest, device_name: str) -> None:
    """One process's share of the training (rank and world size from torchrun's environment)."""
    device = select_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    rank, world = init_process_group(device)
    build_trainer(request, device, rank, world).train(until=request.until)
