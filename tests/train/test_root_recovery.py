"""Root poses that start far from the truth are recovered by training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lab4d_core.config import SynthConfig
from lab4d_core.data.manifest import read_manifest
from lab4d_core.train.presets import resolve
from lab4d_core.train.trainer import Trainer

RIGID = SynthConfig(
    num_videos=1, num_frames=12, resolution=96, train_res=64, motions=["walk"], cameras=["orbit"], voxel=0.02
)


@pytest.fixture(scope="module")
def tiny_rigid(tmp_path_factory) -> Path:
    """A quadruped that glides without moving its legs (a rigid object) along an orbiting camera."""
    from lab4d_core.data.synthetic import synthesize as synth

    rigid = dict(synth.ANGLE_GENERATORS)
    rigid["quad"] = lambda skeleton, motion, phase: np.zeros((len(phase), len(skeleton.parents), 3))
    root = tmp_path_factory.mktemp("rigid") / "tiny-rigid"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synth, "ANGLE_GENERATORS", rigid)
        synth.synthesize(RIGID, root)
    return root


def _errors(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Degrees between rotations after the one rotation of the canonical frame that fits best."""
    u, _, vt = np.linalg.svd(np.einsum("nji,njk->ik", truth, learned))
    fit = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return np.degrees(Rotation.from_matrix(np.einsum("nji,njk->nik", truth @ fit, learned)).magnitude())


def test_rotations_started_30_degrees_off_are_recovered_on_a_rigid_object(tiny_rigid):
    """Every frame's root rotation starts 30 degrees off, about an axis that turns over the video (so no single
    rotation of the canonical frame undoes it). The flow contradicts them, so their prior fades, and the
    trajectory's frame-to-frame turns are held to the flow's: training brings them back. (Measured with the
    prior held all along: 15 degrees; faded without the flow's turns: 1.7.)"""
    seq = read_manifest(tiny_rigid / "manifest.json").videos[0]
    truth = np.load(tiny_rigid / "GroundTruth" / seq / "field2cam.npy")
    turn = np.linspace(0.0, np.pi, len(truth))
    axes = np.stack([np.cos(turn), np.sin(turn), np.zeros_like(turn)], -1)
    start = truth.copy()
    start[:, :3, :3] = Rotation.from_rotvec(np.radians(30.0) * axes).as_matrix() @ truth[:, :3, :3]
    np.save(tiny_rigid / "database/processed/Cameras/Full-Resolution" / seq / "01-canonical.npy", start)
    config = {
        "source": {"path": str(tiny_rigid), "collection": "tiny-rigid"},
        "model": {"fg_motion": "rigid", "hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64},
        "train": {
            "preset": "cpu",
            "num_rounds": 8,
            "iters_per_round": 25,
            "imgs_per_gpu": 6,
            "pixels_per_image": 32,
            "freeze_intrinsics": True,
        },
    }
    cfg = resolve(config, {}, False, "test")
    with pytest.warns(UserWarning, match="turn unlike the optical flow"):
        trainer = Trainer(
            cfg, read_manifest(tiny_rigid / "manifest.json"), tiny_rigid.parent / "train", torch.device("cpu")
        )
    before = _errors(start[:, :3, :3], truth[:, :3, :3])
    trainer.train()
    with torch.no_grad():
        learned = trainer.model.root(torch.arange(len(truth)))[0].double().numpy()
    after = _errors(learned, truth[:, :3, :3])
    assert np.median(before) > 20.0
    assert np.median(after) < 3.0, (np.median(before), np.median(after))
