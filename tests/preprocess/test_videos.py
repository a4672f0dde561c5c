"""Own videos -> lab4d's layout: the stages, the gather, and one clear error for each kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lab4d_core.cli import main
from lab4d_core.config import ManualCameraConfig, PromptConfig, SourceConfig
from lab4d_core.data.database import Database
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.preprocess.cameras import view_rotation
from lab4d_core.preprocess.crop import crop_image
from lab4d_core.preprocess.root_poses import initial_root_poses
from lab4d_core.preprocess.videos import (
    find_videos,
    gather,
    preprocess,
    run_stage,
    stage_settings,
    tracking_frames,
)
from tests.preprocess.footage import moving_disc, write_masks, write_mp4


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Two videos in a folder (an mp4 and a folder of frames) and their masks, one folder per video."""
    root = tmp_path_factory.mktemp("footage")
    disc_frames, disc_masks = moving_disc(seed=0)
    write_mp4(root / "videos" / "disc.mp4", disc_frames)
    other_frames, other_masks = moving_disc(num_frames=12, seed=5, step=-7.0)
    for t, frame in enumerate(other_frames):
        (root / "videos" / "other").mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(root / "videos" / "other" / f"{t:03d}.png")
    write_masks(root / "masks" / "disc", disc_masks, size=(192, 144))  # twice the video's size: resized nearest
    write_masks(root / "masks" / "other", other_masks)
    return root, {"disc": (disc_frames, disc_masks), "other": (other_frames, other_masks)}


def videos_source(root, **settings) -> SourceConfig:
    return SourceConfig(videos=str(root / "videos"), category="quad", train_res=32, **settings)


def test_a_folder_holds_videos_and_folders_of_frames_named_by_their_stems(footage):
    root, _ = footage
    assert list(find_videos(videos_source(root))) == ["disc", "other"]
    assert list(find_videos(SourceConfig(videos=str(root / "videos" / "other")))) == ["other"]
    with pytest.raises(Lab4dError, match="nowhere.mp4 does not exist"):
        find_videos(SourceConfig(videos=str(root / "nowhere.mp4")))
    (root / "empty").mkdir(exist_ok=True)
    with pytest.raises(Lab4dError, match="empty holds no videos"):
        find_videos(SourceConfig(videos=str(root / "empty")))


def test_a_stage_depends_only_on_its_own_videos_settings(footage):
    root, _ = footage
    box = PromptConfig(video="other", box=[1, 2, 30, 40])
    one = videos_source(root, prompt=[PromptConfig(video="disc", box=[10, 10, 50, 50]), box])
    two = videos_source(root, prompt=[PromptConfig(video="disc", box=[12, 10, 50, 50]), box])
    assert stage_settings(one, "other", "masks") == stage_settings(two, "other", "masks")
    assert stage_settings(one, "disc", "masks") != stage_settings(two, "disc", "masks")
    assert stage_settings(one, "disc", "flow") == {"train_res": 32}
    # Without its video's name, a prompt is ambiguous among two videos.
    with pytest.raises(Lab4dError, match=r"prompt\[0\]: name its video"):
        stage_settings(videos_source(root, prompt=[PromptConfig(box=[1, 2, 3, 4])]), "disc", "masks")


def test_given_masks_preprocess_into_lab4d_layout(footage, tmp_path):
    root, truth = footage
    source = videos_source(root, masks=str(root / "masks"))
    manifest = preprocess(source, "mine", tmp_path / "mine")
    assert manifest["videos"] == ["mine-0000", "mine-0001"] and not manifest["ground_truth"]
    database = read_manifest(tmp_path / "mine" / "manifest.json").database()
    assert isinstance(database, Database) and database.resolution == 32
    video = database.videos[0]
    frames, masks = truth["disc"]
    kept = np.asarray(video.kept_ids)
    assert len(kept) >= 9 and kept[0] == 0
    # The crop arrays frame the disc: mask against the true mask cropped the same way.
    crop2raw = np.asarray(video.array("crop2raw"))
    stored = np.asarray(video.array("mask")[..., 0])
    for t, raw_id in enumerate(kept):
        expected = crop_image(masks[raw_id].astype(np.uint8), crop2raw[t], 32, nearest=True) > 0
        assert (stored[t] & expected).sum() / (stored[t] | expected).sum() > 0.9
    assert np.asarray(video.array("is_detected")).all()
    # Forward flow at delta 1 on the disc: it moves 7 raw pixels a frame to the right.
    flow = np.asarray(video.flow(1, "fw")[0], np.float32)
    on_disc = stored[0] & (flow[..., 2] > 0)
    assert on_disc.sum() > 20
    partner = crop2raw[1]
    raw_x = crop2raw[0, 0] * np.nonzero(on_disc)[1] + crop2raw[0, 2] + 7.0 * (kept[1] - kept[0])
    expected_dx = (raw_x - partner[2]) / partner[0] - np.nonzero(on_disc)[1]
    assert np.median(np.abs(flow[on_disc][:, 0] - expected_dx)) < 1.0
    # Root poses to start from: background cameras composed with one orientation, noted as an estimate.
    assert video.camera("00") is not None and video.camera_notes() == {"estimated": True, "source": "00"}
    init = initial_root_poses(video, "crop", crop2raw)
    assert init.source == "00" and init.estimated
    # Gathered again, the dataset is a new one: training must not resume a model of the old one.
    first = read_manifest(tmp_path / "mine" / "manifest.json").digest
    gather(
        source,
        "mine",
        {name: tmp_path / "mine" / "preprocess" / name for name in find_videos(source)},
        tmp_path / "mine",
    )
    assert read_manifest(tmp_path / "mine" / "manifest.json").digest != first


def test_manual_camera_keyframes_of_a_dataset_yaml_become_root_rotations(footage, tmp_path):
    root, _ = footage
    keyframes = [
        ManualCameraConfig(video="disc", frame=0, azimuth=30.0, elevation=20.0),
        ManualCameraConfig(video="other", frame=0, azimuth=-50.0),
    ]
    source = videos_source(root, masks=str(root / "masks"), cameras=keyframes)
    work = tmp_path / "work"
    for stage in ("frames", "masks", "cameras"):
        run_stage(stage, source, "disc", work)
    with np.load(work / "cameras.npz") as cameras:
        manual = cameras["manual"]
    # One keyframe for this video (the other video's is not its): every kept frame holds its view.
    assert np.abs(manual - view_rotation(30.0, 20.0)).max() < 1e-6


def _left_nothing(work, *names):
    return not any((work / name).exists() for name in names) and not list(work.glob(".*partial*"))


def test_an_unreadable_video_is_named(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    source = SourceConfig(videos=str(tmp_path / "videos"))
    with pytest.raises(Lab4dError, match="broken.mp4"):
        run_stage("frames", source, "broken", tmp_path / "work")
    assert _left_nothing(tmp_path / "work", "frames")


def test_an_all_black_video_is_named(tmp_path):
    write_mp4(tmp_path / "videos" / "night.mp4", np.zeros((10, 48, 64, 3), np.uint8))
    with pytest.raises(Lab4dError, match="night.mp4: every frame is black"):
        run_stage("frames", SourceConfig(videos=str(tmp_path / "videos")), "night", tmp_path / "work")
    assert _left_nothing(tmp_path / "work", "frames")


def test_a_prompt_box_outside_the_frame_is_named(footage, tmp_path):
    root, _ = footage
    source = SourceConfig(videos=str(root / "videos" / "disc.mp4"), prompt=[PromptConfig(box=[500, 500, 600, 600])])
    run_stage("frames", source, "disc", tmp_path / "work")
    with pytest.raises(Lab4dError, match=r"disc.*96"):
        run_stage("masks", source, "disc", tmp_path / "work")
    assert _left_nothing(tmp_path / "work", "masks.npz")


def test_masks_whose_count_or_size_does_not_match_are_named(footage, tmp_path):
    root, truth = footage
    _, masks = truth["disc"]
    write_masks(tmp_path / "short", masks[:5])
    source = SourceConfig(videos=str(root / "videos" / "disc.mp4"), masks=str(tmp_path / "short"))
    run_stage("frames", source, "disc", tmp_path / "work")
    with pytest.raises(Lab4dError, match=r"short.*5.*12|short.*12.*5"):
        run_stage("masks", source, "disc", tmp_path / "work")
    write_masks(tmp_path / "wide", masks, size=(200, 72))
    with pytest.raises(Lab4dError, match="wide"):
        run_stage("masks", SourceConfig(videos=source.videos, masks=str(tmp_path / "wide")), "disc", tmp_path / "work")
    assert _left_nothing(tmp_path / "work", "masks.npz")


def test_an_object_never_found_is_named_and_the_cli_exits_2(footage, tmp_path, capsys):
    root, truth = footage
    write_masks(tmp_path / "empty", np.zeros_like(truth["disc"][1]))
    config = tmp_path / "never.yaml"
    config.write_text(
        json.dumps({"source": {"videos": str(root / "videos" / "disc.mp4"), "masks": str(tmp_path / "empty")}})
    )
    out = tmp_path / "never"
    assert main(["preprocess", "frames", "--config", str(config), "--out", str(out), "--video", "disc"]) == 0
    assert main(["preprocess", "masks", "--config", str(config), "--out", str(out), "--video", "disc"]) == 2
    message = capsys.readouterr().err
    assert "disc" in message and "error" in message and "Traceback" not in message
    assert _left_nothing(out / "preprocess" / "disc", "masks.npz")


def test_track_follows_the_object_through_the_frames_between_kept_ones():
    # Short gaps are walked frame by frame; a long one (a still stretch the frame filter dropped) in at most 3 steps
    # between; a prompt on a dropped frame is tracked from that very frame.
    frames = tracking_frames(np.array([0, 2, 5, 40]), prompted=[3], steps_between=3)
    assert list(frames) == [0, 1, 2, 3, 4, 5, 14, 22, 31, 40]
    # A long video takes fewer frames between kept ones, down to the kept and prompted frames alone.
    kept = np.array([0, 2, 5, 40])
    assert list(tracking_frames(kept, prompted=[3], steps_between=3, most=8)) == [0, 1, 2, 3, 4, 5, 22, 40]
    assert list(tracking_frames(kept, prompted=[3], steps_between=3, most=2)) == [0, 2, 3, 5, 40]
