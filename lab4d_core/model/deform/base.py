"""The deformation interface and its registry.

A deformation maps points between canonical space (where the shape is stored) and
the object's own space at one frame, before the root pose places the object in the
camera. Rays are sampled in frame space and warped to canonical space to query the
field; flow and re-projection losses go the other way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lab4d_core.model.time import FrameInfo

DEFORMATIONS: dict[str, Callable[..., Deformation]] = {}
"""Deformations by lab4d's ``fg_motion`` name: classes, or partial classes for families (``skel-<tree>``)."""


def register_deformation(name: str):
    """Class decorator adding a deformation to :data:`DEFORMATIONS` under ``name``."""

    def add(cls: type[Deformation]) -> type[Deformation]:
        DEFORMATIONS[name] = cls
        return cls

    return add


def build_deformation(name: str, frame_info: FrameInfo, num_inst: int, **options) -> Deformation:
    """Instantiate the deformation registered as ``name``; unknown names list the valid ones."""
    if name not in DEFORMATIONS:
        raise ValueError(f"unknown deformation {name!r}; choose one of {sorted(DEFORMATIONS)}")
    return DEFORMATIONS[name](frame_info, num_inst, **options)


def instance_code(embedding: nn.Embedding, inst: Tensor | None, batch: int) -> Tensor:
    """(batch, C) morphology codes; without ids the mean code is used, as lab4d renders unseen instances."""
    if inst is None:
        return embedding.weight.mean(0).expand(batch, -1)
    return embedding(inst)


class Deformation(nn.Module, ABC):
    """Maps points between canonical space and the object's space at a frame (object coordinates,
    before the root pose). Points are (N, S, 3): S samples for each of N rays/frames.

    Calling the module is the canonical -> frame warp.
    """

    instance_bone_lengths = False
    """Whether individuals differ by their bone lengths (skeletons): ``reg_inst_shape`` then holds their shape
    codes near the mean body, so that the lengths say what they can."""

    @abstractmethod
    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        """(N, S, 3) frame-space points at frames (N,) of instances (N,) -> (N, S, 3) canonical points."""

    @abstractmethod
    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        """(N, S, 3) canonical points -> (N, S, 3) points in the space of frames (N,)."""

    def forward(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return self.warp_to_frame(x, frame, inst)

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        """Scalar losses at (N, S, 3) canonical samples of N rays seen at frames (N,); none by default."""
        return {}

    def explicit_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the explicit learning rate (lab4d: 10x), beyond those named in
        ``DynamicModel``'s list; none by default."""
        return []

    def skinning_weights(self, x: Tensor, inst: Tensor | None = None) -> Tensor:
        """(P, B) weights of canonical points (P, 3) on the rig's B bones (rows sum to 1), for export.

        A deformation without bones has one, the object itself."""
        return x.new_ones(x.shape[0], 1)

    def bone_frames(self, frame: Tensor | None = None, inst: Tensor | None = None) -> Tensor:
        """(N, B, 4, 4) bone -> object transforms at frames (N,), or (B, 4, 4) at rest (lab4d's
        ``t_articulation``), of instances ``inst`` (N,) (None: the mean one); posing a canonical point by bone
        b at frame t is ``bone_frames(t)[b] @ inverse(bone_frames()[b])``."""
        eye = torch.eye(4, device=None if frame is None else frame.device)
        return eye[None] if frame is None else eye.expand(frame.shape[0], 1, 4, 4).clone()

    def bone_scales(self, inst: Tensor | None = None) -> Tensor | None:
        """(B, 3) extents of the bones along their axes, or None for a rig without shaped bones."""
        return None

    def cycle_loss(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        """Mean distance after canonical -> frame -> canonical, plus frame -> canonical -> frame
        started from the (detached) warped points, so both warps learn to invert each other.
        Points are (N, S, 3) at frames (N,), as for the warps."""
        x_f = self.warp_to_frame(x_canonical, frame, inst)
        back_c = self.warp_to_canonical(x_f, frame, inst)
        x_f = x_f.detach()
        back_f = self.warp_to_frame(self.warp_to_canonical(x_f, frame, inst), frame, inst)
        return (back_c - x_canonical).norm(dim=-1).mean() + (back_f - x_f).norm(dim=-1).mean()
