"""The up axis from level cameras, the level camera it gives, and the rotations that level a camera."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lab4d_core.geometry.transforms import look_at
from lab4d_core.geometry.up import estimate_up_axis, levelling_rotations, upright_rotation

WORLD_UP = np.array([0.0, -1.0, 0.0])  # look_at's y-down world


def _degrees(a: np.ndarray, b: np.ndarray) -> float:
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _cameras(azimuth, elevation, object_to_world: np.ndarray, roll=None) -> np.ndarray:
    """(N, 3, 3) object -> camera rotations of level cameras looking at the origin from ``azimuth``
    and ``elevation`` (radians, above the ground), rolled by ``roll`` (radians) about their axes."""
    azimuth, elevation = np.broadcast_arrays(np.atleast_1d(azimuth), np.atleast_1d(elevation))
    eye = 3.0 * np.stack(
        [np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth)], -1
    )
    world_to_camera = look_at(eye, np.zeros_like(eye))[:, :3, :3]
    if roll is not None:
        world_to_camera = Rotation.from_rotvec(np.outer(roll, [0.0, 0.0, 1.0])).as_matrix() @ world_to_camera
    return world_to_camera @ object_to_world


TILTED = Rotation.from_rotvec([0.4, -0.9, 0.6]).as_matrix()
"""An object -> world rotation that leaves the object's up along none of its axes."""


@pytest.mark.parametrize("object_to_world", [np.eye(3), TILTED], ids=["aligned", "tilted"])
def test_level_cameras_give_the_up_axis_whatever_their_pitch(object_to_world):
    up = object_to_world.T @ WORLD_UP
    n = 40
    orbit = _cameras(np.linspace(0, 2 * np.pi, n, endpoint=False), np.radians(25.0), object_to_world)
    # A handheld sweep: 40 degrees of azimuth while the pitch wanders between 5 and 35 degrees.
    pitch = np.radians(20.0 + 15.0 * np.sin(np.linspace(0, 3 * np.pi, n)))
    sweep = _cameras(np.radians(np.linspace(0, 40, n)), pitch, object_to_world)
    for rotations in (orbit, sweep):
        estimate = estimate_up_axis(rotations)
        assert abs(np.linalg.norm(estimate) - 1) < 1e-9
        assert _degrees(estimate, up) < 1.0  # the sign too: -up would be 180 degrees off
    # The mean camera up alone is tilted by the mean pitch (20 degrees): not an estimate.
    assert _degrees(-sweep[:, 1].mean(0), up) > 15.0
    # Tensors (the model's) work too.
    assert _degrees(estimate_up_axis(torch.as_tensor(sweep, dtype=torch.float32)), up) < 1.0


def test_a_few_degrees_of_roll_cost_a_few_degrees():
    rng = np.random.default_rng(0)
    up = TILTED.T @ WORLD_UP
    n = 40
    roll = np.radians(rng.normal(0.0, 3.0, n))
    sweep = _cameras(np.radians(np.linspace(0, 40, n)), np.radians(np.linspace(5, 35, n)), TILTED, roll)
    assert _degrees(estimate_up_axis(sweep), up) < 5.0


def test_a_camera_that_never_turns_gives_its_own_up():
    # Every camera x axis is the same: the data leaves a plane of candidates, the mean camera up decides.
    rotations = _cameras(np.full(10, 0.3), np.radians(20.0), TILTED)
    mean_up = -rotations[:, 1].mean(0)
    assert _degrees(estimate_up_axis(rotations), mean_up) < 0.01
    # A dataset without cameras (identity rotations): the camera's up, -y.
    np.testing.assert_allclose(estimate_up_axis(np.tile(np.eye(3), (5, 1, 1))), WORLD_UP, atol=1e-9)


@pytest.mark.parametrize("pitch", [25.0, -40.0, 90.0, -90.0])
def test_the_upright_camera_stands_on_the_up_axis_and_keeps_the_heading(pitch):
    up = TILTED.T @ WORLD_UP
    camera = _cameras(0.7, np.radians(pitch), TILTED)[0] if abs(pitch) < 90 else None
    if camera is None:
        # Straight down (or up) the up axis: look_at cannot build it, so tilt a level camera.
        level = _cameras(0.7, 0.0, TILTED)[0]
        camera = Rotation.from_rotvec([np.radians(pitch), 0, 0]).as_matrix() @ level
    rotation = upright_rotation(up, camera)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert abs(np.linalg.det(rotation) - 1) < 1e-12
    np.testing.assert_allclose(rotation[1], -up, atol=1e-12)
    assert abs(rotation[2] @ up) < 1e-12  # looks horizontally
    # Its heading is the camera's: the level camera from the same azimuth.
    np.testing.assert_allclose(rotation, _cameras(0.7, 0.0, TILTED)[0], atol=1e-9)


def test_levelling_takes_the_up_axis_to_the_camera_up_by_the_smallest_turn():
    up = TILTED.T @ WORLD_UP
    rotations = _cameras(np.linspace(0, 2, 6), np.radians(np.linspace(-30, 60, 6)), TILTED)
    levels = levelling_rotations(rotations, up)
    np.testing.assert_allclose(levels @ levels.transpose(0, 2, 1), np.tile(np.eye(3), (6, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.einsum("nij,njk,k->ni", levels, rotations, up), np.tile(WORLD_UP, (6, 1)), atol=1e-12)
    # Level cameras pitched by p only need the pitch undone: a turn of p about the camera's x axis.
    angles = np.degrees(np.linalg.norm(Rotation.from_matrix(levels).as_rotvec(), axis=1))
    np.testing.assert_allclose(angles, np.abs(np.linspace(-30, 60, 6)), atol=1e-9)
    # An upside-down object is turned over, not left as it is.
    flipped = levelling_rotations(np.diag([1.0, -1.0, -1.0])[None], WORLD_UP)[0]
    np.testing.assert_allclose(flipped @ np.diag([1.0, -1.0, -1.0]) @ WORLD_UP, WORLD_UP, atol=1e-12)
