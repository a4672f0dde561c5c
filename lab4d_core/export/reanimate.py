"""``lab4d reanimate``: video A's motion (root poses and joint rotations) performed by video B's individual.

Morphology and motion are apart in a skeleton model: the instance code gives shape, colour, skinning and
bone lengths, the time code of a frame its joint rotations and soft warp, the root pose its placement.
Every frame of the reanimation is one of A's model frames (so A's root pose, joint angles and cameras) with
B's instance code, whatever the lengths of A and B: lab4d offsets A's frame ids by B's first frame, which
reads past B's last frame into the next video when A is longer than B.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.export.export import ExportSummary, export_motion, video_frame_ids
from lab4d_core.export.motion import skeleton_of
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.render.video import render_panels, write_video
from lab4d_core.render.views import parse_viewpoint


@dataclass
class Reanimation:
    """Which model frames and which instance a reanimation renders."""

    frames: torch.Tensor
    """(T,) model frame ids: every kept frame of video A."""
    inst: int
    """Instance (body) of video B."""
    appearance: int
    """A frame of video B (its middle one) whose appearance code colours the body: the per-frame codes
    carry a video's look as much as the instance code does."""


def plan_reanimation(model: DynamicModel, database: Database, motion_id: int, inst_id: int) -> Reanimation:
    """Check that the model can reanimate, and pick A's frames and B's instance."""
    count = len(database.videos)
    for flag, video in (("--motion_id", motion_id), ("--inst_id", inst_id)):
        if not 0 <= video < count:
            raise Lab4dError(f"{flag} {video}: the dataset has videos 0..{count - 1}")
    if skeleton_of(model) is None:
        raise Lab4dError(
            f"reanimation needs a skeleton model: fg_motion {model.cfg.fg_motion} has no joint rotations to carry "
            "from one body to another (bob's bones move freely per frame and belong to the body they were "
            "learned on); train with fg_motion: skel-human, skel-quad or comp_skel-<human|quad>_dense"
        )
    if model.num_inst == 1 and motion_id != inst_id:
        warnings.warn(
            "the model has one body for every video (single_inst: true): the reanimation shows video "
            f"{motion_id}'s own reconstruction; train with single_inst: false for one body per video",
            stacklevel=2,
        )
    frames = video_frame_ids(database, motion_id, model.bound.device)
    own = video_frame_ids(database, inst_id, model.bound.device)
    return Reanimation(frames, int(model.instance(own[:1])[0]), int(own[len(own) // 2]))


@torch.no_grad()
def reanimate(
    model: DynamicModel,
    database: Database,
    motion_id: int,
    inst_id: int,
    out: Path,
    video: Path,
    render_res: int = 128,
    num_samples: int = 16,
    num_importance: int = 0,
    grid: int = 128,
) -> ExportSummary:
    """Write video A = ``motion_id`` performed by B = ``inst_id``: ``video`` (rgb | mask | depth | normal |
    canonical xyz from A's cameras) and folder ``out`` (B's rest mesh, the posed meshes in A's camera
    coordinates, ``motion.json`` with A's root poses and joint rotations on B's bones, a rigged ``animated.glb``)."""
    plan = plan_reanimation(model, database, motion_id, inst_id)
    kept_ids = database.videos[motion_id].kept_ids
    summary = export_motion(model, plan.frames, kept_ids, plan.inst, out, grid, f"{motion_id}-to-{inst_id}")
    images = render_panels(
        model,
        database,
        (plan.frames, plan.frames),
        parse_viewpoint("ref"),
        render_res,
        num_samples,
        num_importance,
        inst=plan.inst,
        appearance=plan.appearance,
    )
    write_video(video, images, len(plan.frames))
    return summary
