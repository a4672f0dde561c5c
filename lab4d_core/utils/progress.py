"""Progress bars that suit where they are read: redrawn in place on a terminal, a line every few seconds in a log.

Snakemake sends every job's output to a log file. There tqdm's in-place redraws become one carriage-return
separated record per update (a training log grew by a record per step), which ``tail`` shows as one endless
line. Off a terminal, :func:`progress` writes a plain line at most every :data:`LOG_INTERVAL` seconds instead.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL = 10.0
"""Seconds between progress lines in a log file."""


class _Lines:
    """A stream for tqdm that turns each redraw into one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.strip("\r\n")
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)`` on a terminal; in a log file, a line every :data:`LOG_INTERVAL` seconds.

    Set postfixes with ``refresh=False``: a refresh draws at once, whatever the interval.
    """
    stream = options.pop("file", sys.stderr)
    if not getattr(stream, "isatty", lambda: False)():
        options.pop("dynamic_ncols", None)
        options = {**options, "file": _Lines(stream), "mininterval": LOG_INTERVAL, "ascii": True, "ncols": 100}
        # A bar that vanishes on close would leave nothing in a log to say the stage finished.
        options["leave"] = True
    else:
        options["file"] = stream
    return tqdm(iterable, **options)
