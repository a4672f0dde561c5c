"""Step time of training on each device here (the CPU, and CUDA where a GPU is visible), per preset.

    python benchmarks/bench_devices.py [--data data/demo-quad/manifest.json] [--steps 10] [--json PATH]

For each visible device and each preset (cpu: the small-batch CPU schedule; gpu: lab4d's batch, 128 pairs x
16 pixels and 64 samples per ray), one rank trains demo-quad with ``fg_motion: bob`` for a warm-up step and
then ``--steps`` timed steps; the table gives seconds per step, rays and shaded samples per second, and the
peak accelerator memory. The ratio column divides each row's samples per second by the CPU's with the same
preset, measured in the same run. On a machine without CUDA only the CPU rows appear (the table says so).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_train import dataset  # beside this script

from lab4d_core.config import load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.train.presets import resolve
from lab4d_core.train.trainer import Trainer


def measure(config: Path, manifest: Path, device: torch.device, preset: str, steps: int) -> dict:
    data = load_yaml(config)
    data["model"] = {**data.get("model", {}), "fg_motion": "bob"}
    cfg = resolve(data, {"train": {"preset": preset}}, device.type != "cpu", str(config))
    with tempfile.TemporaryDirectory() as out:
        run = Trainer(cfg, read_manifest(manifest), Path(out), device)
        run.train_step()  # warm-up: lazy initialisation, kernels, the first proxy fit
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        samples, start = 0, time.perf_counter()
        for _ in range(steps):
            samples += run.train_step().samples
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / steps
    rays = 2 * cfg.train.imgs_per_gpu * cfg.train.pixels_per_image
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "s_per_step": seconds,
        "rays_per_s": rays / seconds,
        "samples_per_s": samples / steps / seconds,
        "peak_mib": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset manifest (default: demo-quad)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (default: 10)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    config, manifest = dataset(args.data)
    devices = [torch.device("cpu")] + [torch.device("cuda", k) for k in range(torch.cuda.device_count())][:1]
    rows = {}
    for preset in ("cpu", "gpu"):
        for device in devices:
            rows[f"{device.type} / {preset} preset"] = measure(config, manifest, device, preset, args.steps)
    print("| device / preset | s per step | rays per s | samples per s | vs CPU, same preset | peak GPU MiB |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        baseline = rows[f"cpu / {name.split(' / ')[1]}"]["samples_per_s"]
        memory = "" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        print(
            f"| {name} | {row['s_per_step']:.3f} | {row['rays_per_s']:.0f} | {row['samples_per_s']:.0f} | "
            f"{row['samples_per_s'] / baseline:.1f}x | {memory} |"
        )
    if len(devices) == 1:
        print("\nno CUDA device is visible here: CPU rows only")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
