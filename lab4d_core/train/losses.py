"""Loss terms with lab4d's names, normalised so that N ranks equal one rank with their union.

Each term is a sum over this rank's samples divided by the count over all
ranks, and the trainer sums gradients over ranks: together that is exactly the
gradient of the global mean, whatever the world size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lab4d_core.train.distributed import global_sum


def global_mean(values: Tensor, weights: Tensor | None = None) -> Tensor:
    """sum(w * v) over this rank / sum(w) over all ranks (see module doc)."""
    weights = torch.ones_like(values) if weights is None else weights.to(values.dtype).expand_as(values)
    count = global_sum(weights.sum()).clamp(min=1.0)
    return (weights * values).sum() / count


def mask_loss(opacity: Tensor, mask: Tensor, valid: Tensor) -> Tensor:
    """Squared silhouette error, object and background pixels weighted equally (lab4d's balanced mask loss)."""
    error = (opacity - mask.to(opacity.dtype)) ** 2
    positive = valid & mask
    negative = valid & ~mask
    return 0.5 * (global_mean(error, positive) + global_mean(error, negative))


def rgb_loss(rgb: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    return global_mean(((rgb - target) ** 2).sum(-1), weight)


def depth_loss(depth: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    return global_mean((depth - target).abs(), weight)


def flow_loss(flow: Tensor, target: Tensor, weight: Tensor, train_res: int) -> Tensor:
    """End-point error in units of the array size (lab4d divides pixel losses by train_res)."""
    return reprojection_loss(flow - target, weight, train_res)


def reprojection_loss(residual: Tensor, weight: Tensor, train_res: int) -> Tensor:
    """Length of pixel residuals (..., 2) in units of the array size."""
    return global_mean(residual.norm(dim=-1) / train_res, weight)


def feature_loss(feature: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    return global_mean(((feature - target) ** 2).sum(-1), weight)


def eikonal_loss(gradient: Tensor, valid: Tensor) -> Tensor:
    return global_mean((gradient.norm(dim=-1) - 1.0) ** 2, valid)
