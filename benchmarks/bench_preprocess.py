"""Preprocessing own videos, measured against a synthetic dataset's exact arrays, then trained from its estimates.

    python benchmarks/bench_preprocess.py [--dataset demo-quad] [--methods given track] [--train exact track] [--json PATH]

The dataset (``config/datasets/<name>.yaml``, synthetic) is rendered with its arrays at 256 pixels into
``data/bench-preprocess/<name>-exact/``. Its raw JPEGs then go through ``lab4d preprocess`` as if they were a
user's videos (one folder of frames per video, lab4d's guess of the focal length, no cameras):

- ``given``: masks from the raw masks (what a user with masks of their own gets);
- ``track``: masks tracked from one box per video (the exact mask's box on the first frame, as a person draws it).

Per stage it prints the time and the error against the exact arrays: mask IoU (raw masks of the kept frames),
flow end-point error in pixels of the crop arrays on confident object pixels at delta 1 and 8 (pairs whose crops
match the exact ones, i.e. the ``given`` masks), the background cameras' rotation relative to the first frame
(degrees, median / max), and the initial root poses' rotation error after the one rotation that best aligns the
canonical frames (median / 90th percentile). Then it trains the dataset's config (cpu preset) on the exact
arrays and on each estimate and prints the training views' mask IoU and PSNR (against each run's own masks)
and the meshes' F-score at 5 % and 10 % of the box and Chamfer distance (% of the box; Sim(3), surface samples)
against the true meshes. Checkpoints stay in ``results/bench-preprocess/``.
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
from bench_cameras import rotation_errors
from scipy.spatial.transform import Rotation

from lab4d_core.config import PromptConfig, SourceConfig, SynthConfig, from_dict, load_yaml, to_dict
from lab4d_core.data.database import FLOW_DELTAS, Database
from lab4d_core.data.manifest import read_manifest
from lab4d_core.data.synthetic.synthesize import synthesize
from lab4d_core.eval.evaluate import evaluate_mesh_sequence, load_ground_truth
from lab4d_core.eval.render_metrics import evaluate_training_views
from lab4d_core.export.mesh import extract_canonical_mesh
from lab4d_core.export.motion import posed_vertices
from lab4d_core.preprocess import videos
from lab4d_core.train.presets import parse_overrides, resolve
from lab4d_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "bench-preprocess"
RESOLUTION = 256


def exact_dataset(name: str) -> Path:
    """The synthetic dataset with its arrays at 256 (made once; its manifest path)."""
    out = WORK / f"{name}-exact"
    if not (out / "manifest.json").exists():
        synthetic = load_yaml(ROOT / "config" / "datasets" / f"{name}.yaml")["source"]["synthetic"]
        synthesize(from_dict(SynthConfig, {**synthetic, "train_res": RESOLUTION, "prefixes": ["crop"]}), out, name)
    return out / "manifest.json"


def user_inputs(exact: Database, out: Path) -> tuple[list[str], Path, list[PromptConfig]]:
    """What a user would have: a folder of frames per video, their masks, and a box on each first frame."""
    frames, masks, prompts = [], out / "masks", []
    for video in exact.videos:
        raw = video.dir("JPEGImagesRaw")
        frames.append(str(raw))
        (masks / video.seqname).mkdir(parents=True, exist_ok=True)
        for raw_id in range(video.num_frames_raw):
            link = masks / video.seqname / f"{raw_id:05d}.npy"
            if not link.exists():
                link.symlink_to(video.dir("Annotations") / f"{raw_id:05d}.npy")
        ys, xs = np.nonzero(video.raw_mask(0) == 1)
        prompts.append(
            PromptConfig(box=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())], video=video.seqname)
        )
    return frames, masks, prompts


def preprocess_timed(source: SourceConfig, collection: str, out: Path) -> tuple[dict, dict[str, float]]:
    """Every stage of every video, timed per stage, then the gather; the manifest and the seconds per stage."""
    shutil.rmtree(out, ignore_errors=True)
    works = {name: out / "preprocess" / name for name in videos.find_videos(source)}
    seconds = dict.fromkeys(videos.STAGES, 0.0)
    for name, work in works.items():
        for stage in videos.STAGES:
            started = time.perf_counter()
            videos.run_stage(stage, source, name, work)
            seconds[stage] += time.perf_counter() - started
    started = time.perf_counter()
    manifest = videos.gather(source, collection, works, out)
    seconds["gather"] = time.perf_counter() - started
    return manifest, seconds


def mask_iou(estimate: Database, exact: Database) -> float:
    ious = []
    for ours, truth in zip(estimate.videos, exact.videos):
        for raw_id in ours.kept_ids:
            a, b = ours.raw_mask(int(raw_id)) == 1, truth.raw_mask(int(raw_id)) == 1
            ious.append((a & b).sum() / max((a | b).sum(), 1))
    return float(np.mean(ious))


def flow_errors(estimate: Database, exact: Database) -> dict[int, tuple[float, float]]:
    """{delta: (mean, median) end-point error} on confident exact object pixels of pairs whose crops match."""
    errors: dict[int, list[np.ndarray]] = {d: [] for d in FLOW_DELTAS}
    for ours, truth in zip(estimate.videos, exact.videos):
        kept = np.asarray(ours.kept_ids)
        ours_c2r, true_c2r = np.asarray(ours.array("crop2raw")), np.asarray(truth.array("crop2raw"))
        true_mask = np.asarray(truth.array("mask")[..., 0])
        for delta in FLOW_DELTAS:
            for k in range((len(kept) - 1) // delta):
                a, b = kept[k * delta], kept[k * delta + delta]
                if (
                    b - a != delta
                    or a % delta
                    or not (
                        np.allclose(ours_c2r[k * delta], true_c2r[a])
                        and np.allclose(ours_c2r[k * delta + delta], true_c2r[b])
                    )
                ):
                    continue
                exact_flow = np.asarray(truth.flow(delta, "fw")[a // delta], np.float32)
                flow = np.asarray(ours.flow(delta, "fw")[k], np.float32)
                chosen = true_mask[a] & (exact_flow[..., 2] > 0)
                errors[delta].append(np.linalg.norm(flow[chosen][:, :2] - exact_flow[chosen][:, :2], axis=-1))
    return {
        d: (float(np.mean(np.concatenate(e))), float(np.median(np.concatenate(e)))) if e else (float("nan"),) * 2
        for d, e in errors.items()
    }


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(np.einsum("nij,nkj->nik", a, b)).magnitude())


def camera_errors(estimate: Database, exact: Database) -> tuple[float, float]:
    """Background rotation of each kept frame relative to the first, against the truth: (median, max) degrees."""
    errors = []
    for ours, truth in zip(estimate.videos, exact.videos):
        kept = np.asarray(ours.kept_ids)
        est, true = ours.camera("00")[:, :3, :3], truth.camera("00")[kept][:, :3, :3]
        errors.append(angles(est @ est[0].T, true @ true[0].T))
    errors = np.concatenate(errors)
    return float(np.median(errors)), float(errors.max())


def root_pose_errors(estimate: Database, exact: Database) -> tuple[float, float]:
    """Initial root rotations (01-canonical) against the true ones, after the best rotation of the canonical frame
    per video: (median, 90th percentile) degrees."""
    errors = []
    for ours, truth in zip(estimate.videos, exact.videos):
        kept = np.asarray(ours.kept_ids)
        start = ours.camera("01-canonical")[:, :3, :3]
        errors.append(rotation_errors(start, truth.camera("01-canonical")[kept][:, :3, :3]))
    errors = np.concatenate(errors)
    return float(np.median(errors)), float(np.percentile(errors, 90))


def ground_truth_for(estimate: Path, exact: Path) -> None:
    """GroundTruth/ of the estimate: the exact one's meshes at the frames the frame filter kept."""
    data, truth = read_manifest(estimate / "manifest.json"), read_manifest(exact / "manifest.json")
    for seqname, true_seq, video in zip(data.videos, truth.videos, data.database().videos):
        folder = estimate / "GroundTruth" / seqname
        folder.mkdir(parents=True, exist_ok=True)
        source = exact / "GroundTruth" / true_seq
        np.save(folder / "verts_cam.npy", np.load(source / "verts_cam.npy")[np.asarray(video.kept_ids)])
        shutil.copy(source / "faces.npy", folder / "faces.npy")


def train_and_score(name: str, manifest: Path, tag: str, overrides: list[str]) -> dict:
    config = ROOT / "config" / "datasets" / f"{name}.yaml"
    cfg = resolve(load_yaml(config), parse_overrides(overrides), torch.cuda.is_available(), str(config))
    data = read_manifest(manifest)
    run = Trainer(cfg, data, ROOT / "results" / "bench-preprocess" / tag, torch.device("cpu"))
    started = time.perf_counter()
    run.train()
    seconds = time.perf_counter() - started
    model = run.model.eval()
    train = run.cfg.train
    views = evaluate_training_views(
        model, run.database, train.data_prefix, 128, train.num_samples, 12, train.num_importance
    )
    scores = []
    for v, seqname in enumerate(data.videos):
        offset = int(run.database.frame_offset[v])
        inst = int(model.instance(torch.tensor([offset]))[0])
        mesh = extract_canonical_mesh(model, inst)
        posed = posed_vertices(model, mesh.vertices, torch.arange(offset, offset + data.num_frames[v]), inst)
        gt = load_ground_truth(data.root / "GroundTruth" / seqname)
        result = evaluate_mesh_sequence([(p, mesh.faces) for p in posed], gt, protocol="sim3", points="surface")
        box = float(np.ptp(gt[0][0], axis=0).max())
        scores.append({**result["mean"], "chamfer": 100 * result["mean"]["cd"] / box})
    return {
        "seconds": seconds,
        "mask_iou": views["mask_iou"],
        "psnr": views["psnr"],
        "fscore5": float(np.mean([s["fscore@5%bbox"] for s in scores])),
        "fscore10": float(np.mean([s["fscore@10%bbox"] for s in scores])),
        "chamfer": float(np.mean([s["chamfer"] for s in scores])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="demo-quad", help="a synthetic dataset of config/datasets/")
    parser.add_argument("--methods", nargs="+", default=["given", "track"], choices=["given", "track"])
    parser.add_argument(
        "--train",
        nargs="*",
        choices=["exact", "given", "track"],
        help="the runs to train (default: exact and every method; none: measure the preprocessing only)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training override")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    os.chdir(ROOT)
    exact_manifest = exact_dataset(args.dataset)
    exact = read_manifest(exact_manifest).database()
    frames, masks, prompts = user_inputs(exact, WORK / f"{args.dataset}-inputs")
    rows = {}
    for method in args.methods:
        settings = {"masks": str(masks)} if method == "given" else {"segmenter": "track", "prompt": prompts}
        source = SourceConfig(videos=frames, category="quad", train_res=RESOLUTION, **settings)
        out = WORK / f"{args.dataset}-{method}"
        manifest, seconds = preprocess_timed(source, args.dataset, out)
        ground_truth_for(out, exact_manifest.parent)
        estimate = read_manifest(out / "manifest.json").database()
        rows[method] = {
            "seconds": seconds,
            "kept": manifest["num_frames"],
            "mask_iou": mask_iou(estimate, exact),
            "flow_epe": flow_errors(estimate, exact),
            "camera_deg": camera_errors(estimate, exact),
            "root_pose_deg": root_pose_errors(estimate, exact),
        }
        print_preprocess(args.dataset, rows)
    runs = {"exact": exact_manifest} | {m: WORK / f"{args.dataset}-{m}" / "manifest.json" for m in args.methods}
    chosen = ["exact", *args.methods] if args.train is None else args.train
    for tag, manifest in runs.items():
        if tag in chosen:
            rows.setdefault(tag, {})["training"] = train_and_score(
                args.dataset, manifest, f"{args.dataset}-{tag}", args.set
            )
            print_training(args.dataset, rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=to_dict))


def print_preprocess(name: str, rows: dict) -> None:
    print(f"\n{name}: preprocessing its raw frames ({RESOLUTION}-pixel arrays)\n")
    print(
        "| masks | kept frames | s: frames / masks / crops / flow / cameras / gather | mask IoU | flow EPE px δ1 (mean / median) | δ8 | camera rot. err. ° (median / max) | root pose err. ° (median / 90%) |"
    )
    print(f"|{'---|' * 8}")
    for method, row in rows.items():
        if "seconds" not in row:
            continue
        s = row["seconds"]
        timing = " / ".join(f"{s[k]:.1f}" for k in (*videos.STAGES, "gather"))
        flow = row["flow_epe"]
        print(
            f"| {method} | {', '.join(map(str, row['kept']))} | {timing} | {row['mask_iou']:.3f} | "
            f"{flow[1][0]:.2f} / {flow[1][1]:.2f} | {flow[8][0]:.2f} / {flow[8][1]:.2f} | "
            f"{row['camera_deg'][0]:.1f} / {row['camera_deg'][1]:.1f} | {row['root_pose_deg'][0]:.1f} / {row['root_pose_deg'][1]:.1f} |"
        )


def print_training(name: str, rows: dict) -> None:
    print(f"\n{name}: trained from exact inputs and from the estimates\n")
    print("| inputs | IoU | PSNR | F@5% | F@10% | CD % | train s |")
    print(f"|{'---|' * 7}")
    for tag, row in rows.items():
        if "training" in row:
            t = row["training"]
            print(
                f"| {tag} | {t['mask_iou']:.3f} | {t['psnr']:.2f} | {t['fscore5']:.3f} | {t['fscore10']:.3f} | "
                f"{t['chamfer']:.1f} | {t['seconds']:.0f} |"
            )


if __name__ == "__main__":
    main()
