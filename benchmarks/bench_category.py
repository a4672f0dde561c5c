"""Category models: one synthetic category dataset trained with several deformations, scored against its truth.

    python benchmarks/bench_category.py [--dataset demo-human] [--motions bob skel-human comp_skel-human_dense]
                                        [--set key=value ...] [--json PATH]

The dataset (``data/<name>/manifest.json`` must exist: ``snakemake --cores 2 data/<name>/manifest.json``) is
trained with its own config (cpu preset) and ``fg_motion`` set to each of ``--motions`` in turn, in
``results/bench-category/<name>-<motion>[-<tag>]/`` (a rerun scores a finished run again without training). For each it
prints the training time, the training views' mask IoU and masked PSNR (the worst video's and the mean,
``--frames`` per video, at the training resolution), every video's meshes' F-score at 5 % and 10 % of the box
(the worst video's; Sim(3), surface samples), each true reanimation's mask IoU and mesh F-score at 10 %, and the
bone lengths' median error after one scale and whether the individuals rank as the truth by leg and by arm.
A deformation without a skeleton cannot reanimate: its cells say so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lab4d_core.config import load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.eval.category import evaluate_bone_lengths, evaluate_reanimations, evaluate_video_meshes
from lab4d_core.eval.render_metrics import evaluate_training_views
from lab4d_core.export.motion import skeleton_of
from lab4d_core.train.presets import parse_overrides, resolve
from lab4d_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def run(name: str, motion: str, overrides: list[str], frames: int, tag: str = "") -> dict:
    config = ROOT / "config/datasets" / f"{name}.yaml"
    cfg = resolve(load_yaml(config), parse_overrides([*overrides, f"fg_motion={motion}"]), False, str(config))
    data = read_manifest(ROOT / "data" / name / "manifest.json")
    out = ROOT / "results" / "bench-category" / f"{name}-{motion}{'-' + tag if tag else ''}"
    trainer = Trainer(cfg, data, out, torch.device("cpu"))
    timing = out / "bench-seconds.json"
    if trainer.step < trainer.total_steps:
        started = time.perf_counter()
        trainer.train()
        timing.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    model = trainer.model.eval()
    train = trainer.cfg.train
    gt_root = data.root / "GroundTruth"
    views = evaluate_training_views(
        model, trainer.database, train.data_prefix, train.train_res, train.num_samples, frames, train.num_importance
    )
    row = {
        "dataset": name,
        "motion": motion,
        "steps": trainer.total_steps,
        "seconds": json.loads(timing.read_text())["seconds"] if timing.exists() else None,
        "views": views,
        "meshes": evaluate_video_meshes(model, trainer.database, gt_root),
    }
    if skeleton_of(model) is not None:
        row["reanimation"] = evaluate_reanimations(model, trainer.database, gt_root, num_samples=train.num_samples)
        if model.num_inst > 1:
            row["bones"] = evaluate_bone_lengths(model, trainer.database, gt_root)
    return row


def format_row(row: dict) -> str:
    videos = row["views"]["videos"].values()
    iou = min(v["mask_iou"] for v in videos)
    psnr = min(v["psnr"] for v in videos)
    meshes = row["meshes"]
    if "reanimation" in row:
        reanimation = ", ".join(
            f"{pair} {v['mask_iou']:.2f} / {v['fscore@10%bbox']:.2f}" for pair, v in row["reanimation"].items()
        )
    else:
        reanimation = "cannot (no skeleton)"
    bones = row.get("bones")
    bone_cell = (
        f"{100 * bones['median_relative_error']:.1f}% / {'yes' if bones['leg_order_matches'] else 'no'} / "
        f"{'yes' if bones['arm_order_matches'] else 'no'}"
        if bones
        else "-"
    )
    seconds = "-" if row["seconds"] is None else f"{row['seconds'] / 60:.1f}"
    return (
        f"| {row['motion']} | {seconds} | {iou:.3f} ({row['views']['mask_iou']:.3f}) | {psnr:.2f} "
        f"({row['views']['psnr']:.2f}) | {meshes['min fscore@5%bbox']:.3f} | {meshes['min fscore@10%bbox']:.3f} | "
        f"{reanimation} | {bone_cell} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="demo-human")
    parser.add_argument("--motions", nargs="+", default=["bob", "skel-human", "comp_skel-human_dense"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, as lab4d train")
    parser.add_argument("--frames", type=int, default=12, help="training views scored per video")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    parser.add_argument("--tag", default="", help="suffix of the runs' folders, to keep variants (--set) apart")
    args = parser.parse_args()
    if not (ROOT / "data" / args.dataset / "GroundTruth").is_dir():
        raise SystemExit(f"error: data/{args.dataset} not found: snakemake --cores 2 data/{args.dataset}/manifest.json")
    header = (
        "| fg_motion | train min | IoU worst (mean) | PSNR worst (mean) | F@5% worst | F@10% worst | "
        "reanimation IoU / F@10% | bones: error / legs / arms rank |\n" + "|---" * 8 + "|"
    )
    rows = []
    for motion in args.motions:
        try:
            rows.append(run(args.dataset, motion, args.set, args.frames, args.tag))
        except Lab4dError as error:
            raise SystemExit(f"error: {error}") from None
        print(header)
        for row in rows:
            print(format_row(row))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
