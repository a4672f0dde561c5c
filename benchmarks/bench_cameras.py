"""Reconstruction from estimated cameras: the same synthetic dataset trained from four kinds of root poses.

    python benchmarks/bench_cameras.py [--datasets demo-quad fox] [--cases a b c d] [--set key=value ...] [--json PATH]

Real data never has the true root pose. Each dataset (its ``data/<name>/manifest.json`` must exist:
``snakemake --cores 2 data/<name>/manifest.json``) is mirrored into ``data/bench-cameras/<name>-<case>/``
(links to every file but ``Cameras/``) and trained with its own config (cpu preset) from:

- (a) the true root poses (``01-canonical.npy`` as synthesized);
- (b) a viewpoint-network-like estimate: per video a constant 15 degree rotation about a random axis plus a
  smooth wobble of about 20 degrees, both in camera coordinates about the object's centre, and translations
  10 % too far (seeded);
- (c) background cameras only (``00.npy``: the object's orientation and translation are the trainer's to find);
- (d) nothing (no ``Cameras/``).

For each it prints the root rotations' error against the truth (median and 90th percentile, degrees, at the
start and at the end, after the one rotation that best aligns the learned canonical frame with the true one,
since a canonical frame is arbitrary), the training views' mask IoU and masked PSNR (``--frames`` per video),
every video's meshes' F-score at 5 % and 10 % of the box and Chamfer distance (% of the box; Sim(3) protocol,
surface samples), and the up axis's error against the true vertical (the axis turntables spin about).
Checkpoints stay in ``results/bench-cameras/<name>-<case>/`` (``--tag`` names another folder): a rerun of the
same config scores them again without training.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lab4d_core.config import load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.eval.consistency import evaluate_consistency
from lab4d_core.eval.evaluate import evaluate_mesh_sequence, load_ground_truth
from lab4d_core.eval.render_metrics import evaluate_training_views
from lab4d_core.export.mesh import extract_canonical_mesh
from lab4d_core.export.motion import posed_vertices
from lab4d_core.preprocess.scene import SceneInfo
from lab4d_core.train.presets import parse_overrides, resolve
from lab4d_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "a": "true root poses",
    "b": "viewpoint-network-like estimate",
    "c": "background cameras only",
    "d": "no cameras",
}
WORLD_UP = np.array([0.0, -1.0, 0.0])
"""The synthetic world is y-down: its vertical, pointing up."""


def perturbed_root_poses(field2cam: np.ndarray, seed: int) -> np.ndarray:
    """(N, 4, 4) root poses as a viewpoint network might give them (see the module doc)."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    offset = np.deg2rad(15.0) * axis / np.linalg.norm(axis)
    u = np.linspace(0.0, 1.0, len(field2cam))[:, None]
    wobble = sum(
        rng.normal(size=3) * np.sin(2 * np.pi * frequency * u + rng.uniform(0, 2 * np.pi, 3))
        for frequency in (0.5, 1.0, 1.7)
    )
    wobble *= np.deg2rad(20.0) / np.linalg.norm(wobble, axis=-1).mean()
    error = Rotation.from_rotvec(wobble) * Rotation.from_rotvec(offset)
    poses = field2cam.astype(np.float64).copy()
    poses[:, :3, :3] = error.as_matrix() @ poses[:, :3, :3]
    poses[:, :3, 3] *= 1.1
    return poses


def mirror_dataset(manifest: Path, case: str, out: Path, seed: int = 0) -> Path:
    """A copy of the dataset made of links, whose ``Cameras/`` hold what ``case`` gives; returns its manifest."""
    source = manifest.parent
    data = read_manifest(manifest)
    shutil.rmtree(out, ignore_errors=True)
    for folder, _, files in os.walk(data.root / "database"):
        folder = Path(folder)
        target = out / folder.relative_to(data.root)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if folder.parent.parent.name != "Cameras":
                (target / name).symlink_to(folder / name)
            elif case == "a" or (case in "bc" and name.startswith("00")):
                (target / name).symlink_to(folder / name)
    for v, seqname in enumerate(data.videos):
        if case == "b":
            truth = np.load(data.root / "GroundTruth" / seqname / "field2cam.npy")
            cameras = out / "database/processed/Cameras/Full-Resolution" / seqname
            np.save(cameras / "01-canonical.npy", perturbed_root_poses(truth, seed * 1000 + v))
    (out / "GroundTruth").symlink_to(data.root / "GroundTruth")
    text = json.loads((source / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**text, "root": "."}, indent=1))
    return out / "manifest.json"


def rotation_errors(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame angle (degrees) between learned and true object -> camera rotations (N, 3, 3), after the one
    rotation of the canonical frame that fits best (learned = truth @ G)."""
    u, _, vt = np.linalg.svd(np.einsum("nji,njk->ik", truth, learned))
    fit = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    relative = np.einsum("nji,njk->nik", truth @ fit, learned)
    return np.degrees(Rotation.from_matrix(relative).magnitude())


def true_up_axis(learned: np.ndarray, world2cam: np.ndarray) -> np.ndarray:
    """The true vertical in the learned object coordinates: each frame's world up seen through its true camera
    and the learned root rotation (N, 3, 3), averaged."""
    per_frame = np.einsum("nji,nj->ni", learned, world2cam[:, :3, :3] @ WORLD_UP)
    mean = per_frame.mean(0)
    return mean / np.linalg.norm(mean)


def run_case(name: str, case: str, overrides: list[str], frames: int, tag: str = "bench-cameras") -> dict:
    config = ROOT / "config/datasets" / f"{name}.yaml"
    manifest = mirror_dataset(ROOT / "data" / name / "manifest.json", case, ROOT / "data" / tag / f"{name}-{case}")
    cfg = resolve(load_yaml(config), parse_overrides(overrides), torch.cuda.is_available(), str(config))
    data = read_manifest(manifest)
    run = Trainer(cfg, data, ROOT / "results" / tag / f"{name}-{case}", torch.device("cpu"))
    start_poses = SceneInfo.from_database(run.database, cfg.train.data_prefix).root_poses[:, :3, :3]
    started = time.perf_counter()
    run.train()
    seconds = time.perf_counter() - started
    model = run.model.eval()
    truth = [data.root / "GroundTruth" / seq for seq in data.videos]
    field2cam = np.concatenate([np.load(folder / "field2cam.npy") for folder in truth])[:, :3, :3]
    world2cam = np.concatenate([np.load(folder / "world2cam.npy") for folder in truth])
    with torch.no_grad():
        learned = model.root(torch.arange(len(field2cam)))[0].numpy().astype(np.float64)
    train = run.cfg.train
    views = evaluate_training_views(
        model, run.database, train.data_prefix, train.train_res, train.num_samples, frames, train.num_importance
    )
    meshes = []
    for v, folder in enumerate(truth):
        offset = int(run.database.frame_offset[v])
        inst = int(model.instance(torch.tensor([offset]))[0])
        mesh = extract_canonical_mesh(model, inst)
        posed = posed_vertices(model, mesh.vertices, torch.arange(offset, offset + data.num_frames[v]), inst)
        gt = load_ground_truth(folder)
        scores = evaluate_mesh_sequence([(p, mesh.faces) for p in posed], gt, protocol="sim3", points="surface")
        box = float(np.ptp(gt[0][0], axis=0).max())
        meshes.append({**scores["mean"], "chamfer": 100 * scores["mean"]["cd"] / box})
    consistency = evaluate_consistency(model, run.database)
    start_error = rotation_errors(start_poses, field2cam)
    end_error = rotation_errors(learned, field2cam)
    up = model.up_axis.numpy() if hasattr(model, "up_axis") else None
    up_error = (
        None if up is None else float(np.degrees(np.arccos(np.clip(up @ true_up_axis(learned, world2cam), -1, 1))))
    )
    return {
        "dataset": name,
        "case": case,
        "steps": run.total_steps,
        "seconds": seconds,
        "rotation_start": [float(np.median(start_error)), float(np.percentile(start_error, 90))],
        "rotation_end": [float(np.median(end_error)), float(np.percentile(end_error, 90))],
        "mask_iou": views["mask_iou"],
        "psnr": views["psnr"],
        "fscore5": float(np.mean([m["fscore@5%bbox"] for m in meshes])),
        "fscore10": float(np.mean([m["fscore@10%bbox"] for m in meshes])),
        "chamfer": float(np.mean([m["chamfer"] for m in meshes])),
        "up_error": up_error,
        "consistent": consistency["consistent"],
        "deformation_rotation_p90": consistency["deformation_rotation_p90"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["demo-quad", "fox"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, as lab4d train")
    parser.add_argument("--frames", type=int, default=12, help="training views scored per video")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    parser.add_argument(
        "--tag", default="bench-cameras", help="folder name under data/ and results/ (runs side by side need two)"
    )
    args = parser.parse_args()
    rows = []
    header = (
        "| dataset | case | rot. err. start (med / 90%) | end | IoU | PSNR | F@5% | F@10% | CD % | up err. | consistent (rot. p90) | train s |\n"
        f"|{'---|' * 12}"
    )
    for name in args.datasets:
        if not (ROOT / "data" / name / "GroundTruth").is_dir():
            raise SystemExit(
                f"error: data/{name} not found: make it first (snakemake --cores 2 data/{name}/manifest.json)"
            )
        for case in args.cases:
            try:
                rows.append(run_case(name, case, args.set, args.frames, args.tag))
            except Lab4dError as error:
                raise SystemExit(f"error: {error}") from None
            print(header)
            for row in rows:
                print(format_row(row))
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))


def format_row(row: dict) -> str:
    start, end = row["rotation_start"], row["rotation_end"]
    up = "-" if row["up_error"] is None else f"{row['up_error']:.1f}"
    return (
        f"| {row['dataset']} | ({row['case']}) {CASES[row['case']]} | {start[0]:.1f} / {start[1]:.1f} | "
        f"{end[0]:.1f} / {end[1]:.1f} | {row['mask_iou']:.3f} | {row['psnr']:.2f} | {row['fscore5']:.3f} | "
        f"{row['fscore10']:.3f} | {row['chamfer']:.1f} | {up} | {'yes' if row['consistent'] else 'NO'} ({row['deformation_rotation_p90']:.0f}) | {row['seconds']:.0f} |"
    )


if __name__ == "__main__":
    main()
