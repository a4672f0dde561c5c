"""Volume rendering of signed-distance fields (VolSDF), as pure tensor functions.

Rays start at the camera centre (camera coordinates, OpenCV axes) and go through
pixel centres; depths are camera-space z because directions have z = 1, which
keeps depth maps directly comparable with the datasets' depth arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def pixel_directions(xy: Tensor, intrinsics: Tensor) -> Tensor:
    """(..., K, 2) pixel coordinates and (..., 4) (fx, fy, cx, cy) -> (..., K, 3) directions with z = 1."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x = (xy[..., 0] - cx[..., None]) / fx[..., None]
    y = (xy[..., 1] - cy[..., None]) / fy[..., None]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def pixel_grid(res: int, array_res: int) -> np.ndarray:
    """(res*res, 2) array coordinates (x, y) of the pixel centres of a res x res image over an
    array_res x array_res array, row-major (integer array coordinates are pixel centres)."""
    centres = (np.arange(res) + 0.5) * (array_res / res) - 0.5
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def project(points: Tensor, intrinsics: Tensor) -> Tensor:
    """(..., K, 3) camera points -> (..., K, 2) pixels, with (..., 4) intrinsics."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    z = points[..., 2].clamp(min=1e-6)
    return torch.stack(
        [fx[..., None] * points[..., 0] / z + cx[..., None], fy[..., None] * points[..., 1] / z + cy[..., None]], dim=-1
    )


def box_bounds(
    directions: Tensor, rotation: Tensor, translation: Tensor, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Where camera rays enter and leave boxes given in object coordinates (slab test), as camera z.

    Args:
        directions: (N, K, 3) camera-space ray directions (z = 1) from the camera centre.
        rotation, translation: (N, 3, 3), (N, 3) object -> camera poses (x_cam = R x_obj + t).
        lo, hi: (N, 3) box corners in object coordinates.

    Returns:
        near, far (N, K) and hit (N, K) bool; misses get near = far. The map from camera to
        object coordinates is rigid, so a ray's parameter is the same in both: camera z.
    """
    # Row-vector forms of R^T (0 - t) and R^T d.
    origin = -(translation[:, None] @ rotation)
    direction = directions @ rotation
    tiny = torch.full_like(direction, 1e-9)
    direction = torch.where(direction.abs() < 1e-9, torch.where(direction < 0, -tiny, tiny), direction)
    t0 = (lo[:, None] - origin) / direction
    t1 = (hi[:, None] - origin) / direction
    near = torch.minimum(t0, t1).amax(-1).clamp(min=1e-4)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    far = torch.where(hit, far, near)
    return near, far, hit


def occupied_interval(
    origin: Tensor,
    direction: Tensor,
    near: Tensor,
    far: Tensor,
    lo: Tensor,
    hi: Tensor,
    grid: Tensor,
    grid_index: Tensor,
    steps: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Shrink rays' [near, far] to the span of the occupied cells of a box grid that they cross.

    Args:
        origin, direction: (M, 3) rays in the grid's coordinates (point = origin + t * direction).
        near, far: (M,) current extent of each ray.
        lo, hi: (M, 3) corners of each ray's grid box.
        grid: (G, R, R, R) bool occupancy grids, indexed [x, y, z] over their boxes.
        grid_index: (M,) which grid each ray crosses.
        steps: points probed per ray between near and far.

    Returns:
        near, far (M,), widened by one probe step on each side, and hit (M,): whether any probe
        landed in an occupied cell.
    """
    res = grid.shape[-1]
    u = (torch.arange(steps, dtype=near.dtype, device=near.device) + 0.5) / steps
    t = near[:, None] + (far - near)[:, None] * u
    points = origin[:, None] + t[..., None] * direction[:, None]
    cell = ((points - lo[:, None]) / (hi - lo)[:, None] * res).floor().long()
    inside = ((cell >= 0) & (cell < res)).all(-1)
    cell = cell.clamp(0, res - 1)
    flat = ((grid_index[:, None] * res + cell[..., 0]) * res + cell[..., 1]) * res + cell[..., 2]
    occupied = grid.reshape(-1)[flat] & inside
    hit = occupied.any(-1)
    first = occupied.float().argmax(-1)
    last = steps - 1 - occupied.flip(-1).float().argmax(-1)
    step = (far - near) / steps
    new_near = torch.maximum(near + step * (first - 1).clamp(min=0), near)
    new_far = torch.minimum(near + step * (last + 2), far)
    return torch.where(hit, new_near, near), torch.where(hit, new_far, near), hit


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
