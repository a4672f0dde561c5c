"""Pinhole intrinsics in lab4d's (fx, fy, cx, cy) form.

lab4d stores intrinsics, and the crop of each training array (``crop2raw``), as
4-vectors rather than 3x3 matrices. ``K2mat(crop2raw) @ [x_arr, y_arr, 1]`` is
the raw-image pixel of an array pixel, so the same helpers serve both.
"""

from __future__ import annotations

import numpy as np


def k2mat(k: np.ndarray) -> np.ndarray:
    """(..., 4) (fx, fy, cx, cy) -> (..., 3, 3) upper-triangular pinhole matrices."""
    k = np.asarray(k, dtype=np.float64)
    mat = np.zeros(k.shape[:-1] + (3, 3))
    mat[..., 0, 0] = k[..., 0]
    mat[..., 1, 1] = k[..., 1]
    mat[..., 0, 2] = k[..., 2]
    mat[..., 1, 2] = k[..., 3]
    mat[..., 2, 2] = 1.0
    return mat


def mat2k(mat: np.ndarray) -> np.ndarray:
    """Inverse of :func:`k2mat`: (..., 3, 3) -> (..., 4) (fx, fy, cx, cy)."""
    mat = np.asarray(mat, dtype=np.float64)
    return np.stack([mat[..., 0, 0], mat[..., 1, 1], mat[..., 0, 2], mat[..., 1, 2]], axis=-1)


def crop_intrinsics(ks_raw: np.ndarray, crop2raw: np.ndarray) -> np.ndarray:
    """Intrinsics of a training array from the raw intrinsics and its crop.

    A camera point projects to the raw pixel ``K_raw @ X`` and, since the array
    pixel maps to the raw pixel through ``K2mat(crop2raw)``, to the array pixel
    ``K2mat(crop2raw)^-1 @ K_raw @ X``. Broadcasts: ``ks_raw`` (..., 4) against
    ``crop2raw`` (..., 4), e.g. one video's ks against its (N, 4) crops.
    """
    k_arr = np.linalg.inv(k2mat(crop2raw)) @ k2mat(ks_raw)
    return mat2k(k_arr)
