"""Training on CPU: throughput of our cpu preset against a lab4d-like configuration, and quality over time.

    python benchmarks/bench_train.py [--data data/demo-quad/manifest.json] [--minutes 1 2 5] [--json PATH]

Both tables come from one run on this machine:

1. Throughput: ray samples per second through whole training steps (sampling, forward,
   backward, optimizer) with ``fg_motion: bob``, for a lab4d-like configuration (Fourier PE 10,
   8x256 trunk with a skip at 4, 64 samples per ray) and for the cpu preset; each runs in a
   fresh process, which reports its peak resident memory. Samples are those shaded: the
   lab4d-like configuration spreads its 64 over the proxy box as lab4d does, the preset puts
   its 16 in the occupied cells (so it needs fewer per ray, a gain this ratio leaves out).
2. Quality over time: the dataset's own config with the cpu preset, trained from scratch; after
   each time budget, mask IoU and masked PSNR over evenly spaced training frames (12 per video
   by default, all with ``--frames-per-video 0``), rendered at the training resolution (timing
   excludes the evaluation).

The dataset defaults to demo-quad; it is synthesized into benchmarks/results/ when absent.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import torch

from lab4d_core.config import load_dataset_config, load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.eval.render_metrics import evaluate_training_views
from lab4d_core.train.presets import resolve
from lab4d_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "lab4d-like: Fourier PE10 + 8x256, 64 samples": {
        "model": {"encoding": "fourier", "num_freq_xyz": 10, "field_hidden": 256, "field_depth": 8, "occupancy_res": 0},
        "train": {"num_samples": 64, "num_importance": 0},
    },
    "ours: cpu preset": {"model": {}, "train": {}},
}


def dataset(manifest: Path | None) -> tuple[Path, Path]:
    """(dataset YAML, manifest) of demo-quad, synthesized into benchmarks/results/ if needed."""
    config = ROOT / "config" / "datasets" / "demo-quad.yaml"
    if manifest is not None:
        return config, manifest
    default = ROOT / "data" / "demo-quad" / "manifest.json"
    if default.exists():
        return config, default
    from lab4d_core.data.synthetic.synthesize import synthesize

    out = ROOT / "benchmarks" / "results" / "demo-quad"
    if not (out / "manifest.json").exists():
        synthesize(load_dataset_config(config).source.synthetic, out, "demo-quad")
    return config, out / "manifest.json"


def trainer(config: Path, manifest: Path, out: Path, model: dict, train: dict) -> Trainer:
    data = load_yaml(config)
    data["model"] = {**data.get("model", {}), "fg_motion": "bob", **model}
    cfg = resolve(data, {"train": {"preset": "cpu", **train}}, False, str(config))
    return Trainer(cfg, read_manifest(manifest), out, torch.device("cpu"))


def _throughput(config: Path, manifest: Path, overrides: dict, steps: int, queue) -> None:
    with tempfile.TemporaryDirectory() as out:
        run = trainer(config, manifest, Path(out), overrides["model"], overrides["train"])
        run.train_step()  # warm-up: lazy initialisation, first proxy fit
        samples, start = 0, time.perf_counter()
        for _ in range(steps):
            samples += run.train_step().samples
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"samples_per_s": samples / seconds, "s_per_step": seconds / steps, "peak_mib": peak_mib})


def throughput(config: Path, manifest: Path, steps: int) -> dict[str, dict]:
    context = mp.get_context("spawn")
    rows = {}
    for name, overrides in CONFIGS.items():
        queue = context.Queue()
        process = context.Process(target=_throughput, args=(config, manifest, overrides, steps, queue))
        process.start()
        rows[name] = queue.get()
        process.join()
    return rows


def quality_over_time(config: Path, manifest: Path, minutes: list[float], frames_per_video: int | None) -> list[dict]:
    with tempfile.TemporaryDirectory() as out:
        run = trainer(config, manifest, Path(out), {}, {})
        res = run.cfg.train.train_res
        rows, trained = [], 0.0
        for budget in sorted(minutes):
            start = time.perf_counter()
            while trained + time.perf_counter() - start < 60 * budget and run.step < run.total_steps:
                run.train_step()
            trained += time.perf_counter() - start
            run.model.eval()
            train = run.cfg.train
            views = evaluate_training_views(
                run.model,
                run.database,
                train.data_prefix,
                res,
                train.num_samples,
                frames_per_video,
                train.num_importance,
            )
            run.model.train()
            rows.append({"minutes": budget, "seconds": trained, "step": run.step, "of_steps": run.total_steps, **views})
            print(f"  {budget:g} min: step {run.step}, mask IoU {views['mask_iou']:.3f}, PSNR {views['psnr']:.2f} dB")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset manifest (default: demo-quad)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default: 5)")
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 2, 5], help="time budgets (default: 1 2 5)")
    parser.add_argument(
        "--frames-per-video",
        type=int,
        default=12,
        help="frames scored per video, evenly spaced (default: 12; 0: all, as lab4d evaluate does)",
    )
    parser.add_argument("--json", type=Path, help="also write the tables as JSON here")
    args = parser.parse_args()
    config, manifest = dataset(args.data)
    print(f"{manifest}: {torch.get_num_threads()} CPU threads, torch {torch.__version__}")

    rows = throughput(config, manifest, args.steps)
    print(f"\n{'configuration (fg_motion: bob)':48s} {'samples/s':>12s} {'s/step':>8s} {'peak MiB':>9s}")
    for name, row in rows.items():
        print(f"{name:48s} {row['samples_per_s']:12,.0f} {row['s_per_step']:8.2f} {row['peak_mib']:9.0f}")
    lab4d, ours = (row["samples_per_s"] for row in rows.values())
    print(f"{'speed-up of the cpu preset':48s} {ours / lab4d:11.1f}x")

    quality = []
    if args.minutes:
        scored = f"{args.frames_per_video} frames per video" if args.frames_per_video else "all training frames"
        print(f"\nquality over time (cpu preset, {scored} at the training resolution):")
        quality = quality_over_time(config, manifest, args.minutes, args.frames_per_video or None)
        print(f"\n{'minutes':>7s} {'step':>6s} {'mask IoU':>9s} {'PSNR dB':>8s}")
        for row in quality:
            print(f"{row['minutes']:7g} {row['step']:6d} {row['mask_iou']:9.3f} {row['psnr']:8.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"throughput": rows, "speedup": ours / lab4d, "quality": quality}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
