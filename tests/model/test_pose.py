import numpy as np
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
