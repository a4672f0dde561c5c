"""``lab4d strip``: frames of rendered videos in one PNG, a row per video (README figures, quick looks).

The videos are ``lab4d render`` / ``lab4d reanimate`` outputs: panels rgb | mask | depth | normal | xyz side
by side, each as tall as the video, after the input frame in renders from the input cameras; ``panels`` picks
which of them each frame shows.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from lab4d_core.errors import Lab4dError
from lab4d_core.render.video import PANELS, REFERENCE_PANELS
from lab4d_core.tools.preview import save_png


def video_strip(videos: list[Path], frames: int, panels: list[str]) -> np.ndarray:
    """(rows, columns) image: for each video, ``frames`` frames evenly over it, each its ``panels`` side by side."""
    unknown = [name for name in panels if name not in REFERENCE_PANELS]
    if unknown:
        raise Lab4dError(f"--panels {unknown}: choose among {', '.join(REFERENCE_PANELS)}")
    rows = []
    for path in videos:
        try:
            images = [np.asarray(image) for image in imageio.mimread(path, memtest=False)]
        except (OSError, ValueError) as error:
            raise Lab4dError(f"{path}: cannot read it as a video ({error})") from None
        if not images:
            raise Lab4dError(f"{path}: the video has no frames")
        size = images[0].shape[0]
        layout = REFERENCE_PANELS if images[0].shape[1] == len(REFERENCE_PANELS) * size else PANELS
        if any(name not in layout for name in panels):
            raise Lab4dError(f"{path}: has no input panel (only renders from the input cameras do); pick {PANELS}")
        chosen = np.unique(np.linspace(0, len(images) - 1, frames).round().astype(int))
        tiles = [
            np.concatenate(
                [images[t][:, layout.index(name) * size : (layout.index(name) + 1) * size] for name in panels], 1
            )
            for t in chosen
        ]
        rows.append(np.concatenate(tiles, 1))
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows], 0)


def write_strip(
    videos: list[Path], out: Path, frames: int = 6, panels: list[str] | None = None, width: int | None = None
):
    save_png(video_strip(videos, frames, panels or ["rgb"]), out, width)
