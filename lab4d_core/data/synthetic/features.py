"""Stand-in DINOv2 features for synthetic data: a fixed smooth embedding of the canonical surface point.

lab4d's downloads carry DINOv2 features (16 PCA dimensions at 112 x 112 per crop, unit length on the
object, zero off it). What makes them useful for registration is that a body part looks alike in every
frame and every individual. The stand-in keeps exactly that property and nothing more: each pixel's
feature is a fixed function of where on the rest-pose body its material point lies, in coordinates
relative to the body's size (so the same part of two individuals of different build gets about the same
feature), through random Fourier features whose wavelengths are about the body's size (smooth, like
DINOv2's coarse tokens, yet telling the parts apart).
"""

from __future__ import annotations

import numpy as np
import torch

from lab4d_core.data.database import FEATURE_SHAPE
from lab4d_core.data.synthetic.groundtruth import View

FEATURE_RES, _, FEATURE_DIM = FEATURE_SHAPE
EMBEDDING_SEED = 2024
"""Fixed, so every synthetic dataset embeds the body alike."""
FREQUENCY = 3.0
"""Standard deviation of the embedding's angular frequencies, in radians per body length."""


def surface_embedding(points: np.ndarray, centre: np.ndarray, size: float) -> np.ndarray:
    """(..., FEATURE_DIM) unit vectors of rest-pose points (..., 3) of a body centred at ``centre`` of length ``size``."""
    rng = np.random.default_rng(EMBEDDING_SEED)
    frequencies = rng.normal(0.0, FREQUENCY, (3, FEATURE_DIM))
    phases = rng.uniform(0.0, 2 * np.pi, FEATURE_DIM)
    embedded = np.sin((points - centre) / size @ frequencies + phases)
    return embedded / np.linalg.norm(embedded, axis=-1, keepdims=True).clip(1e-6)


def feature_maps(views: list[View], object_id: int, rest_verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 112, 112, 16) float16 features of the array views: the embedding of each pixel's rest-pose point,
    resampled to 112 x 112 (lab4d's size), unit length on the object inside the raw frame and zero elsewhere."""
    centre = 0.5 * (rest_verts.min(axis=0) + rest_verts.max(axis=0))
    size = float((rest_verts.max(axis=0) - rest_verts.min(axis=0)).max())
    maps = []
    for view in views:
        res = view.frame.object_id.shape[0]
        flat, _, _ = view.hits(object_id, faces)
        # Pixels outside the raw frame carry no data in lab4d's arrays, features included.
        seen = view.vis2d.reshape(-1)[flat]
        dense = np.zeros((res * res, FEATURE_DIM + 1), np.float32)
        points = view.points(object_id, rest_verts, faces)[seen]
        dense[flat[seen], :FEATURE_DIM] = surface_embedding(points, centre, size)
        dense[flat[seen], FEATURE_DIM] = 1.0
        grid = torch.from_numpy(dense.reshape(1, res, res, -1)).permute(0, 3, 1, 2)
        small = torch.nn.functional.interpolate(grid, (FEATURE_RES, FEATURE_RES), mode="bilinear", antialias=True)
        small = small[0].permute(1, 2, 0).numpy()
        feature, coverage = small[..., :FEATURE_DIM], small[..., FEATURE_DIM:]
        unit = feature / np.linalg.norm(feature, axis=-1, keepdims=True).clip(1e-6)
        maps.append(np.where(coverage > 0.5, unit, 0.0))
    return np.stack(maps).astype(np.float16)
