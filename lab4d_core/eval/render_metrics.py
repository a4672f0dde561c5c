"""Render every training frame from its input camera and score it: mask IoU and masked PSNR.

Frames are rendered at ``res`` x ``res`` over the training arrays (pixel centres
of the low-resolution grid mapped into array coordinates), in chunks of rays so
memory stays bounded; the ground truth is the arrays' mask and rgb sampled at
the same pixel centres.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from lab4d_core.data.database import Database
from lab4d_core.eval.metrics import mask_iou, masked_psnr
from lab4d_core.model.dynamic import DynamicModel


def grid_pixels(res: int, train_res: int) -> np.ndarray:
    """(res*res, 2) array coordinates (x, y) of the centres of a res x res grid over a train_res crop."""
    centres = (np.arange(res) + 0.5) * (train_res / res) - 0.5
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


@torch.no_grad()
def render_frame(model: DynamicModel, frame: int, xy: torch.Tensor, num_samples: int, chunk: int = 8192) -> dict:
    """Opacity, rgb and depth of the pixels ``xy`` (P, 2) of one frame."""
    device = next(model.parameters()).device
    frame_ids = torch.tensor([frame], device=device)
    parts: dict[str, list[torch.Tensor]] = {"opacity": [], "rgb": [], "depth": []}
    for start in range(0, len(xy), chunk):
        out = model.render_rays(
            frame_ids, xy[None, start : start + chunk].to(device), num_samples, num_importance=num_samples // 2
        )
        for key in parts:
            parts[key].append(out[key][0].cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def evaluate_training_views(
    model: DynamicModel,
    database: Database,
    prefix: str,
    res: int,
    num_samples: int,
    frames_per_video: int | None = None,
) -> dict:
    """Mask IoU and masked PSNR per video and overall (means over frames)."""
    train_res = database.videos[0].resolution
    centres = grid_pixels(res, train_res)
    nearest = np.clip(np.rint(centres).astype(int), 0, train_res - 1)
    xy = torch.as_tensor(centres, dtype=torch.float32)
    per_video, all_iou, all_psnr = {}, [], []
    offsets = database.frame_offset
    for v, video in enumerate(database.videos):
        frames = np.arange(video.num_frames)
        if frames_per_video is not None:
            frames = np.unique(np.linspace(0, video.num_frames - 1, frames_per_video).round().astype(int))
        masks, rgbs = video.array("mask", prefix), video.array("rgb", prefix)
        ious, psnrs = [], []
        for f in tqdm(frames, desc=f"evaluate {video.seqname}", unit="frame", leave=False):
            out = render_frame(model, int(offsets[v] + f), xy, num_samples)
            gt_mask = np.asarray(masks[f, nearest[:, 1], nearest[:, 0], 0]).reshape(res, res)
            gt_rgb = np.asarray(rgbs[f, nearest[:, 1], nearest[:, 0]], dtype=np.float64).reshape(res, res, 3)
            pred_mask = out["opacity"].numpy().reshape(res, res) > 0.5
            ious.append(float(mask_iou(pred_mask, gt_mask)[0]))
            if gt_mask.any():
                psnrs.append(float(masked_psnr(out["rgb"].numpy().reshape(res, res, 3), gt_rgb, gt_mask)[0]))
        video.release()
        per_video[video.seqname] = {
            "mask_iou": float(np.mean(ious)),
            "psnr": float(np.mean(psnrs)),
            "frames": len(frames),
        }
        all_iou += ious
        all_psnr += psnrs
    return {
        "mask_iou": float(np.mean(all_iou)),
        "psnr": float(np.mean(all_psnr)),
        "resolution": res,
        "videos": per_video,
    }
