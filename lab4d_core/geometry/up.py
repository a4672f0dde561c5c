"""The object's up axis, estimated from its cameras, and the level cameras and rotations it gives.

People hold cameras level: they pitch them (look down at an animal) and turn them, but hardly
roll them. A camera's x axis (image right) is then horizontal, perpendicular to the up axis, in
every frame, whatever the pitch. So the up axis is the direction most perpendicular to all the
cameras' x axes. The cameras' own up directions are not used for the estimate: a camera looking
down 30 degrees has its up tilted 30 degrees from the object's. Rotations here are object ->
camera (x_cam = R x_obj + t), so their rows are the camera axes in object coordinates; cameras
use OpenCV axes (x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from lab4d_core.geometry.transforms import skew

REGULARISATION = 1e-3
"""Weight (relative to the scatter matrix's trace) of the pull towards the mean camera up in
:func:`estimate_up_axis`. It decides the up axis only when the cameras turned by less than a few
degrees about it; with more turn it tilts the estimate by about
``REGULARISATION * sin(pitch) cos(pitch) / spread`` radians, where ``spread`` is the scatter's
second-smallest eigenvalue (0.04 for a 40-degree sweep, 0.5 for an orbit): at 1e-2 a 40-degree
sweep at 20 degrees pitch would be tilted by 4 degrees, at 1e-3 by less than half a degree."""


def _array(values: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def estimate_up_axis(rotations: np.ndarray | Tensor) -> np.ndarray:
    """(3,) unit up axis in object coordinates from (N, 3, 3) object -> camera rotations.

    With ``a_t`` the camera x axis of frame t in object coordinates, the up axis is the
    eigenvector of the smallest eigenvalue of ``M = mean_t a_t a_t^T``: the direction most
    perpendicular to every ``a_t``. Camera pitch leaves ``a_t`` horizontal and so does not bias
    it; roll does. Its sign is that of the mean camera up ``m = mean_t (-R_t^T e_y)``.

    When the camera never turns relative to the object (every ``a_t`` nearly parallel), two
    eigenvalues of ``M`` are about zero and the data does not say which direction of that plane is
    up. ``M + eps (I - m m^T)`` (``eps``: :data:`REGULARISATION`) settles it: within the plane the
    choice follows the mean camera up, so a fixed camera (or the identity rotations of a dataset
    without cameras) gives its own up direction, tilted by its pitch.
    """
    rotations = _array(rotations).reshape(-1, 3, 3)
    right, camera_up = rotations[:, 0], -rotations[:, 1]
    mean_up = camera_up.mean(0)
    mean_up /= max(float(np.linalg.norm(mean_up)), 1e-12)
    scatter = right.T @ right / len(rotations)
    regularised = scatter + REGULARISATION * np.trace(scatter) * (np.eye(3) - np.outer(mean_up, mean_up))
    up = np.linalg.eigh(regularised)[1][:, 0]
    return up if up @ mean_up >= 0 else -up


def upright_rotation(up: np.ndarray | Tensor, forward_rotation: np.ndarray | Tensor) -> np.ndarray:
    """(3, 3) object -> camera rotation of a level camera: y axis (image down) along ``-up`` and
    viewing direction the horizontal part of the viewing direction of ``forward_rotation``
    (object -> camera, e.g. the first frame's). A camera that looks straight along the up axis
    has no horizontal viewing direction; the level camera then faces the way its image's top
    (looking down) or bottom (looking up) points, i.e. where it would face if tilted level."""
    up = _array(up)
    up = up / np.linalg.norm(up)
    forward_rotation = _array(forward_rotation)
    view, down = forward_rotation[2], forward_rotation[1]
    forward = view - (view @ up) * up
    if np.linalg.norm(forward) < 1e-6:
        # Tilting a camera that looks down (view . up < 0) level turns its image's top forward.
        forward = np.sign(view @ up) * (down - (down @ up) * up)
    forward /= np.linalg.norm(forward)
    return np.stack([np.cross(-up, forward), -up, forward])


def levelling_rotations(rotations: np.ndarray | Tensor, up: np.ndarray | Tensor) -> np.ndarray:
    """(N, 3, 3) rotations in camera coordinates, one per object -> camera rotation (N, 3, 3): the
    smallest rotation that takes the object's up axis (``R_t @ up``) to the camera's up (``-e_y``),
    i.e. that removes the camera's pitch and roll relative to the object but keeps its heading."""
    rotations, up = _array(rotations).reshape(-1, 3, 3), _array(up)
    source = rotations @ (up / np.linalg.norm(up))
    target = np.array([0.0, -1.0, 0.0])
    cross = skew(np.cross(source, target))  # sin(angle) times the unit axis
    cos = source @ target
    # Rodrigues' formula with (1 - cos) / sin^2 = 1 / (1 + cos); it is exact down to an upside-down
    # object, where any half turn about a horizontal axis does and x is taken.
    flipped = cos < -1.0 + 1e-12
    factor = 1.0 / np.where(flipped, 1.0, 1.0 + cos)
    out = np.eye(3) + cross + factor[:, None, None] * (cross @ cross)
    out[flipped] = np.diag([1.0, -1.0, -1.0])
    return out
