"""Exact dense correspondences from rasterised triangle ids and barycentrics.

A pixel at frame t sees a surface point (triangle, barycentric); that same
material point at frame s is the same barycentric combination of the triangle's
vertices at s. Projecting it with camera s gives flow that is exact up to float
precision, and a depth test in frame s tells whether it is visible there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab4d_core.data.synthetic.renderer import Frame

VISIBILITY_TOLERANCE = 0.02
"""Relative depth difference below which a re-projected point counts as visible."""


@dataclass
class View:
    """One rendered array view: the raster, its camera and which pixels lie inside the raw frame."""

    frame: Frame
    world2cam: np.ndarray
    intrinsics: np.ndarray
    """(fx, fy, cx, cy) of the array (crop) pixels."""
    vis2d: np.ndarray
    """(R, R) bool: the array pixel maps inside the raw frame."""
    _hits: dict = field(default_factory=dict, repr=False)
    _static: dict = field(default_factory=dict, repr=False)

    def hits(self, object_id: int, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat pixel indices that see ``object_id``, their triangles' vertex ids and barycentrics."""
        if object_id not in self._hits:
            flat = np.flatnonzero(self.frame.object_id == object_id)
            corners = faces[self.frame.triangle.reshape(-1)[flat]]
            self._hits[object_id] = (flat, corners, self.frame.barycentric.reshape(-1, 3)[flat])
        return self._hits[object_id]

    def static_points(self, object_id: int, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Points of a mesh that never moves: the same at every time, so computed once."""
        if object_id not in self._static:
            self._static[object_id] = self.points(object_id, verts, faces)
        return self._static[object_id]

    def points(self, object_id: int, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(P, 3) positions of the seen material points, given the mesh's vertices at some time."""
        _, corners, bary = self.hits(object_id, faces)
        return np.einsum("pc,pcd->pd", bary, verts[corners].astype(np.float32))


def surface_points(
    view: View,
    moving: dict[int, tuple[np.ndarray, np.ndarray]],
    static: dict[int, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """(H, W, 3) positions, at the time of ``moving``'s vertices, of the material points seen in ``view``.

    Both dicts map object id -> (verts (V, 3), faces (F, 3)); pixels that see
    nothing get NaN.
    """
    out = np.full((view.frame.object_id.size, 3), np.nan, np.float32)
    for object_id, (verts, faces) in moving.items():
        out[view.hits(object_id, faces)[0]] = view.points(object_id, verts, faces)
    for object_id, (verts, faces) in static.items():
        out[view.hits(object_id, faces)[0]] = view.static_points(object_id, verts, faces)
    return out.reshape(view.frame.object_id.shape + (3,))


def project(points: np.ndarray, world2cam: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixel coordinates (..., 2) and camera depth (...)."""
    cam = points @ world2cam[:3, :3].T + world2cam[:3, 3]
    z = cam[..., 2]
    fx, fy, cx, cy = intrinsics
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = np.stack([fx * cam[..., 0] / z + cx, fy * cam[..., 1] / z + cy], axis=-1)
    return uv, z


def exact_flow(source: View, target: View, points_at_target_time: np.ndarray) -> np.ndarray:
    """(R, R, 3) float32 flow (dx, dy, confidence) from ``source`` to ``target``.

    Confidence is 1 where the point is visible in the target (inside its raw
    frame, not occluded) and 0 otherwise; displacements are exact everywhere a
    surface is seen. Pixels outside the source's raw frame are all zero, like
    lab4d's crops.
    """
    height, width = source.vis2d.shape
    flow = np.zeros((height * width, 3), np.float32)
    pixels = np.flatnonzero(source.vis2d.ravel() & (source.frame.object_id.ravel() > 0))
    uv, z = project(points_at_target_time.reshape(-1, 3)[pixels], target.world2cam, target.intrinsics)
    # Points that land absurdly far away (e.g. just in front of the partner camera's
    # plane) would overflow float16 storage; they are invisible there anyway.
    reachable = (z > 0) & np.isfinite(uv).all(-1) & (np.abs(np.nan_to_num(uv)) < 16 * max(height, width)).all(-1)
    pixels, uv, z = pixels[reachable], uv[reachable], z[reachable]
    flow[pixels, 0] = uv[:, 0] - pixels % width
    flow[pixels, 1] = uv[:, 1] - pixels // width

    # Visible where all four pixels around the landing point see this same surface:
    # the nearest pixel alone would accept points just behind a silhouette.
    x0, y0 = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    rows, cols = target.vis2d.shape
    inside = (x0 >= 0) & (x0 + 1 < cols) & (y0 >= 0) & (y0 + 1 < rows)
    pixels, z, corner = pixels[inside], z[inside], (y0 * cols + x0)[inside]
    seen_object = source.frame.object_id.ravel()[pixels]
    target_object, target_depth, target_vis = (
        a.ravel() for a in (target.frame.object_id, target.frame.depth, target.vis2d)
    )
    tolerance = VISIBILITY_TOLERANCE * z
    visible = np.ones(len(pixels), bool)
    for offset in (0, 1, cols, cols + 1):
        index = corner + offset
        visible &= (
            (target_object[index] == seen_object) & (np.abs(target_depth[index] - z) <= tolerance) & target_vis[index]
        )
    flow[pixels[visible], 2] = 1.0
    return flow.reshape(height, width, 3)
