"""Checkpoints: everything needed for an exact resume, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from lab4d_core.errors import Lab4dError
from lab4d_core.train.distributed import accelerator_rng_state, set_accelerator_rng_state
from lab4d_core.utils.io import atomic_write


def rng_state() -> dict:
    """Python, numpy and torch RNG states as plain types and tensors (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    accelerator = accelerator_rng_state()
    if accelerator is not None:
        state["accelerator"] = accelerator
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), None))
    numpy = state["numpy"]
    np.random.set_state(
        (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    torch.set_rng_state(state["torch"])
    set_accelerator_rng_state(state.get("accelerator"))


def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise Lab4dError(f"{path}: checkpoint not found; train first (lab4d train) or point to an existing .pth")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise Lab4dError(f"{path}: not a readable lab4d_core checkpoint ({error}); delete it to start over") from None
