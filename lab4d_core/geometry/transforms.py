"""Rigid-body maths on numpy arrays (batched over leading axes).

Conventions used across the project: 4x4 homogeneous matrices act on column
vectors, cameras use OpenCV axes (x right, y down, z forward) and extrinsics are
world-to-camera.
"""

from __future__ import annotations

import numpy as np


def so3_exp(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3) rotation matrices."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    theta = np.linalg.norm(axis_angle, axis=-1, keepdims=True)[..., None]
    k = skew(axis_angle)
    # Taylor expansions keep small angles (including exactly zero) stable.
    small = theta < 1e-6
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + a * k + b * (k @ k)


def similarity_fit(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama (1991): the least-squares ``scale``, ``rotation`` and ``shift`` with
    ``dst ~ scale * rotation @ src + shift`` for corresponding (P, 3) points, via the SVD of the
    cross-covariance with the determinant fix, so a reflection is never returned."""
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    u, sigma, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    reflect = np.linalg.det(u) * np.linalg.det(vt) < 0.0
    signs = np.array([1.0, 1.0, -1.0 if reflect else 1.0])
    rotation = (u * signs) @ vt
    scale = 1.0
    if with_scale:
        var_src = np.mean(np.sum(src_c**2, axis=1))
        if var_src <= 0.0:
            raise ValueError("a similarity needs a scale, but all source points coincide")
        scale = float(np.sum(sigma * signs) / var_src)
    return scale, rotation, mu_dst - scale * rotation @ mu_src


def so3_log(rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`so3_exp` for angles in [0, pi): (..., 3, 3) -> (..., 3)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    cos = np.clip((np.trace(rotation, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)[..., None]
    vee = np.stack(
        [
            rotation[..., 2, 1] - rotation[..., 1, 2],
            rotation[..., 0, 2] - rotation[..., 2, 0],
            rotation[..., 1, 0] - rotation[..., 0, 1],
        ],
        axis=-1,
    )
    small = theta < 1e-6
    scale = np.where(small, 0.5 + theta**2 / 12.0, theta / (2.0 * np.sin(np.where(small, 1.0, theta))))
    return scale * vee


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    v = np.asarray(v, dtype=np.float64)
    zero = np.zeros_like(v[..., 0])
    return np.stack(
        [
            np.stack([zero, -v[..., 2], v[..., 1]], -1),
            np.stack([v[..., 2], zero, -v[..., 0]], -1),
            np.stack([-v[..., 1], v[..., 0], zero], -1),
        ],
        axis=-2,
    )


def make_transform(rotation: np.ndarray | None = None, translation: np.ndarray | None = None) -> np.ndarray:
    """Build (..., 4, 4) matrices from (..., 3, 3) rotations and (..., 3) translations."""
    if rotation is None and translation is None:
        return np.eye(4)
    batch = (rotation if rotation is not None else translation[..., None]).shape[:-2]
    out = np.broadcast_to(np.eye(4), batch + (4, 4)).copy()
    if rotation is not None:
        out[..., :3, :3] = rotation
    if translation is not None:
        out[..., :3, 3] = translation
    return out


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (..., 4, 4) transforms to (..., P, 3) points."""
    return points @ np.swapaxes(transform[..., :3, :3], -1, -2) + transform[..., None, :3, 3]


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, -1.0, 0.0)) -> np.ndarray:
    """World-to-camera (OpenCV axes) for cameras at ``eye`` looking at ``target``.

    ``up`` is the world direction that should appear up in the image; with the
    y-down world used by the synthesizer that is -y.
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, np.broadcast_to(up, forward.shape))
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward], axis=-2)  # rows: camera axes in world
    translation = -(rotation @ eye[..., None])[..., 0]
    return make_transform(rotation, translation)
