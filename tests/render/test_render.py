"""Viewpoints, their cameras, and a rendered video of an untrained model (the initial sphere)."""

import math

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.rotation import so3_log
from lab4d_core.model.render import project
from lab4d_core.render.video import render_panels, video_frames, write_video
from lab4d_core.render.views import DISTANCE, Viewpoint, parse_viewpoint, view_cameras


@pytest.fixture
def setup(untrained_bob):
    return untrained_bob


def test_viewpoints_in_lab4d_notation():
    assert parse_viewpoint("ref") == Viewpoint("ref")
    assert parse_viewpoint("rot-30-360") == Viewpoint("rot", 30.0, 360.0)
    assert parse_viewpoint("bev-90") == Viewpoint("bev", 90.0)
    with pytest.raises(Lab4dError, match="rot-<elevation>-<degrees>"):
        parse_viewpoint("side")


def test_turntable_circles_the_object_at_its_distance(setup):
    model, database = setup
    frames = torch.zeros(8, dtype=torch.long)
    cameras, _ = view_cameras(model, frames, Viewpoint("rot", 0.0, 360.0), 32, database.resolution)
    centre = 0.5 * (model.proxy_lo[0] + model.proxy_hi[0])
    size = float((0.5 * (model.proxy_hi[0] - model.proxy_lo[0])).norm())
    in_camera = (cameras.rotation @ centre) + cameras.translation
    torch.testing.assert_close(in_camera, torch.tensor([0.0, 0.0, DISTANCE * size]).expand(8, 3), atol=1e-5, rtol=0)
    pixel = project(in_camera[:, None], cameras.intrinsics)[:, 0]
    torch.testing.assert_close(pixel, torch.full((8, 2), 15.5), atol=1e-4, rtol=0)
    # Half-way round, the object shows its other side: rotation by 180 degrees about the vertical axis.
    relative = cameras.rotation[4] @ cameras.rotation[0].T
    torch.testing.assert_close(relative, torch.diag(torch.tensor([-1.0, 1.0, -1.0])), atol=1e-5, rtol=0)


@pytest.fixture
def tilted_up(setup):
    """The model with its up axis set to a tilted direction (along none of its axes), restored after."""
    model, database = setup
    stored = model.up_axis.clone()
    model.up_axis.copy_(torch.nn.functional.normalize(torch.tensor([0.3, -0.8, 0.5]), dim=0))
    yield model, database
    model.up_axis.copy_(stored)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Degrees between vectors (..., 3)."""
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def test_turntable_turns_about_the_up_axis_seen_from_above(tilted_up):
    model, database = tilted_up
    up = model.up_axis.double()
    cameras, _ = view_cameras(
        model, torch.zeros(12, dtype=torch.long), Viewpoint("rot", 30.0, 360.0), 32, database.resolution
    )
    rotation = cameras.rotation.double()
    # From one frame to the next the object turns 30 degrees about its up axis (object coordinates).
    step = so3_log(rotation[:-1].transpose(1, 2) @ rotation[1:])
    torch.testing.assert_close(
        step.norm(dim=-1), torch.full((11,), math.radians(30.0), dtype=torch.float64), atol=1e-5, rtol=0
    )
    off_axis = torch.minimum(_angle(step, up), _angle(step, -up))
    assert float(off_axis.max()) < 0.5
    # 30 degrees above the ground plane, looking down: the view direction (z row) is 120 degrees from up,
    # and the up axis shows up in the image (towards -y).
    from_up = _angle(rotation[:, 2], up)
    torch.testing.assert_close(from_up, torch.full_like(from_up, 120.0), atol=1e-3, rtol=0)
    in_image = rotation[:, 1] @ up
    torch.testing.assert_close(in_image, torch.full_like(in_image, -math.cos(math.radians(30.0))), atol=1e-5, rtol=0)
    # bev-90 looks straight down the up axis.
    top, _ = view_cameras(model, torch.zeros(1, dtype=torch.long), Viewpoint("bev", 90.0), 32, database.resolution)
    assert float(_angle(top.rotation[0, 2].double(), -up)) < 0.1


def test_frozen_shape_and_frame_sampling(setup):
    _, database = setup
    shapes, cameras = video_frames(database, 1, 4, freeze_id=2)
    start = int(database.frame_offset[1])
    assert torch.all(shapes == start + 2)
    assert cameras.tolist() == (start + np.linspace(0, database.videos[1].num_frames - 1, 4).round()).tolist()
    with pytest.raises(Lab4dError, match="--freeze_id 99"):
        video_frames(database, 1, None, freeze_id=99)


def test_reference_video_shows_the_sphere(setup, tmp_path):
    model, database = setup
    res = 32
    images = list(render_panels(model, database, video_frames(database, 0, 2, None), Viewpoint("ref"), res))
    assert len(images) == 2 and images[0].shape == (res, 6 * res, 3)
    mask = images[0][:, 2 * res : 3 * res, 0] > 127
    assert 0.1 < mask.mean() < 0.9  # the initial sphere covers part of the crop
    # Depth, normal and xyz panels are drawn exactly where the mask is.
    for panel in (3, 4, 5):
        drawn = images[0][:, panel * res : (panel + 1) * res].max(-1) > 0
        assert (drawn == mask).mean() > 0.95
    # The first panel is the training array the model saw, with its mask's outline in green.
    video = database.videos[0]
    expected = np.asarray(video.array("rgb")[0], np.float32)
    expected_mask = np.asarray(video.array("mask")[0][..., 0])
    step = expected.shape[0] // res
    centres = slice(step // 2, None, step)  # the array pixel nearest each panel pixel's centre
    shown = images[0][:, :res] / 255.0
    outline = (shown[..., 1] > 0.99) & (shown[..., 0] < 0.21) & (shown[..., 2] < 0.21)
    assert outline.any() and expected_mask[centres, centres][outline].all()
    assert np.abs(shown[~outline] - expected[centres, centres][~outline]).mean() < 0.1
    path = tmp_path / "ref.mp4"
    assert write_video(path, iter(images), 2) == 2
    frames = [frame for frame in imageio.get_reader(path)]
    assert len(frames) == 2 and frames[0].shape == (res, 6 * res, 3)
    assert not (tmp_path / "ref.partial.mp4").exists()
