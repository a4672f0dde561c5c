"""Dense optical flow between the crops of a video's frames, in lab4d's layout (``FlowFW_d``, ``FlowBW_d``).

lab4d runs VCN+ (learned, GPU) on the raw frames and resamples the result into each frame's crop
(``preprocess/libs/io.py``). No flow network's weights can be fetched here, so this uses OpenCV's DIS
(medium preset, refined down to full resolution), run directly between the two frames' crops at the
training resolution: the crop magnifies a small object and takes out the crop's own change, so against
exact synthetic flow this beat lab4d's way (DIS on the raw frames, then resampled) at the same cost.

DIS alone loses what moves far: thin legs at delta 1 and most of the object at delta 8. Each flow is
therefore picked per pixel, by how well it matches the colours around the pixel, among candidates:

* DIS between the two crops;
* at delta 1, DIS with the partner frame resampled in the source's crop window (only the object's motion
  is left to find, not the crop's change);
* above delta 1, the two half-delta flows chained, and DIS started from that chain (DIS keeps large
  motions it is given, so delta 8 grows from delta 1 instead of being searched from scratch);
* after both directions: the backward flow inverted, and the mean of the two estimates.

End-point error in array pixels, mean / median, on the object pixels the exact flow sees, on the 256^2
synthetic quadruped (``demo-quad-256``; orbiting camera, then handheld):

============================  ==========================  ===========================
                              delta 1                     delta 8
============================  ==========================  ===========================
DIS on raw frames (lab4d's)   2.87/0.55, 1.06/0.21        62/53, 20/2.7
DIS between crops             1.01/0.33, 0.93/0.17        59/57, 10.3/0.70
this module                   0.91/0.32, 0.80/0.17        9.1/1.4, 6.3/0.55
============================  ==========================  ===========================

It costs two DIS runs (23 ms each at 256^2, one core) per flow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from lab4d_core.data.database import FLOW_DELTAS
from lab4d_core.preprocess.crop import crop_image, inside_raw, remap

CONFIDENCE_SCALE = 25.0
"""lab4d's confidence is exp(-25 * fw-bw error), the error in units of half the image height."""
MIN_CONFIDENCE = 0.25
"""lab4d zeroes confidences below this (an fw-bw error of about 1/36 of the image height)."""
MATCH_WINDOW = 7
"""Side of the window whose colour difference picks a pixel's flow among the candidates."""


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _dis(source: np.ndarray, target: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
    """DIS flow between two uint8 gray images: the medium preset, refined down to full resolution.

    Full resolution (finest scale 0 instead of the preset's 1) cut the synthetic error by a quarter for
    three times the time (23 instead of 8 ms at 256^2); more iterations, other patch sizes or stronger
    smoothing did not help. A fresh DIS object per call: one that was once given an initial flow keeps
    starting from it. DIS writes its result over the initial flow, hence the copy.
    """
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    return dis.calc(source, target, None if initial is None else np.array(initial, np.float32, order="C"))


def estimate_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 flow taking each pixel of ``source`` to ``target`` (uint8 RGB or gray images).

    One DIS run; :func:`crop_flows` adds the candidates that large motions need.
    """
    return _dis(_gray(source), _gray(target))


def _grid(height: int, width: int) -> np.ndarray:
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack([x, y], axis=-1)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p) for every pixel p (bilinear, zero outside)."""
    target = _grid(*flow.shape[:2]) + flow
    return remap(image, target[..., 0], target[..., 1])


def consistency_confidence(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) float32 lab4d flow confidence of ``forward``, given the ``backward`` flow of the same pair.

    lab4d (``compute_flow_uct``): the fw-bw error ``|fw(p) + bw(p + fw(p))|`` in pixels, divided by half the
    image height, gives ``exp(-25 * error)``; below 0.25 (an error of about 7 px at 256) it is 0, and so is
    every pixel whose forward flow leaves the image, which lab4d's zero border gives.
    """
    height, width = forward.shape[:2]
    landing = _grid(height, width) + forward[..., :2]
    error = np.linalg.norm(forward[..., :2] + warp(backward[..., :2], forward[..., :2]), axis=-1)
    confidence = np.exp(-CONFIDENCE_SCALE * error / (height / 2))
    inside = (landing >= 0).all(axis=-1) & (landing[..., 0] <= width - 1) & (landing[..., 1] <= height - 1)
    confidence[(confidence < MIN_CONFIDENCE) | ~inside] = 0
    return confidence.astype(np.float32)


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow of ``first`` followed by ``second`` (each in its partner's coordinates)."""
    return first + warp(second, first)


def _match_cost(source: np.ndarray, target: np.ndarray, flow: np.ndarray) -> np.ndarray:
    difference = np.abs(warp(target, flow).astype(np.float32) - source).sum(axis=-1)
    return cv2.boxFilter(difference, -1, (MATCH_WINDOW, MATCH_WINDOW))


def _pick(source: np.ndarray, target: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the candidate flow under which the target looks most like the source around the pixel."""
    costs = np.stack([_match_cost(source, target, flow) for flow in candidates])
    return np.take_along_axis(np.stack(candidates), costs.argmin(axis=0)[None, ..., None], axis=0)[0]


def _crop_for_flow(frame: np.ndarray, crop2raw: np.ndarray, train_res: int) -> np.ndarray:
    """``crop_image`` of the frame, blurred first where the crop shrinks it, so that its samples do not alias.

    A crop that shrinks the raw frame (a large object, a 4K video) samples it sparsely; on DAVIS frames
    shrunk 2-3x this blur cut the flow error by 27-38% (lab4d's own RGB crops are not blurred). Only the
    part of the frame under the crop is blurred.
    """
    sigma = [0.5 * np.sqrt(max(scale**2 - 1, 0.0)) for scale in crop2raw[:2]]
    if max(sigma) < 0.1:
        return crop_image(frame, crop2raw, train_res)
    height, width = frame.shape[:2]
    margin = int(np.ceil(3 * max(sigma))) + 2
    corner = np.asarray(crop2raw[2:], np.float64)
    far = corner + np.asarray(crop2raw[:2]) * (train_res - 1)
    x0, y0 = (max(int(np.floor(c)) - margin, 0) for c in corner)
    x1, y1 = min(int(np.ceil(far[0])) + margin, width), min(int(np.ceil(far[1])) + margin, height)
    if x1 <= x0 or y1 <= y0:  # the crop misses the frame
        return crop_image(frame, crop2raw, train_res)
    region = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), sigmaX=max(sigma[0], 0.01), sigmaY=max(sigma[1], 0.01))
    shifted = np.array([crop2raw[0], crop2raw[1], crop2raw[2] - x0, crop2raw[3] - y0])
    return crop_image(region, shifted, train_res)


class _Crops:
    """A video's frames cropped for flow: RGB and gray arrays at R, and the raw frames to resample."""

    def __init__(self, frames: np.ndarray, crop2raw: np.ndarray, train_res: int) -> None:
        self.crop2raw = np.asarray(crop2raw, np.float64)
        self.train_res = train_res
        self.raw = frames
        self.rgb = np.stack([_crop_for_flow(frame, box, train_res) for frame, box in zip(frames, self.crop2raw)])
        self.gray = np.stack([_gray(image) for image in self.rgb])
        self.vis2d = np.stack([inside_raw(box, train_res, frames.shape[1:3]) for box in self.crop2raw])

    def same_window(self, source: int, target: int) -> np.ndarray:
        """DIS from the source crop to the target frame sampled in the source's window, in partner coordinates."""
        box, partner = self.crop2raw[source], self.crop2raw[target]
        flow = _dis(self.gray[source], _gray(_crop_for_flow(self.raw[target], box, self.train_res)))
        landing = _grid(self.train_res, self.train_res) + flow
        raw_x, raw_y = box[0] * landing[..., 0] + box[2], box[1] * landing[..., 1] + box[3]
        partner_xy = np.stack([(raw_x - partner[2]) / partner[0], (raw_y - partner[3]) / partner[1]], axis=-1)
        return (partner_xy - _grid(self.train_res, self.train_res)).astype(np.float32)

    def one_way(self, source: int, target: int, guess: np.ndarray | None) -> np.ndarray:
        candidates = [_dis(self.gray[source], self.gray[target])]
        if guess is None:
            candidates.append(self.same_window(source, target))
        else:
            candidates += [_dis(self.gray[source], self.gray[target], guess), guess]
        return _pick(self.rgb[source], self.rgb[target], candidates)

    def both_ways(
        self, source: int, target: int, guesses: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward and backward flow of a pair, each also offered the other inverted and their mean."""
        forward = self.one_way(source, target, None if guesses is None else guesses[0])
        backward = self.one_way(target, source, None if guesses is None else guesses[1])
        inverted_bw, inverted_fw = -warp(backward, forward), -warp(forward, backward)
        return (
            _pick(self.rgb[source], self.rgb[target], [forward, inverted_bw, (forward + inverted_bw) / 2]),
            _pick(self.rgb[target], self.rgb[source], [backward, inverted_fw, (backward + inverted_fw) / 2]),
        )

    def with_confidence(self, flow: np.ndarray, partner_flow: np.ndarray, source: int, target: int) -> np.ndarray:
        """(R, R, 3) dx, dy, confidence of one flow, in lab4d's form.

        The confidence is 0 where the flow lands outside the partner's raw frame, and everything is 0 outside
        the source's (lab4d's crops are zero there).
        """
        out = np.zeros(flow.shape[:2] + (3,), np.float32)
        out[..., :2] = flow
        out[..., 2] = consistency_confidence(flow, partner_flow)
        out[..., 2][warp(self.vis2d[target].astype(np.float32), flow) < 1] = 0
        out[~self.vis2d[source]] = 0
        return out


def num_flow_pairs(num_frames: int, deltas: Sequence[int] = FLOW_DELTAS) -> int:
    """How many flows :func:`crop_flows` computes, forward and backward each counted: its progress total."""
    return 2 * sum((num_frames - 1) // delta for delta in deltas)


def _workers() -> int:
    """CPUs this process may use (a Slurm job's allocation, not the whole node)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def crop_flows(
    frames: np.ndarray,
    crop2raw: np.ndarray,
    train_res: int,
    deltas: Sequence[int] = FLOW_DELTAS,
    progress=None,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """lab4d's flow arrays of one video: ``fw[d][k]`` frame k*d -> k*d+d, ``bw[d][k]`` the reverse.

    ``frames`` are the (N, H, W, 3) uint8 kept frames and ``crop2raw`` their (N, 4) crops. Each delta has
    ``(N-1)//d`` arrays, stacked as (M, R, R, 3) float32 (dx, dy, confidence): a source array pixel p lands
    on the partner frame's array pixel p + (dx, dy). Pixels outside the raw frame are all zero, and the
    confidence is 0 where the flow lands outside the partner's raw frame. ``progress`` (tqdm-like) counts
    forward and backward flows, :func:`num_flow_pairs` in all. Pairs run in threads (OpenCV releases
    the GIL).
    """
    crops = _Crops(frames, crop2raw, train_res)
    forward, backward = {}, {}
    flows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for delta in sorted(deltas):
            half = flows.get(delta // 2) if delta % 2 == 0 else None
            # Kept only while a larger delta may chain them: N x 1 MB at 256.
            flows = {d: f for d, f in flows.items() if 2 * d >= delta}

            count = (len(frames) - 1) // delta
            forward[delta] = np.zeros((count, train_res, train_res, 3), np.float32)
            backward[delta] = np.zeros((count, train_res, train_res, 3), np.float32)

            def pair(k: int, delta: int = delta, half: list | None = half) -> tuple[np.ndarray, np.ndarray]:
                start, end = k * delta, k * delta + delta
                guesses = None
                if half is not None:
                    (fw_a, bw_a), (fw_b, bw_b) = half[2 * k], half[2 * k + 1]
                    guesses = (compose(fw_a, fw_b), compose(bw_b, bw_a))
                fw, bw = crops.both_ways(start, end, guesses)
                forward[delta][k] = crops.with_confidence(fw, bw, start, end)
                backward[delta][k] = crops.with_confidence(bw, fw, end, start)
                return fw, bw

            flows[delta] = []
            for pair_flows in pool.map(pair, range(count)):
                flows[delta].append(pair_flows)
                if progress is not None:
                    progress.update(2)
    return forward, backward
