"""A category model against synthetic ground truth: every video's meshes, each reanimation against the true
one, and each individual's bone lengths.

Meshes are the model's canonical mesh of the video's instance, posed at the video's frames (every
``stride``-th) in camera coordinates, against ``GroundTruth/<seq>/verts_cam.npy`` with the Sim(3) protocol on
surface samples. A reanimation (``GroundTruth/reanimate/{A}-to-{B}/``, written by ``lab4d synth`` for the
pairs its config names) is rendered as ``lab4d reanimate`` renders it, from A's raw cameras, and its masks and
meshes are scored against the true ones. Bone lengths are compared after the one scale that best maps the
model's to the truth's (a reconstruction's size is arbitrary): the per-bone relative error, and whether the
individuals rank alike by leg length and by arm length.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.eval.evaluate import evaluate_mesh_sequence, load_ground_truth
from lab4d_core.eval.metrics import mask_iou
from lab4d_core.export.export import video_frame_ids
from lab4d_core.export.mesh import extract_canonical_mesh
from lab4d_core.export.motion import posed_vertices, skeleton_of
from lab4d_core.export.reanimate import plan_reanimation
from lab4d_core.geometry.skeletons import limb_joints
from lab4d_core.model.dynamic import Camera, DynamicModel
from lab4d_core.utils.progress import progress


def _fscores(result: dict) -> dict:
    mean = result["mean"]
    return {
        "fscore@5%bbox": mean["fscore@5%bbox"],
        "fscore@10%bbox": mean["fscore@10%bbox"],
        "chamfer": mean["cd"],
        "frames": len(result["per_frame"]),
    }


@torch.no_grad()
def evaluate_video_meshes(
    model: DynamicModel, database: Database, gt_root: Path, stride: int = 4, grid: int = 128
) -> dict:
    """F-scores of every video's posed meshes (every ``stride``-th frame) against its ground truth."""
    per_video, meshes = {}, {}
    for v, video in enumerate(progress(database.videos, desc="evaluate meshes", unit="video", leave=False)):
        frames = video_frame_ids(database, v, model.bound.device)
        inst = int(model.instance(frames[:1])[0])
        if inst not in meshes:
            meshes[inst] = extract_canonical_mesh(model, inst, grid)
        mesh = meshes[inst]
        chosen = np.arange(0, len(frames), stride)
        truth = load_ground_truth(Path(gt_root) / video.seqname)
        if len(truth) != len(frames):
            raise Lab4dError(f"{gt_root / video.seqname}: {len(truth)} ground-truth frames for {len(frames)} frames")
        posed = posed_vertices(model, mesh.vertices, frames[chosen], inst)
        result = evaluate_mesh_sequence(
            [(p, mesh.faces) for p in posed], [truth[t] for t in chosen], protocol="sim3", points="surface"
        )
        per_video[video.seqname] = _fscores(result)
    return _summarised(per_video)


def _summarised(per_video: dict) -> dict:
    keys = ("fscore@5%bbox", "fscore@10%bbox")
    summary = {key: float(np.mean([v[key] for v in per_video.values()])) for key in keys}
    summary |= {f"min {key}": float(np.min([v[key] for v in per_video.values()])) for key in keys}
    return {**summary, "videos": per_video}


@torch.no_grad()
def evaluate_reanimation(
    model: DynamicModel, database: Database, gt_dir: Path, res: int = 128, num_samples: int = 16, grid: int = 128
) -> dict:
    """Mask IoU (rendered from A's raw cameras at ``res`` pixels on the longer side) and mesh F-scores of the
    model's reanimation against the true one in ``gt_dir`` (``GroundTruth/reanimate/{A}-to-{B}``)."""
    meta = json.loads((Path(gt_dir) / "meta.json").read_text())
    motion_id, inst_id = int(meta["motion_id"]), int(meta["inst_id"])
    plan = plan_reanimation(model, database, motion_id, inst_id)
    true_masks = np.load(Path(gt_dir) / "masks.npy")
    if len(true_masks) != len(plan.frames):
        raise Lab4dError(f"{gt_dir}: {len(true_masks)} true frames, but video {motion_id} has {len(plan.frames)}")
    height, width = true_masks.shape[1:]
    scale = res / max(height, width)
    # Pixel centres of the smaller image in raw pixel coordinates (integers are raw pixel centres).
    xs = (np.arange(round(width * scale)) + 0.5) / scale - 0.5
    ys = (np.arange(round(height * scale)) + 0.5) / scale - 0.5
    grid_x, grid_y = np.meshgrid(xs, ys)
    xy = torch.as_tensor(np.stack([grid_x.ravel(), grid_y.ravel()], -1), dtype=torch.float32)
    nearest_x = np.clip(np.rint(grid_x), 0, width - 1).astype(int)
    nearest_y = np.clip(np.rint(grid_y), 0, height - 1).astype(int)
    raw = model.intrinsics.raw()[motion_id : motion_id + 1]
    ious = []
    for t, frame in enumerate(
        progress(plan.frames, desc=f"evaluate {motion_id}-to-{inst_id}", unit="frame", leave=False)
    ):
        rotation, translation = model.root(frame.reshape(1))
        out = model.render_pixels(
            int(frame), xy, num_samples, camera=Camera(rotation, translation, raw), inst=plan.inst
        )
        predicted = out["opacity"].numpy().reshape(grid_x.shape) > 0.5
        ious.append(float(mask_iou(predicted, true_masks[t][nearest_y, nearest_x])[0]))
    mesh = extract_canonical_mesh(model, plan.inst, grid)
    truth = load_ground_truth(gt_dir)
    chosen = np.arange(0, len(plan.frames), 4)
    posed = posed_vertices(model, mesh.vertices, plan.frames[chosen], plan.inst)
    result = evaluate_mesh_sequence(
        [(p, mesh.faces) for p in posed], [truth[t] for t in chosen], protocol="sim3", points="surface"
    )
    return {"motion_id": motion_id, "inst_id": inst_id, "mask_iou": float(np.mean(ious)), **_fscores(result)}


def evaluate_reanimations(model: DynamicModel, database: Database, gt_root: Path, **options) -> dict:
    """Every true reanimation under ``gt_root/reanimate`` ({A}-to-{B} folders), by name."""
    folders = sorted(p for p in (Path(gt_root) / "reanimate").glob("*-to-*") if (p / "meta.json").exists())
    return {folder.name: evaluate_reanimation(model, database, folder, **options) for folder in folders}


@torch.no_grad()
def evaluate_bone_lengths(model: DynamicModel, database: Database, gt_root: Path) -> dict:
    """Each individual's bone lengths against the truth, after one global scale: the median relative error
    per bone, and whether the individuals rank alike by leg length and by arm length."""
    tree = skeleton_of(model)
    if tree is None:
        raise Lab4dError(f"bone lengths need a skeleton model; fg_motion {model.cfg.fg_motion} has none")
    predicted, truth, names = [], [], []
    for v, video in enumerate(database.videos):
        folder = Path(gt_root) / video.seqname
        skeleton = json.loads((folder / "skeleton.json").read_text())
        if skeleton["joint_names"] != list(tree.skeleton.joint_names):
            raise Lab4dError(f"{folder}: its skeleton is {skeleton['name']!r}, the model's {tree.skeleton.name!r}")
        inst = model.instance(video_frame_ids(database, v, model.bound.device)[:1])
        predicted.append(tree.offsets(inst, 1)[0].norm(dim=-1).cpu().numpy().astype(np.float64))
        truth.append(np.load(folder / "bone_lengths.npy").astype(np.float64))
        names.append(video.seqname)
    predicted, truth = np.stack(predicted)[:, 1:], np.stack(truth)[:, 1:]  # the root has no bone
    scale = float((predicted * truth).sum() / np.square(predicted).sum())
    errors = np.abs(scale * predicted - truth) / np.maximum(truth, 1e-9)
    out = {"scale": scale, "median_relative_error": float(np.median(errors)), "videos": {}}
    for limb in ("leg", "arm"):
        joints = [j - 1 for j in limb_joints(tree.skeleton, limb)]
        pred_limb, true_limb = predicted[:, joints].sum(1), truth[:, joints].sum(1)
        out[f"{limb}_order_matches"] = bool(np.array_equal(np.argsort(pred_limb), np.argsort(true_limb)))
        for name, p, t in zip(names, pred_limb, true_limb):
            out["videos"].setdefault(name, {})[f"{limb}_length"] = {"predicted": float(scale * p), "true": float(t)}
    return out
