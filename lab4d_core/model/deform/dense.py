"""D-NeRF-style dense warp: free per-point offsets, for objects no skeleton describes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lab4d_core.model.deform.base import Deformation, instance_code, register_deformation
from lab4d_core.model.encodings import FourierEncoding
from lab4d_core.model.mlp import MLP
from lab4d_core.model.time import FrameInfo, TimeEmbedding

OFFSET_SCALE = 0.1
"""lab4d scales the MLP output by 0.1 so early updates move points gently."""


@register_deformation("dense")
class DenseDeformation(Deformation):
    """Two conditional MLPs (one per direction) predict offsets from encoded points, time and instance.

    The directions are separate networks, so they only agree through the cycle regularizer.
    """

    def __init__(
        self,
        frame_info: FrameInfo,
        num_inst: int,
        depth: int = 4,
        width: int = 64,
        num_freqs: int = 6,
        time_dim: int = 32,
        inst_dim: int = 32,
    ) -> None:
        super().__init__()
        self.encoding = FourierEncoding(3, num_freqs)
        self.time_embedding = TimeEmbedding(frame_info, out_dim=time_dim)
        self.inst_code = nn.Embedding(num_inst, inst_dim)
        nn.init.normal_(self.inst_code.weight, std=0.1)
        cond_dim = time_dim + inst_dim
        self.to_canonical_net = MLP(
            self.encoding.out_dim, 3, hidden=width, depth=depth - 1, out_init="zero", cond_dim=cond_dim
        )
        self.to_frame_net = MLP(
            self.encoding.out_dim, 3, hidden=width, depth=depth - 1, out_init="zero", cond_dim=cond_dim
        )

    def _offset(self, net: nn.Module, x: Tensor, frame: Tensor, inst: Tensor | None) -> Tensor:
        cond = torch.cat([self.time_embedding(frame), instance_code(self.inst_code, inst, x.shape[0])], -1)
        return OFFSET_SCALE * net(self.encoding(x), cond[:, None])

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return x + self._offset(self.to_canonical_net, x, frame, inst)

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        return x + self._offset(self.to_frame_net, x, frame, inst)

    def regularizers(self, x_canonical: Tensor, frame: Tensor, inst: Tensor | None = None) -> dict[str, Tensor]:
        return {"reg_deform_cyc": self.cycle_loss(x_canonical, frame, inst)}
