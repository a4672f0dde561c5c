"""A category model against ground truth: bone lengths after one scale, reanimations, every video's meshes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab4d_core.eval.category import evaluate_bone_lengths, evaluate_reanimation, evaluate_video_meshes


def true_offsets(gt_root, seqname: str, parents) -> np.ndarray:
    joints = np.load(gt_root / seqname / "rest_joints.npy").astype(np.float64)
    offsets = joints.copy()
    parents = np.asarray(parents)
    offsets[parents >= 0] -= joints[parents[parents >= 0]]
    return offsets


def test_bone_lengths_are_scored_after_one_scale_and_ranked_by_limb(untrained_skel, tiny_quads, monkeypatch):
    model, database = untrained_skel
    gt_root = tiny_quads / "GroundTruth"
    tree = model.deform
    truth = [true_offsets(gt_root, video.seqname, tree.parents) for video in database.videos]

    def offsets(inst, batch, order=(0, 1)):
        chosen = np.stack([truth[order[int(i)]] for i in inst.reshape(-1)])
        return torch.as_tensor(1.7 * chosen, dtype=torch.float32)  # the reconstruction's own units

    monkeypatch.setattr(tree, "offsets", offsets)
    scores = evaluate_bone_lengths(model, database, gt_root)
    assert scores["scale"] == pytest.approx(1 / 1.7, rel=1e-5)
    assert scores["median_relative_error"] < 1e-5
    assert scores["leg_order_matches"] and scores["arm_order_matches"]
    legs = [v["leg_length"]["true"] for v in scores["videos"].values()]
    assert abs(legs[0] - legs[1]) > 0.1 * min(legs)  # the two individuals differ
    monkeypatch.setattr(tree, "offsets", lambda inst, batch: offsets(inst, batch, order=(1, 0)))
    swapped = evaluate_bone_lengths(model, database, gt_root)
    assert not swapped["leg_order_matches"] and swapped["median_relative_error"] > 0.05


def test_a_reanimation_is_scored_on_every_frame_of_a(untrained_skel, tiny_quads):
    model, database = untrained_skel
    scores = evaluate_reanimation(model, database, tiny_quads / "GroundTruth" / "reanimate" / "0-to-1", res=32, grid=24)
    assert (scores["motion_id"], scores["inst_id"]) == (0, 1)
    assert 0.0 <= scores["mask_iou"] <= 1.0 and 0.0 <= scores["fscore@10%bbox"] <= 1.0
    assert scores["frames"] == len(range(0, database.videos[0].num_frames, 4))


def test_every_video_meshes_are_scored(untrained_skel, tiny_quads):
    model, database = untrained_skel
    scores = evaluate_video_meshes(model, database, tiny_quads / "GroundTruth", stride=5, grid=24)
    assert set(scores["videos"]) == {video.seqname for video in database.videos}
    assert scores["min fscore@10%bbox"] <= scores["fscore@10%bbox"] <= 1.0
