"""``lab4d preview``: a contact sheet of a processed dataset (rgb | mask | depth | flow per frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lab4d_core.data.database import Database
from lab4d_core.utils.io import atomic_write

_VIRIDIS = (
    np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64) / 255.0
)


def colorize_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) in [0, 1]: near is bright, normalised over ``valid`` pixels."""
    out = np.zeros(depth.shape + (3,))
    if not valid.any():
        return out
    inverse = 1.0 / np.maximum(depth[valid], 1e-6)
    lo, hi = np.percentile(inverse, [1, 99])
    t = np.clip((inverse - lo) / max(hi - lo, 1e-9), 0, 1)
    stops = np.linspace(0, 1, len(_VIRIDIS))
    out[valid] = np.stack([np.interp(t, stops, _VIRIDIS[:, c]) for c in range(3)], axis=-1)
    return out


def colorize_flow(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H, W, 2|3) flow -> (H, W, 3): hue is direction, saturation magnitude; zero confidence is black."""
    dx, dy = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    magnitude = np.hypot(dx, dy)
    scale = max_magnitude or max(np.percentile(magnitude, 99), 1e-6)
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    saturation = np.clip(magnitude / scale, 0, 1)
    k = (np.array([5.0, 3.0, 1.0]) + hue[..., None] * 6.0) % 6.0
    rgb = 1.0 - saturation[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    if flow.shape[-1] == 3:
        rgb *= flow[..., 2:3] > 0
    return rgb


def _panels(video, frame: int, prefix: str) -> list[np.ndarray]:
    """rgb, mask, depth (when present) and forward flow of one frame, as float images."""
    mask = video.array("mask", prefix)[frame]
    panels = [
        video.array("rgb", prefix)[frame].astype(np.float64),
        np.repeat(mask[..., :1], 3, axis=-1).astype(np.float64),
    ]
    if video.has("depth", prefix):
        panels.append(colorize_depth(video.array("depth", prefix)[frame].astype(np.float64), mask[..., 0]))
    panels.append(colorize_flow(video.flow(1, "fw", prefix)[frame]))
    return panels


def _titles(video, prefix: str) -> list[str]:
    return ["rgb", "mask"] + (["depth"] if video.has("depth", prefix) else []) + ["flow (fw, 1)"]


def _sampled_frames(video, count: int) -> np.ndarray:
    # The last frame has no forward flow, so sample up to the one before it.
    return np.linspace(0, video.num_frames - 2, count).round().astype(int)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def contact_sheet(
    root: Path, collection: str, train_res: int = 256, frames_per_video: int = 4, prefix: str = "crop"
) -> np.ndarray:
    """(H, W, 3) uint8: one row per sampled frame of every video, panels side by side, titled."""
    database = Database(root, collection, resolution=train_res, prefixes=(prefix,))
    rows = []
    for video in database.videos:
        rows += [np.concatenate(_panels(video, f, prefix), axis=1) for f in _sampled_frames(video, frames_per_video)]
        video.release()
    return _label(_to_uint8(np.concatenate(rows, axis=0)), _titles(database.videos[0], prefix), train_res)


def _label(sheet: np.ndarray, titles: list[str], panel: int) -> np.ndarray:
    header = Image.new("RGB", (sheet.shape[1], 18), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for k, title in enumerate(titles):
        draw.text((k * panel + 4, 3), title, fill=(0, 0, 0))
    return np.concatenate([np.asarray(header), sheet], axis=0)


def frame_strip(root: Path, collection: str, train_res: int = 256, frames: int = 4, prefix: str = "crop") -> np.ndarray:
    """A compact figure of the first video: frames as columns, rgb / mask / depth / flow as rows."""
    video = Database(root, collection, resolution=train_res, prefixes=(prefix,)).videos[0]
    columns = [np.concatenate(_panels(video, f, prefix), axis=0) for f in _sampled_frames(video, frames)]
    return _to_uint8(np.concatenate(columns, axis=1))


def save_png(image: np.ndarray, path: Path, width: int | None = None) -> None:
    """Write a PNG atomically, optionally downscaled to ``width`` pixels (aspect kept)."""
    picture = Image.fromarray(image)
    if width is not None and width < picture.width:
        picture = picture.resize((width, round(picture.height * width / picture.width)), Image.LANCZOS)
    atomic_write(path, lambda handle: picture.save(handle, format="PNG", optimize=True))
