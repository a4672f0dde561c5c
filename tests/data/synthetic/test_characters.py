from pathlib import Path

import numpy as np
import pytest
import trimesh

from lab4d_core.config import load_dataset_config
from lab4d_core.data.synthetic.characters import Morphology, procedural_character
from lab4d_core.data.synthetic.motion import ANGLE_GENERATORS, MOTIONS


@pytest.mark.parametrize("kind", ["quad", "human"])
def test_procedural_character_is_one_closed_outward_surface_with_normalised_weights(kind):
    character = procedural_character(kind, seed=1, voxel=0.02)
    mesh = trimesh.Trimesh(character.rest_verts, character.faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0  # positive volume: faces wind outwards
    assert len(trimesh.graph.connected_components(mesh.face_adjacency)) == 1
    np.testing.assert_allclose(character.skin_weights.sum(axis=1), 1.0, atol=1e-5)
    assert ((character.skin_weights > 0).sum(axis=1) <= 4).all()
    # Identity bones leave the rest mesh where it is.
    identity = np.tile(np.eye(4), (character.skeleton.num_joints, 1, 1))
    np.testing.assert_allclose(character.pose(identity), character.rest_verts, atol=1e-6)


def test_seeds_change_morphology_and_colours():
    a, b = procedural_character("quad", seed=1, voxel=0.03), procedural_character("quad", seed=2, voxel=0.03)
    assert np.abs(a.skeleton.bone_lengths() - b.skeleton.bone_lengths()).max() > 0.01
    assert np.abs(a.palette - b.palette).max() > 0.05


@pytest.mark.parametrize("kind", ["quad", "human"])
@pytest.mark.parametrize("motion", MOTIONS)
def test_motions_are_periodic_and_move_the_limbs(kind, motion):
    character = procedural_character(kind, seed=0, voxel=0.04)
    phase = np.linspace(0, 2 * np.pi, 9)
    angles = ANGLE_GENERATORS[kind](character.skeleton, motion, phase)
    np.testing.assert_allclose(angles[0], angles[-1], atol=1e-9)
    verts = character.pose(character.skeleton.skinning_transforms(angles))
    assert np.linalg.norm(verts - verts[0], axis=-1).max() > 0.05


LIMBS = {
    # Bones (named by their child joint) of each limb, below the hip or shoulder.
    "human": {"legs": ("lower_leg", "foot"), "arms": ("forearm", "hand")},
    "quad": {"legs": ("knee", "ankle", "foot"), "arms": ("elbow", "wrist", "hand")},
}


def _limb_length(skeleton, side: str, bones: tuple[str, ...]) -> float:
    lengths = skeleton.bone_lengths()
    return float(sum(lengths[skeleton.joint_names.index(f"{side}_{bone}")] for bone in bones))


@pytest.mark.parametrize("kind", ["human", "quad"])
def test_four_instances_spread_limb_lengths_by_15_percent_with_symmetric_sides(kind):
    characters = [
        procedural_character(kind, seed=k, voxel=0.05, morph=Morphology.spread(kind, k, 4, seed=0)) for k in range(4)
    ]
    for limb, bones in LIMBS[kind].items():
        lengths = [_limb_length(c.skeleton, "left", bones) for c in characters]
        assert max(lengths) / min(lengths) >= 1.15, (limb, lengths)
    for character in characters:
        skeleton = character.skeleton
        np.testing.assert_allclose(skeleton.bone_lengths(), skeleton.bone_lengths()[skeleton.symmetry], atol=1e-12)
        if kind == "quad":
            # Front and hind legs grow together: all four feet stand on one floor.
            feet = skeleton.rest_joints[[skeleton.joint_names.index(n) for n in ("left_hand", "left_foot")], 1]
            assert abs(feet[0] - feet[1]) < 0.01


def test_demo_human_instances_span_15_percent_in_legs_and_arms():
    synth = load_dataset_config(Path(__file__).parents[3] / "config" / "datasets" / "demo-human.yaml").source.synthetic
    morphs = [Morphology.spread(synth.character, k, synth.num_videos, synth.seed) for k in range(synth.num_videos)]
    for factor in ("leg_length", "arm_length"):
        values = [getattr(m, factor) for m in morphs]
        assert max(values) / min(values) >= 1.15
        assert len(set(values)) == synth.num_videos  # every instance its own


def test_the_spread_is_a_shuffle_that_the_seed_picks():
    orders = {tuple(Morphology.spread("human", k, 4, seed).leg_length for k in range(4)) for seed in range(6)}
    assert len(orders) > 1
    assert all(sorted(order) == sorted(next(iter(orders))) for order in orders)
