"""``lab4d preview``: a contact sheet of a processed dataset (rgb | mask | depth | flow per frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lab4d_core.data.database import Database
from lab4d_core.utils.io import atomic_write

_VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
) / 255.0


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
        rgb *= (flow[..., 2:3] > 0)
    return rgb


def contact_sheet(root: Path, collection: str, train_res: int = 256, frames_per_video: int = 4, prefix: str = "crop") -> np.ndarray:
    """(H, W, 3) uint8: one row per sampled frame, panels rgb | mask | depth | flow (forward, delta 1)."""
    database = Database(root, collection, resolution=train_res, prefixes=(prefix,))
    rows = []
    for video in database.videos:
        picks = np.linspace(0, video.num_frames - 2, frames_per_video).round().astype(int)
        rgb, mask, flow = video.array("rgb", prefix), video.array("mask", prefix), video.flow(1, "fw", prefix)
        depth = video.array("depth", prefix) if video.has("depth", prefix) else None
        for f in picks:
            panels = [rgb[f].astype(np.float64), np.repeat(mask[f, ..., :1], 3, axis=-1).astype(np.float64)]
            if depth is not None:
                panels.append(colorize_depth(depth[f].astype(np.float64), mask[f, ..., 0]))
            panels.append(colorize_flow(flow[f]))
            rows.append(np.concatenate(panels, axis=1))
        video.release()
    sheet = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255 + 0.5).astype(np.uint8)
    return _label(sheet, ["rgb", "mask"] + (["depth"] if depth is not None else []) + ["flow (fw, 1)"], train_res)


def _label(sheet: np.ndarray, titles: list[str], panel: int) -> np.ndarray:
    header = Image.new("RGB", (sheet.shape[1], 18), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for k, title in enumerate(titles):
        draw.text((k * panel + 4, 3), title, fill=(0, 0, 0))
    return np.concatenate([np.asarray(header), sheet], axis=0)


def frame_strip(root: Path, collection: str, train_res: int = 256, frames: int = 4, prefix: str = "crop") -> np.ndarray:
    """A compact README figure: the first video's frames as columns, panel kinds as rows."""
    sheet = contact_sheet(root, collection, train_res, frames, prefix)[18:]
    video_rows = sheet[: frames * train_res]
    tiles = [np.split(row, video_rows.shape[1] // train_res, axis=1) for row in np.split(video_rows, frames, axis=0)]
    return np.concatenate([np.concatenate([t[k] for t in tiles], axis=1) for k in range(len(tiles[0]))], axis=0)


def save_png(image: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda handle: Image.fromarray(image).save(handle, format="PNG", optimize=True))
