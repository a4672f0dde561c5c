"""How well a trained model registers frames: 2D correspondence error against a synthetic dataset's ground truth.

    python benchmarks/bench_registration.py --checkpoint results/demo-quad/train/ckpt_final.pth \
        [--data data/demo-quad/manifest.json] [--gaps 1 4 12 24] [--facing 0.6] [--features] [--json PATH]

Texture sharpness (masked PSNR) is bounded by registration: the canonical colour of a
point averages every frame that sees it, so a point that lands a pixel apart in two
frames is blurred by about a pixel. For frames a (every 4th) and b = a + gap (wrapping
within the video), ground-truth vertices visible at a (their depth matches the depth
map) and facing the camera (|cos| of normal and ray above ``--facing``; silhouette points
have ill-defined canonical points) are rendered at their pixel in a, carried to canonical
space by the model and out to frame b, and projected; the table gives the distance to the
vertex's true projection in b, in training pixels. With ``--features`` each video also gets rows of
feature-only registration: the dataset's feature at each vertex's pixel in a, matched to the canonical surface
(``match_features``, as the feat_reproj loss does) instead of rendered, carried to b. ``global shift`` is the
mean over pairs of the length of the error's mean vector: a shift of the whole object (e.g. a root-pose error)
as opposed to articulation or shape, which move parts of it differently.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import trimesh

from lab4d_core.data.sampler import _bilinear
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.cameras import crop_intrinsics
from lab4d_core.model.loading import load_model
from lab4d_core.model.render import project


def visible_facing(
    verts: np.ndarray, faces: np.ndarray, xy: np.ndarray, depth: np.ndarray, facing: float
) -> np.ndarray:
    """Indices of vertices seen at their pixel (within 1% of the depth map) whose normal faces the camera."""
    res = depth.shape[0]
    ij = np.rint(xy).astype(int)
    inside = (ij >= 0).all(1) & (ij < res).all(1)
    ij = ij.clip(0, res - 1)
    seen = inside & (np.abs(depth[ij[:, 1], ij[:, 0]] - verts[:, 2]) < 0.01 * verts[:, 2])
    normals = trimesh.Trimesh(verts, faces, process=False).vertex_normals
    cosine = np.abs((normals * verts).sum(1)) / np.linalg.norm(verts, axis=1)
    return np.flatnonzero(seen & (cosine > facing))


@torch.no_grad()
def registration_errors(
    model, database, ground_truth: Path, gaps: list[int], facing: float, features: str | None = None
) -> dict:
    rows = {}
    for v, video in enumerate(database.videos):
        folder = ground_truth / video.seqname
        verts_cam = np.load(folder / "verts_cam.npy")
        faces = trimesh.load(folder / "mesh-rest.obj", process=False).faces
        crop2raw = np.asarray(video.array("crop2raw", "crop"), dtype=np.float64)
        array_k = crop_intrinsics(np.load(folder / "intrinsics.npy"), crop2raw)
        # (N, V, 2) where every vertex projects in every frame's training array.
        pixels_of = project(torch.as_tensor(verts_cam), torch.as_tensor(array_k)).float()
        depth = np.asarray(video.array("depth", "crop"))
        offset, n = int(database.frame_offset[v]), video.num_frames
        kinds = ["rendered"] + (["features"] if features else [])
        errors = {(kind, gap): [] for kind in kinds for gap in gaps}
        shifts = {(kind, gap): [] for kind in kinds for gap in gaps}
        maps = np.asarray(video.array(f"features-{features}", "crop")) if features else None
        for a in range(0, n, 4):
            chosen = visible_facing(verts_cam[a], faces, pixels_of[a].numpy(), depth[a], facing)[::4]
            pixels = pixels_of[a, chosen][None]
            frame = torch.tensor([offset + a])
            out = model.render_rays(frame, pixels, 32, occupancy=model.frame_occupancy(frame))
            canonical = {"rendered": (out["canonical"], out["opacity"][0] > 0.5)}
            if maps is not None:
                flat = np.rint(pixels[0].numpy() - 0.5).astype(int).clip(0, depth.shape[1] - 1) @ [1, depth.shape[1]]
                feature = torch.from_numpy(_bilinear(maps, np.array([a]), flat[None], depth.shape[1])).float()
                # As in training: pixels whose feature straddles the silhouette carry none.
                carries = feature[0].norm(dim=-1) > 0.5
                matched = model.match_features(torch.nn.functional.normalize(feature, dim=-1), model.instance(frame))
                canonical["features"] = (matched, carries)
            for kind, (points, valid) in canonical.items():
                for gap in gaps:
                    b = (a + gap) % n
                    predicted = pixels[0] + model.predict_flow(points, pixels, torch.tensor([offset + b]))[0]
                    error = (predicted - pixels_of[b, chosen])[valid]
                    errors[kind, gap].append(error.numpy())
                    shifts[kind, gap].append(float(error.mean(0).norm()))
        video.release()
        for kind, gap in errors:
            error = np.concatenate(errors[kind, gap])
            distance = np.linalg.norm(error, axis=1)
            rows[f"{video.seqname} gap {gap}" + (", features only" if kind == "features" else "")] = {
                "mean_px": float(distance.mean()),
                "median_px": float(np.median(distance)),
                "p90_px": float(np.quantile(distance, 0.9)),
                "global_px": float(np.mean(shifts[kind, gap])),
                "points": int(len(distance)),
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/demo-quad/manifest.json"))
    parser.add_argument("--gaps", type=int, nargs="+", default=[1, 4, 12, 24])
    parser.add_argument("--facing", type=float, default=0.6, help="least |cos| between a vertex normal and its ray")
    parser.add_argument(
        "--features", nargs="?", const="dinov2", help="also rows of feature-only registration (feature type: dinov2)"
    )
    parser.add_argument("--json", type=Path, help="also write the table here as JSON")
    args = parser.parse_args()
    ground_truth = args.data.parent / "GroundTruth"
    if not ground_truth.is_dir():
        raise SystemExit(f"error: {ground_truth} not found: registration needs a synthetic dataset's ground truth")
    try:
        model, _, database = load_model(args.checkpoint, args.data, torch.device("cpu"))
    except Lab4dError as error:
        raise SystemExit(f"error: {error}") from None
    rows = registration_errors(model.eval(), database, ground_truth, args.gaps, args.facing, args.features)
    print(f"| frames | mean px | median px | p90 px | global shift px | points |\n|{'---|' * 6}")
    for name, row in rows.items():
        print(
            f"| {name} | {row['mean_px']:.2f} | {row['median_px']:.2f} | {row['p90_px']:.2f} "
            f"| {row['global_px']:.2f} | {row['points']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
