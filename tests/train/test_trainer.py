"""Training on a tiny synthetic dataset: the loss falls, resume is exact, N ranks equal one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from lab4d_core.cli import main
from lab4d_core.data.manifest import read_manifest
from lab4d_core.model.loading import load_model
from lab4d_core.train.losses import mask_loss
from lab4d_core.train.presets import resolve
from lab4d_core.train.trainer import Trainer

TINY_TRAIN = {"num_rounds": 2, "iters_per_round": 3, "imgs_per_gpu": 4, "pixels_per_image": 16, "num_samples": 16,
              "train_res": 64, "learning_rate": 5e-3, "explicit_lr": 5e-3, "preset": "cpu"}  # fmt: skip


TINY_MODEL = {"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64, "num_bones": 4}


def _config(root: Path, motion: str = "rigid", **train) -> dict:
    return {
        "source": {"path": str(root), "collection": "tiny-quad"},
        "model": {"fg_motion": motion, **TINY_MODEL},
        "train": {**TINY_TRAIN, **train},
    }


def _trainer(root: Path, out: Path, motion: str = "rigid", rank: int = 0, world: int = 1, **train) -> Trainer:
    cfg = resolve(_config(root, motion, **train), {}, False, "test")
    return Trainer(cfg, read_manifest(root / "manifest.json"), out, torch.device("cpu"), rank, world)


@pytest.mark.parametrize("motion", ["rigid", "dense", "bob"])
def test_ten_steps_on_one_batch_lower_its_loss(tiny_quad, tmp_path, motion, monkeypatch):
    # lab4d's soft initial density: the cpu preset's sharper one needs more than ten steps on this toy.
    monkeypatch.setitem(TINY_MODEL, "init_beta", 0.1)
    trainer = _trainer(tiny_quad, tmp_path, motion, num_rounds=1, iters_per_round=10, learning_rate=2e-3)
    batch = trainer.sampler.batch(0)
    trainer.sampler.batch = lambda step: batch  # overfit one batch: a check of the gradients, not of sampling

    def silhouette_error() -> float:
        with torch.no_grad():
            out = trainer.model.render_rays(batch["frame"], batch["xy"].float(), 32)
        return float(mask_loss(out["opacity"], batch["mask"], batch["vis2d"]))

    before = silhouette_error()
    records = trainer.train()
    assert [r.step for r in records] == list(range(1, 11))
    assert records[-1].terms["mask"] < 0.7 * records[0].terms["mask"]
    assert silhouette_error() < 0.7 * before


def test_features_train_the_feature_field_and_their_weights_switch_them_off(tiny_quad, tmp_path):
    trainer = _trainer(tiny_quad, tmp_path / "on", "bob", num_rounds=1, iters_per_round=10)
    batch = trainer.sampler.batch(0)
    trainer.sampler.batch = lambda step: batch
    records = trainer.train()
    assert records[-1].terms["feature"] < 0.7 * records[0].terms["feature"]
    assert 0 < records[-1].terms["feat_reproj"] < 0.9 * records[0].terms["feat_reproj"]
    off = _trainer(tiny_quad, tmp_path / "off", "bob", feature_wt=0, feat_reproj_wt=0)
    assert "feature" not in off.sampler.batch(0)
    assert not {"feature", "feat_reproj"} & set(off.train(until=1)[0].terms)


def test_estimated_depth_is_trusted_up_to_a_scale_per_video(tiny_quad, tmp_path):
    # The same maps three times too deep, as a monocular estimate may be: the loss must not see the difference.
    estimated = tmp_path / "estimated"
    shutil.copytree(tiny_quad, estimated)
    for path in (estimated / "database" / "processed" / "Depth").rglob("*.npy"):
        np.save(path, np.load(path) * np.float16(4))
    exact = _trainer(tiny_quad, tmp_path / "exact", depth_type="exact")
    plain = _trainer(tiny_quad, tmp_path / "plain", depth_type="estimate")
    deep = _trainer(estimated, tmp_path / "deep", depth_type="estimate")
    assert exact.model.log_depth_scale.abs().max() == 0  # exact maps are used as they are
    # The root poses' depth over the maps' median object depth: about 1 for exact maps, a quarter for deep ones.
    ratio = plain.model.log_depth_scale.exp()
    assert torch.all((ratio > 0.9) & (ratio < 1.2))
    torch.testing.assert_close(4 * deep.model.log_depth_scale.exp(), ratio, rtol=1e-3, atol=0)
    batch = plain.sampler.batch(0)
    batch["xy"] = batch["xy"].float()
    deep_batch = {**batch, "depth": deep.sampler.batch(0)["depth"]}
    torch.testing.assert_close(
        deep.losses(deep_batch, 0.0)[0]["depth"], plain.losses(batch, 0.0)[0]["depth"], rtol=1e-3, atol=0
    )


def test_an_interrupted_run_resumes_to_the_same_losses(tiny_quad, tmp_path):
    uninterrupted = _trainer(tiny_quad, tmp_path / "a").train()
    first = _trainer(tiny_quad, tmp_path / "b").train(until=3)
    assert (tmp_path / "b" / "ckpt_latest.pth").exists() and [r.step for r in first] == [1, 2, 3]
    resumed = _trainer(tiny_quad, tmp_path / "b")
    assert resumed.step == 3
    rest = resumed.train()
    assert [r.step for r in rest] == [4, 5, 6]
    for a, b in zip(uninterrupted[3:], rest):
        assert a.loss == pytest.approx(b.loss, rel=1e-5, abs=1e-7)


def _rank(rank: int, world: int, root: str, out: str, rendezvous: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        # Every rank adds imgs_per_gpu pairs: two ranks of half the single rank's equal it.
        trainer = _trainer(Path(root), Path(out), "bob", rank, world, imgs_per_gpu=TINY_TRAIN["imgs_per_gpu"] // world)
        trainer.train(until=3)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_rank_with_the_same_global_batch(tiny_quad, tmp_path):
    single = _trainer(tiny_quad, tmp_path / "one", "bob")
    single.train(until=3)
    mp.spawn(_rank, args=(2, str(tiny_quad), str(tmp_path / "two"), str(tmp_path / "rdv")), nprocs=2, join=True)
    two = torch.load(tmp_path / "two" / "ckpt_latest.pth", weights_only=True)
    assert two["step"] == 3
    # Gradients agree to float rounding; Adam turns rounding on gradients that nearly cancel
    # into steps of up to the learning rate's size, so parameters get a tolerance below that. Which
    # hash-table entries land near cancellation is luck: with the flow-measured turns on every root
    # pose (reg_root_flow_wt), one entry moved 0.054 learning rates apart; 0.05 had held before.
    tolerance = 0.1 * TINY_TRAIN["learning_rate"]
    for name, value in single.model.state_dict().items():
        difference = (two["model"][name].float() - value.float()).abs().max().item()
        assert difference <= tolerance, f"{name} differs by {difference}"
    moved = (single.model.state_dict()["field.encoding.table"] - two["model"]["field.encoding.table"]).abs()
    assert moved.mean() < 1e-6  # almost every entry agrees far more closely


def test_lab4d_train_command_writes_checkpoint_config_and_events(tiny_quad, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(tiny_quad)))
    out = tmp_path / "train"
    assert main(["train", "--config", str(config), "--data", str(tiny_quad / "manifest.json"), "--out", str(out),
                 "--set", "num_rounds=1", "--set", "train.iters_per_round=2"]) == 0  # fmt: skip
    state = torch.load(out / "ckpt_latest.pth", weights_only=True)
    assert state["step"] == 2 and state["config"]["train"]["num_rounds"] == 1
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["iters_per_round"] == 2
    assert any((out / "tensorboard").iterdir())


def test_unknown_override_names_the_valid_keys(tiny_quad, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(tiny_quad)))
    assert (
        main(["train", "--config", str(config), "--data", str(tiny_quad / "manifest.json"), "--set", "num_round=3"])
        == 2
    )
    assert "unknown key 'num_round'" in capsys.readouterr().err


def test_evaluate_checkpoint_scores_every_training_frame(tiny_quad, tmp_path):
    _trainer(tiny_quad, tmp_path / "train").train()
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "train" / "ckpt_final.pth"), "--data",
                 str(tiny_quad / "manifest.json"), "--res", "16", "--ray-samples", "8", "--out", str(out)]) == 0  # fmt: skip
    views = json.loads(out.read_text())["views"]
    assert [v["frames"] for v in views["videos"].values()] == [12, 12]
    per_video = [v["mask_iou"] for v in views["videos"].values()]
    assert views["mask_iou"] == pytest.approx(sum(per_video) / 2)
    assert 0.0 <= views["mask_iou"] <= 1.0 and views["resolution"] == 16


def test_a_checkpoint_finds_its_dataset_without_being_told(tiny_quad, tmp_path, capsys):
    _trainer(tiny_quad, tmp_path / "train").train(until=1)
    checkpoint = str(tmp_path / "train" / "ckpt_latest.pth")
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", checkpoint, "--res", "16", "--ray-samples", "4", "--out", str(out)]) == 0
    assert list(json.loads(out.read_text())["views"]["videos"]) == ["tiny-quad-0000", "tiny-quad-0001"]
    # A checkpoint whose dataset has gone says so, and what to give instead.
    state = torch.load(checkpoint, weights_only=True)
    state["dataset"]["root"] = str(tmp_path / "moved")
    torch.save(state, checkpoint)
    assert main(["export", "--checkpoint", checkpoint, "--out", str(tmp_path / "export")]) != 0
    error = capsys.readouterr().err
    assert (
        "cannot find its dataset" in error and "moved (recorded in it) no longer exists" in error and "--data" in error
    )


def test_evaluate_renders_with_the_training_samples_unless_told(tiny_quad, tmp_path, monkeypatch):
    # The initial soft sphere, kept by tiny steps: its render depends on how rays are sampled.
    monkeypatch.setitem(TINY_MODEL, "init_beta", 0.1)
    _trainer(
        tiny_quad, tmp_path / "train", num_samples=6, num_importance=3, learning_rate=1e-6, explicit_lr=1e-6
    ).train()
    common = ["evaluate", "--checkpoint", str(tmp_path / "train" / "ckpt_final.pth"), "--data",
              str(tiny_quad / "manifest.json"), "--res", "16"]  # fmt: skip

    def views(*flags: str) -> dict:
        out = tmp_path / f"metrics{len(flags)}{''.join(flags)}.json"
        assert main([*common, *flags, "--out", str(out)]) == 0
        return json.loads(out.read_text())["views"]

    as_trained = views()
    assert as_trained == views("--ray-samples", "6", "--importance-samples", "3")
    assert as_trained != views("--ray-samples", "2", "--importance-samples", "0")


def test_a_rerun_with_another_config_starts_over_and_keeps_the_old_run(tiny_quad, tmp_path):
    first = _trainer(tiny_quad, tmp_path / "run")
    first.train()
    (tmp_path / "run" / "ckpt_final.pth").unlink()  # as Snakemake does before rerunning the rule
    same = _trainer(tiny_quad, tmp_path / "run")
    assert same.step == first.total_steps and same.train() == []
    assert (tmp_path / "run" / "ckpt_final.pth").is_file(), "a complete run writes its final checkpoint again"

    with pytest.warns(UserWarning, match="another config, dataset or training code"):
        other = _trainer(tiny_quad, tmp_path / "run", learning_rate=2 * TINY_TRAIN["learning_rate"])
    assert other.step == 0 and not (tmp_path / "run" / "ckpt_latest.pth").exists()
    (aside,) = (tmp_path / "run").glob("replaced-*")
    assert (aside / "ckpt_final.pth").is_file() and (aside / "tensorboard").is_dir()


def test_a_rerun_after_a_training_code_edit_starts_over(tiny_quad, tmp_path, monkeypatch):
    first = _trainer(tiny_quad, tmp_path / "run")
    first.train(until=1)
    assert _trainer(tiny_quad, tmp_path / "run").step == 1  # the same code resumes
    # What the workflow reruns train for: the fingerprint of the code `lab4d train` runs has changed.
    monkeypatch.setattr("lab4d_core.train.trainer.fingerprint", lambda command: "edited")
    with pytest.warns(UserWarning, match="another config, dataset or training code"):
        edited = _trainer(tiny_quad, tmp_path / "run")
    assert edited.step == 0 and len(list((tmp_path / "run").glob("replaced-*"))) == 1


def test_hash_tables_train_at_their_own_learning_rate(tiny_quad, tmp_path):
    trainer = _trainer(tiny_quad, tmp_path, "bob", grid_lr_mult=3.0, explicit_lr=1e-2)
    groups = trainer.model.parameter_groups()
    ids = [id(p) for params in groups.values() for p in params]
    assert sorted(ids) == sorted(id(p) for p in trainer.model.parameters())  # each parameter exactly once
    # The feature head, which reads the field detached, learns at the tables' rate too.
    head = {id(p) for p in trainer.model.field.feature_head.parameters()}
    assert head <= {id(p) for p in groups["grid"]}
    assert [p is trainer.model.field.encoding.table for p in groups["grid"] if id(p) not in head] == [True]
    explicit = {id(p) for p in groups["explicit"]}
    assert id(trainer.model.deform.centre) in explicit and id(trainer.model.field.log_beta) in explicit
    lr = TINY_TRAIN["learning_rate"]
    assert [g["max_lr"] for g in trainer.optimizer.param_groups] == pytest.approx([lr, 1e-2, 3 * lr])


def test_frozen_intrinsics_stay_at_the_datasets_ks_while_the_cameras_train(tiny_quad, tmp_path):
    trainer = _trainer(tiny_quad, tmp_path, freeze_intrinsics=True, num_rounds=1, iters_per_round=3)
    intrinsics = trainer.model.intrinsics.raw().detach().clone()
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not trained & {id(p) for p in trainer.model.intrinsics.parameters()}
    trainer.train()
    torch.testing.assert_close(trainer.model.intrinsics.raw(), intrinsics, atol=0, rtol=0)
    assert trainer.model.root.residual.abs().max() > 0  # the root poses still learn


def test_beta_anneals_over_the_second_half_and_the_checkpoint_renders_with_it(tiny_quad, tmp_path):
    trainer = _trainer(tiny_quad, tmp_path, beta_anneal=0.25)
    trainer.train()
    last_progress = (trainer.total_steps - 1) / trainer.total_steps
    assert float(trainer.model.field.beta_factor) == pytest.approx(0.25 ** ((last_progress - 0.5) / 0.5))
    model, _, _ = load_model(tmp_path / "ckpt_final.pth", tiny_quad / "manifest.json", torch.device("cpu"))
    assert float(model.field.beta) == pytest.approx(float(trainer.model.field.beta))
