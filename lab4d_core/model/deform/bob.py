"""BANMo's neural blend skinning over a bag of Gaussian bones (lab4d ``--fg_motion bob``).

Bones are free: each rests where farthest-point sampling (or a random ball) put it and moves rigidly per
frame as a time network says; the skinning itself is :class:`~lab4d_core.model.deform.skinning.GaussianSkinning`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lab4d_core.geometry.rotation import axis_angle_to_quaternion
from lab4d_core.model.deform.base import register_deformation
from lab4d_core.model.deform.skinning import GaussianSkinning
from lab4d_core.model.mlp import MLP
from lab4d_core.model.time import FrameInfo, TimeEmbedding


def farthest_point_sampling(points: Tensor, count: int) -> Tensor:
    """(P, 3) -> (count, 3) well-spread points, starting from the one nearest the centroid."""
    chosen = [int((points - points.mean(0)).norm(dim=-1).argmin())]
    dist = (points - points[chosen[0]]).norm(dim=-1)
    for _ in range(count - 1):
        chosen.append(int(dist.argmax()))
        dist = torch.minimum(dist, (points - points[chosen[-1]]).norm(dim=-1))
    return points[chosen].clone()


def random_ball(count: int, radius: float, seed: int) -> Tensor:
    """(count, 3) points uniform in a ball, reproducible regardless of the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(count, 3, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return direction * radius * torch.rand(count, 1, generator=generator) ** (1 / 3)


@register_deformation("bob")
class BagOfBones(GaussianSkinning):
    """Gaussian bones with per-frame rigid motions, blended by dual-quaternion skinning.

    A bone's motion at a frame is a rigid transform of canonical space (rotation about
    the origin, then translation) predicted from the time code; the last layer starts at
    zero, so every bone starts at its rest pose and the warp at the identity.
    """

    def __init__(
        self,
        frame_info: FrameInfo,
        num_inst: int,
        num_bones: int = 25,
        init_radius: float = 0.1,
        init_points: Tensor | None = None,
        init_scale: float = 0.03,
        time_dim: int = 64,
        depth: int = 3,
        width: int = 128,
        inst_dim: int = 32,
        skin_width: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(num_bones)
        centres = (
            random_ball(num_bones, init_radius, seed)
            if init_points is None
            else farthest_point_sampling(init_points.detach().float().cpu(), num_bones)
        )
        self.centre = nn.Parameter(centres)
        self.orientation = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(num_bones, 1))
        self.log_scale = nn.Parameter(torch.full((num_bones, 3), math.log(init_scale)))
        self.time_embedding = TimeEmbedding(frame_info, out_dim=time_dim)
        self.motion_net = MLP(time_dim, num_bones * 6, hidden=width, depth=depth - 1, out_init="zero")
        self.add_skinning(num_inst, inst_dim, skin_width)

    def rest_bones(self, inst: Tensor | None, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """The same bones for every instance: (B, 4), (B, 3), (B, 3)."""
        orientation = self.orientation / self.orientation.norm(dim=-1, keepdim=True)
        return orientation, self.centre, torch.exp(-self.log_scale)

    def motion(self, frame: Tensor, inst: Tensor | None = None) -> tuple[Tensor, Tensor]:
        motion = self.motion_net(self.time_embedding(frame)).view(frame.shape[0], self.num_bones, 6)
        return axis_angle_to_quaternion(motion[..., :3]), motion[..., 3:]
