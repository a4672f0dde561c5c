"""Pair/pixel sampling: the pair set, values read back, determinism and sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab4d_core.data.database import Database
from lab4d_core.data.sampler import PairSampler, frame_table, pair_table, sample_pixels
from lab4d_core.geometry.cameras import crop_intrinsics

COLLECTION = "tiny-quad"
RES = 64


@pytest.fixture(scope="module")
def database(tiny_quad) -> Database:
    return Database(tiny_quad, COLLECTION, RES)


def test_pair_table_of_twelve_frames():
    expected = [(t, 1) for t in range(11)] + [(t, 2) for t in (0, 2, 4, 6, 8)] + [(0, 4), (4, 4), (0, 8)]
    assert [tuple(r) for r in pair_table(12).tolist()] == expected
    # One row per flow row: (N-1)//d pairs of each delta.
    assert len(pair_table(12)) == 11 + 5 + 2 + 1
    assert pair_table(1).shape == (0, 2)
    assert [tuple(r) for r in pair_table(3).tolist()] == [(0, 1), (1, 1), (0, 2)]


def test_sampler_covers_every_pair_of_the_collection(database):
    sampler = PairSampler(database, pairs_per_step=4)
    assert sampler.num_pairs == len(sampler) == 2 * 19
    drawn = np.concatenate([sampler.global_pairs(step) for step in range(40)])
    assert set(drawn.tolist()) == set(range(sampler.num_pairs))


def test_values_match_the_arrays(database):
    sampler = PairSampler(database, pairs_per_step=8, pixels_per_image=32, seed=3)
    batch = sampler.batch(5)
    num, k = 16, 32
    shapes = {"xy": (num, k, 2), "rgb": (num, k, 3), "flow": (num, k, 3), "mask": (num, k), "depth": (num, k)}
    for key, shape in shapes.items():
        assert batch[key].shape == shape, key
    assert batch["rgb"].dtype == torch.float32 and batch["frame"].dtype == torch.int64
    assert torch.equal(batch["partner"][0::2], batch["frame"][1::2])
    assert torch.equal(batch["partner"][1::2], batch["frame"][0::2])
    for p in range(num):
        video, frame, delta = int(batch["video"][p]), int(batch["frame"][p]), int(batch["delta"][p])
        clip, kept = database.videos[video], frame - int(database.frame_offset[video])
        x, y = batch["xy"][p, :, 0].numpy(), batch["xy"][p, :, 1].numpy()
        assert delta in (1, 2, 4, 8)
        np.testing.assert_array_equal(batch["rgb"][p].numpy(), clip.array("rgb")[kept, y, x].astype(np.float32))
        np.testing.assert_array_equal(batch["mask"][p].numpy(), clip.array("mask")[kept, y, x, 0])
        np.testing.assert_array_equal(batch["depth"][p].numpy(), clip.array("depth")[kept, y, x].astype(np.float32))
        assert bool(batch["is_detected"][p]) == bool(clip.array("is_detected")[kept])
        # The first frame of a pair is t (forward flow), the second t+d (backward).
        t = kept if p % 2 == 0 else kept - delta
        assert t % delta == 0 and t + delta < clip.num_frames
        flow = clip.flow(delta, "fw" if p % 2 == 0 else "bw")[t // delta, y, x]
        np.testing.assert_array_equal(batch["flow"][p].numpy(), flow.astype(np.float32))


def test_intrinsics_are_the_array_cameras(database):
    batch = PairSampler(database, pairs_per_step=6).batch(0)
    for key, frames in (("intrinsics", batch["frame"]), ("partner_intrinsics", batch["partner"])):
        for p, frame in enumerate(frames.tolist()):
            video = int(np.searchsorted(database.frame_offset, frame, side="right") - 1)
            clip = database.videos[video]
            kept = frame - int(database.frame_offset[video])
            expected = crop_intrinsics(clip.ks, clip.array("crop2raw")[kept])
            np.testing.assert_allclose(batch[key][p].numpy(), expected, rtol=1e-6)


def test_same_step_is_identical_and_steps_differ(database):
    first = PairSampler(database, pairs_per_step=6, seed=1).batch(7)
    again = PairSampler(database, pairs_per_step=6, seed=1).batch(7)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    other = PairSampler(database, pairs_per_step=6, seed=1).batch(8)
    assert not torch.equal(first["xy"], other["xy"])
    reseeded = PairSampler(database, pairs_per_step=6, seed=2).batch(7)
    assert not torch.equal(first["xy"], reseeded["xy"])


@pytest.mark.parametrize("fg_fraction", [0.0, 0.5])
def test_ranks_concatenated_equal_the_single_process_batch(database, fg_fraction):
    def batch(world_size: int, rank: int) -> dict[str, torch.Tensor]:
        sampler = PairSampler(database, pairs_per_step=6, world_size=world_size, rank=rank, fg_fraction=fg_fraction)
        return sampler.batch(11)

    whole = batch(1, 0)
    shards = [batch(2, 0), batch(2, 1)]
    assert len(shards[0]["frame"]) == 6
    for key in whole:
        assert torch.equal(torch.cat([s[key] for s in shards]), whole[key]), key


def test_bad_sharding_is_refused(database):
    with pytest.raises(ValueError, match="multiple of world_size"):
        PairSampler(database, pairs_per_step=5, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        PairSampler(database, pairs_per_step=4, world_size=2, rank=2)


def test_pixels_are_visible_distinct_and_uniformly_weighted(database):
    sampler = PairSampler(database, pairs_per_step=12, pixels_per_image=64)
    for step in range(3):
        batch = sampler.batch(step)
        assert batch["vis2d"].all()
        flat = batch["xy"][..., 1] * RES + batch["xy"][..., 0]
        assert all(len(set(row.tolist())) == 64 for row in flat)
        assert torch.equal(batch["weight"], torch.ones_like(batch["weight"]))


def test_full_fg_fraction_draws_only_mask_pixels(database):
    batch = PairSampler(database, pairs_per_step=12, pixels_per_image=64, fg_fraction=1.0).batch(2)
    assert batch["mask"].all() and batch["vis2d"].all()
    uniform = PairSampler(database, pairs_per_step=12, pixels_per_image=64).batch(2)
    assert not uniform["mask"].all()


@pytest.mark.parametrize(
    ("visible_rows", "mask_box", "fg_fraction"),
    [
        (slice(1, 6), (slice(2, 4), slice(2, 5)), 0.6),  # 6 mask pixels, 3 drawn from them
        (slice(1, 6), (slice(2, 3), slice(2, 4)), 0.8),  # fewer mask pixels than asked: all taken
        (slice(1, 6), (slice(2, 4), slice(2, 5)), 1.0),  # every pixel from the mask
        (slice(5, 6), (slice(5, 6), slice(0, 2)), 0.4),  # 6 visible pixels < 7: all pixels are candidates
    ],
)
def test_importance_weights_are_unbiased(visible_rows, mask_box, fg_fraction):
    rng = np.random.default_rng(0)
    count = 7
    vis2d = np.zeros((6, 6), bool)
    vis2d[visible_rows] = True
    mask = np.zeros((6, 6), bool)
    mask[mask_box] = True
    candidates = vis2d.reshape(-1) if vis2d.sum() >= count else np.ones(36, bool)
    # A loss that vanishes off the mask when no pixel is drawn uniformly.
    loss = rng.random(36) * (mask.reshape(-1) if fg_fraction == 1.0 else 1.0)
    wanted_fg = min(round(fg_fraction * count), int(mask.sum()))
    estimates = []
    for _ in range(3000):
        pixels, weight = sample_pixels(rng, vis2d, mask, count, fg_fraction)
        assert candidates[pixels].all() and len(set(pixels.tolist())) == count
        assert mask.reshape(-1)[pixels].sum() >= wanted_fg
        estimates.append(np.mean(weight * loss[pixels]))
    error = abs(np.mean(estimates) - loss[candidates].mean())
    assert error <= 4 * np.std(estimates) / np.sqrt(len(estimates)) + 1e-12


def test_frame_table(database):
    table = frame_table(database)
    assert table["video_of_frame"].tolist() == [0] * 12 + [1] * 12
    assert table["kept_ids"].tolist() == list(range(12)) * 2
    assert table["raw_counts"].tolist() == [v.num_frames_raw for v in database.videos]
    clip = database.videos[1]
    expected = crop_intrinsics(clip.ks, clip.array("crop2raw")[3])
    np.testing.assert_allclose(table["intrinsics"][12 + 3].numpy(), expected, rtol=1e-6)
    assert table["cameras"].shape == (24, 4, 4) and table["cameras"].dtype == torch.float32
    np.testing.assert_allclose(table["cameras"][12 + 3].numpy(), clip.camera("01-canonical")[3], rtol=1e-6)
