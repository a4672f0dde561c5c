"""Presets: defaults for the machine at hand, then the dataset YAML, then --set overrides.

The cpu preset trades lab4d's large batches and long schedule for many small,
cheap steps: a hash grid with a small table, fewer samples per ray, and pixels
partly drawn from the mask so thin parts get enough rays.
"""

from __future__ import annotations

from typing import Any

import yaml

from lab4d_core.config import DatasetConfig, ModelConfig, TrainConfig, from_dict
from lab4d_core.errors import Lab4dError

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        # A sharper initial density: short runs never anneal lab4d's beta of 0.1 far enough.
        # Shading by the posed normal: demo-quad +0.44 dB (mean of two seeds) for 5-10% more time.
        "model": {"hash_levels": 12, "hash_log2_size": 15, "hash_max_res": 256, "init_beta": 0.03, "shading": "sh"},
        "train": {
            # 336 steps, under 5 minutes with bob on 2 cores; short rounds keep lab4d's
            # two-round warm-up short too. Rays are confined to the occupancy grids, so
            # 16 samples land where 32 spread over the proxy box did. Placing 4 of them by a
            # colourless first pass over the other 12 gave demo-quad +0.6 dB for ~1.1x the time
            # (8 + 8: +0.4 dB; 8 + 4 with 20 pixels, at the old time: +0.3 dB and -0.02 IoU).
            "num_rounds": 12,
            "iters_per_round": 28,
            "imgs_per_gpu": 64,
            "pixels_per_image": 16,
            "num_samples": 12,
            "num_importance": 4,
            "fg_fraction": 0.3,
            "learning_rate": 2e-3,
            # Beta learned alone ends near 2% of the object's radius, about a pixel here: thin legs stay
            # see-through and edge pixels dark. Scaled down to 0.3x, demo-quad's IoU rose 0.895 -> 0.909
            # and PSNR +0.2 dB (12 frames per video); 0.5x and 0.15x, or from a quarter of the run, did no better.
            "beta_anneal": 0.3,
            # The tables learn texture from about one ray per object pixel in a 5-minute run:
            # 5x their rate gave +0.3 dB and +0.006 IoU on demo-quad (10x gave the same).
            "grid_lr_mult": 5.0,
        },
    },
    "gpu": {"model": {}, "train": {}},
}


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` (a model or train field, lab4d-style) or ``section.key=value`` -> nested dict.

    Values are YAML (``num_rounds=5``, ``single_inst=false``, ``motions=[walk]``).
    """
    sections = {"model": ModelConfig, "train": TrainConfig}
    out: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise Lab4dError(f"--set {item!r}: expected key=value, e.g. --set num_rounds=5")
        section, _, name = key.rpartition(".")
        owners = [section] if section else [s for s, cls in sections.items() if name in cls.__dataclass_fields__]
        if not owners or owners[0] not in sections or name not in sections[owners[0]].__dataclass_fields__:
            valid = sorted(f for cls in sections.values() for f in cls.__dataclass_fields__)
            raise Lab4dError(f"--set {item!r}: unknown key {key!r}; valid keys are {', '.join(valid)}")
        out[owners[0]][name] = yaml.safe_load(value)
    return out


def resolve(data: dict, overrides: dict[str, dict[str, Any]], has_accelerator: bool, where: str) -> DatasetConfig:
    """The dataset config with the preset's defaults under the YAML's and the overrides' values."""
    train = {**data.get("train", {}), **overrides.get("train", {})}
    preset = train.get("preset", "auto")
    if preset == "auto":
        preset = "gpu" if has_accelerator else "cpu"
    if preset not in PRESETS:
        raise Lab4dError(f"{where}: train.preset {preset!r} is not one of auto, {', '.join(PRESETS)}")
    merged = dict(data)
    for section in ("model", "train"):
        merged[section] = {**PRESETS[preset][section], **data.get(section, {}), **overrides.get(section, {})}
    merged["train"]["preset"] = preset
    return from_dict(DatasetConfig, merged, where=where)
