"""Volume rendering of signed-distance fields (VolSDF), as pure tensor functions.

Rays start at the camera centre (camera coordinates, OpenCV axes) and go through
pixel centres; depths are camera-space z because directions have z = 1, which
keeps depth maps directly comparable with the datasets' depth arrays.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pixel_directions(xy: Tensor, intrinsics: Tensor) -> Tensor:
    """(..., K, 2) pixel coordinates and (..., 4) (fx, fy, cx, cy) -> (..., K, 3) directions with z = 1."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x = (xy[..., 0] - cx[..., None]) / fx[..., None]
    y = (xy[..., 1] - cy[..., None]) / fy[..., None]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def project(points: Tensor, intrinsics: Tensor) -> Tensor:
    """(..., K, 3) camera points -> (..., K, 2) pixels, with (..., 4) intrinsics."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    z = points[..., 2].clamp(min=1e-6)
    return torch.stack(
        [fx[..., None] * points[..., 0] / z + cx[..., None], fy[..., None] * points[..., 1] / z + cy[..., None]], dim=-1
    )


def sphere_bounds(directions: Tensor, centre: Tensor, radius: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """Where rays from the origin enter and leave a sphere, as camera z (ray parameter for z = 1 directions).

    Args:
        directions: (N, K, 3) ray directions (z = 1).
        centre: (N, 3) sphere centres in camera coordinates.
        radius: sphere radius (scalar or (N,)).

    Returns:
        near, far (N, K) and hit (N, K) bool; misses get near = far.
    """
    radius = torch.as_tensor(radius, dtype=directions.dtype, device=directions.device)
    radius = radius.reshape(-1, 1) if radius.ndim else radius
    a = (directions * directions).sum(-1)
    b = (directions * centre[:, None]).sum(-1)
    c = (centre * centre).sum(-1, keepdim=True) - radius**2
    disc = b * b - a * c
    hit = disc > 0
    root = disc.clamp(min=0).sqrt()
    near = ((b - root) / a).clamp(min=1e-4)
    far = ((b + root) / a).clamp(min=1e-4)
    hit = hit & (far > near)
    near = torch.where(hit, near, far)
    return near, far, hit


def stratified_depths(near: Tensor, far: Tensor, num: int, offsets: Tensor | None = None) -> Tensor:
    """(N, K, num) depths, one per equal bin between near and far.

    ``offsets`` (N, K, num) in [0, 1) place each sample in its bin (random
    during training); None puts them at the bin centres. Passing the noise in,
    rather than drawing it here, lets the trainer draw it for the global batch
    so that any number of ranks sees the same samples as one.
    """
    steps = torch.arange(num, dtype=near.dtype, device=near.device)
    offsets = 0.5 if offsets is None else offsets
    u = (steps + offsets) / num
    return near[..., None] + (far - near)[..., None] * u


def volsdf_weights(density: Tensor, depths: Tensor, far: Tensor) -> Tensor:
    """Rendering weights w_i = T_i (1 - exp(-sigma_i delta_i)) from densities at sorted depths.

    Sample i stands for the interval between the midpoints to its neighbours; the
    first starts at the first sample and the last ends at ``far``, so the weights
    cover the ray's extent within the bound and opacity is well defined.
    """
    mids = 0.5 * (depths[..., 1:] + depths[..., :-1])
    starts = torch.cat([depths[..., :1], mids], dim=-1)
    ends = torch.cat([mids, far[..., None]], dim=-1)
    optical = density * (ends - starts).clamp(min=0)
    alpha = 1.0 - torch.exp(-optical)
    before = torch.cumsum(torch.cat([torch.zeros_like(optical[..., :1]), optical[..., :-1]], dim=-1), dim=-1)
    return alpha * torch.exp(-before)


def importance_depths(depths: Tensor, weights: Tensor, num: int, uniform: Tensor | None = None) -> Tensor:
    """(N, K, num) extra depths drawn from the piecewise-constant pdf of ``weights`` (inverse CDF), detached.

    ``uniform`` (N, K, num) in [0, 1) are the draws; None uses evenly spaced
    quantiles, which is deterministic for evaluation.
    """
    weights = weights.detach() + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, -1)], -1)
    edges = torch.cat([depths[..., :1], 0.5 * (depths[..., 1:] + depths[..., :-1]), depths[..., -1:]], -1).detach()
    if uniform is None:
        quantiles = (torch.arange(num, dtype=depths.dtype, device=depths.device) + 0.5) / num
        uniform = quantiles.expand(weights.shape[:-1] + (num,))
    index = torch.searchsorted(cdf.contiguous(), uniform.contiguous(), right=True).clamp(1, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, index - 1), cdf.gather(-1, index)
    lo, hi = edges.gather(-1, index - 1), edges.gather(-1, index)
    t = (uniform - cdf_lo) / (cdf_hi - cdf_lo).clamp(min=1e-8)
    return lo + t * (hi - lo)


def composite(weights: Tensor, values: Tensor) -> Tensor:
    """Weighted sum over samples: (N, K, S) x (N, K, S, C) -> (N, K, C)."""
    return (weights[..., None] * values).sum(-2)
