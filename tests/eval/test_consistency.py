"""Consistency across views: the rigid fit's rotation and neighbour F-scores on shapes with known
answers, the verdict on synthetic ground truth, and an untrained bob model (the sphere) whose
warp is the identity, turned or shifted on purpose, through the library and the CLI."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lab4d_core.cli import main
from lab4d_core.config import DatasetConfig, ModelConfig, SourceConfig, TrainConfig, to_dict
from lab4d_core.eval.consistency import (
    FSCORE_LIMIT,
    LIKELY_CAUSE,
    NO_SURFACE,
    NO_SURFACE_CAUSE,
    ROTATION_LIMIT_DEG,
    evaluate_consistency,
    rigid_rotation_deg,
    score_video,
)
from lab4d_core.model.deform.bob import BagOfBones
from lab4d_core.train.checkpoint import save_checkpoint

TURN_DEG = 40.0
"""How far the turned deformation rotates the body by each video's last frame."""


@pytest.mark.parametrize("degrees", [0.05, 3.0, 37.0, 120.0, 179.0])
def test_the_rigid_fit_recovers_a_known_rotation_within_a_tenth_of_a_degree(degrees):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(500, 3)) * [0.3, 0.8, 1.0]
    rotation = Rotation.from_rotvec(np.radians(degrees) * np.array([1.0, -2.0, 0.5]) / np.sqrt(5.25))
    target = rotation.apply(points) + [0.4, -1.0, 2.0] + rng.normal(scale=1e-3, size=points.shape)
    assert rigid_rotation_deg(points, target) == pytest.approx(degrees, abs=0.1)


def _ground_truth(root, seq: str, num_points: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Some vertices of a synthetic sequence's rest mesh (P, 3), the same vertices in object
    coordinates per frame (T, P, 3), and in camera coordinates less the root translation (T, P, 3)."""
    gt = root / "GroundTruth" / seq
    rest, verts_cam, field2cam = (np.load(gt / f"{name}.npy") for name in ("rest_verts", "verts_cam", "field2cam"))
    chosen = np.random.default_rng(0).choice(len(rest), min(num_points, len(rest)), replace=False)
    centred = verts_cam[:, chosen] - field2cam[:, None, :3, 3]
    return rest[chosen], np.einsum("tvi,tij->tvj", centred, field2cam[:, :3, :3]), centred


def test_synthetic_ground_truth_is_consistent_and_the_same_shapes_turned_with_the_camera_are_not(tiny_quad):
    for seq in ("tiny-quad-0000", "tiny-quad-0001"):
        rest, posed, with_camera = _ground_truth(tiny_quad, seq)
        truth = score_video(rest, posed)
        assert truth["consistent"], truth["problems"]
        assert truth["deformation_rotation_p90"] < 10.0 and truth["neighbour_fscore_p10"] > 0.6
        # A collapsed model: root rotations at the identity, the camera's rotation left to the deformation.
        collapsed = score_video(with_camera[0], with_camera)
        assert not collapsed["consistent"]
        assert collapsed["deformation_rotation_p90"] > ROTATION_LIMIT_DEG


def test_an_identity_deformation_is_consistent(untrained_bob):
    model, database = untrained_bob
    result = evaluate_consistency(model, database)
    assert result["consistent"] and result["warnings"] == []
    assert list(result["videos"]) == ["tiny-quad-0000", "tiny-quad-0001"]
    for scores in result["videos"].values():
        assert scores["consistent"] and scores["frames"] == 12 and scores["gap"] == 4
        assert max(scores["deformation_rotation_per_frame"]) < 0.05
        assert min(scores["neighbour_fscore_per_pair"]) == 1.0 and len(scores["neighbour_fscore_per_pair"]) == 8
    assert result["deformation_rotation_p90"] < 0.05 and result["neighbour_fscore_p10"] == 1.0


def _turn(points: torch.Tensor, frame: torch.Tensor, frame_offset: np.ndarray, degrees: float) -> torch.Tensor:
    """Points (N, P, 3) of frames (N,) turned about a vertical axis off the centre, by an angle growing
    from 0 at each video's first frame to ``degrees`` at its last."""
    offsets = torch.as_tensor(frame_offset)
    video = torch.searchsorted(offsets, frame, right=True) - 1
    angle = torch.deg2rad(degrees * (frame - offsets[video]) / (offsets[video + 1] - offsets[video] - 1))
    cos, sin, zero, one = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle), torch.ones_like(angle)
    rotation = torch.stack([cos, zero, sin, zero, one, zero, -sin, zero, cos], -1).view(-1, 3, 3).float()
    pivot = torch.tensor([0.05, 0.0, -0.03])
    return (points - pivot) @ rotation.transpose(1, 2) + pivot


@pytest.fixture
def turned(untrained_bob, monkeypatch):
    """Every bob deformation turns the whole body by up to TURN_DEG over each video, as a model whose
    deformation carries the camera's motion does."""
    _, database = untrained_bob
    warp = BagOfBones.warp_to_frame

    def turned_warp(self, x, frame, inst=None):
        return _turn(warp(self, x, frame, inst), frame, database.frame_offset, TURN_DEG)

    monkeypatch.setattr(BagOfBones, "warp_to_frame", turned_warp)


def test_a_deformation_that_turns_the_body_is_flagged_with_the_angle_it_injects(untrained_bob, turned):
    model, database = untrained_bob
    result = evaluate_consistency(model, database)
    assert not result["consistent"] and len(result["warnings"]) == 2
    injected = TURN_DEG * np.arange(12) / 11
    for scores in result["videos"].values():
        np.testing.assert_allclose(scores["deformation_rotation_per_frame"], injected, atol=2.0)
        assert scores["deformation_rotation_p90"] == pytest.approx(np.percentile(injected, 90), abs=2.0)
        assert not scores["consistent"] and len(scores["problems"]) == 1
        assert "turns the whole body by 36." in scores["problems"][0]
    assert all(LIKELY_CAUSE in line for line in result["warnings"])


def test_a_shape_that_drifts_between_nearby_frames_is_flagged_by_the_fscore(untrained_bob, monkeypatch):
    model, database = untrained_bob
    warp = BagOfBones.warp_to_frame
    # The sphere's diameter; a fifth of it every 4 frames, so every pair's shapes are that far apart.
    step = 0.2 * 2 * 0.6 * float(model.bound) / model.cfg.field_bound / 4

    def drifting(self, x, frame, inst=None):
        return warp(self, x, frame, inst) + step * frame.float()[:, None, None] * torch.tensor([1.0, 0.0, 0.0])

    monkeypatch.setattr(BagOfBones, "warp_to_frame", drifting)
    result = evaluate_consistency(model, database)
    for scores in result["videos"].values():
        assert scores["deformation_rotation_p90"] < 0.05
        assert scores["neighbour_fscore_p10"] < FSCORE_LIMIT and not scores["consistent"]
        assert scores["problems"] == [
            f"the shape jumps between frames 4 apart: neighbour F-score {scores['neighbour_fscore_p10']:.2f} "
            f"(10th percentile of pairs; limit {FSCORE_LIMIT:g})"
        ]


def test_a_model_without_a_surface_is_reported_not_an_error(untrained_bob, monkeypatch):
    model, database = untrained_bob
    monkeypatch.setattr(model.field, "sdf", lambda points, inst: points.new_ones(points.shape[:-1]))
    result = evaluate_consistency(model, database)
    assert not result["consistent"] and result["deformation_rotation_p90"] is None
    assert all(scores["problems"] == [NO_SURFACE] for scores in result["videos"].values())
    assert (
        result["warnings"][0]
        == f"tiny-quad-0000 is inconsistent across views: {NO_SURFACE}. Likely cause: {NO_SURFACE_CAUSE}"
    )


def test_a_one_frame_video_is_scored_by_its_rotation_alone():
    rest = np.random.default_rng(0).normal(size=(100, 3))
    scores = score_video(rest, rest[None])
    assert scores["consistent"] and scores["gap"] == 0 and scores["neighbour_fscore_p10"] is None


@pytest.fixture
def checkpoint(untrained_bob, tiny_quad, tmp_path):
    model, _ = untrained_bob
    cfg = DatasetConfig(
        SourceConfig(path=str(tiny_quad), collection="tiny-quad"),
        ModelConfig(fg_motion="bob", **{"hash_log2_size": 12, "hash_levels": 8, "hash_max_res": 64, "num_bones": 4}),
        TrainConfig(train_res=64),
    )
    path = tmp_path / "ckpt_final.pth"
    save_checkpoint(path, {"config": to_dict(cfg), "model": model.state_dict()})
    return path


def _evaluate(checkpoint, tiny_quad, out) -> int:
    return main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tiny_quad / "manifest.json"),
                 "--res", "8", "--ray-samples", "2", "--importance-samples", "0", "--out", str(out)])  # fmt: skip


def test_evaluate_warns_on_stderr_when_the_deformation_turns_the_body(checkpoint, tiny_quad, tmp_path, capsys, turned):
    out = tmp_path / "bad.json"
    assert _evaluate(checkpoint, tiny_quad, out) == 0  # a verdict, not an error: the metrics are written
    printed = capsys.readouterr()
    assert "consistency {'consistent': False" in printed.out
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and warnings[0].startswith("warning: tiny-quad-0000 is inconsistent across views: ")
    assert "the deformation turns the whole body by 36." in warnings[0]
    assert warnings[0].endswith(
        "Likely cause: root poses: the deformation absorbs the camera's motion; check Cameras/ or train longer"
    )
    assert json.loads(out.read_text())["consistency"]["warnings"] == [line[len("warning: ") :] for line in warnings]
