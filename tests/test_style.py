"""The code style is checked like a test, so CI catches it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return subprocess.run([ruff, *args, "lab4d_core", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    result = _ruff("check")
    assert result.returncode == 0, result.stdout


def test_ruff_format_is_applied():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout
