"""Atomic file output: readers (and Snakemake) never see a half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temp file in the same folder + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder to fill, swapped in for ``target`` only when the block ends without an error.

    Readers (and Snakemake) see the old folder or the complete new one, never a mix; a failed or
    interrupted run leaves no partial folder where a rerun would take it as done.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        replace_dir(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def replace_dir(new: Path, target: Path) -> None:
    """Swap the folder ``new`` in for ``target`` (which may not exist), then delete the old one."""
    trash = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(trash, ignore_errors=True)
    if target.exists():
        target.rename(trash)
    new.rename(target)
    shutil.rmtree(trash, ignore_errors=True)
