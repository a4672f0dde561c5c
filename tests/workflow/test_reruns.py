"""Stale-only reruns: after a complete run, an edit reruns the stages it concerns and what follows them.

Nothing is trained: every output is a placeholder that ``snakemake --touch`` records as made (params and shell
commands in .snakemake/metadata, as after a real run), and dry runs say what would rerun. Snakemake runs on
copies of the workflow and of lab4d_core (first on PYTHONPATH, and from the copies' folder: ``python -m`` puts
the current folder first), so that edits never touch the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import lab4d_core

ROOT = Path(__file__).resolve().parents[2]
AFTER_TRAINING = {"train", "training_curves", "render_reference", "render_turntable", "export", "evaluate", "report"}


class Workflow:
    """A completed run of a tiny synthetic dataset in ``base``, on copies of the workflow and of lab4d_core."""

    def __init__(self, base: Path):
        self.base = base
        self.package = base / "pkg" / "lab4d_core"
        shutil.copytree(Path(lab4d_core.__file__).parent, self.package, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "workflow", base / "workflow")
        shutil.copy(ROOT / "environment.yml", base)  # the rules' conda env, which the metadata records
        self.work = base / "work"
        (self.work / "datasets").mkdir(parents=True)
        synthetic = {"num_videos": 1, "num_frames": 10, "resolution": 48, "train_res": 32}
        (self.work / "datasets" / "tiny.yaml").write_text(yaml.safe_dump({"source": {"synthetic": synthetic}}))
        self.config = self.work / "config.yaml"
        self.config.write_text(yaml.safe_dump({"datasets": ["tiny"], "dataset_configs": str(self.work / "datasets")}))

    def snakemake(self, *args: str) -> str:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(self.package.parent), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "XDG_CACHE_HOME": str(self.base / "cache"),
        }
        env.pop("SNAKEMAKE_PROFILE", None)  # a user's global profile (e.g. executor: slurm) must not apply
        command = [sys.executable, "-m", "snakemake", "-s", str(self.base / "workflow" / "Snakefile"), "--nolock"]
        command += ["--directory", str(self.work), "--configfile", str(self.config), *args]
        result = subprocess.run(
            command, cwd=self.base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout
        return result.stdout

    def stale(self) -> tuple[set[str], str]:
        """The rules a dry run would run now, and its output (with the reasons)."""
        out = self.snakemake("-n")
        return set(re.findall(r"^\s*(?:local)?rule (\w+):", out, re.MULTILINE)) - {"all"}, out

    def complete(self) -> None:
        for names in re.findall(r"^\s*output: (.+)$", self.snakemake("-n"), re.MULTILINE):
            for name in names.split(", "):
                (self.work / name).parent.mkdir(parents=True, exist_ok=True)
                (self.work / name).touch()
        self.snakemake("--touch", "--forceall", "--cores", "1")  # forced: placeholders alone look up to date


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Workflow:
    workflow = Workflow(tmp_path_factory.mktemp("reruns"))
    workflow.complete()
    return workflow


@contextmanager
def edited(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: pick another edit"
    path.write_text(text.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(text)


def test_a_second_run_does_nothing(workflow):
    stale, out = workflow.stale()
    assert stale == set() and "Nothing to be done" in out, out


def test_a_render_option_reruns_that_render_and_the_page_showing_it(workflow):
    with edited(
        workflow.base / "workflow" / "rules" / "render.smk", "--viewpoint rot-30-360", "--viewpoint rot-20-360"
    ):
        stale, out = workflow.stale()
    assert stale == {"render_turntable", "report"}, out
    assert "Code has changed since last execution" in out


def test_an_edit_to_the_renderer_reruns_the_renders_only(workflow):
    with edited(workflow.package / "render" / "video.py", "\nfrom lab4d_core", "\nEDITED = 1\nfrom lab4d_core"):
        stale, out = workflow.stale()
    # evaluate renders the training views; the page shows the videos
    assert stale == {"render_reference", "render_turntable", "evaluate", "report"}, out
    assert "Params have changed since last execution" in out


def test_an_edit_to_the_trainer_reruns_training_and_what_follows_not_the_data(workflow):
    with edited(workflow.package / "train" / "trainer.py", "\nfrom lab4d_core", "\nEDITED = 1\nfrom lab4d_core"):
        stale, out = workflow.stale()
    assert stale == AFTER_TRAINING, out


def test_comments_and_docstrings_rerun_nothing(workflow):
    trainer, video = workflow.package / "train" / "trainer.py", workflow.package / "render" / "video.py"
    with (
        edited(trainer, '"""``lab4d train``: ', '"""``lab4d train`` (reworded): '),
        edited(trainer, "\nimport numpy as np\n", "\n# a comment\nimport numpy as np\n"),
        edited(video, "\nfrom lab4d_core", "\n# a comment\n\nfrom lab4d_core"),
        edited(workflow.package / "config.py", '"""Weight of the silhouette loss."""', '"""The mask loss weight."""'),
    ):
        stale, out = workflow.stale()
    assert stale == set(), out


def test_every_rule_fingerprints_the_command_it_runs():
    """A rule's code param names the `lab4d <command>` of its shell, so it reruns when that code changes;
    download has none, on purpose: a code edit must not fetch gigabytes again."""
    rules = 0
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"^rule ", path.read_text(), flags=re.MULTILINE)[1:]:
            name, commands = rule.partition(":")[0], re.findall(r'"lab4d (\w+)', rule)
            if commands and name != "download":
                rules += 1
                assert re.findall(r'code=code_version\("(\w+)"\)', rule) == commands[:1], f"{path.name}: rule {name}"
    assert rules >= 10
