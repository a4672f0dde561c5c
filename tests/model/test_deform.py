import numpy as np
import pytest
import torch

from lab4d_core.geometry.rotation import so3_exp
from lab4d_core.model.deform import DEFORMATIONS, BagOfBones, build_deformation
from lab4d_core.model.mlp import MLP
from lab4d_core.model.time import FrameInfo, TimeEmbedding, default_time_freqs

FRAME_INFO = FrameInfo.from_counts([np.arange(0, 10, 2), np.arange(6)], [10, 6])


def small(name: str, **options):
    sizes = {"dense": {"width": 32}, "bob": {"num_bones": 4, "width": 32, "skin_width": 16}}.get(name, {})
    return build_deformation(name, FRAME_INFO, num_inst=2, **{**sizes, **options})


def sample(n: int = 3, s: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, s, 3, generator=g)
    frame = torch.randint(0, FRAME_INFO.num_frames, (n,), generator=g)
    inst = torch.randint(0, 2, (n,), generator=g)
    return x, frame, inst


def perturb_last_layer(net: MLP, std: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.output.weight.copy_(std * torch.randn(net.output.weight.shape, generator=g))
        net.output.bias.copy_(std * torch.randn(net.output.bias.shape, generator=g))


def test_frame_info_normalises_raw_time_by_the_longest_video():
    info = FrameInfo.from_counts([np.array([0, 2, 4]), np.array([0, 1, 2])], [5, 3])
    assert info.num_frames == 6 and info.num_videos == 2 and info.max_length == 5
    assert info.video_of_frame.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(info.time_of_frame, torch.tensor([-1.0, 0.0, 1.0, -0.5, 0.0, 0.5]))
    with pytest.raises(ValueError):
        FrameInfo.from_counts([np.array([0, 5])], [5])


def test_time_embedding_shape_and_frames_differ():
    embed = TimeEmbedding(FRAME_INFO, out_dim=16)
    assert embed.num_freqs == default_time_freqs(10) == 3
    assert default_time_freqs(2) == 2
    assert default_time_freqs(64) == 6 and default_time_freqs(256) == 8
    codes = embed(torch.arange(FRAME_INFO.num_frames).view(1, -1))
    assert codes.shape == (1, FRAME_INFO.num_frames, 16)
    assert torch.cdist(codes[0], codes[0]).add(torch.eye(FRAME_INFO.num_frames)).min() > 1e-4


def test_registry_names_and_unknown_name():
    assert {"rigid", "dense", "bob"} <= set(DEFORMATIONS)
    with pytest.raises(ValueError, match="bob"):
        build_deformation("nope", FRAME_INFO, 1)


@pytest.mark.parametrize("name", ["rigid", "dense", "bob"])
def test_every_deformation_starts_as_the_identity(name):
    deform = small(name)
    x, frame, inst = sample()
    torch.testing.assert_close(deform.warp_to_canonical(x, frame, inst), x)
    torch.testing.assert_close(deform(x, frame, inst), x)
    torch.testing.assert_close(deform.warp_to_frame(deform.warp_to_canonical(x, frame), frame), x)
    for value in deform.regularizers(x, frame, inst).values():
        assert value.dim() == 0 and torch.isfinite(value)


def test_dense_cycle_is_zero_at_init_and_positive_after_perturbation():
    deform = small("dense")
    x, frame, inst = sample()
    assert deform.regularizers(x, frame, inst)["reg_deform_cyc"] < 1e-7
    perturb_last_layer(deform.to_canonical_net, 0.1)
    perturb_last_layer(deform.to_frame_net, 0.1, seed=1)
    assert deform.regularizers(x, frame, inst)["reg_deform_cyc"] > 1e-3


def set_rigid_motion(bob: BagOfBones, axis_angle, translation) -> None:
    with torch.no_grad():
        bob.motion_net.output.weight.zero_()
        bob.motion_net.output.bias.copy_(torch.tensor([*axis_angle, *translation]).repeat(bob.num_bones))


def test_bob_same_motion_for_all_bones_is_that_rigid_motion():
    bob = small("bob")
    aa, t = [0.4, -0.8, 0.3], [0.05, -0.1, 0.2]
    set_rigid_motion(bob, aa, t)
    x, frame, inst = sample()
    rot = so3_exp(torch.tensor(aa))
    expected = x @ rot.T + torch.tensor(t)
    torch.testing.assert_close(bob.warp_to_frame(x, frame, inst), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(bob.warp_to_canonical(expected, frame, inst), x, atol=1e-5, rtol=0)
    transforms = bob.bone_transforms(frame)
    assert transforms.shape == (3, 4, 4, 4)
    torch.testing.assert_close(transforms[..., :3, :3], rot.expand(3, 4, 3, 3), atol=1e-6, rtol=0)
    centres = bob.bone_centres(frame)
    torch.testing.assert_close(centres, (bob.centre @ rot.T + torch.tensor(t)).expand(3, -1, -1).detach())


def test_bob_round_trip_near_separated_bones_under_random_motion():
    bob = small("bob", num_bones=3)
    with torch.no_grad():
        bob.centre.copy_(torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    perturb_last_layer(bob.motion_net, 0.05)
    g = torch.Generator().manual_seed(1)
    x_c = (bob.centre.detach()[:, None] + 0.02 * torch.randn(3, 6, 3, generator=g)).reshape(1, 18, 3).repeat(2, 1, 1)
    frame, inst = torch.tensor([1, 9]), torch.tensor([0, 1])
    x_f = bob.warp_to_frame(x_c, frame, inst)
    assert (x_f - x_c).norm(dim=-1).max() > 1e-2  # the motion is not trivial
    torch.testing.assert_close(bob.warp_to_canonical(x_f, frame, inst), x_c, atol=1e-5, rtol=0)
    assert bob.regularizers(x_c, frame, inst)["reg_deform_cyc"] < 1e-4


def test_bob_gradients_reach_bone_parameters():
    bob = small("bob")
    perturb_last_layer(bob.motion_net, 0.05)
    with torch.no_grad():
        bob.log_scale.add_(0.3 * torch.randn(bob.log_scale.shape, generator=torch.Generator().manual_seed(2)))
    x, frame, inst = sample()
    loss = bob.warp_to_canonical(x, frame, inst).square().sum() + sum(bob.regularizers(x, frame, inst).values())
    loss = loss + bob.gauss_occupancy(x).sum()
    loss.backward()
    for name in [
        "centre",
        "orientation",
        "log_scale",
        "motion_net.layers.0.weight",
        "delta_net.output.weight",
        "inst_code.weight",
    ]:
        grad = dict(bob.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_bob_gaussian_occupancy_and_regularizers():
    bob = small("bob")
    centres = bob.centre.detach()
    torch.testing.assert_close(bob.gauss_occupancy(centres), torch.ones(4))
    assert bob.gauss_occupancy(torch.full((2, 3), 5.0)).max() < 1e-6
    frame = torch.tensor([0, 3])
    posed = bob.bone_centres(frame)
    assert bob.gauss_occupancy(posed, frame).shape == (2, 4)
    regs = bob.regularizers(centres[None], torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    assert set(regs) == {"reg_deform_cyc", "reg_skin_entropy", "reg_delta_skin"}
    assert 0 <= regs["reg_skin_entropy"] <= np.log(4) + 1e-6


def test_bob_places_bones_on_given_points():
    points = torch.randn(50, 3)
    bob = small("bob", init_points=points)
    centres = bob.centre.detach()
    assert (centres[:, None] == points[None]).all(-1).any(-1).all()
    assert len(torch.unique(centres, dim=0)) == bob.num_bones
