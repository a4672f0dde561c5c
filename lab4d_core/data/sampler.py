"""Training batches of frame pairs and pixels, lab4d-style, deterministic per step.

An item is a pair (t, t+d) of kept frames of one video, d in {1} and {2, 4, 8}
where ``t % d == 0``, exactly the pairs that have flow (``reference/lab4d.md``
section 3, "Layout details"). Both frames of a pair are samples: t with its
forward flow to t+d, t+d with its backward flow to t, so a batch of B pairs
holds 2B frames (lab4d counts ``imgs_per_gpu`` in pairs).

Two deliberate departures from lab4d's ``vidloader.py``:

* pairs are drawn uniformly over the pair set, where lab4d draws a frame and
  then a delta (which over-weights the d=1 pairs of frames with odd t);
* pixels are drawn over the valid (vis2d) pixels of the array, not over the
  whole crop, since pixels outside the raw image carry zero data.

Every step's batch is a pure function of ``(seed, step)`` over the GLOBAL batch,
and rank r keeps a contiguous shard of it. One process with the whole batch
therefore sees exactly the union of what ``world_size`` ranks see, so a run's
data does not depend on how many devices trained it, and a resumed run replays
the same batches. Only the sampled pixels are read from the memory-mapped
arrays, apart from the mask/vis2d plane of each sampled frame, which the pixel
draw needs.
"""

from __future__ import annotations

import numpy as np
import torch

from lab4d_core.data.database import FEATURE_SHAPE, FLOW_DELTAS, Database, Video
from lab4d_core.geometry.cameras import crop_intrinsics

# Domain tags of the per-step seeds, so the pair draw and the pixel draws of a
# step never share a random stream.
_PAIR_STREAM = 0
_PIXEL_STREAM = 1


def pair_table(num_frames: int) -> np.ndarray:
    """(M, 2) int64 rows (t, d) of the pairs of a video with ``num_frames`` kept frames.

    ``t % d == 0 and t + d < N``: the rows of ``FlowFW_d`` / ``FlowBW_d``, in
    order of d, then t; row ``t // d`` of both flows belongs to pair (t, d).
    """
    starts = [np.arange(0, num_frames - d, d, dtype=np.int64) for d in FLOW_DELTAS]  # empty when N <= d
    return np.concatenate([np.stack([t, np.full_like(t, d)], 1) for t, d in zip(starts, FLOW_DELTAS)])


def _array_intrinsics(video: Video, prefix: str) -> np.ndarray:
    """(N, 4) intrinsics of the array camera of every kept frame of ``video``."""
    return crop_intrinsics(video.ks, np.asarray(video.array("crop2raw", prefix), dtype=np.float64))


def frame_table(database: Database, prefix: str = "crop") -> dict[str, torch.Tensor | None]:
    """Per-frame tensors the model needs at construction, indexed by global kept frame.

    Returns ``video_of_frame`` (F,) int64, ``kept_ids`` (F,) int64 raw id of each
    frame within its video, ``raw_counts`` (V,) int64 raw frames per video,
    ``intrinsics`` (F, 4) float32 array-camera (fx, fy, cx, cy), and ``cameras``
    (F, 4, 4) float32 ``01-canonical`` object->camera poses, or None unless every
    video has them (a partial initialisation would silently mix in identities).
    """
    videos = database.videos
    cameras = [v.camera("01-canonical") for v in videos]
    return {
        "video_of_frame": torch.from_numpy(np.repeat(np.arange(len(videos)), [v.num_frames for v in videos])),
        "kept_ids": torch.from_numpy(np.concatenate([v.kept_ids for v in videos])),
        "raw_counts": torch.tensor([v.num_frames_raw for v in videos], dtype=torch.int64),
        "intrinsics": torch.from_numpy(np.concatenate([_array_intrinsics(v, prefix) for v in videos])).float(),
        "cameras": None
        if any(c is None for c in cameras)
        else torch.from_numpy(np.concatenate(cameras).astype(np.float32)),
    }


def sample_pixels(
    rng: np.random.Generator, vis2d: np.ndarray, mask: np.ndarray, count: int, fg_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct flat pixel indices of one frame and their importance weights.

    Candidates are the vis2d pixels (all pixels if fewer than ``count`` are
    visible, as lab4d's uniform crop sampling). ``round(fg_fraction * count)``
    are drawn from the candidate mask pixels (all of them if there are fewer),
    the rest uniformly from the remaining candidates.

    The weight of a pixel is ``count / (n * pi)`` with ``n`` candidates and
    ``pi`` its exact inclusion probability under this two-stage draw, so
    ``mean(weight * loss)`` is an unbiased estimate of the loss averaged over all
    candidates; uniform sampling (``fg_fraction=0``) gives weight exactly 1. With
    no uniform part (``fg_fraction=1`` and enough mask pixels), background pixels
    are never drawn and the estimate covers only losses that vanish off the mask.
    """
    visible = vis2d.reshape(-1)
    if np.count_nonzero(visible) < count:
        visible = np.ones_like(visible)
    candidates = np.flatnonzero(visible)
    n, in_mask = candidates.size, mask.reshape(-1)
    fg = np.flatnonzero(in_mask & visible) if fg_fraction else candidates[:0]
    m = fg.size
    k_fg = min(round(fg_fraction * count), m)
    k_bg = count - k_fg
    picked_fg = np.sort(rng.choice(fg, k_fg, replace=False))
    # Uniform over the candidates not yet taken, without listing them: draw
    # among n - k_fg positions, then step over each taken position in order.
    positions = rng.choice(n - k_fg, k_bg, replace=False)
    for taken in np.searchsorted(candidates, picked_fg):
        positions[positions >= taken] += 1
    pixels = np.concatenate([picked_fg, candidates[positions]])
    if not k_fg:
        return pixels, np.ones(count)
    # Weights follow the pixel's class, not the stage that drew it: the uniform
    # stage may draw mask pixels too. Integer products until the one division.
    weight = np.zeros(count)
    is_fg = in_mask[pixels]
    if k_bg:
        weight[~is_fg] = count * (n - k_fg) / (n * k_bg)
    weight[is_fg] = count * m * (n - k_fg) / (n * (k_fg * (n - k_fg) + (m - k_fg) * k_bg))
    return pixels, weight


def _gather(array: np.ndarray, rows: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``array[rows[p], y, x]`` at the (P, K) flat pixels ``flat``: reads only those elements."""
    res = array.shape[2]
    return np.asarray(array[rows[:, None], flat // res, flat % res], dtype=np.float32)


def _bilinear(maps: np.ndarray, rows: np.ndarray, flat: np.ndarray, res: int) -> np.ndarray:
    """Feature maps (F, S, S, C) at the (P, K) flat pixels ``flat`` of a res x res array, bilinearly (lab4d samples
    its 112 x 112 features so), pixel centres aligned; reads only the four neighbours of each pixel."""
    size = maps.shape[1]
    x = ((flat % res) + 0.5) * size / res - 0.5
    y = ((flat // res) + 0.5) * size / res - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    out = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)
            out = out + wy * wx * np.asarray(maps[rows[:, None], yy, xx], dtype=np.float32)
    return out


class PairSampler:
    """Global, deterministic batches of ``pairs_per_step`` frame pairs, sharded by rank.

    Rank r of ``world_size`` returns pairs ``[r*b, (r+1)*b)`` of the global batch,
    ``b = pairs_per_step // world_size``, as P = 2b frames ordered
    (t0, t0+d0, t1, t1+d1, ...), so concatenating the ranks' batches in rank
    order gives the ``world_size=1`` batch exactly.
    """

    def __init__(
        self,
        database: Database,
        prefix: str = "crop",
        pairs_per_step: int = 128,
        pixels_per_image: int = 16,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        fg_fraction: float = 0.0,
        feature_type: str | None = "dinov2",
    ) -> None:
        if prefix not in database.prefixes:
            raise ValueError(f"prefix {prefix!r} was not opened; the database has {database.prefixes}")
        if pairs_per_step < 1 or world_size < 1 or pairs_per_step % world_size:
            raise ValueError(
                f"pairs_per_step={pairs_per_step} must be a positive multiple of world_size={world_size}, "
                "so that every rank gets the same share of the global batch"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        res = database.resolution
        if not 1 <= pixels_per_image <= res * res:
            raise ValueError(f"pixels_per_image={pixels_per_image} must be in [1, {res * res}] for {res}^2 arrays")
        if not 0.0 <= fg_fraction <= 1.0:
            raise ValueError(f"fg_fraction={fg_fraction} must be in [0, 1]")
        if seed < 0:
            raise ValueError(f"seed={seed} must be non-negative")
        self.database = database
        self.prefix = prefix
        self.pairs_per_step = pairs_per_step
        self.pixels_per_image = pixels_per_image
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.fg_fraction = fg_fraction
        tables = [pair_table(v.num_frames) for v in database.videos]
        # (M, 3) rows (video, t, d) over the whole collection.
        self.pairs = np.concatenate(
            [np.column_stack([np.full(len(t), i, dtype=np.int64), t]) for i, t in enumerate(tables)]
        )
        if not len(self.pairs):
            raise ValueError(f"dataset {database.collection!r} has no frame pairs: every video has one frame")
        self.has_depth = all(v.has("depth", prefix) for v in database.videos)
        # As depth: all or nothing, so no step mixes frames with and without the loss's target.
        kind = f"features-{feature_type}"
        self.feature_kind = kind if feature_type and all(v.has(kind, prefix) for v in database.videos) else None
        # (F, 4) array cameras of every frame: crop2raw is tiny, read once.
        self.intrinsics = np.concatenate([_array_intrinsics(v, prefix) for v in database.videos]).astype(np.float32)

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    def __len__(self) -> int:
        return self.num_pairs

    def global_pairs(self, step: int) -> np.ndarray:
        """Indices into ``pairs`` of step ``step``'s global batch, identical on every rank.

        Without replacement within a step unless the batch exceeds the pair set.
        """
        if step < 0:
            raise ValueError(f"step={step} must be non-negative")
        rng = np.random.default_rng([self.seed, step, _PAIR_STREAM])
        return rng.choice(self.num_pairs, self.pairs_per_step, replace=self.pairs_per_step > self.num_pairs)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's shard of step ``step``: P = 2 * pairs_per_step / world_size frames, K pixels each.

        Keys: ``frame``, ``partner``, ``video``, ``delta`` (P,) int64 (frames are
        global kept indices); ``xy`` (P, K, 2) int64 array pixel (x=col, y=row;
        integer pixel centres); ``rgb`` (P, K, 3), ``flow`` (P, K, 3) (dx, dy,
        confidence) towards ``partner``, ``depth`` (P, K) only if every video has
        depth, ``weight`` (P, K) importance weights (see :func:`sample_pixels`),
        ``intrinsics`` / ``partner_intrinsics`` (P, 4) array cameras, all float32;
        ``mask``, ``vis2d`` (P, K) and ``is_detected`` (P,) bool.
        """
        share = self.pairs_per_step // self.world_size
        first = self.rank * share
        pair_video, t, d = self.pairs[self.global_pairs(step)[first : first + share]].T
        # Frame-level arrays, the two frames of each pair side by side.
        video, delta, flow_row = np.repeat(pair_video, 2), np.repeat(d, 2), np.repeat(t // d, 2)
        kept = np.stack([t, t + d], 1).reshape(-1)
        partner_kept = np.stack([t + d, t], 1).reshape(-1)
        backward = np.tile([False, True], share)
        offset = self.database.frame_offset[video]
        frame, partner = offset + kept, offset + partner_kept

        slots = np.arange(2 * first, 2 * (first + share))
        flat, weight, mask, vis2d = self._sample(step, video, kept, slots)
        num, k = len(frame), self.pixels_per_image
        rgb = np.empty((num, k, 3), np.float32)
        flow = np.empty((num, k, 3), np.float32)
        depth = np.empty((num, k), np.float32)
        feature = np.empty((num, k, FEATURE_SHAPE[-1]), np.float32)
        is_detected = np.empty(num, bool)
        for v in np.unique(video):
            clip, sel = self.database.videos[v], video == v
            rgb[sel] = _gather(clip.array("rgb", self.prefix), kept[sel], flat[sel])
            is_detected[sel] = clip.array("is_detected", self.prefix)[kept[sel]]
            if self.has_depth:
                depth[sel] = _gather(clip.array("depth", self.prefix), kept[sel], flat[sel])
            if self.feature_kind:
                maps = clip.array(self.feature_kind, self.prefix)
                feature[sel] = _bilinear(maps, kept[sel], flat[sel], self.database.resolution)
            for gap in np.unique(delta[sel]):
                for is_bw, direction in ((False, "fw"), (True, "bw")):
                    group = sel & (delta == gap) & (backward == is_bw)
                    flow_array = clip.flow(int(gap), direction, self.prefix)
                    flow[group] = _gather(flow_array, flow_row[group], flat[group])

        res = self.database.resolution
        out = {
            "frame": torch.from_numpy(frame),
            "partner": torch.from_numpy(partner),
            "video": torch.from_numpy(video),
            "delta": torch.from_numpy(delta),
            "xy": torch.from_numpy(np.stack([flat % res, flat // res], -1)),
            "rgb": torch.from_numpy(rgb),
            "mask": torch.from_numpy(mask),
            "vis2d": torch.from_numpy(vis2d),
            "flow": torch.from_numpy(flow),
            "weight": torch.from_numpy(weight),
            "intrinsics": torch.from_numpy(self.intrinsics[frame]),
            "partner_intrinsics": torch.from_numpy(self.intrinsics[partner]),
            "is_detected": torch.from_numpy(is_detected),
        }
        if self.has_depth:
            out["depth"] = torch.from_numpy(depth)
        if self.feature_kind:
            out["feature"] = torch.from_numpy(feature)
        return out

    def _sample(
        self, step: int, video: np.ndarray, kept: np.ndarray, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat pixels, weights, mask and vis2d of each frame: (P, K) each.

        Each frame draws from its own stream keyed by its slot in the global
        batch, so a rank reads the mask planes of its own frames only and still
        draws what a single process would.
        """
        flat, weight, mask, vis2d = [], [], [], []
        for v, k, slot in zip(video, kept, slots):
            plane = np.asarray(self.database.videos[v].array("mask", self.prefix)[k])
            rng = np.random.default_rng([self.seed, step, _PIXEL_STREAM, int(slot)])
            pixels, w = sample_pixels(rng, plane[..., 1], plane[..., 0], self.pixels_per_image, self.fg_fraction)
            flat.append(pixels)
            weight.append(w)
            mask.append(plane[..., 0].reshape(-1)[pixels])
            vis2d.append(plane[..., 1].reshape(-1)[pixels])
        return (
            np.stack(flat).astype(np.int64),
            np.stack(weight).astype(np.float32),
            np.stack(mask),
            np.stack(vis2d),
        )
