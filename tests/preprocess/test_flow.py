"""Optical flow between crops, in lab4d's layout and confidence."""

from __future__ import annotations

import cv2
import numpy as np

from lab4d_core.preprocess.flow import consistency_confidence, crop_flows, estimate_flow, num_flow_pairs
from tests.preprocess.footage import texture


def _textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    return (texture(height, width, seed) * 255).astype(np.uint8)


def _translated(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved by ``shift`` pixels: the flow from ``image`` to the result is ``shift``."""
    matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def test_estimate_flow_recovers_a_sub_pixel_translation():
    image = _textured(128, 128)
    flow = estimate_flow(image, _translated(image, (2.3, -1.7)))
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(flow[16:-16, 16:-16].mean(axis=(0, 1)), [2.3, -1.7], atol=0.1)


def test_confidence_follows_lab4d():
    forward = np.zeros((64, 64, 2), np.float32)
    forward[...] = (3, 1)
    confidence = consistency_confidence(forward, -forward)
    assert np.all(confidence[:63, :61] == 1)
    assert not confidence[:, 61:].any() and not confidence[63:].any()  # lands outside the image
    assert not consistency_confidence(forward, forward).any()  # disagree by 6.3 px
    backward = -forward
    backward[..., 0] += 1  # 1 px error: exp(-25 / 32)
    np.testing.assert_allclose(consistency_confidence(forward, backward)[:63, :60], np.exp(-25 / 32), rtol=1e-5)


def _expected_flow(source_box: np.ndarray, target_box: np.ndarray, shift: tuple[float, float], res: int) -> np.ndarray:
    """Array pixel p of the source crop -> the partner crop's pixel showing the same raw point, minus p."""
    x, y = np.meshgrid(np.arange(res), np.arange(res))
    raw_x, raw_y = source_box[0] * x + source_box[2] + shift[0], source_box[1] * y + source_box[3] + shift[1]
    return np.stack([(raw_x - target_box[2]) / target_box[0] - x, (raw_y - target_box[3]) / target_box[1] - y], -1)


def test_crop_flows_land_in_the_partner_crop():
    shift = (5.5, -3.25)
    first = _textured(120, 160, seed=1)
    frames = np.stack([first, _translated(first, shift)])
    boxes = np.array([[0.9, 1.1, 40.0, 30.0], [1.0, 0.95, 44.0, 25.0]])
    fw, bw = crop_flows(frames, boxes, 64, deltas=(1,))
    assert fw[1].shape == bw[1].shape == (1, 64, 64, 3) and fw[1].dtype == np.float32

    for flow, (source, target), sign in ((fw[1][0], (0, 1), 1), (bw[1][0], (1, 0), -1)):
        expected = _expected_flow(boxes[source], boxes[target], (sign * shift[0], sign * shift[1]), 64)
        confident = flow[..., 2] > 0.5
        assert confident.mean() > 0.7
        error = np.linalg.norm(flow[..., :2] - expected, axis=-1)[confident]
        assert np.median(error) < 0.1 and error.mean() < 0.3


def test_pixels_off_the_raw_frame_are_zero_and_landing_off_it_is_not_confident():
    wide = _textured(64, 80, seed=2)
    frames = np.stack([wide[:, 10:74], wide[:, 6:70]])  # the second shows the scene 4 px further right
    boxes = np.array([[1.0, 1.0, -8.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    fw, bw = crop_flows(frames, boxes, 64, deltas=(1,))
    assert not fw[1][0, :, :8].any()  # array columns 0-7 are raw columns -8..-1
    assert fw[1][0, :, 8:40, 2].mean() > 0.9
    # Frame 1's columns 0-3 show what frame 0 has off its raw frame: flows landing there are not confident.
    landing = np.arange(64) + bw[1][0, ..., 0]
    off_partner = landing < 8  # bilinear sampling there reaches the partner's column 7, raw column -1
    assert off_partner[:, 0].all() and not bw[1][0, ..., 2][off_partner].any()


def test_lab4d_indexing_and_counts():
    # 10 frames panning 1.5 px a frame, all cropped the same: fw[d][k] is frame k*d -> k*d+d, a pan of 1.5*d.
    wide = _textured(48, 48 + 20, seed=4)
    frames = np.stack([_translated(wide, (-1.5 * t, 0))[:, :48] for t in range(10)])
    boxes = np.tile([1.0, 1.0, 0.0, 0.0], (10, 1))

    class Counter:
        total = 0

        def update(self, n=1):
            self.total += n

    counter = Counter()
    fw, bw = crop_flows(frames, boxes, 48, progress=counter)
    assert {d: len(fw[d]) for d in fw} == {d: len(bw[d]) for d in bw} == {1: 9, 2: 4, 4: 2, 8: 1}
    assert counter.total == num_flow_pairs(10) == 32
    for delta in (1, 2, 4, 8):
        for k in range(len(fw[delta])):
            centre = (slice(12, 36), slice(16, 34))  # in view in both frames of every pair
            np.testing.assert_allclose(np.median(fw[delta][k][centre][..., 0]), -1.5 * delta, atol=0.15)
            np.testing.assert_allclose(np.median(bw[delta][k][centre][..., 0]), 1.5 * delta, atol=0.15)
