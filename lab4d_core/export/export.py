"""``lab4d export``: one video's reconstruction as files other tools read.

Output folder (written to a temporary sibling, then moved into place):
``mesh-rest.obj`` (canonical mesh with vertex colours), ``meshes/{k:05d}.obj`` (the mesh posed in
camera coordinates at the video's k-th frame), ``motion.json`` (see :mod:`motion`), ``bones.obj``
(the bones at rest as ellipsoids), ``animated.glb`` (see :mod:`gltf`) and ``summary.json``
(mesh pieces, and how far the glb's linear skinning strays from the exported meshes).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.export.gltf import pose_glb, scene_to_camera, write_glb
from lab4d_core.export.mesh import extract_canonical_mesh
from lab4d_core.export.motion import Motion, posed_vertices, video_motion
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.utils.progress import progress


@dataclass
class ExportSummary:
    vertices: int
    faces: int
    components: int
    kept_area_fraction: float
    frames: int
    bones: int
    glb_mean_error: float
    """Mean vertex distance between the glb posed by its skin and the exported mesh, over frames,
    relative to the mesh's bounding-box diagonal."""


@torch.no_grad()
def export_video(model: DynamicModel, database: Database, video: int, out: Path, grid: int = 128) -> ExportSummary:
    """Export video ``video`` (lab4d's ``inst_id``) of a trained model into folder ``out``."""
    if not 0 <= video < len(database.videos):
        raise Lab4dError(f"--inst_id {video}: the dataset has videos 0..{len(database.videos) - 1}")
    seq = database.videos[video]
    frames = video_frame_ids(database, video, model.bound.device)
    inst = int(model.instance(frames[:1])[0])
    return export_motion(model, frames, seq.kept_ids, inst, out, grid, seq.seqname)


def video_frame_ids(database: Database, video: int, device: torch.device | None = None) -> torch.Tensor:
    """(T,) the model's frame ids of every kept frame of video ``video``."""
    start = int(database.frame_offset[video])
    return torch.arange(start, start + database.videos[video].num_frames, device=device)


@torch.no_grad()
def export_motion(
    model: DynamicModel, frames: torch.Tensor, frame_ids: np.ndarray, inst: int, out: Path, grid: int, label: str
) -> ExportSummary:
    """Export instance ``inst``'s body moving as model frames ``frames`` (T,) do (raw ids ``frame_ids``) into
    folder ``out``: a video's own reconstruction, or another individual performing it (reanimation)."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "meshes").mkdir(parents=True)

    mesh = extract_canonical_mesh(model, inst, grid)
    rest = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=(mesh.colors * 255).astype(np.uint8), process=False)
    rest.export(partial / "mesh-rest.obj")
    posed = posed_vertices(model, mesh.vertices, frames, inst)
    for k, vertices in enumerate(progress(posed, desc=f"export {label}", unit="mesh", leave=False)):
        trimesh.Trimesh(vertices, mesh.faces, process=False).export(partial / "meshes" / f"{k:05d}.obj")

    motion = video_motion(model, frames, frame_ids, inst)
    (partial / "motion.json").write_text(json.dumps(motion.to_json()))
    _bones(model, motion, inst).export(partial / "bones.obj")
    points = torch.as_tensor(mesh.vertices, device=model.bound.device)
    weights = model.deform.skinning_weights(points, torch.tensor(inst, device=points.device)).cpu().numpy()
    write_glb(partial / "animated.glb", mesh.vertices, mesh.faces, mesh.colors, weights, motion)

    diagonal = float(np.linalg.norm(np.ptp(posed[0], axis=0)))
    skinned = scene_to_camera(pose_glb(partial / "animated.glb", range(len(posed))), motion)
    errors = np.linalg.norm(skinned - posed, axis=-1).mean(-1)
    summary = ExportSummary(
        vertices=len(mesh.vertices),
        faces=len(mesh.faces),
        components=mesh.components,
        kept_area_fraction=mesh.kept_area_fraction,
        frames=len(posed),
        bones=motion.t_articulation_rest.shape[0],
        glb_mean_error=float(np.mean(errors) / diagonal),
    )
    (partial / "summary.json").write_text(json.dumps(summary.__dict__, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return summary


def _bones(model: DynamicModel, motion: Motion, inst: int) -> trimesh.Trimesh:
    """The rest bones: a skeleton's joints as spheres and its bones as cylinders from parent to child
    (as lab4d's ``-bone.obj``), other rigs' bones as ellipsoids of one standard deviation (a small sphere
    per bone without a shape)."""
    rest = motion.t_articulation_rest
    size = 0.02 * float(model.field.scale)
    if motion.parents is not None:
        joints = rest[:, :3, 3]
        parts = [trimesh.creation.icosphere(subdivisions=1, radius=size).apply_translation(p) for p in joints]
        for child, parent in enumerate(motion.parents):
            if parent >= 0 and np.linalg.norm(joints[child] - joints[parent]) > 1e-9:
                segment = np.stack([joints[parent], joints[child]])
                parts.append(trimesh.creation.cylinder(radius=0.5 * size, segment=segment, sections=8))
        return trimesh.util.concatenate(parts)
    scales = model.deform.bone_scales(torch.tensor(inst, device=model.bound.device))
    scales = np.full((len(rest), 3), 2.5 * size) if scales is None else scales.cpu().numpy()
    parts = []
    for transform, scale in zip(rest, scales):
        sphere = trimesh.creation.icosphere(subdivisions=2)
        sphere.apply_scale(scale)
        sphere.apply_transform(transform)
        parts.append(sphere)
    return trimesh.util.concatenate(parts)
