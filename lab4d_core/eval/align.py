"""Align predicted geometry to ground truth before scoring it.

Monocular reconstructions are only defined up to a similarity transform, so
every protocol in the evaluation reference (``evaluation.md``) first registers the prediction to
the ground truth. Two protocols are implemented and must never be mixed:

* :func:`align_sim3_sequence` (lab4d-PPR / DASR, our default): one Sim(3) for
  the whole sequence, so per-frame errors in pose cannot be hidden.
* :func:`align_per_frame_icp` (BANMo): a rigid ICP per frame, more lenient.

All points are in camera coordinates (OpenCV axes, z forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from lab4d_core.geometry.transforms import similarity_fit


@dataclass(frozen=True, eq=False)
class Sim3:
    """x -> scale * rotation @ x + translation (acting on row-stacked points)."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on float64 and the shapes.
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(
                f"Sim3 needs a (3, 3) rotation and a (3,) translation, got {rotation.shape} and {translation.shape}"
            )
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform (..., 3) points."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix acting on column vectors."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def inverse(self) -> Sim3:
        """The transform mapping ``apply``'s output back to its input."""
        rot_t = self.rotation.T
        return Sim3(1.0 / self.scale, rot_t, -rot_t @ self.translation / self.scale)

    def compose(self, other: Sim3) -> Sim3:
        """``self`` after ``other``: x -> self.apply(other.apply(x))."""
        return Sim3(
            self.scale * other.scale,
            self.rotation @ other.rotation,
            self.scale * self.rotation @ other.translation + self.translation,
        )

    def to_dict(self) -> dict:
        """Plain-float form for JSON reports."""
        return {"scale": self.scale, "rotation": self.rotation.tolist(), "translation": self.translation.tolist()}


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares Sim(3) (or SE(3)) mapping ``src`` onto corresponding ``dst``.

    Umeyama (1991): closed form via the SVD of the cross-covariance, with the
    determinant fix so a reflection is never returned.
    """
    src = _as_points(src, "src")
    dst = _as_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"umeyama needs corresponding points, got shapes {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise ValueError(f"umeyama needs at least 3 point pairs, got {len(src)}")
    return Sim3(*similarity_fit(src, dst, with_scale))


def icp(
    src_frames: Sequence[np.ndarray],
    dst_frames: Sequence[np.ndarray],
    iters: int = 100,
    with_scale: bool = False,
    init: Sim3 | None = None,
    rel_tol: float = 1e-6,
) -> Sim3:
    """Point-to-point ICP fitting ONE transform jointly over all frames.

    Nearest neighbours are searched per frame (src -> dst), so frame t's points
    only ever match frame t's ground truth. Like pytorch3d's ICP, each step
    refits the full transform from the original source points, and iteration
    stops once the RMS match distance changes by less than ``rel_tol``.
    """
    src_frames = _as_frames(src_frames, "src")
    dst_frames = _as_frames(dst_frames, "dst")
    if len(src_frames) != len(dst_frames):
        raise ValueError(f"icp got {len(src_frames)} source frames but {len(dst_frames)} target frames")
    trees = [cKDTree(dst) for dst in dst_frames]
    all_src = np.concatenate(src_frames)
    current = init if init is not None else Sim3()
    prev_rmse = np.inf
    for _ in range(iters):
        matched, sq_dist = _match(current, src_frames, dst_frames, trees)
        rmse = float(np.sqrt(sq_dist.mean()))
        if np.isfinite(prev_rmse) and abs(prev_rmse - rmse) <= rel_tol * prev_rmse:
            break
        current = umeyama(all_src, matched, with_scale=with_scale)
        prev_rmse = rmse
    return current


def align_sim3_sequence(pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray], iters: int = 100) -> Sim3:
    """lab4d-PPR / DASR protocol: one Sim(3) from prediction to GT for the whole sequence.

    Coarse depth scale, then rigid ICP on frame 0 (a good rotation/translation
    start), then time-series ICP with scale over every frame.
    """
    pred_frames = _as_frames(pred_frames, "pred")
    gt_frames = _as_frames(gt_frames, "gt")
    _check_same_length(pred_frames, gt_frames)
    ratios = [_depth_ratio(gt, pred, lambda z: z.max() + z.min()) for pred, gt in zip(pred_frames, gt_frames)]
    coarse = Sim3(scale=float(np.mean(ratios)))
    rigid = icp([coarse.apply(pred_frames[0])], [gt_frames[0]], iters=iters, with_scale=False)
    return icp(pred_frames, gt_frames, iters=iters, with_scale=True, init=rigid.compose(coarse))


def align_per_frame_icp(
    pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray], iters: int = 100
) -> list[Sim3]:
    """BANMo protocol: per frame, scale by the median-depth ratio, then rigid ICP."""
    pred_frames = _as_frames(pred_frames, "pred")
    gt_frames = _as_frames(gt_frames, "gt")
    _check_same_length(pred_frames, gt_frames)
    transforms = []
    for pred, gt in zip(pred_frames, gt_frames):
        coarse = Sim3(scale=_depth_ratio(gt, pred, np.median))
        rigid = icp([coarse.apply(pred)], [gt], iters=iters, with_scale=False)
        transforms.append(rigid.compose(coarse))
    return transforms


def _match(
    transform: Sim3, src_frames: list[np.ndarray], dst_frames: list[np.ndarray], trees: list[cKDTree]
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest ``dst`` point for every transformed ``src`` point, frame by frame."""
    matched, sq_dist = [], []
    for src, dst, tree in zip(src_frames, dst_frames, trees):
        dist, idx = tree.query(transform.apply(src))
        matched.append(dst[idx])
        sq_dist.append(dist**2)
    return np.concatenate(matched), np.concatenate(sq_dist)


def _depth_ratio(gt: np.ndarray, pred: np.ndarray, statistic) -> float:
    """statistic(z_gt) / statistic(z_pred); a scale only makes sense for points in front of the camera."""
    num, den = float(statistic(gt[:, 2])), float(statistic(pred[:, 2]))
    if den <= 0.0 or num <= 0.0:
        raise ValueError(
            f"depth-based scale needs points in front of the camera (z > 0), got statistics {num:.4g} (gt) and {den:.4g} (pred); "
            "make sure both are in camera coordinates"
        )
    return num / den


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must be an (N, 3) array, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return points


def _as_frames(frames: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    """Validate a list of (Ni, 3) point sets; an empty frame cannot be aligned."""
    if len(frames) == 0:
        raise ValueError(f"{name} has no frames")
    out = [_as_points(points, f"{name} frame {t}") for t, points in enumerate(frames)]
    empty = [t for t, points in enumerate(out) if len(points) == 0]
    if empty:
        raise ValueError(f"{name} frames {empty} have no points; every frame needs geometry to be aligned")
    return out


def _check_same_length(pred_frames: list[np.ndarray], gt_frames: list[np.ndarray]) -> None:
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"prediction has {len(pred_frames)} frames but ground truth has {len(gt_frames)}")
