"""Exact ray-triangle intersection in numpy (Moller-Trumbore), for checks that must not trust a rasteriser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RayHits:
    distance: np.ndarray
    """(R,) ray parameter of the nearest hit (inf where the ray misses)."""
    triangle: np.ndarray
    """(R,) index of the hit triangle, -1 where the ray misses."""
    barycentric: np.ndarray
    """(R, 3) barycentric coordinates of the hit point in its triangle."""

    @property
    def hit(self) -> np.ndarray:
        return self.triangle >= 0


def raycast(
    origins: np.ndarray, directions: np.ndarray, verts: np.ndarray, faces: np.ndarray, chunk: int = 64
) -> RayHits:
    """Nearest intersection of each ray with a triangle mesh (both sides count).

    Brute force over all triangles, in chunks of rays to bound memory: meant for
    a few hundred rays against meshes of tens of thousands of triangles.
    """
    origins = np.broadcast_to(np.asarray(origins, np.float64), np.shape(directions))
    directions = np.asarray(directions, np.float64)
    tri = np.asarray(verts, np.float64)[faces]
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    distance = np.full(len(directions), np.inf)
    triangle = np.full(len(directions), -1, dtype=np.int64)
    bary = np.zeros((len(directions), 3))
    for start in range(0, len(directions), chunk):
        o = origins[start : start + chunk, None]
        d = directions[start : start + chunk, None]
        p = np.cross(d, e2)
        det = np.einsum("rfk,fk->rf", p, e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = o - v0
            u = np.einsum("rfk,rfk->rf", s, p) * inv
            q = np.cross(s, e1)
            v = np.einsum("rk,rfk->rf", d[:, 0], q) * inv
            t = np.einsum("fk,rfk->rf", e2, q) * inv
            valid = (np.abs(det) > 1e-14) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        t = np.where(valid, t, np.inf)
        best = np.argmin(t, axis=1)
        rows = np.arange(len(best))
        found = np.isfinite(t[rows, best])
        sl = slice(start, start + len(best))
        distance[sl] = t[rows, best]
        triangle[sl] = np.where(found, best, -1)
        bu, bv = u[rows, best], v[rows, best]
        bary[sl] = np.where(found[:, None], np.stack([1 - bu - bv, bu, bv], axis=-1), 0.0)
    return RayHits(distance, triangle, bary)


def pixel_rays(pixels: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-space ray directions (z = 1) through pixel centres (x, y) for (fx, fy, cx, cy)."""
    fx, fy, cx, cy = intrinsics
    pixels = np.asarray(pixels, np.float64)
    return np.stack([(pixels[:, 0] - cx) / fx, (pixels[:, 1] - cy) / fy, np.ones(len(pixels))], axis=-1)
