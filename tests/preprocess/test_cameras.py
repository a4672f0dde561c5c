"""Camera initialisation for users' own videos: background cameras from frames, root rotations from keyframes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.transforms import so3_exp
from lab4d_core.geometry.up import estimate_up_axis, upright_rotation
from lab4d_core.preprocess.cameras import background_cameras, manual_root_rotations, num_pairs, view_rotation

SIZE = 160
KS = np.array([150.0, 150.0, (SIZE - 1) / 2, (SIZE - 1) / 2])
TILE = 16.0
PLANES = [  # (normal axis, coordinate, texture axes): a room seen from inside, y down
    (1, 1.5, (0, 2)),  # floor
    (2, 8.0, (0, 1)),  # back wall
    (0, -5.0, (2, 1)),  # left wall
    (0, 5.0, (2, 1)),  # right wall
    (1, -3.0, (0, 2)),  # ceiling
]


def _texture(seed: int, size: int = 512) -> np.ndarray:
    """Blobs at several scales: corners at every scale for features, no repeats to confuse matching."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size), np.float32)
    for cells in (8, 32, 128):
        out += cv2.resize(rng.random((cells, cells), np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    out = (out - out.min()) / (out.max() - out.min())
    colour = rng.random(3) * 0.5 + 0.5
    return np.clip(out[..., None] * colour * 255, 0, 255).astype(np.uint8)


def _render(world2cam: np.ndarray, textures: list[np.ndarray]) -> np.ndarray:
    """Ray-cast the textured room (one texture per plane, tiles of :data:`TILE` world units: about a texel per
    pixel on the walls, so that nearest-texel sampling does not flicker)."""
    ys, xs = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    rays = np.stack([(xs - KS[2]) / KS[0], (ys - KS[3]) / KS[1], np.ones_like(xs)], -1) @ world2cam[:3, :3]
    centre = -world2cam[:3, :3].T @ world2cam[:3, 3]
    nearest = np.full((SIZE, SIZE), np.inf)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    for (axis, coordinate, (u, v)), texture in zip(PLANES, textures):
        with np.errstate(divide="ignore"):
            distance = (coordinate - centre[axis]) / rays[..., axis]
        hit = (distance > 0) & (distance < nearest)
        points = centre + distance[..., None] * rays
        scale = texture.shape[0] / TILE
        map_u = (points[..., u] * scale).astype(np.float32)
        map_v = (points[..., v] * scale).astype(np.float32)
        sampled = cv2.remap(texture, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        image[hit], nearest[hit] = sampled[hit], distance[hit]
    return image


def _cameras(num: int, step: float = 1.0) -> np.ndarray:
    """A handheld pan: 20 degrees of yaw, a little tilt and roll, and a sideways ``step`` with parallax (0: a
    camera on a tripod, which only turns)."""
    t = np.linspace(0.0, 1.0, num)
    world2cam = np.tile(np.eye(4), (num, 1, 1))
    for k, s in enumerate(t):
        rotation = so3_exp(np.radians([6.0 * np.sin(3 * s), 20.0 * s, 2.0 * s]))
        centre = step * np.array([0.8 * s, -0.1 * s, 0.3 * s])
        world2cam[k, :3, :3] = rotation
        world2cam[k, :3, 3] = -rotation @ centre
    return world2cam


def _relative_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Degrees between each frame's rotation relative to frame 0, estimated and true."""
    est = estimate[:, :3, :3] @ estimate[0, :3, :3].T
    true = truth[:, :3, :3] @ truth[0, :3, :3].T
    return np.degrees(Rotation.from_matrix(est @ true.transpose(0, 2, 1)).magnitude())


@pytest.fixture(scope="module")
def scene():
    textures = [_texture(seed) for seed in range(len(PLANES))]
    truth = _cameras(12)
    frames = np.stack([_render(camera, textures) for camera in truth])
    return frames, truth


class _Counter:
    count = 0

    def update(self, n):
        self.count += n


def test_background_cameras_recover_the_rotations_and_the_translation_direction(scene):
    frames, truth = scene
    progress = _Counter()
    estimate = background_cameras(frames, np.zeros(frames.shape[:3], np.int8), KS, progress)
    assert estimate.shape == (12, 4, 4)
    np.testing.assert_allclose(estimate[0], np.eye(4), atol=1e-9)
    assert _relative_errors(estimate, truth).max() < 1.0
    assert progress.count == num_pairs(12)
    # Centres up to one scale: the path's direction is right.
    centre = -np.einsum("nji,nj->ni", estimate[:, :3, :3], estimate[:, :3, 3])
    true = np.einsum("ij,nj->ni", truth[0, :3, :3], -np.einsum("nji,nj->ni", truth[:, :3, :3], truth[:, :3, 3]))
    cosine = centre[-1] @ true[-1] / np.linalg.norm(centre[-1]) / np.linalg.norm(true[-1])
    assert cosine > np.cos(np.radians(5.0))


def test_a_camera_that_only_turns_keeps_its_place():
    """Without parallax the translation is unobservable (the essential matrix degenerates): the rotations still
    come out right, and the camera stays put."""
    textures = [_texture(seed) for seed in range(len(PLANES))]
    truth = _cameras(8, step=0.0)
    frames = np.stack([_render(camera, textures) for camera in truth])
    estimate = background_cameras(frames, np.zeros(frames.shape[:3], np.int8), KS)
    assert _relative_errors(estimate, truth).max() < 1.0
    np.testing.assert_allclose(estimate[:, :3, 3], 0.0, atol=1e-6)


def test_masked_object_pixels_do_not_move_the_cameras(scene):
    """A textured patch sliding across the view moves unlike the background: masked, it changes nothing."""
    frames, truth = scene
    frames, masks = frames.copy(), np.zeros(frames.shape[:3], np.int8)
    patch = _texture(99)[:70, :70]
    for k in range(len(frames)):
        x, y = 10 + 6 * k, 40 + 3 * k
        frames[k, y : y + 70, x : x + 70] = patch
        masks[k, y : y + 70, x : x + 70] = 1
    masked = background_cameras(frames, masks, KS)
    assert _relative_errors(masked, truth).max() < 1.5


def test_frames_without_background_are_interpolated(scene):
    """The object fills frames 5 and 6: their cameras come from their neighbours, the rest stays right."""
    frames, truth = scene
    masks = np.zeros(frames.shape[:3], np.int8)
    masks[5:7] = 1
    estimate = background_cameras(frames, masks, KS)
    errors = _relative_errors(estimate, truth)
    assert np.delete(errors, [5, 6]).max() < 1.0
    assert errors[5:7].max() < 3.0


def test_a_single_frame_is_the_world():
    frames = np.zeros((1, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(background_cameras(frames, np.zeros((1, 32, 32), np.int8), KS), np.eye(4)[None])


def _camera_centre(rotation: np.ndarray) -> np.ndarray:
    """Where a camera looking at the object's centre (on its optical axis, one unit away) stands."""
    return -rotation.T @ np.array([0.0, 0.0, 1.0])


def test_manual_keyframes_follow_the_documented_conventions():
    keyframes = [
        {"frame": 0, "azimuth": 0, "elevation": 0, "roll": 0},
        {"frame": 4, "azimuth": 90, "elevation": 0, "roll": 0},
        {"frame": 8, "azimuth": 0, "elevation": 30, "roll": 0},
        {"frame": 9, "azimuth": 0, "elevation": 0, "roll": 90},
    ]
    rotations = manual_root_rotations(keyframes, 10)
    assert rotations.shape == (10, 3, 3)
    # Front view: the camera stands in front of the object (+z, where it faces), upright (image down = +y).
    np.testing.assert_allclose(_camera_centre(rotations[0]), [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(rotations[0][1], [0, 1, 0], atol=1e-9)
    # Azimuth 90: on the object's left side (-x; its right is +x), seeing that side.
    np.testing.assert_allclose(_camera_centre(rotations[4]), [-1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(rotations[4][2], [1, 0, 0], atol=1e-9)
    # Elevation 30: above (-y is up), the viewing ray pointing 30 degrees down (+y) in object coordinates.
    np.testing.assert_allclose(rotations[8][2] @ [0, 1, 0], np.sin(np.radians(30)), atol=1e-9)
    assert _camera_centre(rotations[8])[1] < 0
    # Roll 90: the object turns clockwise in the image: its up (-y) points to the image's right (+x).
    np.testing.assert_allclose(rotations[9] @ [0, -1, 0], [1, 0, 0], atol=1e-9)


def test_manual_keyframes_are_upright_for_the_up_axis_estimate():
    """Rolls of zero keep the camera level: the up axis the trainer estimates is the canonical -y, and the
    level camera facing the first view is the front view turned by its azimuth."""
    keyframes = [{"frame": k, "azimuth": 40 * k, "elevation": 25} for k in range(4)]
    rotations = manual_root_rotations(keyframes, 4)
    up = estimate_up_axis(rotations)
    np.testing.assert_allclose(up, [0, -1, 0], atol=1e-3)  # up.REGULARISATION tilts it by about that
    np.testing.assert_allclose(upright_rotation([0, -1, 0], rotations[1]), view_rotation(40.0), atol=1e-9)


def test_manual_keyframes_are_slerped_between_and_held_beyond():
    keyframes = [{"frame": 6, "azimuth": 80, "elevation": 10, "roll": 0}, {"frame": 2, "azimuth": 20}]
    rotations = manual_root_rotations(keyframes, 9)
    first, last = view_rotation(20.0), view_rotation(80.0, 10.0)
    np.testing.assert_allclose(rotations[:3], np.broadcast_to(first, (3, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(rotations[6:], np.broadcast_to(last, (3, 3, 3)), atol=1e-9)
    angle = Rotation.from_matrix(last @ first.T).magnitude()
    to_first = Rotation.from_matrix(rotations[4] @ first.T).magnitude()
    to_last = Rotation.from_matrix(last @ rotations[4].T).magnitude()
    np.testing.assert_allclose([to_first, to_last], [angle / 2, angle / 2], atol=1e-9)


@pytest.mark.parametrize(
    "keyframes, message",
    [
        ([], "none given"),
        ([{"frame": 10, "azimuth": 0}], "among the 10 kept frames"),
        ([{"frame": 1, "azimuth": 0}, {"frame": 1, "azimuth": 5}], "two keyframes"),
        ([{"frame": 1, "azimut": 0}], "at least 'frame' and 'azimuth'"),
        ([{"frame": 1, "azimuth": 0, "pitch": 3}], "unknown keys"),
        ([{"frame": 1, "azimuth": "left"}], "must be numbers"),
    ],
)
def test_manual_keyframe_mistakes_are_reported(keyframes, message):
    with pytest.raises(Lab4dError, match=message):
        manual_root_rotations(keyframes, 10)
