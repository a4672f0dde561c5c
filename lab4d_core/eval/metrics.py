"""Reconstruction metrics, defined exactly as in ``evaluation.md`` so numbers compare with peers.

Geometry: Chamfer distance and F-score (lab4d-PPR / DASR definitions).
Images: mask IoU and masked PSNR (Shape of Motion / Total-Recon definition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def sample_surface(verts: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points drawn uniformly over the mesh surface (area-weighted), reproducible by ``seed``.

    Sampling the surface rather than using vertices makes the score independent
    of how densely each region is tessellated.
    """
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must be a non-empty (F, 3) array, got shape {faces.shape}")
    tri = verts[faces]
    edge1, edge2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = 0.5 * np.linalg.norm(np.cross(edge1, edge2), axis=1)
    total = area.sum()
    if not total > 0.0:
        raise ValueError("cannot sample a mesh with zero surface area")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(faces), size=n, p=area / total)
    u, v = rng.random((2, n))
    # Reflect samples from the far half of the parallelogram back into the triangle.
    outside = u + v > 1.0
    u[outside], v[outside] = 1.0 - u[outside], 1.0 - v[outside]
    return tri[idx, 0] + u[:, None] * edge1[idx] + v[:, None] * edge2[idx]


def chamfer_fscore(pred_pts: np.ndarray, gt_pts: np.ndarray, thresholds: Sequence[float]) -> dict:
    """Chamfer distance and F-score at each threshold, in the points' units.

    Following lab4d-PPR / DASR (``evaluation.md``): with squared NN distances
    ``d_gt->pred`` and ``d_pred->gt``,
    ``cd = mean sqrt(d_gt->pred) + mean sqrt(d_pred->gt)``,
    ``P = mean[d_gt->pred < tau^2]``, ``R = mean[d_pred->gt < tau^2]`` (note the
    peers' naming: P is measured from the GT side), ``F = 2PR / (P + R)`` with
    NaN counted as 0.

    Returns ``{"cd", "thresholds", "fscore", "precision", "recall"}``; the last
    three are lists aligned with ``thresholds``.
    """
    pred_pts = _as_points(pred_pts, "pred_pts")
    gt_pts = _as_points(gt_pts, "gt_pts")
    dist_gt2pred = cKDTree(pred_pts).query(gt_pts)[0]
    dist_pred2gt = cKDTree(gt_pts).query(pred_pts)[0]
    taus = np.asarray(thresholds, dtype=np.float64)
    precision = np.mean(dist_gt2pred[None, :] ** 2 < taus[:, None] ** 2, axis=1)
    recall = np.mean(dist_pred2gt[None, :] ** 2 < taus[:, None] ** 2, axis=1)
    denom = precision + recall
    fscore = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0.0)
    return {
        "cd": float(dist_gt2pred.mean() + dist_pred2gt.mean()),
        "thresholds": taus.tolist(),
        "fscore": fscore.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
    }


def relative_thresholds(gt_pts: np.ndarray, fractions: Sequence[float] = (0.01, 0.02, 0.05, 0.10)) -> np.ndarray:
    """F-score thresholds as fractions of the GT bounding box's largest side (BANMo).

    Makes the score independent of the GT's metric scale.
    """
    gt_pts = _as_points(gt_pts, "gt_pts")
    largest_side = float(np.ptp(gt_pts, axis=0).max())
    return np.asarray(fractions, dtype=np.float64) * largest_side


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame |pred & gt| / |pred | gt| for (N, H, W) or (H, W) masks; returns (N,).

    Two empty masks agree perfectly, so their IoU is 1.
    """
    pred, gt = _as_mask_stack(pred, "pred"), _as_mask_stack(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: pred {pred.shape}, gt {gt.shape}")
    inter = np.logical_and(pred, gt).sum(axis=(1, 2))
    union = np.logical_or(pred, gt).sum(axis=(1, 2))
    return np.divide(inter, union, out=np.ones(len(union)), where=union > 0)


def masked_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-frame ``-10 log10(sum m (x - y)^2 / (3 sum m))`` for RGB images in [0, 1]; returns (N,).

    Images are (H, W, 3) or (N, H, W, 3); the mask is (H, W) or (N, H, W) and
    may be soft. Pixels outside the mask do not count at all, as in Shape of
    Motion and Total-Recon.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3 or pred.ndim not in (3, 4):
        raise ValueError(f"images must both be (H, W, 3) or (N, H, W, 3), got {pred.shape} and {gt.shape}")
    pred, gt = pred.reshape((-1, *pred.shape[-3:])), gt.reshape((-1, *gt.shape[-3:]))
    mask = np.broadcast_to(np.asarray(mask, dtype=np.float64), pred.shape[:3])
    weight = mask.sum(axis=(1, 2))
    if np.any(weight <= 0.0):
        raise ValueError(
            f"masked PSNR is undefined for frames with an empty mask: {np.flatnonzero(weight <= 0.0).tolist()}"
        )
    sq_err = np.sum(mask[..., None] * (pred - gt) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(sq_err / (3.0 * weight))


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"{name} must be a non-empty (N, 3) array, got shape {points.shape}")
    return points


def _as_mask_stack(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{name} mask must be (H, W) or (N, H, W), got shape {mask.shape}")
    return mask.reshape((-1, *mask.shape[-2:]))
