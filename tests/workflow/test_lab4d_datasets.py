"""lab4d's downloads as committed configs: the DAG each plans, locally and on the SLURM profile."""

from __future__ import annotations

import re

import pytest
import yaml

from lab4d_core.config import load_dataset_config
from tests.workflow.test_workflow import DATASETS, ROOT, overlay, snakemake

# The seeds' commands (lab4d's tutorials), setting by setting.
SEEDS = {
    "cat-pikachu": ({"fg_motion": "bob"}, {"reg_gauss_skin_wt": 0.01, "ngpu": 2}),
    "human-48": ({"fg_motion": "comp_skel-human_dense", "single_inst": False}, {"num_rounds": 120, "ngpu": 7}),
    "cat-85": ({"fg_motion": "comp_skel-quad_dense", "single_inst": False}, {"num_rounds": 120}),
    "dog-98": ({"fg_motion": "comp_skel-quad_dense", "single_inst": False}, {"num_rounds": 120}),
}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_download_config_holds_the_seeds_url_and_settings(name):
    cfg = load_dataset_config(DATASETS / f"{name}.yaml")
    assert cfg.source.url.startswith("https://www.dropbox.com/") and f"/{name}.zip" in cfg.source.url
    assert cfg.source.collection == name
    model, train = SEEDS[name]
    assert {key: getattr(cfg.model, key) for key in model} == model
    assert {key: getattr(cfg.train, key) for key in train} == train


def _jobs(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.parametrize("name", ["human-48", "cat-pikachu"])
def test_a_download_plans_download_link_train_render_alike_locally_and_on_slurm(tmp_path, name):
    config = overlay(tmp_path, [name], DATASETS)  # --configfile takes several files: targets go before it
    target = f"results/{name}/turntable.mp4"
    local = snakemake("-n", target, "--configfile", str(config), workdir=tmp_path)
    assert local.returncode == 0, local.stdout
    expected = {"download": 1, "link_database": 1, "train": 1, "render_turntable": 1}
    assert _jobs(local.stdout) == expected
    gpus = yaml.safe_load((DATASETS / f"{name}.yaml").read_text())["train"]["ngpu"]
    assert f"--ngpu {gpus}" in local.stdout  # the dataset's GPUs reach torchrun
    profile = ROOT / "workflow" / "profiles" / "slurm"
    cluster = snakemake("-n", target, "--workflow-profile", str(profile), "--configfile", str(config), workdir=tmp_path)
    assert cluster.returncode == 0, cluster.stdout
    assert _jobs(cluster.stdout) == expected
    train = cluster.stdout.split("rule train:")[1].split("Shell command")[0]
    assert f"gpu={gpus}" in train and "cpus_per_gpu=8" in train and "runtime=720" in train
