"""Differentiable rotation and rigid-motion maths in torch, batched over leading dims.

These are the building blocks of the learned warps: bone motions are predicted as
axis-angle vectors (which start at exactly zero, so every formula here has a Taylor
branch that keeps values and gradients finite there) and bones are blended with dual
quaternions, which interpolate rigid motions without the volume loss of blending
matrices. Quaternions are (w, x, y, z); 3x3 rotations act on column vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor

_SMALL_ANGLE_SQ = 1e-4
"""Below this squared angle the Taylor branches are used (their error is < 1e-12)."""


def skew(v: Tensor) -> Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def so3_exp(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3) rotations, smooth at zero."""
    theta_sq = (axis_angle * axis_angle).sum(-1)[..., None, None]
    small = theta_sq < _SMALL_ANGLE_SQ
    # Square roots only of safe values, so no NaN gradient leaks through torch.where.
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    a = torch.where(small, 1.0 - theta_sq / 6.0 + theta_sq**2 / 120.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0 + theta_sq**2 / 720.0, (1.0 - torch.cos(theta)) / theta**2)
    k = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def rigid_matrix(rotation: Tensor, translation: Tensor) -> Tensor:
    """(..., 3, 3) rotations and (..., 3) translations -> (..., 4, 4) homogeneous transforms."""
    out = torch.zeros(rotation.shape[:-2] + (4, 4), dtype=rotation.dtype, device=rotation.device)
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def so3_log(rotation: Tensor) -> Tensor:
    """Inverse of :func:`so3_exp` with angles in [0, pi]: (..., 3, 3) -> (..., 3)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(rotation))


def axis_angle_to_quaternion(axis_angle: Tensor) -> Tensor:
    """(..., 3) -> (..., 4) unit quaternions, smooth at zero (avoids building matrices)."""
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    # sin(theta/2)/theta and cos(theta/2) with their Taylor series near zero.
    s = torch.where(small, 0.5 - theta_sq / 48.0 + theta_sq**2 / 3840.0, torch.sin(theta / 2) / theta)
    c = torch.where(small, 1.0 - theta_sq / 8.0 + theta_sq**2 / 384.0, torch.cos(theta / 2))
    return torch.cat([c, s * axis_angle], -1)


def quaternion_to_axis_angle(quat: Tensor) -> Tensor:
    """(..., 4) quaternions (any norm, either sign) -> (..., 3) axis-angle with angle in [0, pi]."""
    quat = standardize_quaternion(quat / quat.norm(dim=-1, keepdim=True))
    w, v = quat[..., :1], quat[..., 1:]
    sin_sq = (v * v).sum(-1, keepdim=True)
    small = sin_sq < _SMALL_ANGLE_SQ
    sin_half = torch.where(small, torch.ones_like(sin_sq), sin_sq).sqrt()
    half = torch.atan2(sin_half, w)
    # angle / sin(angle/2) = 2 half / sin(half), which is 2 (1 + sin(half)^2 / 6) + O(sin^4) near zero.
    scale = torch.where(small, 2.0 * (1.0 + sin_sq / 6.0), 2.0 * half / sin_half)
    return scale * v


def standardize_quaternion(quat: Tensor) -> Tensor:
    """Pick the sign with w >= 0 (q and -q are the same rotation)."""
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_matrix(quat: Tensor) -> Tensor:
    """(..., 4) quaternions (normalised here) -> (..., 3, 3) rotations."""
    w, x, y, z = quat.unbind(-1)
    two_s = 2.0 / (quat * quat).sum(-1)
    return torch.stack(
        [
            1 - two_s * (y * y + z * z),
            two_s * (x * y - z * w),
            two_s * (x * z + y * w),
            two_s * (x * y + z * w),
            1 - two_s * (x * x + z * z),
            two_s * (y * z - x * w),
            two_s * (x * z - y * w),
            two_s * (y * z + x * w),
            1 - two_s * (x * x + y * y),
        ],
        -1,
    ).reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quaternion(rotation: Tensor) -> Tensor:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions with w >= 0.

    Of the four algebraically equivalent formulas, each point uses the one whose
    divisor is largest (Shepperd's method), so no branch divides by ~0.
    """
    m = rotation
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z; they sum to 4, so the largest is >= 1.
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    # Clamping keeps the unused branches finite (and their gradients zero, not NaN).
    q_abs = four_sq.clamp_min(0.01).sqrt()
    candidates = torch.stack(
        [
            torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], -1),
        ],
        -2,
    ) / (2.0 * q_abs[..., None])
    best = four_sq.argmax(-1)[..., None, None].expand(four_sq.shape[:-1] + (1, 4))
    quat = torch.gather(candidates, -2, best).squeeze(-2)
    return standardize_quaternion(quat)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b (apply b first, then a), broadcasting."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def quat_conjugate(quat: Tensor) -> Tensor:
    """(w, -x, -y, -z): the inverse of a unit quaternion."""
    return quat * quat.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_apply(quat: Tensor, points: Tensor) -> Tensor:
    """Rotate (..., 3) points by (..., 4) unit quaternions (broadcasting)."""
    w, u = quat[..., :1], quat[..., 1:]
    u, points = torch.broadcast_tensors(u, points)
    uv = torch.linalg.cross(u, points, dim=-1)
    return points + 2.0 * (w * uv + torch.linalg.cross(u, uv, dim=-1))


def dual_quat_from_rt(rotation: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
    """Rigid motion x -> R x + t as a unit dual quaternion (qr, qd).

    ``rotation`` is (..., 3, 3) or a (..., 4) unit quaternion; ``translation`` (..., 3).
    """
    qr = matrix_to_quaternion(rotation) if rotation.shape[-2:] == (3, 3) else rotation
    t_quat = torch.cat([torch.zeros_like(translation[..., :1]), translation], -1)
    return qr, 0.5 * quat_mul(t_quat, qr)


def dual_quat_translation(qr: Tensor, qd: Tensor) -> Tensor:
    """Translation 2 vec(qd qr*) of a (possibly blended, unit-real-part) dual quaternion."""
    return 2.0 * quat_mul(qd, quat_conjugate(qr))[..., 1:]


def dual_quat_to_rt(qr: Tensor, qd: Tensor) -> tuple[Tensor, Tensor]:
    """(qr, qd) -> ((..., 3, 3) rotation, (..., 3) translation)."""
    return quaternion_to_matrix(qr), dual_quat_translation(qr, qd)


def dual_quat_inverse(qr: Tensor, qd: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse rigid motion: for a unit dual quaternion it is the quaternion conjugate of both parts."""
    return quat_conjugate(qr), quat_conjugate(qd)


def dual_quat_apply(qr: Tensor, qd: Tensor, points: Tensor) -> Tensor:
    """Apply (..., 4) dual quaternions (real part of unit norm) to (..., 3) points."""
    return quat_apply(qr, points) + dual_quat_translation(qr, qd)


def blend_dual_quats(weights: Tensor, qr: Tensor, qd: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Dual-quaternion linear blending of B rigid motions.

    weights: (..., B); qr, qd: (B, 4) or (..., B, 4) broadcastable against weights.
    Returns normalised (..., 4) pairs.

    q and -q are the same rotation but cancel when averaged, so each bone's sign is
    first aligned to the bone with the largest weight at that point (the fix lab4d made
    in commit 7d72404); without it, bones on opposite hemispheres blend to garbage.
    """
    batch = weights.shape[:-1]
    num_bones = weights.shape[-1]
    gram = (qr @ qr.transpose(-1, -2)).expand(batch + (num_bones, num_bones))
    dominant = weights.argmax(-1)[..., None, None].expand(batch + (1, num_bones))
    dots = torch.gather(gram, -2, dominant).squeeze(-2)
    signed = torch.where(dots < 0, -weights, weights)[..., None, :]
    qr_blend = (signed @ qr).squeeze(-2)
    qd_blend = (signed @ qd).squeeze(-2)
    norm = qr_blend.norm(dim=-1, keepdim=True).clamp_min(eps)
    return qr_blend / norm, qd_blend / norm
