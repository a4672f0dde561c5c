"""Own videos through the DAG: five stages per video, one gather; a new video preprocesses only itself."""

from __future__ import annotations

import re

from tests.preprocess.footage import moving_disc, write_masks, write_mp4
from tests.workflow.test_workflow import overlay, snakemake, write_yaml


def rules_to_run(output: str) -> list[str]:
    """(rule, video) of every job a dry run lists, e.g. "preprocess_masks disc"."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule )", output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        video = re.search(r"wildcards: .*video=([\w.-]+)", block)
        if rule:
            jobs.append(f"{rule[1]} {video[1]}" if video else rule[1])
    return sorted(jobs)


def test_a_new_video_preprocesses_only_itself(tmp_path):
    frames, masks = moving_disc(seed=1)
    write_mp4(tmp_path / "videos" / "disc.mp4", frames)
    write_masks(tmp_path / "masks" / "disc", masks)
    datasets = tmp_path / "datasets"
    source = {"videos": str(tmp_path / "videos"), "masks": str(tmp_path / "masks"), "train_res": 32}
    write_yaml(datasets / "mine.yaml", {"source": source})
    config = overlay(tmp_path, ["mine"], datasets)
    target = "data/mine/manifest.json"

    planned = snakemake("-n", target, "--configfile", str(config), workdir=tmp_path)
    assert planned.returncode == 0, planned.stdout
    stages = ["preprocess_cameras", "preprocess_crops", "preprocess_flow", "preprocess_frames", "preprocess_masks"]
    assert rules_to_run(planned.stdout) == sorted(["gather_videos"] + [f"{s} disc" for s in stages])
    built = snakemake(target, "--cores", "2", "--configfile", str(config), workdir=tmp_path)
    assert built.returncode == 0, built.stdout
    assert (tmp_path / "data/mine/database/configs/mine.config").exists()

    frames, masks = moving_disc(seed=2, step=-7.0)
    write_mp4(tmp_path / "videos" / "second.mp4", frames)
    write_masks(tmp_path / "masks" / "second", masks)
    again = snakemake("-n", target, "--configfile", str(config), workdir=tmp_path)
    assert again.returncode == 0, again.stdout
    assert rules_to_run(again.stdout) == sorted(["gather_videos"] + [f"{s} second" for s in stages])


def test_a_missing_video_folder_is_named_and_stops_only_its_dataset(tmp_path):
    datasets = tmp_path / "datasets"
    write_yaml(datasets / "mine.yaml", {"source": {"videos": str(tmp_path / "nowhere")}})
    write_yaml(datasets / "tiny.yaml", {"source": {"synthetic": {"num_videos": 1, "num_frames": 10}}})
    config = overlay(tmp_path, ["tiny"], datasets)
    result = snakemake("-n", "data/mine/manifest.json", "--configfile", str(config), workdir=tmp_path)
    assert result.returncode != 0
    assert "mine.yaml" in result.stdout and "nowhere does not exist" in result.stdout
    other = snakemake("-n", "data/tiny/manifest.json", "--configfile", str(config), workdir=tmp_path)
    assert other.returncode == 0, other.stdout
