"""Alignment recovers known transforms (analytic cases)."""

import numpy as np
import pytest

from lab4d_core.eval.align import Sim3, align_per_frame_icp, align_sim3_sequence, icp, umeyama
from lab4d_core.eval.metrics import chamfer_fscore
from lab4d_core.geometry.transforms import so3_exp, so3_log


def _cloud(seed: int = 0, n: int = 400) -> np.ndarray:
    """Asymmetric blob in front of the camera (no exact symmetry for ICP to lock onto)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1.0, 1.0, (n, 3)) * np.array([0.6, 0.35, 0.2])
    pts[:, 0] += 0.3 * pts[:, 1] ** 2  # bend it so no mirror symmetry remains
    return pts + np.array([0.0, 0.0, 3.0])


def _sequence() -> list[np.ndarray]:
    """Three frames of the blob moving (small rotation and drift) in camera space."""
    base = _cloud()
    center = base.mean(axis=0)
    return [
        (base - center) @ so3_exp(np.array([0.0, 0.1 * t, 0.05 * t])).T + center + [0.05 * t, 0.0, 0.1 * t]
        for t in range(3)
    ]


def _rotation_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(so3_log(a.T @ b)))


def test_sim3_matrix_inverse_compose_agree():
    sim3 = Sim3(1.7, so3_exp(np.array([0.3, -0.2, 0.5])), np.array([0.1, 0.2, -0.3]))
    pts = _cloud()
    homog = np.c_[pts, np.ones(len(pts))] @ sim3.matrix().T
    np.testing.assert_allclose(homog[:, :3], sim3.apply(pts), atol=1e-12)
    np.testing.assert_allclose(sim3.inverse().apply(sim3.apply(pts)), pts, atol=1e-12)
    np.testing.assert_allclose(sim3.compose(sim3.inverse()).matrix(), np.eye(4), atol=1e-12)


def test_umeyama_recovers_exact_similarity():
    truth = Sim3(0.4, so3_exp(np.array([2.0, -1.0, 0.5])), np.array([1.0, -2.0, 0.3]))
    src = _cloud()
    fit = umeyama(src, truth.apply(src))
    np.testing.assert_allclose(fit.matrix(), truth.matrix(), atol=1e-9)
    rigid = umeyama(src, truth.apply(src), with_scale=False)
    assert rigid.scale == 1.0 and np.linalg.det(rigid.rotation) == pytest.approx(1.0)


def test_icp_fits_one_transform_over_all_frames():
    frames = _sequence()
    truth = Sim3(1.0, so3_exp(np.array([0.05, -0.08, 0.04])), np.array([0.05, -0.02, 0.04]))
    fit = icp(frames, [truth.apply(f) for f in frames])
    np.testing.assert_allclose(fit.matrix(), truth.matrix(), atol=1e-6)


def test_align_sim3_sequence_recovers_similarity():
    pred = _sequence()
    truth = Sim3(1.7, so3_exp(np.array([0.1, -0.15, 0.05])), np.array([0.1, -0.05, 0.2]))
    gt = [truth.apply(p) for p in pred]
    fit = align_sim3_sequence(pred, gt)
    assert fit.scale == pytest.approx(1.7, abs=1e-3)
    assert _rotation_error(fit.rotation, truth.rotation) < 1e-3
    for p, g in zip(pred, gt):
        assert chamfer_fscore(fit.apply(p), g, [0.01])["cd"] < 1e-6


def test_align_per_frame_icp_recovers_per_frame_offsets():
    # Rotations about the optical axis and in-plane shifts keep median depth, so the
    # median-z scale is exactly the global scale and rigid ICP can do the rest.
    pred = _sequence()
    truths = [
        Sim3(1.3, so3_exp(np.array([0.0, 0.0, angle])), 1.3 * np.array([dx, dy, 0.0]))
        for angle, dx, dy in [(0.1, 0.05, 0.0), (-0.15, 0.0, 0.08), (0.2, -0.06, 0.03)]
    ]
    fits = align_per_frame_icp(pred, [truth.apply(p) for p, truth in zip(pred, truths)])
    for p, fit, truth in zip(pred, fits, truths):
        np.testing.assert_allclose(fit.apply(p), truth.apply(p), atol=1e-6)


def test_empty_frame_is_a_clear_error():
    pred = _sequence()
    with pytest.raises(ValueError, match="no points"):
        align_sim3_sequence(pred, [pred[0], np.zeros((0, 3)), pred[2]])
    with pytest.raises(ValueError, match="frames"):
        align_per_frame_icp(pred, pred[:2])


def test_points_behind_camera_are_rejected():
    pred = _sequence()
    behind = [p * np.array([1.0, 1.0, -1.0]) for p in pred]
    with pytest.raises(ValueError, match="in front of the camera"):
        align_sim3_sequence(behind, pred)
