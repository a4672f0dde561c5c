"""A static scene around the character: a textured floor and a surrounding dome.

Its palette overlaps the characters' hues, so foreground and background cannot
be told apart by colour alone (a segmentation shortcut real videos don't offer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from lab4d_core.data.synthetic.characters import random_palette


@dataclass
class SceneMesh:
    """A static mesh in world coordinates with a procedural texture."""

    verts: np.ndarray
    faces: np.ndarray
    palette: np.ndarray
    pattern_scale: float


def background(rng: np.random.Generator, floor_height: float, radius: float = 14.0) -> list[SceneMesh]:
    """Floor (a disc at ``floor_height``, y down) and an inward-facing dome."""
    floor = trimesh.creation.cylinder(radius=radius, height=0.02, sections=64)
    floor = floor.subdivide().subdivide()
    verts = np.asarray(floor.vertices)[:, [0, 2, 1]].copy()  # cylinder axis z -> world y
    verts[:, 1] = floor_height + 0.01 + verts[:, 1]
    floor_faces = np.asarray(floor.faces)[:, ::-1]  # axis swap mirrored the winding

    dome = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    dome_faces = np.asarray(dome.faces)[:, ::-1]  # seen from inside

    return [
        SceneMesh(
            verts.astype(np.float32), floor_faces.astype(np.int32), random_palette(rng), float(rng.uniform(2.0, 5.0))
        ),
        SceneMesh(
            np.asarray(dome.vertices, dtype=np.float32),
            dome_faces.astype(np.int32),
            random_palette(rng),
            float(rng.uniform(0.6, 1.5)),
        ),
    ]
