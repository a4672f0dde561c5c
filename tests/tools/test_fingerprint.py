"""Code fingerprints of lab4d's subcommands: what each depends on, and which edits change which.

Edits happen in a copy of the package, fingerprinted by the copy's own module (loaded afresh each time, so
only the disk cache carries over, as between two Snakemake runs), never in the repository.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
from pathlib import Path

import pytest

import lab4d_core
from lab4d_core.tools.fingerprint import commands, dependencies

PACKAGE = Path(lab4d_core.__file__).parent
_fresh = itertools.count()


@pytest.fixture
def copy(tmp_path, monkeypatch) -> Path:
    """A copy of lab4d_core (its parent folder is returned) and a disk cache of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(PACKAGE, tmp_path / "pkg" / "lab4d_core", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "pkg"


def fingerprints(root: Path) -> dict[str, str]:
    """Every subcommand's fingerprint of the package under ``root``, by a new instance of its fingerprint module."""
    spec = importlib.util.spec_from_file_location(
        f"fingerprint_{next(_fresh)}", root / "lab4d_core" / "tools" / "fingerprint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {command: module.fingerprint(command) for command in module.commands()}


def edit(root: Path, module: str, old: str, new: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: pick another edit"
    path.write_text(text.replace(old, new, 1))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {command for command in before if before[command] != after[command]}


def test_each_stage_depends_on_the_modules_it_runs():
    render, train, synth = dependencies("render"), dependencies("train"), dependencies("synth")
    assert {"lab4d_core.render.video", "lab4d_core.model.loading", "lab4d_core.model.dynamic"} <= render.keys()
    assert "lab4d_core.train.trainer" not in render  # it loads checkpoints, never trains
    assert {"lab4d_core.train.trainer", "lab4d_core.train.losses", "lab4d_core.model.dynamic"} <= train.keys()
    assert not any(name.startswith(("lab4d_core.render.", "lab4d_core.export.")) for name in train)
    assert "lab4d_core.data.synthetic.synthesize" in synth
    assert not any(name.startswith(("lab4d_core.model.", "lab4d_core.train.")) for name in synth)
    assert "lab4d_core" in synth  # its __init__ (the version) runs first
    # Of cli.py: the handler, its flags and the helpers they call; not the other commands, not the dispatch.
    assert {f"lab4d_core.cli:{name}" for name in ("_render", "_render_arguments", "_ray_sampling")} <= render.keys()
    assert not {"lab4d_core.cli:_train", "lab4d_core.cli:main", "lab4d_core.cli:build_parser"} & render.keys()


def test_unknown_commands_are_named():
    assert {"synth", "train", "render", "export", "report"} <= set(commands())
    with pytest.raises(ValueError, match="no subcommand 'bogus'.*render"):
        dependencies("bogus")


def test_an_edit_changes_the_commands_that_run_the_code_and_no_other(copy):
    before = fingerprints(copy)
    assert fingerprints(copy) == before  # the disk cache serves what was computed

    def after(module: str, old: str, new: str) -> set[str]:
        nonlocal before
        edit(copy, module, old, new)
        now = fingerprints(copy)
        changes, before = changed(before, now), now
        return changes

    # reanimate and evaluate render too; strip takes the panel names from the renderer
    renderer = after("lab4d_core.render.video", "\nfrom lab4d_core", "\nRENDER_EDIT = 1\nfrom lab4d_core")
    assert renderer == {"render", "reanimate", "evaluate", "strip"}
    assert after("lab4d_core.train.trainer", "\nfrom lab4d_core", "\nTRAINER_EDIT = 1\nfrom lab4d_core") == {"train"}
    # In cli.py, a command's own handler and flags count, not the others' or the dispatch.
    render_res = '"--render_res", type=int, default='
    assert after("lab4d_core.cli", render_res + "128", render_res + "64") == {"render"}  # not reanimate's flag
    assert after("lab4d_core.cli", "def _train(args: argparse.Namespace) -> None:", "def _train(args):") == {"train"}
    assert after("lab4d_core.cli", "def main(argv: list[str] | None = None) -> int:", "def main(argv=None):") == set()
    assert after("lab4d_core.errors", "\nclass", "\nERRORS_EDIT = 1\n\n\nclass") == set(before)  # all raise it


def test_comments_docstrings_and_formatting_change_nothing(copy):
    original = fingerprints(copy)
    edit(copy, "lab4d_core.train.trainer", '"""``lab4d train``: ', '"""``lab4d train`` (edited): ')
    edit(copy, "lab4d_core.train.trainer", "\nimport numpy as np\n", "\n# a comment\nimport numpy as np\n\n")
    edit(copy, "lab4d_core.config", '"""Weight of the silhouette loss."""', '"""Silhouette loss weight."""')
    edit(copy, "lab4d_core.render.video", "\nfrom lab4d_core", '\n"""A bare string."""\nfrom lab4d_core')
    edit(
        copy,
        "lab4d_core.cli",
        "def _render(args: argparse.Namespace) -> None:\n",
        "def _render(\n    args: argparse.Namespace,\n) -> None:\n    '''Edited.'''\n",
    )
    assert fingerprints(copy) == original


def test_relative_and_submodule_imports_are_followed(copy):
    render = copy / "lab4d_core" / "render"
    (render / "extra.py").write_text("from .. import errors\n\nSCALE = 1\n")
    (render / "more.py").write_text("LEVEL = 1\n")
    edit(copy, "lab4d_core.render.video", "\nfrom lab4d_core", "\nfrom .extra import SCALE\nfrom lab4d_core")
    edit(
        copy,
        "lab4d_core.render.views",
        "\nfrom lab4d_core",
        "\ndef level():\n    from lab4d_core.render import more\n\n    return more.LEVEL\n\n\nfrom lab4d_core",
    )
    before = fingerprints(copy)
    (render / "extra.py").write_text("from .. import errors\n\nSCALE = 2\n")
    assert changed(before, fingerprints(copy)) >= {"render"}
    before = fingerprints(copy)
    (render / "more.py").write_text("LEVEL = 2\n")
    assert changed(before, fingerprints(copy)) >= {"render"}


def test_a_broken_or_foreign_cache_is_ignored(copy, tmp_path):
    original = fingerprints(copy)
    cache = tmp_path / "cache" / "lab4d_core" / "fingerprint.json"
    entries = json.loads(cache.read_text())["modules"]
    assert len(entries) > 50
    cache.write_text(json.dumps({"version": "another", "modules": {key: ["0", []] for key in entries}}))
    assert fingerprints(copy) == original
    cache.write_text("{not json")
    assert fingerprints(copy) == original
