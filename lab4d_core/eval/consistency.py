"""How consistent a trained model is across its views, without ground truth.

A model trained from wrong root poses (say every root rotation left at the identity while the
camera circles the animal) can still render passable training views: the deformation learns to
turn the whole body with the camera, and the shape decays into a blob. A healthy model's
deformation is articulation: in object coordinates (before the root pose) the body stays roughly
in place and only limbs move. Two numbers per video tell the two apart, both computed on surface
samples of the rest shape carried into each frame's object coordinates by the deformation:

* ``deformation_rotation``: per frame, the rotation (degrees) of the best rigid fit (Kabsch) from
  the rest samples to the warped ones, i.e. how much global rotation the deformation absorbs.
* ``neighbour_fscore``: per pair of frames ``gap`` apart, the F-score between their warped samples
  at a fraction of the rest shape's largest bounding-box side, i.e. whether the shape jumps
  between nearby frames.

A video is ``consistent`` when both stay within :data:`ROTATION_LIMIT_DEG` and
:data:`FSCORE_LIMIT`; a model whose rest SDF holds no surface has nothing to score and is not.
"""

from __future__ import annotations

import numpy as np
import torch

from lab4d_core.data.database import Database
from lab4d_core.eval.align import umeyama
from lab4d_core.eval.metrics import chamfer_fscore, relative_thresholds, sample_surface
from lab4d_core.export.mesh import extract_canonical_mesh
from lab4d_core.model.dynamic import DynamicModel

ROTATION_LIMIT_DEG = 25.0
"""Largest 90th percentile over a video's frames of ``deformation_rotation`` (degrees) of a
consistent model. Articulation leaves most of the surface in place: the ground-truth meshes of the
synthetic demo-quad (walk, trot) and Fox (walk, run) turn by 2-22 degrees at the 90th percentile
against their bind pose (the Fox's run is the 22). Held by a model whose root rotations all stay
at the identity, so that the deformation carries the camera's rotation, the same meshes turn by
60-161 degrees (handheld and orbiting cameras). The 90th percentile flags a model that collapses
on part of a video only, and a deformation that turns the body by 30 degrees or more fails."""

FSCORE_LIMIT = 0.5
"""Smallest 10th percentile over a video's frame pairs of ``neighbour_fscore`` of a consistent
model. The same ground truth scores 0.70-0.88 at the default gap (4 frames at 30 fps) and
threshold: legs swing, the body does not; the trot is the 0.70. A sphere that jumps by a tenth of
its diameter between the frames of a pair scores 0.44, and the collapsed models of the orbiting
cameras (a turn in 48 frames) 0.43-0.49, their shape turning with the camera; slower cameras'
collapse turns the shape too little between nearby frames to show here (0.66-0.74) and is the
rotation's to catch."""

FSCORE_FRACTION = 0.05
"""F-score threshold as a fraction of the rest shape's largest bounding-box side (as
:func:`lab4d_core.eval.metrics.relative_thresholds`)."""

NUM_POINTS = 2000
"""Surface samples per rest shape: enough for stable percentiles, cheap to warp through every frame."""

MESH_GRID = 64
"""Marching-cubes cells per axis of the rest shape; the samples need its surface, not its detail."""

LIKELY_CAUSE = "root poses: the deformation absorbs the camera's motion; check Cameras/ or train longer"
"""What an inconsistent model most often means, for the warning."""

NO_SURFACE = "the model holds no surface to score (its rest SDF has no zero crossing)"
"""The problem of a model whose training lost the shape: nothing to carry through the frames."""

NO_SURFACE_CAUSE = "training lost the shape; check the masks and Cameras/, or train longer"
"""What a model without a surface most often means, for the warning."""


def rigid_rotation_deg(source: np.ndarray, target: np.ndarray) -> float:
    """Angle (degrees) of the rotation of the least-squares rigid fit (Kabsch) of corresponding
    points ``source`` (P, 3) onto ``target`` (P, 3); translation does not count."""
    rotation = umeyama(source, target, with_scale=False).rotation
    # atan2 of sine and cosine stays exact near 0 degrees, where arccos of the trace loses digits.
    sine = 0.5 * np.linalg.norm(
        [rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]
    )
    cosine = 0.5 * (np.trace(rotation) - 1.0)
    return float(np.degrees(np.arctan2(sine, cosine)))


def deformation_rotation(rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """(T,) degrees: per frame, the rotation of the rigid fit from rest samples (P, 3) to the same
    samples warped to each frame's object coordinates (T, P, 3)."""
    return np.array([rigid_rotation_deg(rest, frame) for frame in posed])


def neighbour_fscore(posed: np.ndarray, gap: int, threshold: float) -> np.ndarray:
    """(T - gap,) F-scores at distance ``threshold`` between the warped samples (T, P, 3) of frames
    t and t + gap, in object coordinates (root poses removed)."""
    if gap < 1:
        raise ValueError(f"the frame gap must be at least 1, got {gap}")
    return np.array(
        [chamfer_fscore(posed[t + gap], posed[t], [threshold])["fscore"][0] for t in range(len(posed) - gap)]
    )


def score_video(rest: np.ndarray, posed: np.ndarray, gap: int = 4) -> dict:
    """Both scores, their summaries and the verdict for one video's rest samples (P, 3) and warped
    samples (T, P, 3); ``gap`` shrinks to T - 1 for shorter videos. A one-frame video has no pairs:
    its F-score summaries are None and the rotation alone decides."""
    rotation = deformation_rotation(rest, posed)
    gap = min(gap, len(posed) - 1)
    threshold = float(relative_thresholds(rest, [FSCORE_FRACTION])[0])
    fscore = neighbour_fscore(posed, gap, threshold) if gap >= 1 else np.zeros(0)
    scores = {
        **_summaries(rotation, fscore),
        "frames": len(posed),
        "gap": gap,
        "fscore_threshold": threshold,
        "deformation_rotation_per_frame": np.round(rotation, 3).tolist(),
        "neighbour_fscore_per_pair": np.round(fscore, 4).tolist(),
    }
    problems = _problems(scores)
    return {"consistent": not problems, "problems": problems, **scores}


@torch.no_grad()
def rest_samples(model: DynamicModel, inst: int, num_points: int = NUM_POINTS, seed: int = 0) -> np.ndarray | None:
    """(num_points, 3) area-weighted samples of instance ``inst``'s rest surface (the largest piece
    of the marching-cubes mesh), in canonical coordinates; None when the SDF holds no surface."""
    try:
        mesh = extract_canonical_mesh(model, inst, MESH_GRID)
    except ValueError:  # no zero crossing: a model that failed to learn a shape, which the verdict reports
        return None
    return sample_surface(mesh.vertices, mesh.faces, num_points, seed=seed)


def unscorable_video(frames: int) -> dict:
    """:func:`score_video`'s layout for a video whose model holds no surface: nothing to measure,
    and not consistent."""
    return {
        "consistent": False,
        "problems": [NO_SURFACE],
        **_summaries(np.zeros(0), np.zeros(0)),
        "frames": frames,
        "gap": 0,
        "fscore_threshold": None,
        "deformation_rotation_per_frame": [],
        "neighbour_fscore_per_pair": [],
    }


@torch.no_grad()
def warp_samples(
    model: DynamicModel, points: np.ndarray, frames: torch.Tensor, inst: int, chunk: int = 16
) -> np.ndarray:
    """(T, P, 3) canonical points (P, 3) carried by the deformation to frames (T,) of instance
    ``inst``, in object coordinates (the root pose is not applied)."""
    device = model.bound.device
    canonical = torch.as_tensor(points, dtype=torch.float32, device=device)
    out = []
    for part in frames.to(device).split(chunk):
        batch = canonical.expand(len(part), -1, -1)
        out.append(model.deform.warp_to_frame(batch, part, torch.full_like(part, inst)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def evaluate_consistency(
    model: DynamicModel, database: Database, gap: int = 4, num_points: int = NUM_POINTS, seed: int = 0
) -> dict:
    """:func:`score_video` of every video of the dataset, combined by :func:`combine_videos`.

    Videos of one instance share its rest samples, ``num_points`` of them.
    """
    samples: dict[int, np.ndarray | None] = {}
    videos = {}
    for v, video in enumerate(database.videos):
        start = int(database.frame_offset[v])
        frames = torch.arange(start, start + video.num_frames)
        inst = int(model.instance(frames[:1].to(model.bound.device))[0])
        if inst not in samples:
            samples[inst] = rest_samples(model, inst, num_points, seed)
        rest = samples[inst]
        videos[video.seqname] = (
            unscorable_video(video.num_frames)
            if rest is None
            else score_video(rest, warp_samples(model, rest, frames, inst), gap)
        )
    return {**combine_videos(videos), "points": num_points}


def combine_videos(videos: dict[str, dict]) -> dict:
    """The metrics file's ``consistency`` section from each video's :func:`score_video` (by name):
    the summaries over every video's frames (pairs) pooled, the verdict (consistent when every
    video is), the limits, the :func:`consistency_warnings` (which the CLI prints and the results
    page shows) and the videos themselves. Each video's ``fscore_threshold`` is in scene units:
    ``fscore_fraction`` of its rest shape's largest bounding-box side."""
    rotations = np.concatenate([scores["deformation_rotation_per_frame"] for scores in videos.values()])
    fscores = np.concatenate([scores["neighbour_fscore_per_pair"] for scores in videos.values()])
    return {
        "consistent": all(scores["consistent"] for scores in videos.values()),
        **_summaries(rotations, fscores),
        "limits": {"deformation_rotation_p90": ROTATION_LIMIT_DEG, "neighbour_fscore_p10": FSCORE_LIMIT},
        "fscore_fraction": FSCORE_FRACTION,
        "warnings": consistency_warnings(videos),
        "videos": videos,
    }


def consistency_warnings(videos: dict[str, dict]) -> list[str]:
    """One line per inconsistent video (name -> :func:`score_video` result): what is off and the
    likely cause."""
    return [
        f"{name} is inconsistent across views: {'; '.join(scores['problems'])}. "
        f"Likely cause: {NO_SURFACE_CAUSE if NO_SURFACE in scores['problems'] else LIKELY_CAUSE}"
        for name, scores in videos.items()
        if not scores["consistent"]
    ]


def _summaries(rotation: np.ndarray, fscore: np.ndarray) -> dict:
    """Median and 90th percentile of rotations (degrees), median and 10th percentile of F-scores:
    the worse tail of each, which the verdict reads; None where there is nothing to summarise."""
    return {
        "deformation_rotation_median": float(np.median(rotation)) if len(rotation) else None,
        "deformation_rotation_p90": float(np.percentile(rotation, 90)) if len(rotation) else None,
        "neighbour_fscore_median": float(np.median(fscore)) if len(fscore) else None,
        "neighbour_fscore_p10": float(np.percentile(fscore, 10)) if len(fscore) else None,
    }


def _problems(scores: dict) -> list[str]:
    """What exceeds its limit, in words."""
    problems = []
    rotation = scores["deformation_rotation_p90"]
    if rotation > ROTATION_LIMIT_DEG:
        problems.append(
            f"the deformation turns the whole body by {rotation:.1f} degrees "
            f"(90th percentile of frames; limit {ROTATION_LIMIT_DEG:g})"
        )
    fscore = scores["neighbour_fscore_p10"]
    if fscore is not None and fscore < FSCORE_LIMIT:
        problems.append(
            f"the shape jumps between frames {scores['gap']} apart: neighbour F-score {fscore:.2f} "
            f"(10th percentile of pairs; limit {FSCORE_LIMIT:g})"
        )
    return problems
