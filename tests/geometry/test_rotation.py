import math

import torch

from lab4d_core.geometry.rotation import (
    axis_angle_to_quaternion,
    blend_dual_quats,
    dual_quat_apply,
    dual_quat_from_rt,
    dual_quat_inverse,
    dual_quat_to_rt,
    matrix_to_quaternion,
    quat_apply,
    quat_conjugate,
    quat_mul,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    so3_exp,
    so3_log,
)


def random_axis_angle(n: int, seed: int = 0, max_angle: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(n, 3, generator=g)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    return axis * torch.rand(n, 1, generator=g) * max_angle


def test_so3_exp_log_round_trip_including_tiny_angles():
    aa = torch.cat([random_axis_angle(64), random_axis_angle(16, seed=1, max_angle=1e-5), torch.zeros(1, 3)])
    rot = so3_exp(aa)
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(aa)), atol=1e-5, rtol=0)
    torch.testing.assert_close(so3_log(rot), aa, atol=1e-5, rtol=0)


def test_so3_exp_matches_rodrigues_and_quaternion_paths():
    aa = random_axis_angle(32, seed=2)
    torch.testing.assert_close(so3_exp(aa), quaternion_to_matrix(axis_angle_to_quaternion(aa)), atol=1e-5, rtol=0)
    # A quarter turn about z maps x to y.
    quarter = so3_exp(torch.tensor([0.0, 0.0, math.pi / 2]))
    torch.testing.assert_close(
        quarter @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0
    )


def test_gradients_are_finite_at_zero_rotation():
    for fn in (lambda a: so3_exp(a).sum(), lambda a: axis_angle_to_quaternion(a).sum()):
        aa = torch.zeros(2, 3, requires_grad=True)
        fn(aa).backward()
        assert torch.isfinite(aa.grad).all()
    rot = torch.eye(3).repeat(2, 1, 1).requires_grad_(True)
    so3_log(rot).sum().backward()
    assert torch.isfinite(rot.grad).all()
    # d exp(a) / da at 0 is the skew generator: d R[2,1] / d a_x = 1.
    aa = torch.zeros(3, requires_grad=True)
    so3_exp(aa)[2, 1].backward()
    torch.testing.assert_close(aa.grad, torch.tensor([1.0, 0.0, 0.0]))


def test_quaternion_round_trip_and_algebra():
    aa = random_axis_angle(64, seed=3, max_angle=math.pi)
    quat = axis_angle_to_quaternion(aa)
    rot = quaternion_to_matrix(quat)
    back = matrix_to_quaternion(rot)
    # Same rotation up to sign.
    torch.testing.assert_close(back * torch.sign((back * quat).sum(-1, keepdim=True)), quat, atol=1e-5, rtol=0)
    torch.testing.assert_close(quaternion_to_axis_angle(-quat), aa, atol=1e-4, rtol=0)
    points = torch.randn(64, 3)
    torch.testing.assert_close(quat_apply(quat, points), (rot @ points[..., None])[..., 0], atol=1e-5, rtol=0)
    other = axis_angle_to_quaternion(random_axis_angle(64, seed=4))
    torch.testing.assert_close(
        quaternion_to_matrix(quat_mul(quat, other)), rot @ quaternion_to_matrix(other), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(quat_mul(quat, quat_conjugate(quat)), torch.tensor([1.0, 0, 0, 0]).expand(64, 4))


def test_dual_quaternion_apply_equals_rigid_motion_and_round_trips():
    rot = so3_exp(random_axis_angle(16, seed=5))
    t = torch.randn(16, 3)
    points = torch.randn(16, 10, 3)
    qr, qd = dual_quat_from_rt(rot, t)
    expected = points @ rot.transpose(-1, -2) + t[:, None]
    torch.testing.assert_close(dual_quat_apply(qr[:, None], qd[:, None], points), expected, atol=1e-5, rtol=0)
    rot_back, t_back = dual_quat_to_rt(qr, qd)
    torch.testing.assert_close(rot_back, rot, atol=1e-5, rtol=0)
    torch.testing.assert_close(t_back, t, atol=1e-5, rtol=0)
    inv_r, inv_d = dual_quat_inverse(qr, qd)
    torch.testing.assert_close(dual_quat_apply(inv_r[:, None], inv_d[:, None], expected), points, atol=1e-5, rtol=0)
    # The quaternion form of the rotation gives the same dual quaternion.
    qr_q, qd_q = dual_quat_from_rt(qr, t)
    torch.testing.assert_close(qd_q, qd)


def test_blending_one_bone_with_full_weight_gives_that_bone():
    qr, qd = dual_quat_from_rt(so3_exp(random_axis_angle(4, seed=6)), torch.randn(4, 3))
    weights = torch.zeros(5, 4)
    weights[:, 2] = 1.0
    br, bd = blend_dual_quats(weights, qr, qd)
    torch.testing.assert_close(br, qr[2].expand(5, 4))
    torch.testing.assert_close(bd, qd[2].expand(5, 4))


def test_blending_opposite_signs_of_the_same_rotation_is_that_rotation():
    rot = so3_exp(torch.tensor([0.3, -1.2, 0.5]))
    t = torch.tensor([0.1, 0.2, -0.3])
    qr, qd = dual_quat_from_rt(rot, t)
    # -q is the same rigid motion; a naive average would cancel to zero.
    qr2, qd2 = torch.stack([qr, -qr]), torch.stack([qd, -qd])
    for w in (0.5, 0.3, 0.7):
        weights = torch.tensor([[w, 1 - w]])
        br, bd = blend_dual_quats(weights, qr2, qd2)
        points = torch.randn(1, 3)
        torch.testing.assert_close(dual_quat_apply(br, bd, points), points @ rot.T + t, atol=1e-5, rtol=0)


def test_blending_broadcasts_per_point_bones():
    qr, qd = dual_quat_from_rt(so3_exp(random_axis_angle(6, seed=7, max_angle=0.5)), torch.randn(6, 3))
    qr, qd = qr.view(2, 1, 3, 4), qd.view(2, 1, 3, 4)
    weights = torch.softmax(torch.randn(2, 5, 3), -1)
    br, bd = blend_dual_quats(weights, qr, qd)
    assert br.shape == bd.shape == (2, 5, 4)
    torch.testing.assert_close(br.norm(dim=-1), torch.ones(2, 5))
