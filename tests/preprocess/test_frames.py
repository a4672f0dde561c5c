"""Frames of a user's video: decoding, the black lead-in, lab4d's flow-based frame filter."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from lab4d_core.errors import Lab4dError
from lab4d_core.preprocess.frames import FOLDER_FPS, filter_frames, first_content_frame, read_video
from tests.preprocess.footage import texture


def _smooth_frames(num_frames: int = 6, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames smooth enough for H.264's halved colour resolution to keep them close."""
    base = cv2.GaussianBlur(texture(height, width + 2 * num_frames, seed=3), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min())
    return np.stack([(base[:, 2 * t : 2 * t + width] * 255).astype(np.uint8) for t in range(num_frames)])


def test_an_mp4_round_trips(tmp_path):
    frames = _smooth_frames()
    path = tmp_path / "clip.mp4"
    iio.imwrite(path, frames, fps=25, macro_block_size=1)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert fps == pytest.approx(25)
    error = np.abs(decoded[:, None].astype(float) - frames[None]).mean(axis=(2, 3, 4))
    assert error.diagonal().max() < 8  # lossy H.264
    np.testing.assert_array_equal(error.argmin(axis=1), np.arange(len(frames)))


def test_a_folder_of_pngs_round_trips_in_name_order(tmp_path):
    frames = _smooth_frames()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{t:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    decoded, fps = read_video(tmp_path)
    np.testing.assert_array_equal(decoded, frames)
    assert fps == FOLDER_FPS


@pytest.mark.parametrize("case", ["corrupt", "empty folder", "missing", "mixed sizes"])
def test_bad_input_names_the_path(tmp_path, case):
    if case == "corrupt":
        path = tmp_path / "broken.mp4"
        path.write_bytes(b"this is not a video" * 100)
    elif case == "empty folder":
        path = tmp_path / "frames"
        path.mkdir()
    elif case == "missing":
        path = tmp_path / "nothing.mp4"
    else:
        path = tmp_path / "frames"
        path.mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path / "0.png")
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(path / "1.png")
    with pytest.raises(Lab4dError, match=path.name):
        read_video(path)


def test_first_content_frame_skips_black_frames_with_compression_noise():
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    frames[:3] = np.random.default_rng(0).integers(0, 3, frames[:3].shape)
    frames[3:] = 120
    assert first_content_frame(frames) == 3
    assert first_content_frame(frames[:3]) is None


def _panning(num_frames: int, step: int, size: int = 300) -> np.ndarray:
    """A texture panning ``step`` pixels a frame, at the filter's working size (no resizing)."""
    wide = (texture(size, size + step * num_frames, seed=1) * 255).astype(np.uint8)
    return np.stack([wide[:, step * t : step * t + size] for t in range(num_frames)])


def test_a_still_video_keeps_only_its_first_frame():
    frames = np.repeat(_panning(1, 0), 6, axis=0)
    np.testing.assert_array_equal(filter_frames(frames), [0])


def test_a_pan_keeps_a_frame_each_time_the_motion_passes_the_threshold():
    # 6 px a frame at 300 px: 0.04 after two frames, 0.06 after three (threshold 0.05).
    np.testing.assert_array_equal(filter_frames(_panning(10, 6)), [0, 3, 6, 9])


def test_max_frames_thins_the_kept_frames_evenly():
    kept = filter_frames(_panning(12, 20), max_frames=4)
    np.testing.assert_array_equal(kept, [0, 4, 7, 11])


def test_a_zero_threshold_keeps_every_frame_up_to_max_frames():
    still = np.zeros((30, 32, 32, 3), np.uint8)
    assert filter_frames(still, threshold=0.0).tolist() == list(range(30))
    assert filter_frames(still, threshold=0.0, max_frames=10).tolist() == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
