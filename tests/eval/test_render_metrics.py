"""Training views scored against the dataset's masks, or against reference masks of one's own."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lab4d_core.eval.render_metrics import cropped_reference_masks, evaluate_training_views


def test_reference_masks_are_cropped_like_the_arrays_and_replace_the_dataset_masks(untrained_bob, tmp_path):
    model, database = untrained_bob
    folders = []
    for video in database.videos:
        folder = tmp_path / video.seqname
        folder.mkdir()
        for raw_id in range(video.num_frames_raw):
            # Twice the raw size: reference masks may come at any size with the video's aspect ratio.
            mask = Image.fromarray((video.raw_mask(raw_id) == 1).astype(np.uint8) * 255).resize(
                (2 * video.shape[1], 2 * video.shape[0]), Image.NEAREST
            )
            mask.save(folder / f"{raw_id:05d}.png")
        folders.append(folder)
    reference = cropped_reference_masks(database, folders, "crop")
    for video, masks in zip(database.videos, reference):
        stored = np.asarray(video.array("mask")[..., 0])
        # The synthesizer renders its crops directly; a raw mask cropped by nearest sampling differs at the edges.
        assert masks.shape == stored.shape and (masks & stored).sum() / (masks | stored).sum() > 0.85

    own = evaluate_training_views(model, database, "crop", 16, 8, frames_per_video=2)
    same = evaluate_training_views(model, database, "crop", 16, 8, frames_per_video=2, reference_masks=reference)
    assert abs(own["mask_iou"] - same["mask_iou"]) < 0.02 and own["mask_iou"] > 0.05
    empty = [np.zeros_like(masks) for masks in reference]
    assert evaluate_training_views(model, database, "crop", 16, 8, 2, reference_masks=empty)["mask_iou"] == 0.0
