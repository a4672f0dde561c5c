"""What the model needs to know about a dataset, gathered once where the database is read.

The model gets plain arrays (:class:`SceneInfo`) and never reads the database itself: initial root poses,
the flow-measured turns that hold their trajectory, intrinsics, crops and a rough object size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4d_core.data.database import Database
from lab4d_core.preprocess.root_poses import (
    RootPoseInit,
    align_headings,
    initial_root_poses,
    normalised_silhouettes,
)


@dataclass
class SceneInfo:
    """What the model needs to know about a dataset, gathered once from the processed arrays."""

    kept_ids: list[np.ndarray]
    """Per video, the raw ids of its kept frames (the model's frames, in order)."""
    raw_counts: list[int]
    """Per video, its raw frame count (time is normalised by the longest)."""
    ks: np.ndarray
    """(V, 4) raw intrinsics per video (from the dataset config)."""
    crop2raw: np.ndarray
    """(F, 4) array pixel -> raw pixel of every frame."""
    root_poses: np.ndarray
    """(F, 4, 4) initial object-to-camera poses."""
    object_radius: float
    """Rough object radius in scene units, from mask areas and camera distances."""
    root_pose_sources: list[str]
    """Per video, where the initial root poses came from (``lab4d_core.preprocess.root_poses``)."""
    root_pose_estimated: list[bool]
    """Per video, whether its initial root poses are only an estimate, whose prior fades in training."""
    pair_rotations: np.ndarray
    """(F, 3, 3) the object's rotation (camera coordinates) from each frame to the next of its video, measured
    by optical flow and depth (``lab4d_core.preprocess.root_poses.relative_rotations``)."""
    pair_valid: np.ndarray
    """(F,) bool: whether frame f's pair was measured (never for a video's last frame, nor without depth maps)."""

    @classmethod
    def from_database(cls, database: Database, prefix: str) -> SceneInfo:
        crop2raw, inits, silhouettes = [], [], []
        for video in database.videos:
            c2r = np.asarray(video.array("crop2raw", prefix), dtype=np.float64)
            crop2raw.append(c2r)
            inits.append(initial_root_poses(video, prefix, c2r))
            silhouettes.append(normalised_silhouettes(video, prefix, c2r))
        inits = align_headings(inits, silhouettes)
        radii = []
        for video, c2r, init in zip(database.videos, crop2raw, inits):
            radii.append(_radius_from_masks(video, prefix, c2r, init.poses))
            video.release()
        return cls(
            kept_ids=[np.asarray(v.kept_ids) for v in database.videos],
            raw_counts=[v.num_frames_raw for v in database.videos],
            ks=np.stack([v.ks for v in database.videos]),
            crop2raw=np.concatenate(crop2raw),
            root_poses=np.concatenate([init.poses for init in inits]),
            # A high percentile: foreshortened views understate an elongated animal's length.
            object_radius=float(np.percentile(np.concatenate(radii), 90)),
            root_pose_sources=[init.source for init in inits],
            root_pose_estimated=[init.estimated for init in inits],
            **_pairs(inits),
        )


def _pairs(inits: list[RootPoseInit]) -> dict[str, np.ndarray]:
    """Every video's frame-to-frame rotations, in the model's frame order (a video's last frame has none)."""
    rotations, valid = [], []
    for init in inits:
        count = len(init.poses)
        pair_rotations, pair_valid = np.tile(np.eye(3), (count, 1, 1)), np.zeros(count, dtype=bool)
        if init.pairs is not None:
            pair_rotations[:-1], pair_valid[:-1] = init.pairs.rotations, init.pairs.valid
        rotations.append(pair_rotations)
        valid.append(pair_valid)
    return {"pair_rotations": np.concatenate(rotations), "pair_valid": np.concatenate(valid)}


def _sampled(num: int, most: int = 32) -> np.ndarray:
    return np.unique(np.linspace(0, num - 1, min(num, most)).round().astype(int))


def _radius_from_masks(video, prefix: str, crop2raw: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Half-diagonal of each sampled silhouette's box, back-projected to the object's depth."""
    frames = _sampled(video.num_frames)
    masks = np.asarray(video.array("mask", prefix)[frames, ..., 0])
    radii = []
    for f, mask in zip(frames, masks):
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        # Crops are anisotropic: measure each axis with its own focal length.
        half_x = (xs.max() - xs.min() + 1) / 2 * crop2raw[f, 0] / video.ks[0]
        half_y = (ys.max() - ys.min() + 1) / 2 * crop2raw[f, 1] / video.ks[1]
        radii.append(np.hypot(half_x, half_y) * poses[f, 2, 3])
    return np.asarray(radii if radii else [1.0])
