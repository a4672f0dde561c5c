"""``lab4d reanimate``: video A's motion on video B's body, with A longer than B (lab4d's frame-offset bug)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lab4d_core.errors import Lab4dError
from lab4d_core.eval.evaluate import load_obj_sequence
from lab4d_core.export.export import export_video
from lab4d_core.export.reanimate import plan_reanimation, reanimate


def spy_on_instances(model, monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record the (frames, instances) of every warp and of every shape query the model makes."""
    calls = []
    for name in ("warp_to_canonical", "warp_to_frame", "joint_so3", "offsets"):
        original = getattr(model.deform, name)

        def spy(*args, original=original, name=name, **kwargs):
            if name in ("warp_to_canonical", "warp_to_frame"):
                calls.append(("frame", args[1].reshape(-1).clone(), args[2].reshape(-1).clone()))
            elif name == "joint_so3":
                calls.append(("frame", args[0].reshape(-1).clone(), None))
            else:
                calls.append(("inst", None, None if args[0] is None else args[0].reshape(-1).clone()))
            return original(*args, **kwargs)

        monkeypatch.setattr(model.deform, name, spy)
    field_sdf = model.field._geometry

    def sdf_spy(x, inst):
        calls.append(("inst", None, None if inst is None else inst.reshape(-1).unique()))
        return field_sdf(x, inst)

    monkeypatch.setattr(model.field, "_geometry", sdf_spy)
    return calls


def test_with_a_longer_than_b_every_frame_is_a_motion_on_b_body(untrained_skel, tmp_path, monkeypatch):
    model, database = untrained_skel
    a_frames = range(int(database.frame_offset[0]), int(database.frame_offset[0]) + database.videos[0].num_frames)
    assert database.videos[0].num_frames > database.videos[1].num_frames  # A = 0 is the longer video
    plan = plan_reanimation(model, database, motion_id=0, inst_id=1)
    assert plan.frames.tolist() == list(a_frames) and plan.inst == 1
    b_start = int(database.frame_offset[1])
    assert b_start <= plan.appearance < b_start + database.videos[1].num_frames  # B's look, not A's
    calls = spy_on_instances(model, monkeypatch)
    summary = reanimate(model, database, 0, 1, tmp_path / "0-to-1", tmp_path / "0-to-1.mp4", render_res=16, grid=24)
    assert summary.frames == database.videos[0].num_frames
    frames = torch.cat([f for _, f, _ in calls if f is not None]).unique().tolist()
    instances = torch.cat([i for _, _, i in calls if i is not None]).unique().tolist()
    assert set(frames) <= set(a_frames) and len(frames) == len(a_frames)
    assert instances == [1]
    assert (tmp_path / "0-to-1.mp4").stat().st_size > 0
    motion = json.loads((tmp_path / "0-to-1" / "motion.json").read_text())
    expected = model.deform.joint_so3(plan.frames).detach().numpy()
    np.testing.assert_allclose(motion["joint_so3"], expected, atol=1e-6)
    # B's bones: every posed skeleton of the glb's motion has instance 1's bone lengths, not instance 0's.
    joints = np.asarray(motion["t_articulation"])[:, :, :3, 3]
    parents = list(model.deform.parents)
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1)
    own, other = (model.deform.offsets(torch.tensor([i]), 1)[0, 1:].norm(dim=-1).detach().numpy() for i in (1, 0))
    np.testing.assert_allclose(lengths, np.broadcast_to(own, lengths.shape), atol=1e-5)
    assert np.abs(lengths - other).max() > 1e-3


def test_reanimating_a_video_onto_its_own_body_is_its_reconstruction(untrained_skel, tmp_path):
    model, database = untrained_skel
    reanimate(model, database, 1, 1, tmp_path / "1-to-1", tmp_path / "1-to-1.mp4", render_res=16, grid=24)
    export_video(model, database, 1, tmp_path / "own", grid=24)
    own = [verts for verts, _ in load_obj_sequence(tmp_path / "own" / "meshes")]
    again = [verts for verts, _ in load_obj_sequence(tmp_path / "1-to-1" / "meshes")]
    np.testing.assert_allclose(np.stack(again), np.stack(own), atol=1e-6)
    frame = int(database.frame_offset[1]) + 4
    xy = torch.stack(torch.meshgrid(torch.arange(0, 64, 4.0), torch.arange(0, 64, 4.0), indexing="xy"), -1)
    xy = xy.reshape(-1, 2) + 0.5
    own_render = model.render_pixels(frame, xy, num_samples=16)
    reanimated = model.render_pixels(frame, xy, num_samples=16, inst=1)
    assert own_render["opacity"].sum() > 10
    torch.testing.assert_close(reanimated["opacity"], own_render["opacity"], atol=0.02, rtol=0)


def test_bob_cannot_reanimate_and_says_why(untrained_bob, tmp_path):
    model, database = untrained_bob
    with pytest.raises(Lab4dError, match="needs a skeleton model: fg_motion bob"):
        reanimate(model, database, 0, 1, tmp_path / "0-to-1", tmp_path / "0-to-1.mp4")
    with pytest.raises(Lab4dError, match="--inst_id 7: the dataset has videos 0..1"):
        plan_reanimation(model, database, 0, 7)
