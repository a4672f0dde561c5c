import numpy as np
import pytest
import torch

from lab4d_core.geometry.cameras import crop_intrinsics
from lab4d_core.geometry.transforms import look_at
from lab4d_core.model.pose import Intrinsics, RootPose


def test_root_poses_start_at_the_dataset_cameras():
    rng = np.random.default_rng(0)
    poses = look_at(rng.normal(size=(5, 3)) * 3, np.zeros((5, 3)))
    root = RootPose(torch.as_tensor(poses, dtype=torch.float32))
    torch.testing.assert_close(
        root.matrices(torch.arange(5)), torch.as_tensor(poses, dtype=torch.float32), atol=1e-6, rtol=0
    )


def test_array_intrinsics_follow_each_frames_crop():
    rng = np.random.default_rng(1)
    ks = np.array([[300.0, 310.0, 128.0, 120.0], [250.0, 250.0, 100.0, 90.0]])
    video_of_frame = np.array([0, 0, 1, 1, 1])
    crop2raw = np.column_stack(
        [rng.uniform(0.3, 2, 5), rng.uniform(0.3, 2, 5), rng.uniform(-20, 60, 5), rng.uniform(-20, 60, 5)]
    )
    intrinsics = Intrinsics(torch.tensor(ks), torch.tensor(video_of_frame), torch.tensor(crop2raw))
    expected = crop_intrinsics(ks[video_of_frame], crop2raw)
    np.testing.assert_allclose(intrinsics(torch.arange(5)).detach().numpy(), expected, rtol=1e-5)


def test_the_camera_prior_is_zero_at_the_dataset_cameras_and_grows_with_angle_and_shift():
    poses = torch.eye(4).repeat(3, 1, 1)
    root = RootPose(poses, scale=0.5)
    frames = torch.arange(3)
    distance = root.prior_distance(frames)
    assert float(distance.detach().max()) < 1e-5
    distance.sum().backward()
    assert torch.isfinite(root.residual.grad).all()  # no 0/0 at the initial, exactly-zero residual
    with torch.no_grad():
        root.residual[1, :3] = torch.tensor([0.0, 0.2, 0.0])  # 0.2 rad about y
        root.residual[2, 3:] = torch.tensor([0.3, 0.0, 0.4])  # 0.5 units = 1 object size
    torch.testing.assert_close(root.prior_distance(frames), torch.tensor([0.0, 0.2, 1.0]), atol=1e-5, rtol=0)


def test_pair_disagreement_is_zero_on_the_measured_turns_and_the_chordal_distance_off_them():
    rng = np.random.default_rng(2)
    poses = look_at(rng.normal(size=(6, 3)) * 3, np.zeros((6, 3)))
    rotations = torch.as_tensor(poses[:, :3, :3], dtype=torch.float32)
    turns = rotations[1:] @ rotations[:-1].transpose(1, 2)
    pairs = torch.cat([turns, torch.eye(3)[None]])
    valid = torch.tensor([True, True, True, False, True, False])  # pair 3 unmeasured, frame 5 ends the video
    root = RootPose(torch.as_tensor(poses, dtype=torch.float32), pairs=pairs, pair_valid=valid)
    assert float(root.pair_disagreement().detach()) < 1e-10
    # Frame 1 turned by 10 degrees about the camera's y axis: pairs 0 and 1 each disagree by 10 degrees.
    with torch.no_grad():
        root.residual[1, 1] = np.radians(10.0)
    expected = 2 * 4 * (1 - np.cos(np.radians(10.0))) / 4  # ||D - I||^2 = 4 (1 - cos angle), over 4 measured pairs
    assert float(root.pair_disagreement().detach()) == pytest.approx(expected, rel=1e-4)


def test_the_prior_of_estimated_root_poses_is_weighted_and_of_given_ones_is_not():
    poses = torch.eye(4).expand(4, 4, 4)
    root = RootPose(poses, estimated=torch.tensor([False, False, True, True]))
    with torch.no_grad():
        root.residual[:, 0] = 0.1
    distance = root.prior_distance(torch.arange(4), estimate_weight=0.25)
    torch.testing.assert_close(distance, torch.tensor([0.1, 0.1, 0.025, 0.025]), atol=1e-6, rtol=0)
