"""Rebuild a trained model from a checkpoint and its dataset, for rendering, export and evaluation."""

from __future__ import annotations

from pathlib import Path

import torch

from lab4d_core.config import DatasetConfig, from_dict
from lab4d_core.data.database import Database
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.preprocess.scene import SceneInfo
from lab4d_core.train.checkpoint import load_checkpoint


def load_model(
    checkpoint: Path, manifest: Path | None, device: torch.device
) -> tuple[DynamicModel, DatasetConfig, Database]:
    """The model in eval mode, its resolved config, and the database it was trained on: the one of ``manifest``,
    or without one, the one the checkpoint names."""
    state = load_checkpoint(checkpoint, device)
    cfg = from_dict(DatasetConfig, state["config"], where=f"{checkpoint} (config)")
    root, collection = _dataset_of(Path(checkpoint), state) if manifest is None else _manifest_dataset(manifest)
    database = Database(root, collection, cfg.train.train_res, (cfg.train.data_prefix,))
    # Building the field pre-fits a sphere that the checkpoint overwrites; skip that work.
    model = DynamicModel(cfg.model, SceneInfo.from_database(database, cfg.train.data_prefix), init_field=False)
    # Checkpoints from before beta annealing rendered with the learned beta alone.
    state["model"].setdefault("field.beta_factor", torch.ones(()))
    # Checkpoints from before the feature head and the depth scales: as built (only training uses them).
    for name, value in model.state_dict().items():
        if name.startswith(("field.feature_head.", "feature_anchors", "log_feature_temperature", "log_depth_scale")):
            state["model"].setdefault(name, value)
    # Checkpoints from before the up axis: estimated below from their learned root poses.
    without_up_axis = "up_axis" not in state["model"]
    state["model"].setdefault("up_axis", model.up_axis)
    model.load_trained_state(state["model"])
    if without_up_axis:
        model.update_up_axis()
    return model.to(device).eval(), cfg, database


def _manifest_dataset(manifest: Path) -> tuple[Path, str]:
    data = read_manifest(manifest)
    return data.root, data.collection


def _dataset_of(checkpoint: Path, state: dict) -> tuple[Path, str]:
    """Root and collection of the dataset a checkpoint was trained on: recorded in it, or (older checkpoints) the
    workflow's layout, results/<name>/train/ckpt -> data/<name>/manifest.json."""
    recorded = state.get("dataset")
    if recorded and (Path(recorded["root"]) / "database").is_dir():
        return Path(recorded["root"]), recorded["collection"]
    name = checkpoint.resolve().parent.parent.name
    conventional = checkpoint.resolve().parents[3] / "data" / name / "manifest.json"
    if conventional.is_file():
        return _manifest_dataset(conventional)
    where = f"{recorded['root']} (recorded in it) no longer exists" if recorded else "it records none"
    raise Lab4dError(
        f"{checkpoint}: cannot find its dataset: {where}, nor is there {conventional}; "
        "give --data data/<name>/manifest.json"
    )
