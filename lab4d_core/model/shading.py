"""Shading of the canonical colour by the posed surface normal, under a learned light per video.

The canonical field's colour is an albedo: the same canonical point looks the same in every frame,
up to a per-frame appearance code. Real and rendered light does not move with the object's limbs,
so as a leg swings or the animal turns, its shade changes across frames in a way no canonical
colour can hold. Diffuse light from any distant environment is, to within a few percent, an
order-2 spherical-harmonic function of the normal (Ramamoorthi and Hanrahan 2001): nine numbers
per video, learned, multiply each ray's colour.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SH_BASIS_SIZE = 9


def sh_basis(normal: Tensor) -> Tensor:
    """(..., 3) unit normals -> (..., 9) real spherical harmonics up to order 2 (unnormalised).

    The zonal term is written 2z^2 - x^2 - y^2 (= 3z^2 - 1 on the sphere) so that a zero normal, which
    stands for an unknown one, has every term but the constant at zero: it gets the mean shade.
    """
    x, y, z = normal.unbind(-1)
    zonal = 2 * z * z - x * x - y * y
    return torch.stack([torch.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, zonal], dim=-1)


class SphericalHarmonicShading(nn.Module):
    """Shade ``1 + sh_basis(n) . light[video]``: starts at 1 (no shading) for every video."""

    def __init__(self, num_videos: int) -> None:
        super().__init__()
        self.light = nn.Parameter(torch.zeros(num_videos, SH_BASIS_SIZE))

    def forward(self, normal: Tensor, video: Tensor) -> Tensor:
        """(...,) shade of (..., 3) normals (zero where unknown: they get the mean shade) seen in videos (...,)."""
        return (1.0 + (sh_basis(normal) * self.light[video]).sum(-1)).clamp(min=0.05)
