"""Rebuild a trained model from a checkpoint and its dataset, for rendering, export and evaluation."""

from __future__ import annotations

from pathlib import Path

import torch

from lab4d_core.config import DatasetConfig, from_dict
from lab4d_core.data.database import Database
from lab4d_core.data.manifest import read_manifest
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.preprocess.scene import SceneInfo
from lab4d_core.train.checkpoint import load_checkpoint


def load_model(checkpoint: Path, manifest: Path, device: torch.device) -> tuple[DynamicModel, DatasetConfig, Database]:
    """The model in eval mode, its resolved config, and the database it was trained on."""
    state = load_checkpoint(checkpoint, device)
    cfg = from_dict(DatasetConfig, state["config"], where=f"{checkpoint} (config)")
    data = read_manifest(manifest)
    database = Database(data.root, data.collection, cfg.train.train_res, (cfg.train.data_prefix,))
    # Building the field pre-fits a sphere that the checkpoint overwrites; skip that work.
    model = DynamicModel(cfg.model, SceneInfo.from_database(database, cfg.train.data_prefix), init_field=False)
    # Checkpoints from before beta annealing rendered with the learned beta alone.
    state["model"].setdefault("field.beta_factor", torch.ones(()))
    # Checkpoints from before the up axis: estimated below from their learned root poses.
    without_up_axis = "up_axis" not in state["model"]
    state["model"].setdefault("up_axis", model.up_axis)
    model.load_state_dict(state["model"])
    if without_up_axis:
        model.update_up_axis()
    return model.to(device).eval(), cfg, database
