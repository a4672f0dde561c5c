"""``lab4d strip``: the chosen panels of evenly spread frames, a row per video."""

import numpy as np
import pytest
from PIL import Image

from lab4d_core.errors import Lab4dError
from lab4d_core.render.video import PANELS, REFERENCE_PANELS, write_video
from lab4d_core.tools.strip import video_strip, write_strip


def panels_video(path, frames: int, size: int = 16, panels=PANELS):
    """Frame t: panel k filled with grey level 20 k + 40 t (so both the panel and the frame can be read back)."""
    images = [
        np.concatenate([np.full((size, size, 3), 20 * k + 40 * t, np.uint8) for k in range(len(panels))], 1)
        for t in range(frames)
    ]
    write_video(path, iter(images), frames)


def test_a_strip_shows_the_chosen_panel_of_evenly_spread_frames(tmp_path):
    panels_video(tmp_path / "a.mp4", frames=5)
    panels_video(tmp_path / "b.mp4", frames=3)
    strip = video_strip([tmp_path / "a.mp4", tmp_path / "b.mp4"], frames=3, panels=["depth"])
    assert strip.shape == (32, 48, 3)
    centres = strip[8::16, 8::16, 0].astype(int)  # one value per tile
    expected = np.array([[40 + 0, 40 + 80, 40 + 160], [40 + 0, 40 + 40, 40 + 80]])  # depth is panel 2
    assert np.abs(centres - expected).max() <= 6  # H.264 rounding
    write_strip([tmp_path / "a.mp4"], tmp_path / "s.png", frames=2, panels=["rgb", "mask"])
    assert Image.open(tmp_path / "s.png").size == (64, 16)


def test_a_reference_video_is_read_with_its_input_panel_first(tmp_path):
    panels_video(tmp_path / "ref.mp4", frames=1, panels=REFERENCE_PANELS)
    panels_video(tmp_path / "turn.mp4", frames=1)
    strip = video_strip([tmp_path / "ref.mp4", tmp_path / "turn.mp4"], frames=1, panels=["depth"])
    assert np.abs(strip[8::16, 8, 0].astype(int) - [60, 40]).max() <= 6  # depth: panel 3 of 6, panel 2 of 5
    assert np.abs(video_strip([tmp_path / "ref.mp4"], 1, ["input"])[8, 8, 0].astype(int) - 0) <= 6
    with pytest.raises(Lab4dError, match="turn.mp4: has no input panel"):
        video_strip([tmp_path / "turn.mp4"], 1, ["input"])


def test_an_unknown_panel_or_a_broken_video_is_a_clear_error(tmp_path):
    with pytest.raises(Lab4dError, match="choose among input, rgb"):
        video_strip([tmp_path / "a.mp4"], 2, ["albedo"])
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(Lab4dError, match="broken.mp4: cannot read it as a video"):
        video_strip([tmp_path / "broken.mp4"], 2, ["rgb"])
