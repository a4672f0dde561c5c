"""Render every training frame from its input camera and score it: mask IoU and masked PSNR.

Frames are rendered at ``res`` x ``res`` over the training arrays (pixel centres
of the low-resolution grid mapped into array coordinates), in chunks of rays so
memory stays bounded; the ground truth is the arrays' mask and rgb sampled at
the same pixel centres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.eval.metrics import mask_iou, masked_psnr
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.model.render import pixel_grid
from lab4d_core.utils.progress import progress


def evaluate_training_views(
    model: DynamicModel,
    database: Database,
    prefix: str,
    res: int,
    num_samples: int,
    frames_per_video: int | None = None,
    num_importance: int = 0,
    reference_masks: list[np.ndarray] | None = None,
) -> dict:
    """Mask IoU and masked PSNR per video and overall (means over frames); rays take ``num_samples``
    stratified samples plus ``num_importance`` drawn from their weights, as in training. ``reference_masks``
    (per video, (N, R, R) bool in the arrays' coordinates, e.g. from :func:`cropped_reference_masks`) replace
    the dataset's masks for the IoU: estimated masks are not the truth."""
    train_res = database.videos[0].resolution
    centres = pixel_grid(res, train_res)
    nearest = np.clip(np.rint(centres).astype(int), 0, train_res - 1)
    xy = torch.as_tensor(centres, dtype=torch.float32)
    per_video, all_iou, all_psnr = {}, [], []
    offsets = database.frame_offset
    for v, video in enumerate(database.videos):
        frames = np.arange(video.num_frames)
        if frames_per_video is not None:
            frames = np.unique(np.linspace(0, video.num_frames - 1, frames_per_video).round().astype(int))
        masks, rgbs = video.array("mask", prefix)[..., 0], video.array("rgb", prefix)
        if reference_masks is not None:
            masks = reference_masks[v]
        ious, psnrs = [], []
        for f in progress(frames, desc=f"evaluate {video.seqname}", unit="frame", leave=False):
            out = model.render_pixels(int(offsets[v] + f), xy, num_samples, num_importance)
            gt_mask = np.asarray(masks[f, nearest[:, 1], nearest[:, 0]]).reshape(res, res)
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


def cropped_reference_masks(database: Database, folders: list[Path], prefix: str) -> list[np.ndarray]:
    """Per video, (N, R, R) bool: a mask per raw frame of the video (png/jpg/npy, any size, nonzero = object) in
    ``folders[v]``, taken at the kept frames and cropped as the training arrays are."""
    from lab4d_core.preprocess.crop import crop_image
    from lab4d_core.preprocess.masks import mask_files, read_mask

    out = []
    for video, folder in zip(database.videos, folders):
        files = mask_files(Path(folder))
        if len(files) != video.num_frames_raw:
            raise Lab4dError(
                f"{folder}: {len(files)} masks for the {video.num_frames_raw} frames of {video.seqname}; give one "
                "mask per frame of the video"
            )
        crop2raw = np.asarray(video.array("crop2raw", prefix))
        height, width = video.shape
        out.append(
            np.stack(
                [
                    crop_image(
                        (read_mask(files[raw_id], height, width) == 1).astype(np.uint8),
                        crop2raw[t],
                        video.resolution,
                        nearest=True,
                    )
                    > 0
                    for t, raw_id in enumerate(video.kept_ids)
                ]
            )
        )
    return out
