"""Viewpoints in lab4d's notation and the cameras they give.

``ref`` renders each frame from its input camera. ``rot-<elevation>-<degrees>`` is a turntable:
the object turns ``degrees`` about its up axis (``DynamicModel.up_axis``, estimated from the
cameras' horizontal x axes: :mod:`lab4d_core.geometry.up`) over the video, seen from
``elevation`` degrees above the ground plane (the plane perpendicular to the up axis) at 2.5x its
size (lab4d's distance), starting from the heading of its first rendered frame's camera.
``bev-<elevation>`` is the same camera without the turn (``bev-90`` looks straight down the up
axis).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.rotation import so3_exp
from lab4d_core.geometry.up import upright_rotation
from lab4d_core.model.dynamic import Camera, DynamicModel
from lab4d_core.model.render import pixel_grid

DISTANCE = 2.5
"""Camera distance of novel views, in object sizes (half-diagonals of its proxy box), as lab4d."""
FILL = 0.7
"""Share of the image half-width that the object's size spans in novel views."""
_VIEWPOINT = re.compile(r"^(ref|rot-(-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)|bev-(-?\d+(?:\.\d+)?))$")


@dataclass(frozen=True)
class Viewpoint:
    kind: str
    """``ref``, ``rot`` or ``bev``."""
    elevation: float = 0.0
    """Degrees above the ground plane, the plane perpendicular to the up axis (novel views)."""
    degrees: float = 0.0
    """Turn of the object over the whole video (``rot``)."""

    @property
    def name(self) -> str:
        if self.kind == "ref":
            return "ref"
        if self.kind == "bev":
            return f"bev-{self.elevation:g}"
        return f"rot-{self.elevation:g}-{self.degrees:g}"


def parse_viewpoint(text: str) -> Viewpoint:
    match = _VIEWPOINT.match(text)
    if match is None:
        raise Lab4dError(
            f"--viewpoint {text!r}: expected ref, rot-<elevation>-<degrees> (e.g. rot-30-360) or bev-<elevation>"
        )
    if match.group(1) == "ref":
        return Viewpoint("ref")
    if match.group(4) is not None:
        return Viewpoint("bev", elevation=float(match.group(4)))
    return Viewpoint("rot", elevation=float(match.group(2)), degrees=float(match.group(3)))


@torch.no_grad()
def view_cameras(
    model: DynamicModel, frames: Tensor, viewpoint: Viewpoint, res: int, array_res: int
) -> tuple[Camera, Tensor]:
    """Cameras (T frames) and the (res*res, 2) pixel coordinates to cast rays from."""
    if viewpoint.kind == "ref":
        xy = torch.as_tensor(pixel_grid(res, array_res), dtype=torch.float32)
        return Camera(*model.root(frames), model.intrinsics(frames)), xy
    rotation, _ = model.root(frames[:1])
    centre, radius = model.proxy_sphere(frames)
    # Level: camera y along -up, so the turn about camera y is about the up axis and the elevation
    # about camera x (horizontal) lifts the camera above the ground plane.
    level = torch.as_tensor(upright_rotation(model.up_axis, rotation[0]), dtype=torch.float32, device=centre.device)
    size = float(radius[0])
    distance = DISTANCE * size
    degrees = viewpoint.degrees if viewpoint.kind == "rot" else 0.0
    turns = torch.zeros(len(frames), 3, device=centre.device)
    turns[:, 1] = torch.deg2rad(torch.linspace(0.0, degrees, len(frames) + 1, device=centre.device)[:-1])
    # Looking from above: a positive turn about camera x takes the view direction (z) towards camera
    # y, which is down.
    elevate = so3_exp(torch.tensor([math.radians(viewpoint.elevation), 0.0, 0.0], device=centre.device))
    rotations = elevate @ so3_exp(turns) @ level
    translations = torch.tensor([0.0, 0.0, distance], device=centre.device) - (rotations @ centre[..., None])[..., 0]
    focal = FILL * res * distance / size
    intrinsics = torch.tensor([focal, focal, res / 2 - 0.5, res / 2 - 0.5], device=centre.device).expand(len(frames), 4)
    xy = torch.as_tensor(pixel_grid(res, res), dtype=torch.float32)
    return Camera(rotations, translations, intrinsics), xy
