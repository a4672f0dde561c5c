import numpy as np
import pytest

from lab4d_core.geometry.skeletons import SKELETONS, get_skeleton
from lab4d_core.geometry.transforms import apply_transform, so3_exp


@pytest.mark.parametrize("name,joints", [("quad", 25), ("human", 18)])
def test_predefined_skeletons_match_lab4d_joint_counts_and_are_symmetric(name, joints):
    skeleton = get_skeleton(name)
    assert skeleton.num_joints == joints
    mirror = skeleton.symmetry
    assert (mirror[mirror] == np.arange(joints)).all()
    # Mirror joints sit at mirrored x and share bone lengths.
    np.testing.assert_allclose(skeleton.rest_joints[mirror] * [-1, 1, 1], skeleton.rest_joints, atol=1e-12)
    np.testing.assert_allclose(skeleton.bone_lengths()[mirror], skeleton.bone_lengths())


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_forward_kinematics_keeps_bone_lengths_and_moves_only_descendants(name):
    skeleton = get_skeleton(name)
    rng = np.random.default_rng(0)
    rest = skeleton.forward_kinematics(np.zeros((skeleton.num_joints, 3)))
    np.testing.assert_allclose(rest[:, :3, 3], skeleton.rest_joints, atol=1e-12)

    angles = rng.normal(0, 0.5, size=(skeleton.num_joints, 3))
    posed = skeleton.forward_kinematics(angles)[:, :3, 3]
    parents = np.asarray(skeleton.parents)
    child = parents >= 0
    np.testing.assert_allclose(
        np.linalg.norm(posed[child] - posed[parents[child]], axis=-1), skeleton.bone_lengths()[child]
    )

    joint = skeleton.joint_names.index(skeleton.joint_names[parents[-1]])  # parent of the last joint
    single = np.zeros((skeleton.num_joints, 3))
    single[joint] = [0.3, -0.2, 0.5]
    moved = np.linalg.norm(skeleton.forward_kinematics(single)[:, :3, 3] - skeleton.rest_joints, axis=-1) > 1e-9
    descendants = np.zeros(skeleton.num_joints, bool)
    for j in range(skeleton.num_joints):
        p = parents[j]
        while p >= 0 and not descendants[j]:
            descendants[j] = p == joint
            p = parents[p]
    assert (moved == descendants).all() and moved.any()


def test_skinning_transform_rotates_a_limb_about_its_joint():
    skeleton = get_skeleton("human")
    knee = skeleton.joint_names.index("left_lower_leg")
    angles = np.zeros((skeleton.num_joints, 3))
    angles[knee] = [np.pi / 2, 0, 0]
    transform = skeleton.skinning_transforms(angles)[knee]
    ankle = skeleton.rest_joints[skeleton.joint_names.index("left_foot")]
    expected = skeleton.rest_joints[knee] + so3_exp(np.array([np.pi / 2, 0, 0])) @ (ankle - skeleton.rest_joints[knee])
    np.testing.assert_allclose(apply_transform(transform, ankle[None])[0], expected, atol=1e-12)
    # The rotated shin points forwards (+z): a positive x rotation swings a downward limb forward.
    assert expected[2] > skeleton.rest_joints[knee][2] + 0.3


def test_unknown_skeleton_names_the_choices():
    with pytest.raises(KeyError, match="human"):
        get_skeleton("spider")
