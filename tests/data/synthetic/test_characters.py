import numpy as np
import pytest
import trimesh

from lab4d_core.data.synthetic.characters import procedural_character
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
