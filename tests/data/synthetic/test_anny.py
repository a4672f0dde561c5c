"""People from the anny body model on our 18-joint human skeleton (character: anny)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lab4d_core.config import SynthConfig, load_dataset_config
from lab4d_core.data.synthetic import people as people_module
from lab4d_core.data.synthetic.people import JOINT_BONES, PersonBuild, anny_person
from lab4d_core.data.synthetic.synthesize import synthesize
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.raycast import raycast
from lab4d_core.geometry.skeletons import Skeleton, get_skeleton
from lab4d_core.geometry.transforms import apply_transform

DEMO = load_dataset_config(Path(__file__).parents[3] / "config" / "datasets" / "demo-people.yaml").source.synthetic


@pytest.fixture(scope="session")
def demo_people():
    """The four people of demo-people.yaml, as the synthesizer builds them (the first anny load may take a minute
    while anny builds its model cache; ~3 s after)."""
    pytest.importorskip("anny", reason="anny is not installed: `make setup` installs it (the `people` extra)")
    return [
        anny_person(DEMO.seed * 1000 + k, PersonBuild.spread(k, DEMO.num_videos, DEMO.seed))
        for k in range(DEMO.num_videos)
    ]


def _joint(character, name: str) -> np.ndarray:
    return character.skeleton.rest_joints[character.skeleton.joint_names.index(name)]


def _limb(character, bones: tuple[str, str]) -> float:
    lengths = character.skeleton.bone_lengths()
    return float(sum(lengths[character.skeleton.joint_names.index(f"left_{b}")] for b in bones))


def test_the_mapping_names_every_joint_of_our_human_once():
    human = get_skeleton("human")
    assert set(JOINT_BONES) == set(human.joint_names)
    assert len(set(JOINT_BONES.values())) == human.num_joints


def test_joints_sit_in_their_body_parts_upright_and_facing_forward(demo_people):
    for person in demo_people:
        skeleton = person.skeleton
        assert skeleton.name == "human" and skeleton.joint_names == get_skeleton("human").joint_names
        np.testing.assert_allclose(_joint(person, "spine0"), 0.0, atol=1e-12)  # the pelvis is the origin
        # y is down: head above shoulders above pelvis above knees above feet.
        heights = [_joint(person, n)[1] for n in ("head", "left_arm", "spine0", "left_lower_leg", "left_foot")]
        assert np.all(np.diff(heights) > 0.05), heights
        assert _joint(person, "spine1")[1] < 0 and _joint(person, "spine2")[1] < _joint(person, "spine1")[1]
        # Left chains at +x (the hand furthest out), midline joints at x = 0, the same stature as the mesh.
        assert _joint(person, "left_hand")[0] > _joint(person, "left_forearm")[0] > _joint(person, "left_arm")[0] > 0.1
        for name in ("spine0", "spine1", "spine2", "head"):
            assert abs(_joint(person, name)[0]) < 1e-9
        verts = person.rest_verts
        assert 1.45 < verts[:, 1].max() - verts[:, 1].min() < 2.0  # metres
        assert verts[:, 1].max() - _joint(person, "left_foot")[1] < 0.12  # ankles just above the soles
        # Facing +z: the toes and the nose are in front of the ankles and the neck.
        toes = verts[verts[:, 1] > verts[:, 1].max() - 0.02]
        assert toes[:, 2].max() > _joint(person, "left_foot")[2] + 0.1
        face = verts[np.abs(verts[:, 1] - (_joint(person, "head")[1] - 0.12)) < 0.02]
        assert face[:, 2].max() > _joint(person, "head")[2] + 0.08


def test_every_joint_lies_inside_the_body(demo_people):
    person = demo_people[0]
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    tri = person.rest_verts[person.faces].astype(np.float64)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    for name, joint in zip(person.skeleton.joint_names, person.skeleton.rest_joints):
        hits = raycast(joint, directions, person.rest_verts, person.faces)
        assert hits.hit.all(), name
        # The first surface each ray meets faces away from the joint: it leaves the body there.
        assert (np.einsum("rk,rk->r", directions, normals[hits.triangle]) > 0).all(), name


def test_skin_weights_are_four_normalised_influences_that_follow_the_body_parts(demo_people):
    person = demo_people[1]
    weights, verts, names = person.skin_weights, person.rest_verts, person.skeleton.joint_names
    assert weights.shape == (len(verts), 18) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert ((weights > 0).sum(axis=1) <= 4).all() and (weights >= 0).all()
    owner = np.asarray(names)[np.argmax(weights, axis=1)]
    assert set(owner) == set(names)  # every joint carries a part of the body
    # Fingertips to the hands, soles and toes to the feet, the crown to the head.
    assert owner[np.argmax(verts[:, 0])] == "left_hand" and owner[np.argmin(verts[:, 0])] == "right_hand"
    assert set(owner[verts[:, 1] > verts[:, 1].max() - 0.01]) <= {"left_foot", "right_foot"}
    assert owner[np.argmin(verts[:, 1])] == "head"


def test_zero_rotations_give_the_rest_mesh_and_turning_a_joint_moves_its_part(demo_people):
    person = demo_people[2]
    zero = np.zeros((1, 18, 3))
    np.testing.assert_allclose(person.pose(person.skeleton.skinning_transforms(zero))[0], person.rest_verts, atol=1e-6)
    bent = zero.copy()
    bent[0, person.skeleton.joint_names.index("left_lower_leg"), 0] = -1.0  # bend the knee
    moved = np.linalg.norm(person.pose(person.skeleton.skinning_transforms(bent))[0] - person.rest_verts, axis=1)
    below_knee = person.rest_verts[:, 1] > _joint(person, "left_lower_leg")[1] + 0.1
    left = person.rest_verts[:, 0] > 0.05
    assert moved[below_knee & left].min() > 0.02 and moved[~left].max() < 1e-6


def test_demo_people_differ_in_build_by_15_percent_in_legs_and_arms_with_equal_sides(demo_people):
    legs = [_limb(p, ("lower_leg", "foot")) for p in demo_people]
    arms = [_limb(p, ("forearm", "hand")) for p in demo_people]
    assert max(legs) / min(legs) >= 1.15, legs
    assert max(arms) / min(arms) >= 1.15, arms
    builds = [p.meta["anny"] for p in demo_people]
    for key in ("gender", "age", "weight", "height"):
        assert len({round(b[key], 3) for b in builds}) == len(builds), key
    for person in demo_people:
        skeleton = person.skeleton
        np.testing.assert_allclose(skeleton.bone_lengths(), skeleton.bone_lengths()[skeleton.symmetry], atol=1e-9)
        assert abs(_limb(person, ("lower_leg", "foot")) - person.meta["anny"]["leg_length"]) < 2e-3


def test_people_wear_clothes_of_their_own(demo_people):
    for person in demo_people:
        assert person.colors.shape == (len(person.rest_verts), 4)
        assert (person.colors >= 0).all() and (person.colors <= 1).all()
        assert all(count > 0 for count in person.meta["regions"].values()), person.meta["regions"]
    shirts = [p.meta["outfit"]["shirt"] for p in demo_people]
    assert min(np.linalg.norm(np.subtract(a, b)) for a in shirts for b in shirts if a is not b) > 0.02


def test_a_seed_alone_gives_an_adult_of_its_own_and_always_the_same(demo_people):
    one, again, other = anny_person(7), anny_person(7), anny_person(8)
    np.testing.assert_array_equal(one.rest_verts, again.rest_verts)
    np.testing.assert_array_equal(one.colors, again.colors)
    assert np.abs(one.skeleton.bone_lengths() - other.skeleton.bone_lengths()).max() > 0.005
    assert 1.45 < one.meta["stature"] < 2.0 and 0.62 <= one.meta["anny"]["age"] <= 0.9


def test_a_missing_anny_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "anny", None)  # import anny now raises ImportError
    people_module.anny_model.cache_clear()
    try:
        with pytest.raises(Lab4dError, match=r"pip install anny==.*make setup"):
            anny_person(0)
    finally:
        people_module.anny_model.cache_clear()


def _load(folder: Path) -> dict:
    out = {path.stem: np.load(path) for path in folder.glob("*.npy")}
    for name in ("skeleton", "meta"):
        if (folder / f"{name}.json").exists():
            out[name] = json.loads((folder / f"{name}.json").read_text())
    return out


def test_a_tiny_anny_synthesis_writes_ground_truth_that_our_skinning_reproduces(tmp_path, demo_people):
    cfg = SynthConfig(
        character="anny",
        single_inst=False,
        num_videos=2,
        num_frames=9,
        resolution=64,
        train_res=32,
        prefixes=["crop"],
        supersample=1,
        motions=["walk", "wave"],
        reanimate=[[0, 1]],
    )
    synthesize(cfg, tmp_path / "tiny")
    videos = [_load(tmp_path / "tiny" / "GroundTruth" / f"tiny-000{k}") for k in range(2)]
    for truth in videos:
        info = truth["skeleton"]
        assert info["name"] == "human" and len(info["joint_names"]) == 18
        assert truth["joint_so3"].shape == (9, 18, 3) and truth["meta"]["kind"] == "anny"
        skeleton = Skeleton("human", tuple(info["joint_names"]), tuple(info["parents"]), truth["rest_joints"])
        np.testing.assert_allclose(skeleton.bone_lengths(), truth["bone_lengths"], atol=1e-6)
        skinning = skeleton.skinning_transforms(truth["joint_so3"].astype(np.float64))
        np.testing.assert_allclose(skinning, truth["bone_transforms"], atol=1e-5)
        blended = np.einsum("vj,njab->nvab", truth["skin_weights"], skinning)
        posed = np.einsum("nvab,vb->nva", blended[..., :3, :3], truth["rest_verts"]) + blended[..., :3, 3]
        in_camera = apply_transform(truth["field2cam"].astype(np.float64), posed)
        np.testing.assert_allclose(in_camera, truth["verts_cam"], atol=1e-4)
    assert abs(videos[0]["bone_lengths"] - videos[1]["bone_lengths"]).max() > 0.03
    again = _load(tmp_path / "tiny" / "GroundTruth" / "reanimate" / "0-to-1")
    np.testing.assert_array_equal(again["faces"], videos[1]["faces"])
    np.testing.assert_array_equal(again["joint_so3"], videos[0]["joint_so3"])
