"""``lab4d render``: a video of one instance, panels rgb | mask | depth | normal | canonical xyz.

From the input cameras (``ref``), the input frame comes first, with the mask's outline, as in lab4d's
collages: on real footage, what the model was shown beside what it made of it is how a person judges it.

Normals come from the rendered depth (the cross product of its image-space derivatives in camera
coordinates), which costs nothing beyond the render itself; canonical xyz colours each pixel by
where its surface point lies in the canonical shape, which shows the correspondence over time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image

from lab4d_core.data.database import Database
from lab4d_core.errors import Lab4dError
from lab4d_core.model.dynamic import Camera, DynamicModel
from lab4d_core.model.render import pixel_directions
from lab4d_core.render.views import Viewpoint, view_cameras
from lab4d_core.utils.progress import progress

PANELS = ("rgb", "mask", "depth", "normal", "xyz")
REFERENCE_PANELS = ("input", *PANELS)
"""Panels of a render from the input cameras (``ref``)."""
OUTLINE = np.array([0.2, 1.0, 0.2])
FPS = 10


def video_frames(
    database: Database, video: int, num_frames: int | None, freeze_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model frame ids whose shape is rendered (T,), and whose camera is used (T,), for one video.

    ``freeze_id`` (a frame of the video) holds the shape still while the camera keeps moving;
    ``num_frames`` samples that many frames evenly (default: all)."""
    if not 0 <= video < len(database.videos):
        raise Lab4dError(f"--inst_id {video}: the dataset has videos 0..{len(database.videos) - 1}")
    count = database.videos[video].num_frames
    if freeze_id is not None and not 0 <= freeze_id < count:
        raise Lab4dError(f"--freeze_id {freeze_id}: video {video} has frames 0..{count - 1}")
    total = count if num_frames is None else num_frames
    if total < 1:
        raise Lab4dError(f"--num_frames {num_frames}: give at least 1")
    local = np.linspace(0, count - 1, total).round().astype(np.int64) if total <= count else np.arange(total) % count
    start = int(database.frame_offset[video])
    cameras = torch.as_tensor(start + local)
    shapes = torch.full_like(cameras, start + freeze_id) if freeze_id is not None else cameras.clone()
    return shapes, cameras


def _normals(depth: np.ndarray, mask: np.ndarray, directions: np.ndarray) -> np.ndarray:
    points = directions * depth[..., None]
    dx = np.gradient(points, axis=1)
    dy = np.gradient(points, axis=0)
    normal = np.cross(dx, dy)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    # Facing the camera: -z in OpenCV coordinates; shown as (x, -y, -z) -> rgb.
    normal *= np.where(normal[..., 2:] > 0, -1.0, 1.0)
    colour = 0.5 + 0.5 * normal * np.array([1.0, -1.0, -1.0])
    return np.where(mask[..., None], colour, 0.0)


@torch.no_grad()
def render_panels(
    model: DynamicModel,
    database: Database,
    frames: tuple[torch.Tensor, torch.Tensor],
    viewpoint: Viewpoint,
    res: int,
    num_samples: int = 16,
    num_importance: int = 0,
    inst: int | None = None,
    appearance: int | None = None,
) -> Iterator[np.ndarray]:
    """(res, 5 res, 3) uint8 images, one per rendered frame of ``frames`` (from :func:`video_frames`);
    rays take ``num_samples`` stratified samples plus ``num_importance`` drawn from their weights. ``inst``
    puts another instance's body in the frames, coloured by frame ``appearance``'s code (reanimation)."""
    shapes, camera_frames = frames
    cameras, xy = view_cameras(model, camera_frames, viewpoint, res, database.resolution)
    scale = float(model.field.scale)
    for t in range(len(shapes)):
        camera = Camera(cameras.rotation[t : t + 1], cameras.translation[t : t + 1], cameras.intrinsics[t : t + 1])
        out = model.render_pixels(
            int(shapes[t]), xy, num_samples, num_importance, camera=camera, inst=inst, appearance=appearance
        )
        opacity = out["opacity"].numpy().reshape(res, res)
        mask = opacity > 0.5
        depth = out["depth"].numpy().reshape(res, res)
        centre, radius = model.proxy_sphere(shapes[t : t + 1])
        centre = float((camera.rotation[0] @ centre[0])[2] + camera.translation[0, 2])
        size = float(radius[0])
        near_white = 1.0 - np.clip((depth - (centre - size)) / (2 * size), 0.0, 1.0)
        directions = pixel_directions(xy, camera.intrinsics[0]).numpy().reshape(res, res, 3)
        panels = {
            "rgb": out["rgb"].numpy().reshape(res, res, 3),
            "mask": np.repeat(opacity[..., None], 3, -1),
            "depth": np.repeat(np.where(mask, near_white, 0.0)[..., None], 3, -1),
            "normal": _normals(depth, mask, directions),
            "xyz": np.where(
                mask[..., None], np.clip(0.5 + out["canonical"].numpy().reshape(res, res, 3) / scale, 0, 1), 0
            ),
        }
        names = PANELS
        if viewpoint.kind == "ref" and inst is None:
            panels["input"], names = input_panel(database, int(camera_frames[t]), res), REFERENCE_PANELS
        yield (np.clip(np.concatenate([panels[name] for name in names], 1), 0, 1) * 255).astype(np.uint8)


def input_panel(database: Database, frame: int, res: int) -> np.ndarray:
    """(res, res, 3) in 0..1: model frame ``frame``'s training array (the crop the model saw) with its mask's
    outline drawn over it."""
    video = int(np.searchsorted(database.frame_offset, frame, side="right")) - 1
    local = frame - int(database.frame_offset[video])
    arrays = database.videos[video]
    rgb = np.asarray(arrays.array("rgb")[local], dtype=np.float32)
    mask = np.asarray(arrays.array("mask")[local][..., 0])
    image = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).resize((res, res), Image.BILINEAR)) / 255.0
    mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((res, res), Image.NEAREST)) > 127
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    outline = mask & ~inner
    return np.where(outline[..., None], OUTLINE, image)


def write_video(path: Path, images: Iterator[np.ndarray], total: int, fps: int = FPS) -> int:
    """Encode images to H.264 at ``path`` (written to a temporary file, then renamed); returns the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    count = 0
    writer = imageio.get_writer(partial, fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p")
    try:
        for image in progress(images, total=total, desc=f"render {path.name}", unit="frame"):
            writer.append_data(image)
            count += 1
    finally:
        writer.close()
    partial.replace(path)
    return count
