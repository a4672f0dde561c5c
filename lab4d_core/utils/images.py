"""Stacks of frames from the formats people have: .npy arrays, or folders of images or .npy frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lab4d_core.errors import Lab4dError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_stack(path: str | Path) -> np.ndarray:
    """(N, H, W[, C]) array from a .npy file or a folder of frames sorted by name.

    Images are returned as uint8, .npy frames as stored.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".npy":
        return np.load(path)
    if not path.is_dir():
        raise Lab4dError(f"{path}: not found; pass a .npy stack or a folder of .png/.jpg/.npy frames")
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    arrays = sorted(p for p in path.iterdir() if p.suffix == ".npy" and p.stem.isdigit())
    if images:
        return np.stack([np.asarray(Image.open(p)) for p in images])
    if arrays:
        return np.stack([np.load(p) for p in arrays])
    raise Lab4dError(f"{path}: no .png/.jpg frames or numbered .npy frames in this folder")


def as_mask(stack: np.ndarray) -> np.ndarray:
    """Foreground as bool: > 0 (lab4d's int8 masks use -1 for 'not detected', which is not foreground)."""
    if stack.ndim == 4:
        stack = stack[..., 0]
    return stack > 0


def as_rgb(stack: np.ndarray) -> np.ndarray:
    """Colour frames as float in [0, 1]."""
    stack = stack[..., :3]
    return stack.astype(np.float64) / 255.0 if stack.dtype == np.uint8 else stack.astype(np.float64)
