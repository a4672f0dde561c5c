"""Score a reconstructed mesh sequence (and rendered masks / images) against ground truth.

The output is a plain JSON-serialisable dict so reports and benchmarks can store
it as-is. Geometry protocols follow ``evaluation.md``: ``"sim3"`` (lab4d-PPR /
DASR, default) or ``"icp"`` (BANMo per-frame ICP); numbers from the two must not
be compared with each other, so the report names the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from lab4d_core.errors import Lab4dError
from lab4d_core.eval.align import Sim3, align_per_frame_icp, align_sim3_sequence
from lab4d_core.eval.metrics import chamfer_fscore, mask_iou, masked_psnr, relative_thresholds, sample_surface

Mesh = tuple[np.ndarray, np.ndarray]

PROTOCOLS = ("sim3", "icp")
POINT_MODES = ("vertices", "surface")
_OBJ_NAME = re.compile(r"^(\d{5})\.obj$")


def evaluate_mesh_sequence(
    pred_meshes: Sequence[Mesh],
    gt_meshes: Sequence[Mesh],
    protocol: str = "sim3",
    points: str = "vertices",
    num_samples: int = 10000,
    abs_thresholds: Sequence[float] = (0.02, 0.05, 0.10),
    rel_fractions: Sequence[float] = (0.01, 0.02, 0.05, 0.10),
    seed: int = 0,
) -> dict:
    """Align the prediction to the GT, then report Chamfer distance and F-scores per frame and on average.

    Meshes are ``(verts (V, 3), faces (F, 3))`` per frame in camera coordinates.
    ``points="vertices"`` matches the peers' protocol; ``"surface"`` samples
    ``num_samples`` points per mesh (frame t uses seed ``seed + t`` for both
    sides, so identical meshes score exactly 0). F-scores are reported at the
    absolute thresholds (keys like ``"fscore@0.10"``) and at fractions of each
    GT frame's bounding box (keys like ``"fscore@5%bbox"``).
    """
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("points", points, POINT_MODES)
    if len(pred_meshes) != len(gt_meshes) or len(gt_meshes) == 0:
        raise Lab4dError(
            f"prediction has {len(pred_meshes)} meshes but ground truth has {len(gt_meshes)} frames; "
            "export one mesh per ground-truth frame"
        )
    pred_pts = [_mesh_points(mesh, points, num_samples, seed + t) for t, mesh in enumerate(pred_meshes)]
    gt_pts = [_mesh_points(mesh, points, num_samples, seed + t) for t, mesh in enumerate(gt_meshes)]
    transforms, alignment = _align(pred_pts, gt_pts, protocol)
    per_frame = [
        {"frame": t, **_frame_metrics(sim3.apply(pred), gt, abs_thresholds, rel_fractions)}
        for t, (sim3, pred, gt) in enumerate(zip(transforms, pred_pts, gt_pts))
    ]
    metric_keys = [key for key in per_frame[0] if key != "frame"]
    mean = {key: float(np.mean([frame[key] for frame in per_frame])) for key in metric_keys}
    return {"protocol": protocol, "points": points, "per_frame": per_frame, "mean": mean, "alignment": alignment}


def evaluate_masks(pred_masks: np.ndarray, gt_masks: np.ndarray) -> dict:
    """Mean and per-frame mask IoU."""
    per_frame = mask_iou(pred_masks, gt_masks)
    return {"mask_iou": float(per_frame.mean()), "per_frame": per_frame.tolist()}


def evaluate_rgb(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict:
    """Mean and per-frame masked PSNR (dB)."""
    per_frame = masked_psnr(pred, gt, mask)
    return {"psnr": float(per_frame.mean()), "per_frame": per_frame.tolist()}


def load_obj_sequence(directory: str | Path) -> list[Mesh]:
    """Read ``{frame:05d}.obj`` files (frames 0..N-1, no gaps) as (verts, faces) in frame order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise Lab4dError(f"mesh directory {directory} does not exist; export the predicted meshes there first")
    frames = {int(m.group(1)): path for path in directory.iterdir() if (m := _OBJ_NAME.match(path.name))}
    if not frames:
        raise Lab4dError(
            f"no meshes named like 00000.obj in {directory}; export one OBJ per frame named by its 5-digit index"
        )
    missing = sorted(set(range(max(frames) + 1)) - set(frames))
    if missing:
        raise Lab4dError(
            f"{directory} lacks meshes for frames {missing[:10]}; frames must run 00000.obj..{max(frames):05d}.obj without gaps"
        )
    return [_load_obj(frames[t]) for t in range(len(frames))]


def load_ground_truth(seq_dir: str | Path) -> list[Mesh]:
    """Read our GT format: ``verts_cam.npy`` (N, V, 3) posed camera-space vertices and ``faces.npy`` (F, 3)."""
    seq_dir = Path(seq_dir)
    verts_path, faces_path = seq_dir / "verts_cam.npy", seq_dir / "faces.npy"
    for path in (verts_path, faces_path):
        if not path.is_file():
            raise Lab4dError(
                f"ground-truth file {path} is missing; regenerate the sequence's ground truth into {seq_dir}"
            )
    verts = np.load(verts_path)
    faces = np.load(faces_path)
    if verts.ndim != 3 or verts.shape[2] != 3 or len(verts) == 0:
        raise Lab4dError(
            f"{verts_path} must hold a non-empty (N, V, 3) array, got shape {verts.shape}; regenerate the ground truth"
        )
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise Lab4dError(
            f"{faces_path} must hold an integer (F, 3) array, got {faces.dtype} {faces.shape}; regenerate the ground truth"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= verts.shape[1]):
        raise Lab4dError(
            f"{faces_path} indexes vertices outside 0..{verts.shape[1] - 1}; it does not match {verts_path}"
        )
    return [(frame_verts.astype(np.float64), faces.astype(np.int64)) for frame_verts in verts]


def _align(pred_pts: list[np.ndarray], gt_pts: list[np.ndarray], protocol: str) -> tuple[list[Sim3], dict]:
    """Per-frame transforms to apply to the prediction, plus their JSON description."""
    if protocol == "sim3":
        sim3 = align_sim3_sequence(pred_pts, gt_pts)
        return [sim3] * len(pred_pts), {"type": "sim3_sequence", **sim3.to_dict()}
    transforms = align_per_frame_icp(pred_pts, gt_pts)
    return transforms, {"type": "per_frame_icp", "per_frame": [sim3.to_dict() for sim3 in transforms]}


def _frame_metrics(
    pred: np.ndarray, gt: np.ndarray, abs_thresholds: Sequence[float], rel_fractions: Sequence[float]
) -> dict:
    """CD plus F-score/precision/recall at absolute and bbox-relative thresholds for one frame."""
    names = [_format_tau(tau) for tau in abs_thresholds] + [f"{100 * frac:g}%bbox" for frac in rel_fractions]
    taus = np.concatenate([np.asarray(abs_thresholds, dtype=np.float64), relative_thresholds(gt, rel_fractions)])
    scores = chamfer_fscore(pred, gt, taus)
    out = {"cd": scores["cd"]}
    for kind in ("fscore", "precision", "recall"):
        out.update({f"{kind}@{name}": value for name, value in zip(names, scores[kind])})
    return out


def _format_tau(tau: float) -> str:
    """0.1 -> "0.10", 0.02 -> "0.02", 0.005 -> "0.005": at least two decimals, never rounded away."""
    return f"{tau:.2f}" if round(tau, 2) == tau else f"{tau:g}"


def _mesh_points(mesh: Mesh, mode: str, num_samples: int, seed: int) -> np.ndarray:
    verts, faces = mesh
    if mode == "vertices":
        return np.asarray(verts, dtype=np.float64)
    return sample_surface(verts, faces, num_samples, seed=seed)


def _load_obj(path: Path) -> Mesh:
    mesh = trimesh.load(path, process=False, force="mesh")
    if len(mesh.vertices) == 0:
        raise Lab4dError(f"{path} has no vertices; re-export the mesh for this frame")
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise Lab4dError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
