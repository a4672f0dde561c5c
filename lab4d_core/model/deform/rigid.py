"""No deformation: the object moves only by its root pose."""

from __future__ import annotations

from torch import Tensor

from lab4d_core.model.deform.base import Deformation, register_deformation
from lab4d_core.model.time import FrameInfo


@register_deformation("rigid")
class RigidDeformation(Deformation):
    """Identity both ways, for rigid objects and the background."""

    def __init__(self, frame_info: FrameInfo, num_inst: int) -> None:
        super().__init__()

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return x

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return x
