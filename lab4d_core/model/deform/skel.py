"""Kinematic skeletons with blend skinning (lab4d ``skel-human``, ``skel-quad``; RAC), and their composition with
a small soft warp in rest space (``comp_skel-human_dense``, ``comp_skel-quad_dense``).

A time network gives each joint's local rotation (axis-angle) per frame; forward kinematics over the fixed
tree of :mod:`lab4d_core.geometry.skeletons` gives each joint's transform. The body part a joint moves (its
bones towards its children, as the synthesizer skins them) is a Gaussian between the joint and its children,
and points follow the Gaussians by the shared blend skinning. Bone lengths are the tree's, times a global
scale (metres -> scene units) and a per-instance correction from the instance code, the same on the left and
the right. The root joint does not turn: the root pose (object -> camera) carries the whole body.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from lab4d_core.geometry.rotation import (
    axis_angle_to_quaternion,
    matrix_to_quaternion,
    quat_apply,
    quat_mul,
    quaternion_to_matrix,
)
from lab4d_core.geometry.skeletons import SKELETONS, Skeleton, flexion_signs, get_skeleton
from lab4d_core.model.deform.base import DEFORMATIONS, Deformation, instance_code
from lab4d_core.model.deform.dense import DenseDeformation
from lab4d_core.model.deform.skinning import GaussianSkinning
from lab4d_core.model.mlp import MLP
from lab4d_core.model.time import FrameInfo, TimeEmbedding

BODY_MARGIN = 1.15
"""A body reaches this much beyond its joints (head top, soles, snout): the object's radius over the joints'."""
LEAF_EXTENT = 0.5
"""A joint without children (hand, foot, head, tail tip) moves a part this long, relative to its own bone."""
MIN_EXTENT = 0.04
"""Smallest extent of a joint's Gaussian at rest, metres of the predefined skeleton (a pelvis sits between
short bones)."""


def forward_kinematics(parents: tuple[int, ...], offsets: Tensor, joint_so3: Tensor) -> tuple[Tensor, Tensor]:
    """Global joint rotations (N, J, 4) as quaternions and positions (N, J, 3) of a posed tree.

    ``offsets`` (N, J, 3): each joint's rest position relative to its parent (the root's: its position);
    ``joint_so3`` (N, J, 3): each joint's local rotation, which turns everything below it about it (the
    convention of :meth:`lab4d_core.geometry.skeletons.Skeleton.forward_kinematics`)."""
    local = axis_angle_to_quaternion(joint_so3)
    rotations, positions = [], []
    for j, p in enumerate(parents):
        if p < 0:
            rotations.append(local[:, j])
            positions.append(offsets[:, j])
        else:
            rotations.append(quat_mul(rotations[p], local[:, j]))
            positions.append(positions[p] + quat_apply(rotations[p], offsets[:, j]))
    return torch.stack(rotations, 1), torch.stack(positions, 1)


def _part_geometry(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per joint: the (J, J) map from parent-relative offsets to the vector from the joint to the middle
    of its part (half the mean offset of its children; for a leaf, half of :data:`LEAF_EXTENT` of its own
    bone), the part's rest orientation (J, 3, 3 columns: two across, then along the part) and its
    half-length (J,) in the predefined skeleton's metres."""
    count = skeleton.num_joints
    to_middle = np.zeros((count, count))
    for j in range(count):
        children = [c for c, p in enumerate(skeleton.parents) if p == j]
        if children:
            to_middle[j, children] = 0.5 / len(children)
        else:
            to_middle[j, j] = 0.5 * LEAF_EXTENT
    along = to_middle @ skeleton.rest_offsets()
    orientation = np.zeros((count, 3, 3))
    for j, vector in enumerate(along):
        axis = vector / max(np.linalg.norm(vector), 1e-9) if np.linalg.norm(vector) > 1e-9 else np.array([0, -1.0, 0])
        helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        first = np.cross(helper, axis)
        first /= np.linalg.norm(first)
        orientation[j] = np.stack([first, np.cross(axis, first), axis], -1)
    return to_middle, orientation, np.linalg.norm(along, axis=-1)


class SkeletonDeformation(GaussianSkinning):
    """Blend skinning driven by a kinematic tree: per-frame joint rotations, per-instance bone lengths."""

    instance_bone_lengths = True

    def __init__(
        self,
        frame_info: FrameInfo,
        num_inst: int,
        skeleton: str = "human",
        object_radius: float = 1.0,
        time_dim: int = 64,
        depth: int = 3,
        width: int = 128,
        inst_dim: int = 32,
        skin_width: int = 64,
    ) -> None:
        tree = get_skeleton(skeleton)
        super().__init__(tree.num_joints)
        self.add_skinning(num_inst, inst_dim, skin_width)
        self.skeleton = tree
        self.parents = tree.parents
        to_middle, orientation, half_length = _part_geometry(tree)
        self.register_buffer("rest_offsets", torch.as_tensor(tree.rest_offsets(), dtype=torch.float32))
        self.register_buffer("to_middle", torch.as_tensor(to_middle, dtype=torch.float32))
        self.register_buffer(
            "part_orientation", matrix_to_quaternion(torch.as_tensor(orientation, dtype=torch.float32))
        )
        self.register_buffer("symmetry", torch.as_tensor(tree.symmetry))
        self.register_buffer("flexion", torch.as_tensor(flexion_signs(tree), dtype=torch.float32))
        # Rest joints are sums of offsets along each joint's chain to the root: one matrix product.
        chain = np.eye(tree.num_joints)
        for j, p in enumerate(tree.parents):
            if p >= 0:
                chain[j] += chain[p]
        self.register_buffer("chain", torch.as_tensor(chain, dtype=torch.float32))
        self.register_buffer("articulated", torch.as_tensor(np.asarray(tree.parents) >= 0))
        joints = tree.rest_joints
        joint_radius = 0.5 * np.linalg.norm(joints.max(0) - joints.min(0))
        self.log_size = nn.Parameter(torch.tensor(math.log(object_radius / (BODY_MARGIN * joint_radius))))
        self.shift = nn.Parameter(torch.zeros(3))
        along = np.maximum(half_length, MIN_EXTENT)
        extent = np.stack([np.maximum(0.5 * half_length, MIN_EXTENT)] * 2 + [along], -1)
        self.log_gauss = nn.Parameter(torch.as_tensor(np.log(extent), dtype=torch.float32))
        # tanh, not relu: a relu layer fed by a handful of codes went dead in training (every instance then
        # got the same bone lengths, the output bias alone).
        self.length_net = MLP(inst_dim, tree.num_joints, hidden=width // 2, depth=1, activation="tanh", out_init="zero")
        self.time_embedding = TimeEmbedding(frame_info, out_dim=time_dim)
        self.motion_net = MLP(time_dim, tree.num_joints * 3, hidden=width, depth=depth - 1, out_init="zero")

    def _symmetric(self, values: Tensor, dim: int) -> Tensor:
        """Per-joint values (joints along ``dim``) averaged with their mirror joint's."""
        return 0.5 * (values + values.index_select(dim, self.symmetry))

    def explicit_parameters(self) -> list[nn.Parameter]:
        """The bone-length network: per-instance lengths get little gradient (a body's shape can reach past its
        joints), so they learn at the explicit rate, as the global size does."""
        return list(self.length_net.parameters())

    def length_corrections(self, inst: Tensor | None, batch: int) -> Tensor:
        """(batch, J) per-instance log bone-length corrections, symmetric left/right (the root's unused)."""
        return self._symmetric(self.length_net(instance_code(self.inst_code, inst, batch)), -1)

    def offsets(self, inst: Tensor | None, batch: int) -> Tensor:
        """(batch, J, 3) parent-relative joint offsets of instances ``inst`` in scene units; the root's is the
        skeleton's placement in canonical space."""
        scale = torch.exp(self.log_size + self.length_corrections(inst, batch))
        offsets = self.rest_offsets * scale[..., None]
        root = self.rest_offsets[0] * torch.exp(self.log_size) + self.shift
        return torch.cat([root.expand(batch, 1, 3), offsets[:, 1:]], 1)

    def joint_so3(self, frame: Tensor) -> Tensor:
        """(N, J, 3) local joint rotations (axis-angle) at frames (N,); the root's is zero."""
        so3 = self.motion_net(self.time_embedding(frame)).view(frame.shape[0], self.num_bones, 3)
        return so3 * self.articulated[:, None]

    def rest_bones(self, inst: Tensor | None, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Every instance's bones rest where the mean instance's do: canonical space is the mean body's."""
        offsets = self.offsets(None, 1).expand(batch, -1, -1)
        centre = (self.chain + self.to_middle) @ offsets
        extent = torch.exp(self._symmetric(self.log_gauss, 0) + self.log_size)
        return self.part_orientation, centre, extent.reciprocal()

    def motion(self, frame: Tensor, inst: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Rest -> posed transforms of every joint's part at frames (N,), on instances ``inst``'s bones (the
        same joint angles on another instance's bones reanimate it). The tree is posed once per distinct
        (frame, instance): a batch of rays holds a few frames many times.

        Canonical space is the mean instance's body (RAC's morphology): each part leaves the mean skeleton's
        joint for the instance's posed one, so an instance's bone lengths stretch the shape itself. Were each
        instance's rest joints its own, a longer leg bone would only move the knee inside a leg that the
        shape's code draws at any length, and bone lengths got little say in how long limbs look."""
        key = frame if inst is None else frame * self.inst_code.num_embeddings + inst
        distinct, index = torch.unique(key, return_inverse=True)
        first = torch.empty_like(distinct).scatter_(0, index, torch.arange(len(key), device=key.device))
        offsets = self.offsets(None if inst is None else inst[first], len(first))
        rotation, position = forward_kinematics(self.parents, offsets, self.joint_so3(frame[first]))
        translation = position - quat_apply(rotation, (self.chain @ self.offsets(None, 1)).expand_as(position))
        return rotation[index], translation[index]

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        return {**super().regularizers(x_canonical, frame, inst), "reg_joint_limit": self.joint_limit(frame)}

    def joint_limit(self, frame: Tensor) -> Tensor:
        """How far the hinge joints (:data:`~lab4d_core.geometry.skeletons.FLEXION`) bend the wrong way at frames
        (N,): the squared excess of their rotation about x beyond straight. Silhouettes barely tell a knee bent
        forward from one bent back; unconstrained, the knees of walking people came out straight or bent
        backwards while their hips swung right (docs/category.md)."""
        wrong_way = -self.flexion * self.joint_so3(frame)[..., 0]
        return torch.relu(wrong_way).square().sum(-1).mean() / self.flexion.abs().sum().clamp_min(1.0)

    def rig_regularizers(self, x_canonical: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        """Blend skinning's, plus lab4d's skeleton prior: the mean body's bone lengths' deviation from the
        predefined proportions (the rest rotations are zero by construction here, so only lengths remain).
        Individuals are free to differ from the mean body: held to the predefined proportions too, their legs
        came out at a third of the truth's spread (docs/category.md)."""
        terms = super().rig_regularizers(x_canonical, inst)
        terms["reg_skel_prior"] = self.length_corrections(None, 1)[:, 1:].square().mean()
        return terms

    def rest_shape(self) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        """The mean instance's body at rest as capsules along its bones (each as thick as its part's Gaussian
        is wide): an SDF (P, 3) -> (P,) and points along the bones, to start the shape from (lab4d pre-fits
        its skeleton models to the bones' SDF)."""
        with torch.no_grad():
            offsets = self.offsets(None, 1)[0]
            joints = self.chain @ offsets
            radius = (torch.exp(self._symmetric(self.log_gauss, 0) + self.log_size))[:, 0]
        starts, ends, radii = [], [], []
        for j in range(self.num_bones):
            children = [c for c, p in enumerate(self.parents) if p == j]
            for end in children or [None]:
                starts.append(joints[j])
                ends.append(joints[j] + LEAF_EXTENT * offsets[j] if end is None else joints[end])
                radii.append(radius[j])
        a, b, r = torch.stack(starts), torch.stack(ends), torch.stack(radii)

        def sdf(x: Tensor) -> Tensor:
            ab = b - a
            t = (((x[:, None] - a) * ab).sum(-1) / ab.square().sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
            closest = a + t[..., None] * ab
            return ((x[:, None] - closest).norm(dim=-1) - r).amin(-1)

        anchors = a[:, None] + torch.linspace(0.0, 1.0, 8)[:, None] * (b - a)[:, None]
        return sdf, anchors.reshape(-1, 3)

    def bone_frames(self, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        """(N, J, 4, 4) joint -> object transforms at frames (N,) of instances ``inst``, or (J, 4, 4) at rest
        (the mean body's: canonical space, see :meth:`motion`): the kinematic tree's joint frames (rest
        rotations are the identity), posing a canonical point by joint j at frame t is
        ``bone_frames(t)[j] @ inverse(bone_frames()[j])``."""
        batch = 1 if frame is None else frame.shape[0]
        offsets = self.offsets(None, 1) if frame is None else self.offsets(inst, batch)
        so3 = torch.zeros_like(offsets) if frame is None else self.joint_so3(frame)
        rotation, position = forward_kinematics(self.parents, offsets, so3)
        frames = torch.eye(4, device=offsets.device).repeat(batch, self.num_bones, 1, 1)
        frames[..., :3, :3] = quaternion_to_matrix(rotation)
        frames[..., :3, 3] = position
        return frames[0] if frame is None else frames


class ComposedDeformation(Deformation):
    """A skeleton, then a small soft warp in rest space (lab4d's ``ComposedWarp``): canonical -> soft -> bones.

    The soft warp takes what the skeleton cannot (clothes, muscles, a tail the tree lacks), and is kept
    small by ``reg_soft_deform``, so the skeleton explains the articulation."""

    instance_bone_lengths = True

    def __init__(self, frame_info: FrameInfo, num_inst: int, skeleton: str = "human", object_radius: float = 1.0):
        super().__init__()
        self.skeleton = SkeletonDeformation(frame_info, num_inst, skeleton, object_radius)
        self.soft = DenseDeformation(frame_info, num_inst, depth=2, width=64)
        self.object_radius = object_radius

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return self.soft.warp_to_canonical(self.skeleton.warp_to_canonical(x, frame, inst), frame, inst)

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return self.skeleton.warp_to_frame(self.soft.warp_to_frame(x, frame, inst), frame, inst)

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        soft = self.soft.warp_to_frame(x_canonical, frame, inst) - x_canonical
        return {
            "reg_deform_cyc": self.cycle_loss(x_canonical, frame, inst),
            "reg_soft_deform": soft.square().sum(-1).mean() / self.object_radius**2,
            **self.skeleton.rig_regularizers(x_canonical, inst),
            "reg_joint_limit": self.skeleton.joint_limit(frame),
        }

    def explicit_parameters(self) -> list[nn.Parameter]:
        return self.skeleton.explicit_parameters()

    def skinning_weights(self, x: Tensor, inst: Tensor | None = None) -> Tensor:
        return self.skeleton.skinning_weights(x, inst)

    def bone_frames(self, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        return self.skeleton.bone_frames(frame, inst)

    def bone_scales(self, inst: Tensor | None = None) -> Tensor:
        return self.skeleton.bone_scales(inst)

    def gauss_occupancy(self, x: Tensor, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        return self.skeleton.gauss_occupancy(x, frame, inst)

    def rest_shape(self) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        return self.skeleton.rest_shape()


for _name in SKELETONS:
    DEFORMATIONS[f"skel-{_name}"] = partial(SkeletonDeformation, skeleton=_name)
    DEFORMATIONS[f"comp_skel-{_name}_dense"] = partial(ComposedDeformation, skeleton=_name)
