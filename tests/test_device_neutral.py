"""The same code runs on a GPU: accelerators are named only in the device-selection helper."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lab4d_core"
ALLOWED = {PACKAGE / "train" / "distributed.py"}


def test_no_cuda_literals_or_calls_outside_the_device_helpers():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in ALLOWED:
            continue
        text = path.read_text()
        if re.search(r"\.cuda\(|[\"']cuda[\"':]", text):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
