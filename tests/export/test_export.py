"""``lab4d export`` of an untrained model: its shape is the initial sphere, its bones at rest."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from lab4d_core.eval.evaluate import load_obj_sequence
from lab4d_core.export.export import export_video
from lab4d_core.export.gltf import vertex_normals
from lab4d_core.export.mesh import extract_canonical_mesh
from tests.export.test_gltf import angle_degrees, glb_rotations


@pytest.fixture
def setup(untrained_bob):
    return untrained_bob


def test_marching_cubes_recovers_the_initial_sphere(setup):
    model, _ = setup
    mesh = extract_canonical_mesh(model, inst=0, grid=48)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    expected = 0.6 * float(model.bound) / model.cfg.field_bound  # DynamicModel starts a sphere of 0.6 r
    assert abs(radius.mean() - expected) < 0.05 * expected and radius.std() < 0.05 * expected
    assert mesh.components == 1 and mesh.kept_area_fraction == 1.0
    assert mesh.colors.shape == mesh.vertices.shape and 0 <= mesh.colors.min() and mesh.colors.max() <= 1
    # Faces wind counter-clockwise seen from outside (glTF's front faces): the normals point out.
    outward = np.einsum("vi,vi->v", vertex_normals(mesh.vertices, mesh.faces), mesh.vertices / radius[:, None])
    assert outward.min() > 0.9


def test_export_writes_every_output_and_the_glb_matches_the_meshes(setup, tmp_path):
    model, database = setup
    out = tmp_path / "export" / "1"
    summary = export_video(model, database, 1, out, grid=32)
    meshes = load_obj_sequence(out / "meshes")
    assert len(meshes) == database.videos[1].num_frames == summary.frames
    motion = json.loads((out / "motion.json").read_text())
    assert np.asarray(motion["field2cam"]).shape == (summary.frames, 4, 4)
    assert np.asarray(motion["t_articulation"]).shape == (summary.frames, 4, 4, 4)
    # Posed meshes are the rest mesh carried by the warp and root pose into camera coordinates.
    start = int(database.frame_offset[1])
    field2cam = np.asarray(motion["field2cam"][0])
    rest = trimesh.load(out / "mesh-rest.obj", process=False)
    warped = model.deform.warp_to_frame(
        torch.as_tensor(rest.vertices, dtype=torch.float32)[None], torch.tensor([start])
    )
    expected = warped[0].detach().numpy() @ field2cam[:3, :3].T + field2cam[:3, 3]
    np.testing.assert_allclose(meshes[0][0], expected, atol=1e-4)
    assert trimesh.load(out / "bones.obj", process=False).vertices.shape[0] > 0
    assert summary.glb_mean_error < 0.01
    assert not (tmp_path / "export" / "1.partial").exists()
    # The glb stands on the model's up axis (glTF +Y) in every frame, though the handheld camera looks
    # down on the animal from 4 to 32 degrees above.
    up = model.up_axis.numpy()
    np.testing.assert_allclose(motion["up_axis"], up, atol=1e-6)
    y_up = np.array([0.0, 1.0, 0.0])
    assert angle_degrees(glb_rotations(out / "animated.glb") @ up, y_up).max() < 0.5
    flipped = np.diag([1.0, -1.0, -1.0]) @ np.asarray(motion["field2cam"])[:, :3, :3] @ up
    assert angle_degrees(flipped, y_up).max() > 10.0


def test_an_unknown_video_is_a_clear_error(setup, tmp_path):
    model, database = setup
    from lab4d_core.errors import Lab4dError

    with pytest.raises(Lab4dError, match="videos 0..1"):
        export_video(model, database, 5, tmp_path / "x")


def test_the_glb_passes_the_khronos_validator(setup, tmp_path):
    model, database = setup
    export_video(model, database, 0, tmp_path / "0", grid=32)
    _validate(tmp_path / "0" / "animated.glb")


def _validate(glb: Path) -> None:
    """The Khronos glTF validator finds no error and no warning (skips where it is not installed)."""
    modules = Path(__file__).resolve().parents[2] / ".venv" / "node" / "node_modules"
    if shutil.which("node") is None or not (modules / "gltf-validator").is_dir():
        pytest.skip("the glTF validator is not installed: `make test` installs it with npm into .venv/node")
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("validate_glb.js")), str(glb)],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    assert result.returncode == 0, result.stderr
    issues = json.loads(result.stdout)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_a_skeleton_exports_as_a_rigged_character(untrained_skel, tmp_path):
    """The glb's joints are the tree (named, nested by parents), only the root joint moves, and posing the
    file reproduces the exported meshes; motion.json carries lab4d's joint_so3."""
    from lab4d_core.export.gltf import read_glb

    model, database = untrained_skel
    summary = export_video(model, database, 1, tmp_path / "1", grid=32)
    assert summary.glb_mean_error < 0.01
    tree = model.deform.skeleton
    motion = json.loads((tmp_path / "1" / "motion.json").read_text())
    assert np.asarray(motion["joint_so3"]).shape == (database.videos[1].num_frames, tree.num_joints, 3)
    assert motion["skeleton"]["parents"] == list(tree.parents)
    doc, _ = read_glb(tmp_path / "1" / "animated.glb")
    joints = doc["skins"][0]["joints"]
    index = {node: j for j, node in enumerate(joints)}
    parents = {index[child]: index[node] for node in joints for child in doc["nodes"][node].get("children", [])}
    assert [parents.get(j, -1) for j in range(len(joints))] == list(tree.parents)
    assert [doc["nodes"][node]["name"] for node in joints] == list(tree.joint_names)
    moved = {
        (index[c["target"]["node"]], c["target"]["path"])
        for c in doc["animations"][0]["channels"]
        if c["target"]["node"] in index
    }
    assert {path for joint, path in moved if joint != 0} == {"rotation"} and (0, "translation") in moved
    _validate(tmp_path / "1" / "animated.glb")
