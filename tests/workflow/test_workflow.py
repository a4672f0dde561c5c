"""The Snakemake DAG: dry runs, lint, config validation, and one tiny real run.

Snakemake runs as a subprocess (``python -m snakemake``) on the repository's
Snakefile; anything that could write outputs runs with ``--directory`` in a tmp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from lab4d_core.tools.reference import stale_files

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
DATASETS = ROOT / "config" / "datasets"


def snakemake(*args: str, workdir: Path | None = None) -> subprocess.CompletedProcess:
    """Run snakemake from the repository root; stdout and stderr together in ``.stdout``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("SNAKEMAKE_PROFILE", None)  # a user's global profile (e.g. executor: slurm) must not apply
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *args]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def overlay(tmp_path: Path, datasets: list[str], dataset_configs: Path, **extra) -> Path:
    """A --configfile for runs in ``tmp_path`` (absolute dataset_configs, so --directory works)."""
    return write_yaml(
        tmp_path / "config.yaml", {"datasets": datasets, "dataset_configs": str(dataset_configs), **extra}
    )


def test_default_dry_run_schedules_every_stage(tmp_path):
    # The repository's own config, run in an empty directory so existing data/ can't hide jobs.
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = overlay(tmp_path, default["datasets"], ROOT / default["dataset_configs"])
    result = snakemake("-n", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "rule synthesize:" in result.stdout
    assert "output: data/demo-quad/manifest.json" in result.stdout
    assert "rule preview:" in result.stdout
    assert "output: results/demo-quad/data-preview.png" in result.stdout
    assert "output: results/demo-quad/train/ckpt_final.pth" in result.stdout
    assert "output: results/demo-quad/export/0/animated.glb, results/demo-quad/export/0/motion.json" in result.stdout
    for video in ("reference-0.mp4", "turntable.mp4", "eval/metrics.json", "train/curves.png", "report.html"):
        assert f"output: results/demo-quad/{video}" in result.stdout


def test_a_category_dataset_reanimates_its_first_video_on_its_last_individual(tmp_path):
    """demo-human: a skeleton model with one body per video; its page shows 0-to-3 beside the reference."""
    config = overlay(tmp_path, ["demo-human", "demo-quad"], DATASETS)
    result = snakemake("-n", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "rule reanimate:" in result.stdout
    assert (
        "output: results/demo-human/reanimate/0-to-3.mp4, results/demo-human/reanimate/0-to-3/animated.glb"
        in result.stdout
    )
    assert "--video results/demo-human/reanimate/0-to-3.mp4" in result.stdout
    assert "results/demo-quad/reanimate" not in result.stdout  # one body for every video: nothing to swap


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout
    assert "Lints for" not in result.stdout


def test_unknown_top_level_key_is_named(tmp_path):
    config = overlay(tmp_path, ["demo-quad"], DATASETS, bogus_key=1)
    result = snakemake("-n", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode != 0
    assert "'bogus_key' was unexpected" in result.stdout


def test_unknown_dataset_key_names_key_and_file(tmp_path):
    bad = write_yaml(tmp_path / "datasets" / "bad.yaml", {"source": {"synthetic": {"num_videos": 1, "wrong_key": 3}}})
    config = overlay(tmp_path, ["bad"], bad.parent)
    result = snakemake("-n", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode != 0
    assert f"{bad}: source.synthetic:" in result.stdout
    assert "'wrong_key' was unexpected" in result.stdout


def test_dataset_without_yaml_lists_the_available_ones(tmp_path):
    config = overlay(tmp_path, ["nope"], DATASETS)
    result = snakemake("-n", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode != 0
    assert "['nope'] have no <name>.yaml" in result.stdout
    assert "demo-quad" in result.stdout


def test_path_source_links_instead_of_synthesizing(tmp_path):
    datasets = tmp_path / "datasets"
    write_yaml(datasets / "mine.yaml", {"source": {"path": str(tmp_path / "downloads"), "collection": "cat"}})
    config = overlay(tmp_path, ["mine"], datasets)
    result = snakemake("-n", "-p", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "rule link_database:" in result.stdout
    assert "rule synthesize:" not in result.stdout
    assert f"lab4d link --root {tmp_path / 'downloads'} --collection cat --out data/mine/manifest.json" in result.stdout
    # Without ground truth, evaluation scores the training views and the model's consistency, and the page shows them.
    assert "rule evaluate_without_ground_truth:" in result.stdout and "rule evaluate:" not in result.stdout
    assert (
        "lab4d evaluate --checkpoint results/mine/train/ckpt_final.pth --data data/mine/manifest.json "
        "--out results/mine/eval/metrics.json" in result.stdout
    )
    assert "--metrics results/mine/eval/metrics.json" in result.stdout


def test_committed_schemas_and_config_reference_are_generated():
    assert stale_files(ROOT) == [], "stale generated files: run `lab4d schema`"


def test_tiny_synthetic_dataset_end_to_end(tmp_path):
    synthetic = {"num_videos": 1, "num_frames": 10, "resolution": 48, "train_res": 32, "prefixes": ["crop"]}
    write_yaml(tmp_path / "datasets" / "tiny.yaml", {"source": {"synthetic": synthetic}})
    config = overlay(tmp_path, ["tiny"], tmp_path / "datasets")
    target = "results/tiny/data-preview.png"

    # targets first: --configfile takes several values and would swallow them
    result = snakemake(target, "--cores", "1", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode == 0, result.stdout
    assert (tmp_path / target).stat().st_size > 0
    assert (tmp_path / "data" / "tiny" / "manifest.json").is_file()
    assert (tmp_path / "logs" / "benchmarks" / "synthesize" / "tiny.tsv").is_file()

    again = snakemake(target, "-n", "--configfile", str(config), workdir=tmp_path)
    assert again.returncode == 0, again.stdout
    assert "Nothing to be done" in again.stdout

    # Snakemake's own report of the run embeds the registered outputs.
    report = snakemake(target, "--report", str(tmp_path / "report.html"), "--configfile", str(config), workdir=tmp_path)
    assert report.returncode == 0, report.stdout
    assert "Adding data-preview.png" in report.stdout and (tmp_path / "report.html").stat().st_size > 10000

    # Only the YAML's source section decides whether the data is stale.
    write_yaml(tmp_path / "datasets" / "tiny.yaml", {"source": {"synthetic": synthetic}, "train": {"num_rounds": 2}})
    edited = snakemake(target, "-n", "--configfile", str(config), workdir=tmp_path)
    assert "Nothing to be done" in edited.stdout, edited.stdout
    write_yaml(tmp_path / "datasets" / "tiny.yaml", {"source": {"synthetic": {**synthetic, "num_frames": 12}}})
    resynth = snakemake(target, "-n", "--configfile", str(config), workdir=tmp_path)
    assert "rule synthesize:" in resynth.stdout and "params" in resynth.stdout.lower(), resynth.stdout
