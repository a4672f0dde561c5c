"""Neural blend skinning over Gaussian bones, shared by ``bob`` (free bones) and ``skel-*`` (a kinematic tree).

Each bone is an anisotropic Gaussian with a rest pose in canonical space and a rigid motion per frame. A
point moves by the dual-quaternion blend of the bone motions, weighted by its skinning weights; weights are
computed in the space the point lives in (posed bones for frame-space points, rest bones for canonical
points) from the point's coordinates in each bone's local frame, which a bone's own motion leaves unchanged,
so the two directions agree wherever one bone dominates (lab4d's ``SkinningWarp``).

A subclass says where the bones rest (:meth:`GaussianSkinning.rest_bones`, possibly per instance) and how
they move (:meth:`GaussianSkinning.motion`); everything else is here.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from lab4d_core.geometry.rotation import (
    blend_dual_quats,
    dual_quat_apply,
    dual_quat_from_rt,
    dual_quat_inverse,
    quat_apply,
    quat_mul,
    quaternion_to_matrix,
    rigid_matrix,
)
from lab4d_core.model.deform.base import Deformation, instance_code
from lab4d_core.model.mlp import MLP

DELTA_SKIN_SCALE = 0.1
"""Weight of the learned skinning correction in the logits, as in lab4d."""


class GaussianSkinning(Deformation):
    """Dual-quaternion blend skinning of B Gaussian bones with a learned, instance-conditioned correction."""

    def __init__(self, num_bones: int) -> None:
        super().__init__()
        self.num_bones = num_bones

    def add_skinning(self, num_inst: int, inst_dim: int = 32, skin_width: int = 64) -> None:
        """Create the instance codes and the skinning correction; a subclass calls it after its own modules
        (the order in which modules draw their random initial weights)."""
        self.inst_code = nn.Embedding(num_inst, inst_dim)
        nn.init.normal_(self.inst_code.weight, std=0.1)
        self.delta_net = MLP(self.num_bones * 3, self.num_bones, hidden=skin_width, depth=1, cond_dim=inst_dim)
        # Tiny rather than zero: relu(0) passes no gradient, so an all-zero start would never learn.
        nn.init.normal_(self.delta_net.output.weight, std=1e-3)
        nn.init.zeros_(self.delta_net.output.bias)

    @abstractmethod
    def rest_bones(self, inst: Tensor | None, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Bones at rest: orientations (B, 4) or (batch, B, 4) as unit quaternions, centres (B, 3) or
        (batch, B, 3) and inverse extents (B, 3) or (batch, B, 3), for ``batch`` instances ``inst``."""

    @abstractmethod
    def motion(self, frame: Tensor, inst: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Rest -> frame bone motions at frames (N,): (N, B, 4) rotation quaternions and (N, B, 3) translations."""

    def _posed_bones(self, rotation: Tensor, translation: Tensor, orientation: Tensor, centre: Tensor):
        """Bone orientations (N, B, 4) and centres (N, B, 3) after the motion."""
        return quat_mul(rotation, orientation), quat_apply(rotation, centre) + translation

    def _bone_local(self, x: Tensor, orientation: Tensor, centre: Tensor, inverse_scale: Tensor) -> Tensor:
        """(..., P, 3) points -> (..., P, B, 3) coordinates in each bone's frame, in units of its extent.

        Bones are (B, ...) or (..., B, ...); the squared norm is the Mahalanobis distance."""
        rotation = quaternion_to_matrix(orientation)  # (..., B, 3, 3); local = (x - c_b) @ R_b
        # All bones in one matrix product: columns b*3 + k of W hold R_b[:, k].
        weights = rotation.transpose(-3, -2).flatten(-2)
        offset = (centre[..., None, :] @ rotation).flatten(-3)
        inverse_scale = inverse_scale.flatten(-2)
        if inverse_scale.dim() > 1:
            inverse_scale = inverse_scale[..., None, :]
        local = (x @ weights - offset[..., None, :]) * inverse_scale
        return local.unflatten(-1, (self.num_bones, 3))

    def _skinning(self, x: Tensor, orientation, centre, inverse_scale, inst: Tensor | None) -> tuple[Tensor, Tensor]:
        """(N, S, 3) points -> skinning weights and raw corrections delta, both (N, S, B)."""
        local = self._bone_local(x, orientation, centre, inverse_scale)
        delta = self.delta_net(local.flatten(-2), instance_code(self.inst_code, inst, x.shape[0])[:, None])
        logits = -((local * local).sum(-1) + DELTA_SKIN_SCALE * torch.relu(delta))
        return torch.softmax(logits, -1), delta

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        rotation, translation = self.motion(frame, inst)
        orientation, centre, inverse_scale = self.rest_bones(inst, x.shape[0])
        orientation, centre = self._posed_bones(rotation, translation, orientation, centre)
        weights, _ = self._skinning(x, orientation, centre, inverse_scale, inst)
        qr, qd = dual_quat_inverse(*dual_quat_from_rt(rotation, translation))
        qr, qd = blend_dual_quats(weights, qr[:, None], qd[:, None])
        return dual_quat_apply(qr, qd, x)

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        rotation, translation = self.motion(frame, inst)
        weights, _ = self._skinning(x, *self.rest_bones(inst, x.shape[0]), inst)
        qr, qd = dual_quat_from_rt(rotation, translation)
        qr, qd = blend_dual_quats(weights, qr[:, None], qd[:, None])
        return dual_quat_apply(qr, qd, x)

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        return {"reg_deform_cyc": self.cycle_loss(x_canonical, frame, inst), **self.rig_regularizers(x_canonical, inst)}

    def rig_regularizers(self, x_canonical: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        """Terms on the rig alone at (N, S, 3) canonical samples: sharp skinning, small corrections."""
        weights, delta = self._skinning(x_canonical, *self.rest_bones(inst, x_canonical.shape[0]), inst)
        entropy = -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)
        return {"reg_skin_entropy": entropy.mean(), "reg_delta_skin": delta.abs().mean()}

    def bone_transforms(self, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        """(N, B, 4, 4) rest -> frame transforms of each bone, e.g. to re-pose an exported mesh."""
        rotation, translation = self.motion(frame, inst)
        return rigid_matrix(quaternion_to_matrix(rotation), translation)

    def skinning_weights(self, x: Tensor, inst: Tensor | None = None) -> Tensor:
        inst = None if inst is None else inst.reshape(1)
        return self._skinning(x[None], *self.rest_bones(inst, 1), inst)[0][0]

    def bone_frames(self, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        batch = 1 if frame is None else frame.shape[0]
        orientation, centre, _ = self.rest_bones(inst, batch)
        if frame is not None:
            orientation, centre = self._posed_bones(*self.motion(frame, inst), orientation, centre)
        return rigid_matrix(quaternion_to_matrix(orientation), centre)

    def bone_scales(self, inst: Tensor | None = None) -> Tensor:
        """(B, 3) extents of the Gaussian bones along their axes (the instance's, or the mean one)."""
        inverse_scale = self.rest_bones(None if inst is None else inst.reshape(1), 1)[2]
        return inverse_scale.reshape(self.num_bones, 3).reciprocal()

    def bone_centres(self, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        """(N, B, 3) bone centres posed at the frames (frame space)."""
        orientation, centre, _ = self.rest_bones(inst, frame.shape[0])
        return self._posed_bones(*self.motion(frame, inst), orientation, centre)[1]

    def gauss_occupancy(self, x: Tensor, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        """How much (..., 3) points lie inside any bone: max over bones of exp(-mahalanobis^2 / 2).

        Without ``frame`` the points are canonical (rest bones of instances ``inst``, broadcastable to the
        points); with frames (N,) the points are (N, ..., 3) in frame space and ``inst`` is (N,). lab4d
        matches this to the field's density (gauss-skin loss).
        """
        if frame is None:
            points = x.reshape(-1, 1, 3)
            inst = None if inst is None else inst.expand(x.shape[:-1]).reshape(-1)
            local = self._bone_local(points, *self.rest_bones(inst, points.shape[0]))
        else:
            orientation, centre, inverse_scale = self.rest_bones(inst, frame.shape[0])
            orientation, centre = self._posed_bones(*self.motion(frame, inst), orientation, centre)
            local = self._bone_local(x.reshape(x.shape[0], -1, 3), orientation, centre, inverse_scale)
        occupancy = torch.exp(-0.5 * (local * local).sum(-1)).amax(-1)
        return occupancy.reshape(x.shape[:-1])
