"""The composed model: proxy boxes follow the shape, and empty-space skipping renders the same image."""

import math

import pytest
import torch

from lab4d_core.config import DatasetConfig, ModelConfig, SourceConfig, TrainConfig, to_dict
from lab4d_core.data.manifest import read_manifest
from lab4d_core.geometry.rotation import so3_exp, so3_log
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.model.loading import load_model
from lab4d_core.model.render import pixel_grid
from lab4d_core.preprocess.scene import SceneInfo
from lab4d_core.train.checkpoint import save_checkpoint

SMALL = {"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64, "num_bones": 4}


@pytest.fixture(scope="module")
def scene(tiny_quad):
    database = read_manifest(tiny_quad / "manifest.json").database()
    return SceneInfo.from_database(database, "crop"), database.resolution, tiny_quad / "manifest.json"


def _model(scene, motion: str) -> DynamicModel:
    torch.manual_seed(0)
    return DynamicModel(ModelConfig(fg_motion=motion, **SMALL), scene[0])


@pytest.mark.parametrize("motion", ["rigid", "bob"])
def test_proxy_boxes_wrap_the_initial_sphere_with_the_margin(scene, motion):
    model = _model(scene, motion)
    model.update_proxy(resolution=32)
    radius = 0.6 * scene[0].object_radius  # the sphere the field starts as
    cell = 2 * model.field.scale.item() / 32
    # Cells whose centre is within one cell of the surface or inside it, then the margin.
    reach = radius + model.proxy_margin
    assert torch.all(model.proxy_hi >= reach - 0.1 * cell) and torch.all(model.proxy_hi <= reach + 2.5 * cell)
    assert torch.all(model.proxy_lo <= -reach + 0.1 * cell) and torch.all(model.proxy_lo >= -reach - 2.5 * cell)


@pytest.mark.parametrize("motion", ["rigid", "bob"])
def test_skipping_empty_space_renders_the_same_silhouette(scene, motion):
    model = _model(scene, motion)
    model.update_proxy()
    xy = torch.as_tensor(pixel_grid(32, scene[1]), dtype=torch.float32)
    with torch.no_grad():
        dense = model.render_rays(torch.tensor([3]), xy[None], 128)["opacity"][0]
    skipped = model.render_pixels(3, xy, 32)["opacity"]
    assert 0.2 < (dense > 0.5).float().mean() < 0.9  # the sphere covers part of the frame
    assert float((dense - skipped).abs().max()) < 0.05
    assert float(((dense > 0.5) != (skipped > 0.5)).float().mean()) < 0.01


@pytest.mark.parametrize("motion", ["rigid", "bob"])
def test_rays_that_miss_every_box_render_empty(scene, motion):
    model = _model(scene, motion)
    far_away = torch.full((1, 5, 2), -1e4)
    with torch.no_grad():
        out = model.render_rays(torch.tensor([0]), far_away, 16, 8)
    assert not out["hit"].any() and out["samples"].shape == (0, 16 + 8, 3)
    assert torch.all(out["opacity"] == 0) and torch.all(out["rgb"] == 0)


@pytest.mark.parametrize("motion", ["rigid", "bob"])
def test_importance_samples_bring_a_coarse_render_to_the_dense_one(scene, motion):
    model = _model(scene, motion)
    model.update_proxy()
    xy = torch.as_tensor(pixel_grid(32, scene[1]), dtype=torch.float32)
    with torch.no_grad():
        dense = model.render_rays(torch.tensor([3]), xy[None], 256)
    inside = dense["opacity"][0] > 0.99

    def depth_error(samples: int, importance: int) -> float:
        depth = model.render_pixels(3, xy, samples, importance)["depth"]
        return float((depth - dense["depth"][0])[inside].abs().mean())

    assert depth_error(8, 8) < 0.5 * depth_error(8, 0)
    assert depth_error(8, 8) < depth_error(16, 0)  # as many shaded samples, half of them placed by the first pass


def test_posed_normals_follow_the_backward_warp(scene):
    model = _model(scene, "rigid")
    shift = torch.tensor([0.3, -0.2, 0.1]) * scene[0].object_radius
    model.deform.warp_to_canonical = lambda points, frame, inst: points - shift
    radius = 0.6 * scene[0].object_radius  # the initial sphere, moved by the warp to ``shift``
    directions = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    zeros = torch.zeros(64, dtype=torch.long)
    normals = model._posed_normal(shift + radius * directions, zeros, zeros)
    cosine = (normals * directions).sum(-1)
    assert float(cosine.min()) > 0.98
    far_outside = torch.full((1, 3), 10.0 * float(model.bound))
    assert torch.equal(model._posed_normal(far_outside, zeros[:1], zeros[:1]), torch.zeros(1, 3))


def test_shading_scales_the_colour_of_its_own_videos_frames(scene):
    torch.manual_seed(0)
    model = DynamicModel(ModelConfig(fg_motion="rigid", shading="sh", **SMALL), scene[0])
    model.update_proxy()
    xy = torch.as_tensor(pixel_grid(16, scene[1]), dtype=torch.float32)
    first = int(model.video_of_frame.tolist().index(1))
    before = [model.render_pixels(f, xy, 16)["rgb"] for f in (0, first)]
    with torch.no_grad():
        model.shading.light[1, 0] = -0.5  # video 1 at half brightness
    after = [model.render_pixels(f, xy, 16)["rgb"] for f in (0, first)]
    assert float(before[1].max()) > 0.1
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[1], 0.5 * before[1])


def _degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b / (a.norm() * b.norm()))))))


def test_the_up_axis_comes_from_the_cameras_and_follows_the_learned_ones(scene, tmp_path):
    model = _model(scene, "rigid")
    # The synthetic world is y-down and its animals upright, turned about y only: up is -y.
    assert _degrees(model.up_axis, torch.tensor([0.0, -1.0, 0.0])) < 1.0
    # Learned residuals that turn every frame's object by the same rotation P: x_cam = R P^T x_obj.
    turn = so3_exp(torch.tensor([0.5, 0.2, -0.3]))
    base = model.root.base_rotation
    with torch.no_grad():
        model.root.residual[:, :3] = so3_log(base @ turn.T @ base.transpose(1, 2))
    expected = turn @ model.up_axis
    state = {key: value for key, value in model.state_dict().items() if key != "up_axis"}
    # A checkpoint from before the up axis gets it from its learned root poses when loaded.
    cfg = DatasetConfig(
        source=SourceConfig(path=str(tmp_path), collection="tiny-quad"),
        model=model.cfg,
        train=TrainConfig(train_res=scene[1]),
    )
    save_checkpoint(tmp_path / "old.pth", {"config": to_dict(cfg), "model": state})
    loaded, _, _ = load_model(tmp_path / "old.pth", scene[2], torch.device("cpu"))
    assert _degrees(loaded.up_axis, expected) < 0.5
    # A checkpoint that has it keeps it.
    save_checkpoint(tmp_path / "new.pth", {"config": to_dict(cfg), "model": {**state, "up_axis": -expected}})
    loaded, _, _ = load_model(tmp_path / "new.pth", scene[2], torch.device("cpu"))
    assert torch.equal(loaded.up_axis, -expected)


def test_feature_anchors_cover_the_surface_and_a_pixel_feature_matches_its_anchor(scene, monkeypatch):
    model = _model(scene, "rigid")
    model.update_proxy(resolution=32)
    anchors = model.feature_anchors[0]
    radius = 0.6 * scene[0].object_radius  # the initial sphere
    assert (anchors.norm(dim=-1) - radius).abs().max() < 0.05 * radius
    # Spread over the sphere, not bunched: every octant holds a share, and the anchors are distinct points
    # finer than the proxy grid's cells.
    octants = (anchors > 0).long() @ torch.tensor([1, 2, 4])
    assert torch.bincount(octants, minlength=8).min() > 0.05 * len(anchors)
    cell = 2 * model.field.scale.item() / 32
    assert len(torch.unique(anchors, dim=0)) > 0.9 * len(anchors)
    nearest = torch.cdist(anchors[:500], anchors).topk(2, largest=False).values[:, 1]
    assert nearest.median() < 0.5 * cell
    # A canonical feature that tells every surface point apart: its direction from the centre.
    monkeypatch.setattr(model.field, "feature", lambda x, inst: torch.nn.functional.normalize(x, dim=-1))
    with torch.no_grad():
        wanted = torch.tensor([3, 3000, 7000])
        features = model.field.feature(anchors[wanted], torch.tensor(0))[None]
        model.log_feature_temperature.fill_(math.log(1e-7))
        matched = model.match_features(features, torch.tensor([0]))[0]
        assert torch.allclose(matched, anchors[wanted], atol=1e-3 * radius)
        only_second = model.match_features(features, torch.tensor([0]), torch.tensor([[False, True, False]]))[0]
        assert torch.equal(only_second[[0, 2]], torch.zeros(2, 3)) and torch.equal(only_second[1], matched[1])
        # A warm softmax averages the best anchors only: the match stays by its anchor, near the surface, where
        # a softmax over every anchor would have averaged the whole sphere towards its centre.
        model.log_feature_temperature.fill_(math.log(10.0))
        matched = model.match_features(features, torch.tensor([0]))[0]
        assert (matched - anchors[wanted]).norm(dim=-1).max() < cell
        assert (matched.norm(dim=-1) - radius).abs().max() < 0.05 * radius


def test_a_checkpoint_with_fewer_feature_anchors_loads_and_refits_them(scene):
    model = _model(scene, "rigid")
    model.update_proxy(resolution=32)
    state = {**model.state_dict(), "feature_anchors": torch.zeros(model.num_inst, 1024, 3)}
    loaded = _model(scene, "rigid")
    loaded.load_trained_state(state)
    torch.testing.assert_close(loaded.feature_anchors, model.feature_anchors)
    torch.testing.assert_close(loaded.proxy_hi, model.proxy_hi)
