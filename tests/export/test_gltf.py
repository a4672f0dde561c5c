"""The glb writer: the skin a viewer poses equals linear blend skinning of the bones and root."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lab4d_core.export.gltf import _accessor, pose_glb, read_glb, scene_to_camera, top_weights, write_glb
from lab4d_core.export.motion import Motion
from lab4d_core.geometry.transforms import look_at, make_transform


def _rigid(rng, count, shift=1.0):
    out = np.tile(np.eye(4), (count, 1, 1))
    out[:, :3, :3] = Rotation.random(count, random_state=rng).as_matrix()
    out[:, :3, 3] = rng.normal(0, shift, (count, 3))
    return out


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def glb_rotations(path) -> np.ndarray:
    """(1 + T, 3, 3) the rotations the glb's nodes (the axis flip, then the ``object`` node's root
    motion) apply to object coordinates, read from the file alone: first with the nodes' own
    transforms (what a viewer shows before playing), then at each animation key."""
    doc, blob = read_glb(path)
    names = [node.get("name") for node in doc["nodes"]]
    flip = Rotation.from_quat(doc["nodes"][names.index("opencv_to_gltf")]["rotation"])
    static = Rotation.from_quat(doc["nodes"][names.index("object")]["rotation"])
    animation = doc["animations"][0]
    (channel,) = [
        c for c in animation["channels"] if c["target"] == {"node": names.index("object"), "path": "rotation"}
    ]
    keys = _accessor(doc, blob, animation["samplers"][channel["sampler"]]["output"])
    root = Rotation.concatenate([static, Rotation.from_quat(keys)])
    return (flip * root).as_matrix()


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between unit vectors (..., 3)."""
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0)))


def test_top_weights_keep_the_four_largest_and_renormalise():
    weights = np.array([[0.05, 0.4, 0.1, 0.3, 0.15], [0.2, 0.2, 0.2, 0.2, 0.2]])
    joints, kept = top_weights(weights)
    assert set(joints[0]) == {1, 3, 4, 2}
    np.testing.assert_allclose(kept.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.sort(kept[0]), np.sort([0.1, 0.4, 0.3, 0.15]) / 0.95, atol=1e-6)
    one_bone, one_weight = top_weights(np.ones((3, 1)))
    assert one_bone.shape == (3, 4) and np.allclose(one_weight, [[1, 0, 0, 0]] * 3)


@pytest.fixture
def glb(tmp_path):
    rng = np.random.default_rng(0)
    vertices = rng.normal(0, 0.5, (50, 3)).astype(np.float32)
    faces = rng.integers(0, 50, (30, 3))
    weights = rng.dirichlet(np.ones(3), 50)  # 3 bones: top 4 keeps all, so LBS is exact
    frames, bones = 4, 3
    motion = Motion(
        frame_ids=np.arange(frames),
        field2cam=_rigid(rng, frames, 2.0),
        t_articulation=_rigid(rng, frames * bones).reshape(frames, bones, 4, 4),
        t_articulation_rest=_rigid(rng, bones),
        up_axis=_unit(rng.normal(size=3)),
    )
    path = tmp_path / "animated.glb"
    write_glb(path, vertices, faces, np.linspace(0, 1, 150).reshape(50, 3), weights, motion)
    return path, vertices, weights, motion


def test_posing_the_skin_is_linear_blend_skinning_in_camera_space(glb):
    path, vertices, weights, motion = glb
    homogeneous = np.concatenate([vertices, np.ones((len(vertices), 1))], 1).astype(np.float64)
    # Back from the glb's levelled, y-up scene to each frame's camera, where the exported meshes are.
    posed = scene_to_camera(pose_glb(path, range(len(motion.frame_ids))), motion)
    for k in range(len(motion.frame_ids)):
        per_bone = motion.t_articulation[k] @ np.linalg.inv(motion.t_articulation_rest)  # (B, 4, 4)
        blended = np.einsum("vb,bij->vij", weights, per_bone)
        expected = np.einsum("ij,vjk,vk->vi", motion.field2cam[k], blended, homogeneous)[:, :3]
        np.testing.assert_allclose(posed[k], expected, atol=1e-4)


def test_the_object_stands_on_its_up_axis_when_filmed_from_above(tmp_path):
    rng = np.random.default_rng(1)
    frames = 8
    # A tilted object (up along none of its axes), filmed by level cameras 30 degrees above it.
    object_to_world = Rotation.from_rotvec([0.4, -0.9, 0.6]).as_matrix()
    up = object_to_world.T @ np.array([0.0, -1.0, 0.0])  # the world is y-down
    azimuth, elevation = np.linspace(0, 1.5, frames), np.radians(30.0)
    height = np.full(frames, -np.sin(elevation))
    eye = 4.0 * np.stack([np.cos(elevation) * np.sin(azimuth), height, np.cos(elevation) * np.cos(azimuth)], -1)
    field2cam = look_at(eye, np.zeros_like(eye)) @ make_transform(object_to_world)
    motion = Motion(
        frame_ids=np.arange(frames),
        field2cam=field2cam,
        t_articulation=_rigid(rng, frames * 2).reshape(frames, 2, 4, 4),
        t_articulation_rest=_rigid(rng, 2),
        up_axis=up,
    )
    vertices = rng.normal(0, 0.5, (10, 3)).astype(np.float32)
    path = tmp_path / "upright.glb"
    write_glb(path, vertices, rng.integers(0, 10, (5, 3)), np.full((10, 3), 0.5), rng.dirichlet(np.ones(2), 10), motion)
    in_scene = glb_rotations(path) @ up
    assert angle_degrees(in_scene, np.array([0.0, 1.0, 0.0])).max() < 0.5
    # Without the levelling the camera's 30-degree pitch tilts it.
    flipped = np.diag([1.0, -1.0, -1.0]) @ field2cam[:, :3, :3] @ up
    np.testing.assert_allclose(angle_degrees(flipped, np.array([0.0, 1.0, 0.0])), 30.0, atol=1e-6)


def test_the_file_is_well_formed_glb(glb):
    path, vertices, _, motion = glb
    doc, blob = read_glb(path)
    assert doc["asset"]["version"] == "2.0"
    assert len(blob) == doc["buffers"][0]["byteLength"] and len(blob) % 4 == 0
    position = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    np.testing.assert_allclose(position["min"], vertices.min(0), atol=1e-6)
    assert len(doc["skins"][0]["joints"]) == 3
    # One translation and one rotation channel for the object and for every bone.
    assert len(doc["animations"][0]["channels"]) == 2 * (1 + 3)
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["byteOffset"] + view["byteLength"] <= len(blob)
    json.dumps(doc)


def test_vertex_colours_are_stored_linear_as_gltf_requires(glb):
    path, *_ = glb
    doc, blob = read_glb(path)
    stored = _accessor(doc, blob, doc["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"]).reshape(-1)
    srgb = np.linspace(0, 1, 150)
    # The sRGB curve: black and white stay, mid-grey 0.5 is 21.4% of the light.
    np.testing.assert_allclose(stored[[0, -1]], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.interp(0.5, srgb, stored), 0.214, atol=2e-3)
    assert np.all(np.diff(stored) > 0)


def test_weights_must_match_the_bones(tmp_path, glb):
    _, vertices, _, motion = glb
    with pytest.raises(ValueError, match="do not match"):
        write_glb(tmp_path / "x.glb", vertices, np.zeros((1, 3), int), vertices, np.ones((50, 2)) / 2, motion)
