"""Stand-in DINOv2 features: unit vectors tied to the material point, alike across frames and builds."""

from __future__ import annotations

import numpy as np
import torch

from lab4d_core.data.manifest import read_manifest
from lab4d_core.data.sampler import _bilinear
from lab4d_core.data.synthetic.features import surface_embedding


def test_the_embedding_is_unit_length_smooth_and_relative_to_the_body():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (2000, 3))
    centre, size = np.array([0.1, 0.0, -0.2]), 1.0
    features = surface_embedding(points, centre, size)
    np.testing.assert_allclose(np.linalg.norm(features, axis=-1), 1.0, atol=1e-6)
    # A larger individual's same body part (scaled about the centre) gets the same feature.
    np.testing.assert_allclose(surface_embedding(centre + 1.3 * (points - centre), centre, 1.3 * size), features)
    near = surface_embedding(points + 0.01 * size * rng.normal(size=points.shape), centre, size)
    far = np.roll(features, 1, axis=0)
    assert (near * features).sum(-1).mean() > 0.99
    assert (far * features).sum(-1).mean() < 0.6


def test_features_follow_the_material_point_along_the_exact_flow(tiny_quad):
    video = read_manifest(tiny_quad / "manifest.json").database().videos[0]
    features = video.array("features-dinov2", "crop")
    assert features.shape[1:] == (112, 112, 16) and features.dtype == np.float16
    mask = np.array(video.array("mask", "crop")[..., 0])
    flow = np.asarray(video.flow(1, "fw", "crop"))
    res = mask.shape[1]
    frame = 3
    # Object pixels well inside the silhouette, whose flow is confident and lands on the object.
    inner = (
        mask[frame]
        & (torch.nn.functional.max_pool2d(torch.from_numpy(~mask[frame])[None].float(), 5, 1, 2)[0] == 0).numpy()
    )
    y, x = np.nonzero(inner & (flow[frame, ..., 2] > 0))
    target = np.rint(np.stack([x + flow[frame, y, x, 0], y + flow[frame, y, x, 1]], -1)).astype(int)
    lands = (target >= 0).all(1) & (target < res).all(1)
    lands[lands] &= mask[frame + 1, target[lands, 1], target[lands, 0]]
    here = _bilinear(features, np.array([frame]), (y * res + x)[lands][None], res)[0]
    there = _bilinear(features, np.array([frame + 1]), (target[lands, 1] * res + target[lands, 0])[None], res)[0]
    assert lands.sum() > 50
    here, there = (f / np.linalg.norm(f, axis=-1, keepdims=True) for f in (here, there))
    same_point = (here * there).sum(-1)
    other_point = (here * np.roll(there, len(there) // 2, axis=0)).sum(-1)
    assert np.median(same_point) > 0.97
    assert np.median(other_point) < 0.8
    # Zero off the object: a pixel of the 112 grid far from the silhouette carries nothing.
    far = torch.nn.functional.max_pool2d(torch.from_numpy(mask[frame])[None].float(), 9, 1, 4)[0] == 0
    corners = _bilinear(features, np.array([frame]), np.flatnonzero(far.numpy())[None], res)[0]
    assert np.abs(corners).max() == 0.0


def test_bilinear_sampling_is_exact_on_a_linear_ramp():
    size, res = 112, 64
    ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[None, None, :, None], (1, size, size, 1)).copy()
    flat = np.arange(res * res)[None]
    sampled = _bilinear(ramp, np.array([0]), flat, res)[0, :, 0]
    expected = ((flat[0] % res) + 0.5) * size / res - 0.5
    inside = (expected >= 0) & (expected <= size - 1)
    np.testing.assert_allclose(sampled[inside], expected[inside], atol=1e-4)
    assert inside.mean() > 0.95
