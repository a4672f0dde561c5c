"""Tiny footage that tests make themselves: a textured disc moving over a textured, panning background."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) float smooth random colours: enough structure for optical flow, no repeats."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 6 + 2, width // 6 + 2, 3))
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image, dtype=np.float64) / 255.0


def moving_disc(
    num_frames: int = 12, height: int = 72, width: int = 96, radius: float = 14.0, step: float = 7.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames and (N, H, W) bool masks: a disc crossing the frame over a panning background."""
    background = texture(height, width + 2 * num_frames, seed)
    skin = texture(height, width, seed + 1)
    ys, xs = np.mgrid[:height, :width]
    frames, masks = [], []
    for t in range(num_frames):
        cx = width / 2 + (t - num_frames / 2) * step
        cy = height / 2 + 6 * np.sin(t / 3)
        mask = (xs - cx) ** 2 + (ys - cy) ** 2 < radius**2
        # The disc's own texture moves with it; the background pans 2 px a frame (a moving camera).
        shifted = np.roll(skin, (int(round(cy - height / 2)), int(round(cx - width / 2))), axis=(0, 1))
        frame = np.where(mask[..., None], 0.3 + 0.7 * shifted, background[:, 2 * t : 2 * t + width])
        frames.append((frame * 255).astype(np.uint8))
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(path, list(frames), fps=fps, quality=9, macro_block_size=1)
    return path


def write_masks(folder: Path, masks: np.ndarray, size: tuple[int, int] | None = None) -> Path:
    """One png per frame (0/255), resized to ``size`` (W, H) when given, as a user's masks may be."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, mask in enumerate(masks):
        image = Image.fromarray(mask.astype(np.uint8) * 255)
        if size is not None:
            image = image.resize(size, Image.NEAREST)
        image.save(folder / f"{t:05d}.png")
    return folder
