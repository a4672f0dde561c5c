"""Metrics and the end-to-end evaluator against cases with exact answers."""

import json

import numpy as np
import pytest
import trimesh

from lab4d_core.errors import Lab4dError
from lab4d_core.eval.align import Sim3
from lab4d_core.eval.evaluate import (
    evaluate_masks,
    evaluate_mesh_sequence,
    evaluate_rgb,
    load_ground_truth,
    load_obj_sequence,
)
from lab4d_core.eval.metrics import chamfer_fscore, mask_iou, masked_psnr, relative_thresholds, sample_surface
from lab4d_core.geometry.transforms import so3_exp


def _grid(z: float, n: int = 11) -> np.ndarray:
    """Unit-square point grid in the plane z = const."""
    xs, ys = np.meshgrid(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n))
    return np.stack([xs.ravel(), ys.ravel(), np.full(n * n, z)], axis=1)


def _sphere_sequence(num_frames: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """A small icosphere drifting in front of the camera."""
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    return [(sphere.vertices + [0.1 * t, -0.05 * t, 3.0 + 0.1 * t], sphere.faces) for t in range(num_frames)]


def test_identical_point_sets_score_perfectly():
    pts = np.random.default_rng(0).normal(size=(500, 3))
    scores = chamfer_fscore(pts, pts, [0.001, 0.01, 0.1])
    assert scores["cd"] == pytest.approx(0.0, abs=1e-9)
    assert scores["fscore"] == [1.0, 1.0, 1.0]


def test_parallel_grids_offset_along_normal():
    scores = chamfer_fscore(_grid(0.03), _grid(0.0), [0.02, 0.05])
    assert scores["cd"] == pytest.approx(0.06, abs=1e-12)
    assert scores["fscore"] == [0.0, 1.0]


def test_precision_is_measured_from_the_gt_side():
    # evaluation.md: P = mean[d_gt->pred < tau^2], R = mean[d_pred->gt < tau^2].
    gt = np.concatenate([_grid(0.0), _grid(0.0) + [5.0, 0.0, 0.0]])
    pred = _grid(0.0)
    scores = chamfer_fscore(pred, gt, [0.05])
    assert scores["precision"] == [0.5]
    assert scores["recall"] == [1.0]
    assert scores["fscore"][0] == pytest.approx(2 * 0.5 / 1.5)


def test_relative_thresholds_use_largest_bbox_side():
    gt = np.array([[0.0, 0.0, 0.0], [2.0, 0.5, 1.0]])
    np.testing.assert_allclose(relative_thresholds(gt), [0.02, 0.04, 0.10, 0.20])


def test_sample_surface_is_area_weighted_and_deterministic():
    # Two triangles of areas 0.5 and 1.5 forming disjoint strips along x.
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [2, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface(verts, faces, 20000, seed=3)
    np.testing.assert_array_equal(pts, sample_surface(verts, faces, 20000, seed=3))
    assert np.mean(pts[:, 0] >= 2.0) == pytest.approx(0.75, abs=0.01)
    in_first = (pts[:, 0] >= 0) & (pts[:, 0] + pts[:, 1] <= 1.0 + 1e-12)
    in_second = (pts[:, 0] >= 2.0) & ((pts[:, 0] - 2.0) / 3.0 + pts[:, 1] <= 1.0 + 1e-12)
    assert np.all(pts[:, 1] >= 0.0) and np.all(in_first | in_second)


def test_mask_iou_on_hand_made_masks():
    pred = np.zeros((2, 8, 8), dtype=bool)
    gt = np.zeros((2, 8, 8), dtype=bool)
    pred[0, 0:4, 0:4] = True
    gt[0, 2:6, 0:4] = True  # overlap 2x4 = 8, union 16 + 16 - 8 = 24
    np.testing.assert_allclose(mask_iou(pred, gt), [8 / 24, 1.0])
    assert mask_iou(pred[0], pred[0]).tolist() == [1.0]
    assert evaluate_masks(pred, gt) == {
        "mask_iou": pytest.approx((8 / 24 + 1) / 2),
        "per_frame": pytest.approx([8 / 24, 1.0]),
    }


def test_masked_psnr_ignores_pixels_outside_mask():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.2, 0.8, (2, 6, 7, 3))
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:4, 2:6] = True
    pred = np.where(mask[None, :, :, None], gt + 0.1, rng.uniform(0.0, 1.0, gt.shape))
    np.testing.assert_allclose(masked_psnr(pred, gt, mask), [20.0, 20.0], atol=1e-9)
    assert evaluate_rgb(pred[0], gt[0], mask)["psnr"] == pytest.approx(20.0, abs=1e-9)
    with pytest.raises(ValueError, match="empty mask"):
        masked_psnr(pred, gt, np.zeros_like(mask))


@pytest.mark.parametrize("points", ["vertices", "surface"])
def test_evaluate_identical_sequence(points):
    meshes = _sphere_sequence()
    report = evaluate_mesh_sequence(meshes, meshes, points=points, num_samples=2000)
    json.dumps(report)
    assert report["mean"]["cd"] == pytest.approx(0.0, abs=1e-6)
    fscores = {k: v for k, v in report["mean"].items() if k.startswith("fscore@")}
    assert set(fscores) == {
        "fscore@0.02",
        "fscore@0.05",
        "fscore@0.10",
        "fscore@1%bbox",
        "fscore@2%bbox",
        "fscore@5%bbox",
        "fscore@10%bbox",
    }
    assert all(v == pytest.approx(1.0) for v in fscores.values())


# Per-frame ICP has no scale DOF: the median-depth ratio is only approximately the
# true scale once the rotation tilts the sphere's depth, so a small CD remains.
@pytest.mark.parametrize(("protocol", "max_cd"), [("sim3", 1e-3), ("icp", 0.05)])
def test_evaluate_recovers_known_similarity(protocol, max_cd):
    gt = _sphere_sequence()
    truth = Sim3(1.3, so3_exp(np.array([0.05, -0.1, 0.08])), np.array([0.05, 0.02, -0.1]))
    pred = [(truth.inverse().apply(verts), faces) for verts, faces in gt]
    unaligned = chamfer_fscore(pred[0][0], gt[0][0], [0.1])["fscore"][0]
    assert unaligned < 0.5
    report = evaluate_mesh_sequence(pred, gt, protocol=protocol)
    assert report["protocol"] == protocol
    assert report["mean"]["fscore@0.10"] == pytest.approx(1.0)
    assert report["mean"]["fscore@10%bbox"] == pytest.approx(1.0)
    assert report["mean"]["cd"] < max_cd
    assert report["alignment"]["type"] == {"sim3": "sim3_sequence", "icp": "per_frame_icp"}[protocol]


def test_evaluate_rejects_mismatched_lengths_and_protocols():
    meshes = _sphere_sequence()
    with pytest.raises(Lab4dError, match="one mesh per ground-truth frame"):
        evaluate_mesh_sequence(meshes[:2], meshes)
    with pytest.raises(Lab4dError, match="protocol"):
        evaluate_mesh_sequence(meshes, meshes, protocol="banmo")


def test_load_obj_sequence_and_ground_truth(tmp_path):
    meshes = _sphere_sequence()
    obj_dir = tmp_path / "meshes"
    obj_dir.mkdir()
    for t, (verts, faces) in enumerate(meshes):
        trimesh.Trimesh(verts, faces, process=False).export(obj_dir / f"{t:05d}.obj")
    loaded = load_obj_sequence(obj_dir)
    assert len(loaded) == 3
    np.testing.assert_allclose(loaded[2][0], meshes[2][0], atol=1e-6)
    np.testing.assert_array_equal(loaded[2][1], meshes[2][1])

    np.save(tmp_path / "verts_cam.npy", np.stack([v for v, _ in meshes]).astype(np.float32))
    np.save(tmp_path / "faces.npy", meshes[0][1])
    gt = load_ground_truth(tmp_path)
    assert len(gt) == 3 and gt[0][0].shape == meshes[0][0].shape

    (obj_dir / "00001.obj").unlink()
    with pytest.raises(Lab4dError, match=r"frames \[1\]"):
        load_obj_sequence(obj_dir)
    (tmp_path / "faces.npy").unlink()
    with pytest.raises(Lab4dError, match="faces.npy"):
        load_ground_truth(tmp_path)
