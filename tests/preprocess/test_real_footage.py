"""Real footage beside the project (../shared/data): DAVIS horsejump with its masks, lab4d's cat-pikachu-7."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lab4d_core.config import SourceConfig
from lab4d_core.data.manifest import read_manifest
from lab4d_core.preprocess.crop import crop_image
from lab4d_core.preprocess.flow import warp
from lab4d_core.preprocess.videos import preprocess, read_info, run_stage
from lab4d_core.utils.images import as_mask, load_stack

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HORSEJUMP = SHARED / "horsejump"
CAT = SHARED / "cat-pikachu-7.mp4"
pytestmark = pytest.mark.skipif(
    not HORSEJUMP.is_dir() or not CAT.is_file(), reason=f"real footage not found in {SHARED} (../shared/data)"
)


@pytest.fixture(scope="module")
def horsejump(tmp_path_factory):
    out = tmp_path_factory.mktemp("horsejump")
    source = SourceConfig(videos=str(HORSEJUMP / "video"), masks=str(HORSEJUMP / "masks"), train_res=64)
    preprocess(source, "horsejump", out)
    return read_manifest(out / "manifest.json").database().videos[0]


def test_horsejump_keeps_its_masks_in_the_crops(horsejump):
    truth = as_mask(load_stack(HORSEJUMP / "masks"))
    crop2raw = np.asarray(horsejump.array("crop2raw"))
    stored = np.asarray(horsejump.array("mask")[..., 0])
    ious = []
    for t, raw_id in enumerate(horsejump.kept_ids):
        expected = crop_image(truth[raw_id].astype(np.uint8), crop2raw[t], 64, nearest=True) > 0
        ious.append((stored[t] & expected).sum() / (stored[t] | expected).sum())
    assert min(ious) > 0.95 and np.asarray(horsejump.array("is_detected")).all()


def test_horsejump_flow_carries_each_mask_onto_the_next(horsejump):
    """The backward flow of pair t (frame t+1 -> t, in frame t's crop) pulls frame t's mask onto frame t+1's:
    the horse and rider move and deform, so a correct flow is what makes the two agree."""
    masks = np.asarray(horsejump.array("mask")[..., 0]).astype(np.float32)
    backward = np.asarray(horsejump.flow(1, "bw"), np.float32)
    agreement, unmoved = [], []
    for t in range(len(backward)):
        carried = warp(masks[t][..., None], backward[t][..., :2])[..., 0] > 0.5
        target = masks[t + 1] > 0.5
        agreement.append((carried & target).sum() / (carried | target).sum())
        unmoved.append(((masks[t] > 0.5) & target).sum() / ((masks[t] > 0.5) | target).sum())
    assert np.mean(agreement) > 0.7 and np.mean(agreement) > np.mean(unmoved) + 0.1, (agreement, unmoved)


def test_horsejump_cameras_pan_smoothly_and_start_as_an_estimate(horsejump):
    cameras = horsejump.camera("00")[:, :3, :3]
    steps = np.degrees(Rotation.from_matrix(cameras[1:] @ cameras[:-1].transpose(0, 2, 1)).magnitude())
    assert np.allclose(cameras[0], np.eye(3)) and steps.max() < 5.0 and steps.sum() > 2.0
    assert horsejump.camera_notes() == {"estimated": True, "source": "00"}


def test_the_cat_video_decodes_and_its_filter_keeps_the_moving_frames(tmp_path):
    run_stage("frames", SourceConfig(videos=str(CAT)), "cat-pikachu-7", tmp_path)
    info = read_info(tmp_path)
    assert (info.num_raw, info.height, info.width, info.skipped) == (212, 480, 864, 0)
    # The cat walks slowly and the camera follows it: many, not all, frames move enough to keep.
    assert info.kept[0] == 0 and 40 < len(info.kept) < 212
