"""Skeleton deformations (skel-*, comp_skel-*_dense): kinematics, bone lengths, skinning against the synthesizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lab4d_core.data.synthetic.motion import human_angles
from lab4d_core.geometry.skeletons import flexion_signs, get_skeleton
from lab4d_core.model.deform import DEFORMATIONS, build_deformation
from lab4d_core.model.deform.skel import forward_kinematics
from lab4d_core.model.time import FrameInfo

INFO = FrameInfo.from_counts([np.arange(10), np.arange(14)], [10, 14])


def unit_size(deform) -> None:
    """Scene units = the predefined skeleton's metres, no shift: the model's tree is the synthesizer's."""
    with torch.no_grad():
        deform.log_size.zero_()


def test_every_lab4d_skeleton_name_is_registered():
    for name in ("skel-human", "skel-quad", "comp_skel-human_dense", "comp_skel-quad_dense"):
        assert name in DEFORMATIONS
    with pytest.raises(ValueError, match="comp_skel-human_dense"):
        build_deformation("skel-horse", INFO, 1)


def test_forward_kinematics_of_a_bent_elbow_places_the_hand_where_the_tree_says():
    tree = get_skeleton("human")
    names = tree.joint_names
    so3 = torch.zeros(1, tree.num_joints, 3)
    so3[0, names.index("left_forearm"), 2] = np.pi / 2  # a quarter turn about z at the elbow
    offsets = torch.as_tensor(tree.rest_offsets(), dtype=torch.float32)[None]
    rotation, position = forward_kinematics(tree.parents, offsets, so3)
    joints = tree.rest_joints
    elbow, hand = joints[names.index("left_forearm")], joints[names.index("left_hand")]
    turned = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ (hand - elbow)
    np.testing.assert_allclose(position[0, names.index("left_hand")].numpy(), elbow + turned, atol=1e-6)
    # Joints above the elbow and on the other side do not move.
    for name in ("left_arm", "right_hand", "head", "left_foot"):
        np.testing.assert_allclose(position[0, names.index(name)].numpy(), joints[names.index(name)], atol=1e-6)
    # The same as the synthesizer's kinematics for any pose.
    so3 = torch.randn(3, tree.num_joints, 3, generator=torch.Generator().manual_seed(0)) * 0.6
    frames = tree.forward_kinematics(so3.numpy().astype(np.float64))
    _, position = forward_kinematics(tree.parents, offsets.expand(3, -1, -1), so3)
    np.testing.assert_allclose(position.numpy(), frames[..., :3, 3], atol=1e-5)


@pytest.mark.parametrize("name", ["skel-human", "skel-quad"])
def test_left_and_right_bones_keep_equal_length_for_every_instance(name):
    deform = build_deformation(name, INFO, 2, object_radius=0.8)
    with torch.no_grad():
        for parameter in deform.length_net.parameters():
            parameter.normal_(std=0.5)
    lengths = deform.offsets(torch.tensor([0, 1]), 2).norm(dim=-1)
    mirror = deform.symmetry
    torch.testing.assert_close(lengths, lengths[:, mirror])
    assert (lengths[0] - lengths[1]).abs().max() > 1e-3  # the instances do differ
    asymmetric = [j for j in range(len(mirror)) if mirror[j] != j]
    assert asymmetric, "the tree has left and right limbs"


def test_at_rest_the_warp_is_the_identity_and_a_turned_joint_moves_only_its_part():
    deform = build_deformation("skel-human", INFO, 1, object_radius=1.0)
    unit_size(deform)
    tree = deform.skeleton
    names = tree.joint_names
    frame = torch.tensor([3])
    knee, foot = (
        torch.as_tensor(tree.rest_joints[names.index(n)], dtype=torch.float32) for n in ("left_lower_leg", "left_foot")
    )
    shin = knee + 0.5 * (foot - knee)
    head = torch.as_tensor(tree.rest_joints[names.index("head")], dtype=torch.float32) + torch.tensor([0.0, -0.1, 0.0])
    points = torch.stack([shin, head])[None]
    torch.testing.assert_close(deform.warp_to_frame(points, frame), points, atol=1e-6, rtol=0)
    so3 = torch.zeros(1, tree.num_joints, 3)
    so3[0, names.index("left_lower_leg"), 0] = -np.pi / 2  # the knee folds the shin back by a quarter turn
    deform.joint_so3 = lambda frame: so3.expand(len(frame), -1, -1)
    posed = deform.warp_to_frame(points, frame)[0]
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    # Within 5 % of the shin's 0.29 m travel: the thigh's and foot's Gaussians keep a little weight there.
    torch.testing.assert_close(posed[0], knee + rotation @ (shin - knee), atol=0.015, rtol=0)
    torch.testing.assert_close(posed[1], head, atol=2e-3, rtol=0)
    torch.testing.assert_close(deform.warp_to_canonical(posed[None], frame)[0], points[0], atol=0.015, rtol=0)


def test_comp_skel_round_trips_and_its_soft_warp_is_regularised():
    deform = build_deformation("comp_skel-quad_dense", INFO, 2, object_radius=0.6)
    with torch.no_grad():
        deform.skeleton.motion_net.output.weight.normal_(std=0.02)
        deform.soft.to_frame_net.output.weight.normal_(std=0.05)
    frame, inst = torch.tensor([2, 17]), torch.tensor([0, 1])
    x = deform.skeleton.rest_bones(inst, 2)[1].detach()  # the parts' centres: one bone dominates there
    regs = deform.regularizers(x, frame, inst)
    assert {"reg_deform_cyc", "reg_soft_deform", "reg_skel_prior", "reg_skin_entropy", "reg_delta_skin"} <= set(regs)
    assert regs["reg_soft_deform"] > 0
    moved = deform.warp_to_frame(x, frame, inst)
    assert (moved - x).norm(dim=-1).max() > 1e-2


def test_posed_with_true_rotations_and_bone_lengths_it_reproduces_the_synthetic_meshes(tiny_quad):
    """The synthesizer's skin weights come from its body primitives, the model's from Gaussians between the
    joints: they differ near joints, so the check is on the bulk of the vertices."""
    truth = tiny_quad / "GroundTruth" / "tiny-quad-0000"
    rest_verts = torch.as_tensor(np.load(truth / "rest_verts.npy"))
    joint_so3 = torch.as_tensor(np.load(truth / "joint_so3.npy"), dtype=torch.float32)
    rest_joints = np.load(truth / "rest_joints.npy").astype(np.float64)
    field2cam = np.load(truth / "field2cam.npy").astype(np.float64)
    verts_cam = np.load(truth / "verts_cam.npy").astype(np.float64)
    assert json.loads((truth / "skeleton.json").read_text())["name"] == "quad"
    deform = build_deformation("skel-quad", INFO, 1, object_radius=1.0)
    unit_size(deform)
    tree = deform.skeleton
    true_offsets = rest_joints.copy()
    parents = np.asarray(tree.parents)
    true_offsets[parents >= 0] -= rest_joints[parents[parents >= 0]]
    predefined = tree.rest_offsets()
    ratio = np.linalg.norm(true_offsets, axis=-1)[1:] / np.linalg.norm(predefined, axis=-1)[1:]
    np.testing.assert_allclose(true_offsets[1:], predefined[1:] * ratio[:, None], atol=1e-5)  # lengths, not turns
    with torch.no_grad():
        deform.length_net.output.bias.copy_(torch.as_tensor(np.log(np.r_[1.0, ratio]), dtype=torch.float32))
        deform.shift.copy_(torch.as_tensor(rest_joints[0] - predefined[0], dtype=torch.float32))
    frames = torch.arange(0, len(joint_so3), 3)
    deform.joint_so3 = lambda frame: joint_so3[frame]
    posed = deform.warp_to_frame(rest_verts.expand(len(frames), -1, -1), frames, torch.zeros_like(frames)).detach()
    cam2field = np.linalg.inv(field2cam[frames.numpy()])
    expected = np.einsum("nab,nvb->nva", cam2field[:, :3, :3], verts_cam[frames.numpy()]) + cam2field[:, None, :3, 3]
    error = np.linalg.norm(posed.numpy() - expected, axis=-1)
    diagonal = np.linalg.norm(rest_verts.numpy().max(0) - rest_verts.numpy().min(0))
    assert np.median(error) < 0.01 * diagonal
    assert np.percentile(error, 90) < 0.04 * diagonal


def test_each_instance_learns_its_own_bone_lengths():
    """Per-instance targets (legs 20 % longer for instance 1) are reached from the shared start, at the
    explicit learning rate the trainer gives this network."""
    deform = build_deformation("skel-human", INFO, 2, object_radius=1.0)
    leg = deform.skeleton.joint_names.index("left_lower_leg")
    optimizer = torch.optim.Adam(deform.explicit_parameters() + [deform.inst_code.weight], lr=2e-2)
    target = torch.tensor([0.0, np.log(1.2)])
    for _ in range(200):
        optimizer.zero_grad()
        loss = (deform.length_corrections(torch.tensor([0, 1]), 2)[:, leg] - target).square().sum()
        loss.backward()
        optimizer.step()
    lengths = deform.offsets(torch.tensor([0, 1]), 2).norm(dim=-1)[:, leg].detach()
    assert float(lengths[1] / lengths[0]) == pytest.approx(1.2, rel=0.02)


def test_the_skeleton_prior_holds_the_mean_body_and_leaves_individuals_apart():
    """lab4d's prior on bone lengths is on the shared skeleton: it pulls every instance's code alike (through
    the mean code), never towards each other, so individuals keep the spread of their true lengths."""
    deform = build_deformation("skel-human", INFO, 2, object_radius=1.0)
    with torch.no_grad():
        deform.length_net.output.weight.normal_(std=0.1)
        deform.inst_code.weight.normal_()
    x = torch.zeros(1, 4, 3)
    prior = deform.rig_regularizers(x, torch.tensor([0]))["reg_skel_prior"]
    assert prior.item() > 0
    prior.backward()
    grad = deform.inst_code.weight.grad
    assert float(grad.norm()) > 0
    torch.testing.assert_close(grad[0], grad[1])


def test_human_knees_and_elbows_are_hinges_and_the_synthetic_motions_respect_them():
    human = get_skeleton("human")
    signs = dict(zip(human.joint_names, flexion_signs(human)))
    assert {n: s for n, s in signs.items() if s} == {
        "left_lower_leg": -1,
        "right_lower_leg": -1,
        "left_forearm": 1,
        "right_forearm": 1,
    }
    assert not flexion_signs(get_skeleton("quad")).any()
    phase = np.linspace(0, 4 * np.pi, 97)
    for motion in ("walk", "trot", "turn", "wave"):
        bend = flexion_signs(human) * human_angles(human, motion, phase)[..., 0]
        assert bend.min() >= 0, motion


def test_a_knee_bent_backwards_is_penalised_and_pushed_straight():
    deform = build_deformation("comp_skel-human_dense", INFO, 1, object_radius=1.0)
    skeleton = deform.skeleton
    knee, elbow = (skeleton.skeleton.joint_names.index(n) for n in ("left_lower_leg", "right_forearm"))
    so3 = torch.zeros(2, skeleton.num_bones, 3)
    so3[0, knee, 0], so3[0, elbow, 0] = -0.6, 0.4  # both bent the way they fold
    so3[1, knee, 0] = 0.3  # the knee bent backwards
    so3.requires_grad_(True)
    skeleton.joint_so3 = lambda frame: so3[frame]
    frame = torch.tensor([0, 1])
    assert skeleton.joint_limit(frame[:1]).item() == 0.0
    x = torch.zeros(2, 3, 3)
    limit = deform.regularizers(x, frame)["reg_joint_limit"]
    assert limit.item() == pytest.approx(0.3**2 / 2 / 4)
    limit.backward()
    assert float(so3.grad[1, knee, 0]) > 0 and float(so3.grad[0].abs().sum()) == 0.0


def test_an_instance_with_longer_legs_stretches_the_mean_body_at_rest():
    """Canonical space is the mean body's: at zero joint rotations each part of the mean body moves rigidly
    with its joint to where the instance's longer bones put it (the shin with the knee, the foot further down),
    and the head, whose chain has no stretched bone, stays."""
    deform = build_deformation("skel-human", INFO, 2, object_radius=1.0)
    unit_size(deform)
    names = deform.skeleton.joint_names
    stretched = [names.index(n) for n in ("left_lower_leg", "left_foot", "right_lower_leg", "right_foot")]
    corrections = torch.zeros(2, len(names))
    corrections[1, stretched] = np.log(1.3)
    deform.length_corrections = lambda inst, batch: (
        torch.zeros(batch, len(names)) if inst is None else corrections[inst]
    )
    mean_joints = (deform.chain @ deform.offsets(None, 1))[0].detach()
    own_joints = (deform.chain @ deform.offsets(torch.tensor([1]), 1))[0].detach()
    knee, foot, head = (names.index(n) for n in ("left_lower_leg", "left_foot", "head"))
    shin = mean_joints[knee] + 0.5 * (mean_joints[foot] - mean_joints[knee])
    points = torch.stack([shin, mean_joints[head]])[None]
    frame = torch.tensor([3])
    posed = deform.warp_to_frame(points, frame, torch.tensor([1]))[0].detach()
    torch.testing.assert_close(posed[0], own_joints[knee] + shin - mean_joints[knee], atol=0.01, rtol=0)
    torch.testing.assert_close(posed[1], mean_joints[head], atol=2e-3, rtol=0)
    assert float((own_joints[foot] - mean_joints[foot]).norm()) > 0.1  # the instance's feet are far lower
    assert float((posed[0] - shin).norm()) > 0.05
    torch.testing.assert_close(deform.warp_to_frame(points, frame, torch.tensor([0]))[0], points[0], atol=1e-6, rtol=0)
