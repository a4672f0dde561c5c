"""BANMo's neural blend skinning over a bag of Gaussian bones (lab4d ``--fg_motion bob``).

Each bone is an anisotropic Gaussian with a rest pose in canonical space and a rigid
motion per frame. A point moves by the dual-quaternion blend of the bone motions,
weighted by its skinning weights; weights are computed in the space the point lives
in (posed bones for frame-space points, rest bones for canonical points) from the
point's coordinates in each bone's local frame, which a bone's own motion leaves
unchanged, so the two directions agree wherever one bone dominates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lab4d_core.geometry.rotation import (
    axis_angle_to_quaternion,
    blend_dual_quats,
    dual_quat_apply,
    dual_quat_from_rt,
    dual_quat_inverse,
    quat_apply,
    quat_mul,
    quaternion_to_matrix,
    rigid_matrix,
)
from lab4d_core.model.deform.base import Deformation, instance_code, register_deformation
from lab4d_core.model.mlp import MLP
from lab4d_core.model.time import FrameInfo, TimeEmbedding

DELTA_SKIN_SCALE = 0.1
"""Weight of the learned skinning correction in the logits, as in lab4d."""


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
class BagOfBones(Deformation):
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
        super().__init__()
        self.num_bones = num_bones
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
        self.inst_code = nn.Embedding(num_inst, inst_dim)
        nn.init.normal_(self.inst_code.weight, std=0.1)
        self.delta_net = MLP(num_bones * 3, num_bones, hidden=skin_width, depth=1, cond_dim=inst_dim)
        # Tiny rather than zero: relu(0) passes no gradient, so an all-zero start would never learn.
        nn.init.normal_(self.delta_net.output.weight, std=1e-3)
        nn.init.zeros_(self.delta_net.output.bias)

    def _motion(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """Rest -> frame bone motions as (N, B, 4) rotation quaternions and (N, B, 3) translations."""
        motion = self.motion_net(self.time_embedding(frame)).view(frame.shape[0], self.num_bones, 6)
        return axis_angle_to_quaternion(motion[..., :3]), motion[..., 3:]

    def _rest_orientation(self) -> Tensor:
        return self.orientation / self.orientation.norm(dim=-1, keepdim=True)

    def _posed_bones(self, rotation: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
        """Bone orientations (N, B, 4) and centres (N, B, 3) after the motion."""
        return quat_mul(rotation, self._rest_orientation()), quat_apply(rotation, self.centre) + translation

    def _bone_local(self, x: Tensor, orientation: Tensor, centre: Tensor) -> Tensor:
        """(..., P, 3) points -> (..., P, B, 3) coordinates in each bone's frame, in units of its scale.

        Bones are (B, ...) at rest or (..., B, ...) posed; the squared norm is the Mahalanobis distance."""
        rotation = quaternion_to_matrix(orientation)  # (..., B, 3, 3); local = (x - c_b) @ R_b
        # All bones in one matrix product: columns b*3 + k of W hold R_b[:, k].
        weights = rotation.transpose(-3, -2).flatten(-2)
        offset = (centre[..., None, :] @ rotation).flatten(-3)
        local = (x @ weights - offset[..., None, :]) * torch.exp(-self.log_scale).flatten()
        return local.unflatten(-1, (self.num_bones, 3))

    def _skinning(self, x: Tensor, orientation: Tensor, centre: Tensor, inst: Tensor | None) -> tuple[Tensor, Tensor]:
        """(N, S, 3) points -> skinning weights and raw corrections delta, both (N, S, B)."""
        local = self._bone_local(x, orientation, centre)
        delta = self.delta_net(local.flatten(-2), instance_code(self.inst_code, inst, x.shape[0])[:, None])
        logits = -((local * local).sum(-1) + DELTA_SKIN_SCALE * torch.relu(delta))
        return torch.softmax(logits, -1), delta

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        rotation, translation = self._motion(frame)
        orientation, centre = self._posed_bones(rotation, translation)
        weights, _ = self._skinning(x, orientation, centre, inst)
        qr, qd = dual_quat_inverse(*dual_quat_from_rt(rotation, translation))
        qr, qd = blend_dual_quats(weights, qr[:, None], qd[:, None])
        return dual_quat_apply(qr, qd, x)

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        rotation, translation = self._motion(frame)
        weights, _ = self._skinning(x, self._rest_orientation(), self.centre, inst)
        qr, qd = dual_quat_from_rt(rotation, translation)
        qr, qd = blend_dual_quats(weights, qr[:, None], qd[:, None])
        return dual_quat_apply(qr, qd, x)

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        weights, delta = self._skinning(x_canonical, self._rest_orientation(), self.centre, inst)
        entropy = -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)
        return {
            "reg_deform_cyc": self.cycle_loss(x_canonical, frame, inst),
            "reg_skin_entropy": entropy.mean(),
            "reg_delta_skin": delta.abs().mean(),
        }

    def bone_transforms(self, frame: Tensor) -> Tensor:
        """(N, B, 4, 4) rest -> frame transforms of each bone, e.g. to re-pose an exported mesh."""
        rotation, translation = self._motion(frame)
        return rigid_matrix(quaternion_to_matrix(rotation), translation)

    def skinning_weights(self, x: Tensor, inst: Tensor | None = None) -> Tensor:
        inst = None if inst is None else inst.reshape(1)
        return self._skinning(x[None], self._rest_orientation(), self.centre, inst)[0][0]

    def bone_frames(self, frame: Tensor | None = None) -> Tensor:
        if frame is None:
            orientation, centre = self._rest_orientation(), self.centre
        else:
            orientation, centre = self._posed_bones(*self._motion(frame))
        return rigid_matrix(quaternion_to_matrix(orientation), centre)

    def bone_scales(self) -> Tensor:
        """(B, 3) standard deviations of the Gaussian bones along their axes."""
        return self.log_scale.exp()

    def bone_centres(self, frame: Tensor) -> Tensor:
        """(N, B, 3) bone centres posed at the frames (frame space)."""
        return self._posed_bones(*self._motion(frame))[1]

    def gauss_occupancy(self, x: Tensor, frame: Tensor | None = None) -> Tensor:
        """How much (..., 3) points lie inside any bone: max over bones of exp(-mahalanobis^2 / 2).

        Without ``frame`` the points are canonical (rest bones); with frames (N,) the points
        are (N, ..., 3) in frame space. lab4d matches this to the field's density (gauss-skin loss).
        """
        if frame is None:
            local = self._bone_local(x.reshape(-1, 3), self._rest_orientation(), self.centre)
        else:
            orientation, centre = self._posed_bones(*self._motion(frame))
            local = self._bone_local(x.reshape(x.shape[0], -1, 3), orientation, centre)
        occupancy = torch.exp(-0.5 * (local * local).sum(-1)).amax(-1)
        return occupancy.reshape(x.shape[:-1])
