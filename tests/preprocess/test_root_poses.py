"""Initial root poses from what the data holds: root poses, background cameras, or flow and depth alone."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lab4d_core.data.manifest import read_manifest
from lab4d_core.geometry.transforms import so3_exp
from lab4d_core.geometry.up import estimate_up_axis
from lab4d_core.preprocess.cameras import view_rotation
from lab4d_core.preprocess.root_poses import (
    _elongated,
    heading_offset,
    normalised_silhouettes,
    rotations_from_background,
    silhouette_depths,
    silhouette_headings,
)
from lab4d_core.preprocess.scene import SceneInfo

WORLD_UP = np.array([0.0, -1.0, 0.0])
"""The synthetic world is y-down."""


def _without_cameras(root: Path, out: Path, keep: tuple[str, ...]) -> Path:
    """A copy of a synthetic dataset whose Cameras/ hold only the files named in ``keep``."""
    shutil.copytree(root, out)
    for path in (out / "database/processed/Cameras").rglob("*.npy"):
        if path.stem not in keep:
            path.unlink()
    return out / "manifest.json"


def _truth(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    folders = [root / "GroundTruth" / seq for seq in read_manifest(root / "manifest.json").videos]
    return tuple(np.concatenate([np.load(folder / name) for folder in folders]) for name in (name, "world2cam.npy"))


def _aligned_errors(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Degrees between rotations after the one rotation of the canonical frame that fits best."""
    u, _, vt = np.linalg.svd(np.einsum("nji,njk->ik", truth, learned))
    fit = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return np.degrees(Rotation.from_matrix(np.einsum("nji,njk->nik", truth @ fit, learned)).magnitude())


def _true_up(learned: np.ndarray, world2cam: np.ndarray) -> np.ndarray:
    """The world's vertical in the learned object coordinates, through each frame's true camera."""
    mean = np.einsum("nji,nj->ni", learned, world2cam[:, :3, :3] @ WORLD_UP).mean(0)
    return mean / np.linalg.norm(mean)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


@pytest.mark.parametrize("keep", [("00",), ()], ids=["background-cameras", "nothing"])
def test_without_root_poses_the_start_is_near_the_truth_upright_and_shared_by_both_videos(tiny_quad, tmp_path, keep):
    manifest = _without_cameras(tiny_quad, tmp_path / "data", keep)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = SceneInfo.from_database(read_manifest(manifest).database(), "crop")
    assert scene.root_pose_sources == ["00" if keep else "flow"] * 2
    # Flow and depth alone leave the user a warning that quality will suffer.
    assert any("quality will suffer" in str(w.message) for w in caught) == (not keep)
    field2cam, world2cam = _truth(tiny_quad, "field2cam.npy")
    rotations = scene.root_poses[:, :3, :3]
    # One rotation aligns both videos' object frames with the truth: their headings were made to agree.
    errors = _aligned_errors(rotations, field2cam[:, :3, :3])
    assert np.median(errors) < 8.0
    # The object frame is upright: its -y is the world's vertical, and the cameras say so too.
    assert _angle(_true_up(rotations, world2cam), WORLD_UP) < 5.0
    assert _angle(estimate_up_axis(rotations), _true_up(rotations, world2cam)) < 5.0
    # Depth maps place the object at the truth's scale in every video.
    ratio = scene.root_poses[:, 2, 3] / field2cam[:, 2, 3]
    assert np.all(np.abs(np.median(ratio) - 1.0) < 0.15)


def test_the_up_axis_is_the_vertical_with_the_dataset_cameras(tiny_quad):
    scene = SceneInfo.from_database(read_manifest(tiny_quad / "manifest.json").database(), "crop")
    assert scene.root_pose_sources == ["01-canonical"] * 2
    assert _angle(estimate_up_axis(scene.root_poses[:, :3, :3]), WORLD_UP) < 5.0


def test_background_cameras_compose_with_one_upright_object_orientation():
    # Level cameras (no roll) orbiting at 20 degrees pitch, in a world whose vertical is tilted.
    tilt = Rotation.from_rotvec([0.3, 0.0, -0.2]).as_matrix()
    # Turn about the vertical, then pitch about the camera's x axis: level cameras of a y-down world.
    level = Rotation.from_euler("yx", np.stack([np.linspace(0, 2.0, 24), np.full(24, 0.35)], -1)).as_matrix()
    world2cam = level @ tilt.T
    rotations = rotations_from_background(world2cam)
    object_to_world = world2cam[0].T @ rotations[0]
    # The same object orientation in every frame ...
    assert np.allclose(np.einsum("nji,njk->nik", world2cam, rotations), object_to_world, atol=1e-9)
    # ... whose -y is the world's vertical (tilt @ -e_y).
    assert _angle(object_to_world @ WORLD_UP, tilt @ WORLD_UP) < 0.5


def test_a_turn_between_two_videos_is_found_from_their_silhouettes(tiny_quad):
    """The second video's upright frame turned by 100 degrees: scoring its views against the first's finds the
    turn back within a step of the search."""
    database = read_manifest(tiny_quad / "manifest.json").database()
    videos = database.videos
    crop2raw = [np.asarray(v.array("crop2raw", "crop"), np.float64) for v in videos]
    silhouettes = [normalised_silhouettes(v, "crop", c) for v, c in zip(videos, crop2raw)]
    rotations = [v.camera("01-canonical")[:, :3, :3] for v in videos]
    turned = rotations[1] @ so3_exp(np.radians(100.0) * WORLD_UP)
    found = heading_offset(turned, silhouettes[1], rotations[0], silhouettes[0])
    assert found is not None
    # The turn that undoes it: (found + 100) is a multiple of 360 within one 10-degree step.
    assert abs((np.degrees(found) + 100.0 + 180.0) % 360.0 - 180.0) <= 10.0


def test_given_root_poses_are_trusted_unless_the_flow_contradicts_them(tiny_quad, tmp_path):
    truth = _without_cameras(tiny_quad, tmp_path / "truth", ("00", "00-canonical", "01-canonical"))
    scene = SceneInfo.from_database(read_manifest(truth).database(), "crop")
    assert scene.root_pose_estimated == [False, False]
    # A wobble of 20 degrees per quarter of the video, as a viewpoint network's errors: its poses are an estimate.
    wobbly = _without_cameras(tiny_quad, tmp_path / "wobbly", ("00", "00-canonical", "01-canonical"))
    cameras = sorted((wobbly.parent / "database/processed/Cameras/Full-Resolution").iterdir())[1]
    poses = np.load(cameras / "01-canonical.npy")
    angles = np.radians(20.0) * np.sin(np.linspace(0, 4 * np.pi, len(poses)))
    poses[:, :3, :3] = Rotation.from_rotvec(angles[:, None] * [0.0, 1.0, 0.0]).as_matrix() @ poses[:, :3, :3]
    np.save(cameras / "01-canonical.npy", poses)
    with pytest.warns(UserWarning, match="turn unlike the optical flow"):
        scene = SceneInfo.from_database(read_manifest(wobbly).database(), "crop")
    assert scene.root_pose_estimated == [False, True]


def _ellipsoid_masks(rotations, depths, focals, size=96):
    """Silhouettes (N, size, size) of an ellipsoid 1 x 0.4 x 0.3 long (weak perspective), turned by ``rotations``,
    at ``depths``, in arrays of focal lengths ``focals`` (N, 2) (anisotropic, as crops are)."""
    shape = np.diag([1.0, 0.4, 0.3]) ** 2
    ys, xs = np.mgrid[:size, :size] - (size - 1) / 2
    masks = []
    for rotation, depth, (fx, fy) in zip(rotations, depths, focals):
        image = (rotation @ shape @ rotation.T)[:2, :2] / depth**2
        points = np.stack([xs / fx, ys / fy], -1)
        masks.append(np.einsum("hwi,ij,hwj->hw", points, np.linalg.inv(image), points) <= 1.0)
    return np.stack(masks)


def test_silhouettes_of_a_turning_object_give_its_depths_once_its_rotations_are_known():
    """An elongated object seen from the side, then end-on (a camera orbiting at one distance, then coming
    closer): its mask's area alone swings the depth with the view; one ellipsoid fitted through the known
    rotations keeps the true depths up to one scale."""
    count = 24
    rotations = Rotation.from_euler("yx", np.stack([np.linspace(0, np.pi, count), np.full(count, 0.4)], -1))
    rotations = rotations.as_matrix()
    depths = np.concatenate([np.full(12, 4.0), np.linspace(4.0, 3.0, 12)])
    focals = np.stack([np.linspace(60, 90, count), np.linspace(80, 50, count)], -1)
    masks = _ellipsoid_masks(rotations, depths, focals)
    assert masks.sum((1, 2)).min() > 100 and not masks[:, 0].any() and not masks[:, :, 0].any()

    def spread(estimate):
        return float(np.log(estimate / depths).std())

    assert spread(silhouette_depths(masks, focals[:, 0], focals[:, 1])) > 0.15
    assert spread(silhouette_depths(masks, focals[:, 0], focals[:, 1], rotations)) < 0.02
    # Crops stretched unequally in x and y do not change what the area says.
    square = _ellipsoid_masks(rotations, depths, np.full((count, 2), 70.0))
    stretched, isotropic = (
        silhouette_depths(m, f[:, 0], f[:, 1]) for m, f in ((masks, focals), (square, np.full((count, 2), 70.0)))
    )
    assert np.abs(np.log(stretched / isotropic)).max() < 0.03


def _turn(angles: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(angles)[:, None] * [0.0, 1.0, 0.0]).as_matrix()


@pytest.mark.parametrize("turn_degrees", [0.0, 180.0])
def test_silhouettes_tell_how_far_an_animal_turned_while_the_camera_moved(turn_degrees):
    """A camera circling 60 degrees, 30 degrees above an elongated object that turns about its vertical meanwhile
    (as demo-quad-turn's quadruped): the background cameras alone leave the object facing one way; its
    silhouettes give the turn back."""
    count = 48
    cameras = np.stack([view_rotation(azimuth, 30.0) for azimuth in np.linspace(0.0, 60.0, count)])
    turn = np.radians(np.linspace(0.0, turn_degrees, count))
    masks = _ellipsoid_masks(cameras @ _turn(turn), np.full(count, 4.0), np.full((count, 2), 80.0))
    masks[20] = False
    headings = silhouette_headings(masks, np.full(count, 80.0), np.full(count, 80.0), cameras)
    # Within the 5-degree grid, the frame without a mask too.
    assert np.degrees(np.abs(headings - turn)).max() < 5.0


def test_only_a_body_longer_than_wide_and_tall_takes_headings_from_its_silhouettes():
    """Upright people's silhouettes flipped their headings by 180 degrees (demo-people): a body must be elongated
    horizontally, as an animal's is, for its silhouettes to say which way it faces."""
    quadruped, person, ball = np.diag([0.3, 0.4, 1.0]) ** 2, np.diag([0.35, 1.0, 0.25]) ** 2, np.eye(3)
    turned = _turn([0.7])[0]
    assert _elongated(quadruped) and _elongated(turned @ quadruped @ turned.T)
    assert not _elongated(person) and not _elongated(ball)
    # A fit that is no ellipsoid (a view that never changes leaves a direction unconstrained) tells nothing.
    assert not _elongated(np.diag([-0.01, 0.1, 1.0]))


def test_a_frame_without_a_mask_takes_its_neighbours_depth():
    count = 9
    rotations = Rotation.from_euler("y", np.linspace(0, 1.0, count)[:, None]).as_matrix()
    depths = np.linspace(3.0, 5.0, count)
    focals = np.full((count, 2), 150.0)
    masks = _ellipsoid_masks(rotations, depths, focals, size=160)
    masks[4] = False
    found = silhouette_depths(masks, focals[:, 0], focals[:, 1], rotations)
    assert np.isfinite(found).all()
    assert found[4] == pytest.approx(np.sqrt(found[3] * found[5]))
    assert np.abs(np.log(found / depths) - np.log(found[0] / depths[0])).max() < 0.03
