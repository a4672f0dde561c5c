"""Progress bars: redrawn in place on a terminal, a few plain lines in a log file."""

from __future__ import annotations

import io

from lab4d_core.utils.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_per_interval_not_a_record_per_update():
    log = io.StringIO()
    bar = progress(range(5000), desc="train", file=log, leave=False)
    for step in bar:
        bar.set_postfix(step=step, refresh=False)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= 3  # the start and the end, well under the 10 s interval apart
    assert lines[-1].startswith("train: 100%") and "5000/5000" in lines[-1]


def test_a_terminal_gets_redraws_in_place():
    terminal = Terminal()
    for _ in progress(range(3), desc="train", file=terminal, mininterval=0):
        pass
    assert terminal.getvalue().count("\r") >= 3
