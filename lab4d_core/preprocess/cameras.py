"""Camera initialisation for users' own videos: background cameras from the frames, root rotations from keyframes.

Background cameras (:func:`background_cameras`) replace lab4d's ``camera_registration.py``, which chains
two-frame Procrustes fits of depth maps and flow; here no depth network is at hand, so the cameras come from
two-view geometry of the background alone:

1. SIFT features on every frame, away from the object's pixels (its mask, dilated);
2. every pair of frames :data:`GAPS` apart is matched and its relative rotation and translation direction
   measured: a robust essential matrix (OpenCV's USAC), then Levenberg-Marquardt from it and from the rotation
   alone, the better fit kept; where too few matches show parallax the rotation is fitted alone;
3. all pairs are reconciled at once: rotations by iteratively reweighted rotation averaging (a bad pair is
   outvoted by the paths around it, and chaining errors do not accumulate), the pairs' baselines brought to one
   scale through the points they both triangulate, then camera centres by a robust least-squares fit.

Measured on ten synthetic videos with exact cameras (orbits, handheld, arcs; 48-64 frames of 256^2 and 640^2),
as the rotation of each frame relative to the first: chaining the consecutive pairs alone drifts to 2-5 degrees
(median over frames) on handheld videos, 6 at worst; with the longer gaps and the averaging the median is
0.03-0.23 degrees and the worst frame 0.1-0.6. Unpolished, the essential matrix lands in the wrong of two nearby
minima in about 5% of pairs (2-10 degrees off), which left one video's frames 10 degrees off; the rotation
alone (a homography's, blind to parallax) is 11-75 degrees off.

Manual root rotations (:func:`manual_root_rotations`) turn lab4d-style keyframes (azimuth, elevation, roll) into
object -> camera rotations, interpolated between keyframes.

All cameras use OpenCV axes (x right, y down, z forward); rotations act on column vectors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.transforms import so3_exp, so3_log

GAPS = (1, 2, 4, 8, 16)
"""Frame pairs measured: every frame with the ones this many frames later."""
MAX_SIDE = 480
"""Frames are shrunk to at most this many pixels on their longer side for features: SIFT is most of the cost.
On synthetic 640^2 videos the worst frame was off by 0.11 and 0.56 degrees instead of 0.07 and 0.29, in about
60% of the time."""
MASK_MARGIN = 0.02
"""The object's mask is dilated by this fraction of the frame's longer side: features on its outline move with it."""
MIN_INLIERS = 30
"""A pair with fewer geometrically consistent matches is not used."""
RATIO = 0.8
"""Lowe's ratio test for matches."""
THRESHOLD_PIXELS = 0.5
"""RANSAC threshold (pixels of the raw frame)."""
METHOD = cv2.USAC_ACCURATE
"""Robust estimator of the essential matrix. Measured on the pairs 1-4 frames apart of a synthetic handheld
video: median rotation error 0.02 degrees (MAGSAC: 0.14 at this threshold, 0.20 at 1 pixel), 4% of pairs off
by more than 2 degrees (MAGSAC: 5-7%), the polishing (:func:`_refine`) then rescuing most of those."""
MIN_PARALLAX_POINTS = 30
"""A pair with fewer inliers that triangulate in front of both cameras within 50 baselines (OpenCV's
``recoverPose``: a parallax of about a degree) shows no usable translation: its rotation is polished from the
rotation alone and its baseline taken as zero."""
PRIOR_WEIGHT = 1e-3
"""Weight of the 'camera did not move' prior between consecutive frames, relative to a measured pair: it only
decides frames that no pair measured (they are interpolated between their neighbours)."""
MIN_SHARED = 10
"""Two pairs that triangulate at least this many keypoints of a frame in common tie their baselines' scales."""
ROBUST_DEGREES = 1.0
"""Scale of the Cauchy weights of rotation averaging: pairs disagreeing with the consensus by much more are
outvoted. Plain least squares let a few wrong pairs (those of long gaps across little overlap) turn whole
stretches of synthetic videos by 20-40 degrees; at 2 degrees the worst frames were off by 0.2-1.3 degrees
instead of 0.1-0.5; at 0.5 one weakly measured frame lost its pairs and was off by 2.4."""


@dataclass
class _Pair:
    first: int
    second: int
    rotation: np.ndarray
    """(3, 3) camera ``first`` -> camera ``second``."""
    translation: np.ndarray
    """(3,) camera ``first``'s origin in camera ``second``: a unit vector, zero without parallax."""
    weight: float
    """How much the pair counts: its number of consistent matches."""
    seen: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] = ((), ())
    """Per frame of the pair (``first``, ``second``): the keypoints triangulated (indices into the frame's
    features) and the logarithms of their depths in that camera, with the baseline as unit."""


def num_pairs(num_frames: int) -> int:
    """How many frame pairs :func:`background_cameras` measures (its progress total)."""
    return sum(max(num_frames - gap, 0) for gap in GAPS)


def background_cameras(frames: np.ndarray, masks: np.ndarray, ks: np.ndarray, progress=None) -> np.ndarray:
    """(N, 4, 4) world -> camera of one video's (N, H, W, 3) uint8 frames, from their background.

    ``masks`` (N, H, W) int8 (1 object, 0 background, -1 not detected) mark pixels to ignore: the object's,
    dilated by :data:`MASK_MARGIN`. Frames where the object was not detected (-1) are used whole: a lost object
    is usually small or gone, and RANSAC treats what moves as outliers. ``ks`` = (fx, fy, cx, cy) of the frames.

    The world is the first frame's camera. Translations are known up to one global scale, whose unit is the
    median depth of the background matched in the first frame (the earliest with parallax): a camera that
    steps a tenth of the way towards what it sees moves by about 0.1. Monocular scale drifts: over a
    half orbit it was measured to change by up to 20%. A camera that only turns keeps its place.

    Frames without enough background (the object fills them) are interpolated between their neighbours; without
    any measured pair the cameras stay at the first one's, with a warning. ``progress`` (tqdm-like, optional)
    is advanced once per frame pair, :func:`num_pairs` in all.
    """
    frames, masks, ks = np.asarray(frames), np.asarray(masks), np.asarray(ks, dtype=np.float64)
    num = len(frames)
    if frames.ndim != 4 or num == 0 or masks.shape != frames.shape[:3] or ks.shape != (4,):
        raise ValueError(
            f"frames (N>0,H,W,3), masks (N,H,W) and ks (4,) expected, got {frames.shape}, {masks.shape}, {ks.shape}"
        )
    cv2.setRNGSeed(0)
    keypoints, descriptors = zip(*(_features(frame, mask) for frame, mask in zip(frames, masks)), strict=True)
    normalised = [np.stack([(k[:, 0] - ks[2]) / ks[0], (k[:, 1] - ks[3]) / ks[1]], -1) for k in keypoints]
    focal = float(np.sqrt(ks[0] * ks[1]))
    pairs = []
    for gap in GAPS:
        for first in range(num - gap):
            pair = _measure(normalised, descriptors, first, first + gap, focal)
            if pair is not None:
                pairs.append(pair)
            if progress is not None:
                progress.update(1)
    if num > 1 and not pairs:
        warnings.warn(
            "background cameras: no two frames share enough background features (textureless, or the object "
            "fills the frames): every camera is left at the first one's",
            stacklevel=2,
        )
    rotations = _average_rotations(num, pairs)
    centres = _average_centres(num, pairs, rotations, _baselines(pairs))
    world2cam = np.tile(np.eye(4), (num, 1, 1))
    world2cam[:, :3, :3] = rotations
    world2cam[:, :3, 3] = -np.einsum("nij,nj->ni", rotations, centres)
    return world2cam


def _features(frame: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SIFT keypoints (K, 2) in the frame's pixels and RootSIFT descriptors (K, 128), off the dilated object."""
    height, width = frame.shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    allowed = (mask != 1).astype(np.uint8)
    margin = int(round(MASK_MARGIN * max(height, width)))
    if margin > 0:
        allowed = cv2.erode(allowed, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    if scale < 1.0:
        size = (round(width * scale), round(height * scale))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        allowed = cv2.resize(allowed, size, interpolation=cv2.INTER_NEAREST)
    points, descriptors = cv2.SIFT_create().detectAndCompute(gray, allowed * 255)
    # Pixel centres are integers at both scales.
    coords = (np.array([p.pt for p in points], np.float64).reshape(-1, 2) + 0.5) / scale - 0.5
    if descriptors is None:
        return coords, np.zeros((0, 128), np.float32)
    # RootSIFT (Arandjelovic & Zisserman 2012): the dot product of these unit vectors is the Hellinger kernel
    # of the histograms, which matches better than their Euclidean distance.
    root = np.sqrt(descriptors / np.maximum(descriptors.sum(1, keepdims=True), 1e-12))
    return coords, root.astype(np.float32)


def _measure(normalised, descriptors, first: int, second: int, focal: float) -> _Pair | None:
    """The relative motion of two frames from their matched background features, or None if unreliable."""
    query, train = _match(descriptors[first], descriptors[second])
    if len(query) < MIN_INLIERS:
        return None
    x1, x2 = normalised[first][query], normalised[second][train]
    try:
        essential, inliers = cv2.findEssentialMat(
            x1, x2, np.eye(3), method=METHOD, prob=0.999, threshold=THRESHOLD_PIXELS / focal
        )
    except cv2.error:  # degenerate samples can make the five-point solver's polynomial vanish
        return None
    if essential is None or inliers is None or inliers.sum() < MIN_INLIERS:
        return None
    essential = essential[:3]
    count, rotation, direction, cheiral = cv2.recoverPose(essential, x1, x2, np.eye(3), mask=inliers.copy())
    keep = inliers.ravel() > 0
    rays1, rays2 = _rays(x1), _rays(x2)
    # The rotation that best carries the rays alone: trimmed from all inliers, so it does not depend on which of
    # the essential matrix's twin rotations (half a turn apart about the baseline) the cheirality test chose.
    alone = _rotation_fit(rays1[keep], rays2[keep], rotation)
    scale = THRESHOLD_PIXELS / focal
    polished = _refine(alone, _best_direction(alone, rays1[keep], rays2[keep]), rays1, rays2, scale)
    if count < MIN_PARALLAX_POINTS:
        # Too few points with parallax: the translation and the cheirality test (which tells the twins apart)
        # are noise. Polished from the rotation alone, the rotation sheds what a small translation biased.
        return _Pair(first, second, polished[0], np.zeros(3), float(keep.sum()))
    # The five-point RANSAC can settle in the wrong one of two nearby minima (the bas-relief ambiguity of a
    # small baseline: a little rotation mimics a little translation); the truth fits the matches better, so
    # both starts are polished and the better kept.
    candidates = (_refine(rotation, direction.ravel(), rays1, rays2, scale), polished)
    rotation, direction, _ = min(candidates, key=lambda fit: fit[2])
    fits = _epipolar_angles(rays1, rays2, rotation, direction) < 2.0 * scale
    if fits.sum() < MIN_INLIERS:
        return None
    points = _triangulate(x1[fits], x2[fits], rotation, direction)
    if np.mean(points[:, 2] > 0) < 0.5:  # the epipolar geometry is blind to the sign of the translation
        direction, points = -direction, -points
    depths = np.stack([points[:, 2], points @ rotation[2] + direction[2]], -1)
    front = (depths > 0).all(-1)
    logs = np.log(depths[front])
    seen = ((query[fits][front], logs[:, 0]), (train[fits][front], logs[:, 1]))
    return _Pair(first, second, rotation, direction, float(fits.sum()), seen)


def _match(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of matched descriptors: mutual nearest neighbours passing Lowe's ratio test (:data:`RATIO`).

    One matrix product (unit descriptors: squared distance = 2 - 2 dot) is several times faster than
    OpenCV's brute-force matcher."""
    if len(first) < 2 or len(second) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    similarity = first @ second.T
    rows = np.arange(len(first))
    best = similarity.argmax(1)
    mutual = similarity.argmax(0)[best] == rows
    top = similarity[rows, best]
    similarity[rows, best] = -np.inf
    runner_up = similarity.max(1)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * top, 0.0))
    keep = mutual & (distance < RATIO * np.sqrt(np.maximum(2.0 - 2.0 * runner_up, 0.0)))
    return rows[keep], best[keep]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross products of (..., 3) arrays (broadcasting); several times faster than ``np.cross`` on small arrays."""
    a, b = np.asarray(a), np.asarray(b)
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        -1,
    )


def _rays(points: np.ndarray) -> np.ndarray:
    rays = np.concatenate([points, np.ones((len(points), 1))], -1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(_cross(a, b), axis=-1), np.sum(a * b, -1))


def _epipolar_angles(rays1, rays2, rotation, direction) -> np.ndarray:
    """Angle of each second ray from the epipolar plane of its first ray."""
    return np.abs(np.arcsin(np.clip(_signed_epipolar(rays1, rays2, rotation, direction), -1.0, 1.0)))


def _best_direction(rotation: np.ndarray, rays1: np.ndarray, rays2: np.ndarray) -> np.ndarray:
    """The translation direction most coplanar with every pair of rays given the rotation (least squares)."""
    return np.linalg.svd(_cross(rays1 @ rotation.T, rays2))[2][-1]


def _refine(rotation, direction, rays1, rays2, scale, iterations: int = 15) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation, translation direction and cost after Levenberg-Marquardt on the robust sum (:func:`_loss`) of
    the rays' angles from their epipolar planes (``scale``: the angle where a match counts half), with analytic
    derivatives: for ``n = t x R x1`` and ``r = n . x2 / |n|``, a turn ``w`` of ``R`` and a shift ``B v`` of ``t``
    (``B`` spans the tangent of the unit sphere at ``t``) change ``r`` by ``-((g x t) x R x1) . w`` and
    ``-(g x R x1) . B v`` with ``g = x2 / |n| - r n / |n|^2``."""

    def residual(rotation, direction):
        return _signed_epipolar(rays1, rays2, rotation, direction) / scale

    current = residual(rotation, direction)
    cost, damping = _loss(current).sum(), 1e-3
    for _ in range(iterations):
        turned = rays1 @ rotation.T
        normals = _cross(direction, turned)
        length = np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
        g = (rays2 / length - (current * scale)[:, None] * normals / length**2) / scale
        basis = np.linalg.svd(direction[None])[2][1:].T
        jacobian = np.concatenate([-_cross(_cross(g, direction), turned), -_cross(g, turned) @ basis], -1)
        weight = _loss_weight(current)
        normal = jacobian.T @ (weight[:, None] * jacobian)
        gradient = jacobian.T @ (weight * current)
        while damping < 1e6:
            update = -np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), gradient)
            trial_rotation = so3_exp(update[:3]) @ rotation
            trial_direction = direction + basis @ update[3:]
            trial_direction /= np.linalg.norm(trial_direction)
            trial = residual(trial_rotation, trial_direction)
            trial_cost = _loss(trial).sum()
            if trial_cost < cost:
                rotation, direction, current, damping = trial_rotation, trial_direction, trial, damping / 10
                converged = cost - trial_cost < 1e-6 * cost
                cost = trial_cost
                break
            damping *= 10
        else:
            break
        if converged:
            break
    return rotation, direction, float(cost)


def _loss(r: np.ndarray) -> np.ndarray:
    """Geman-McClure: quadratic for small residuals, a cost that saturates at 1 for large ones, so the matches
    of an unmasked moving object do not pull the fit (with Cauchy's, whose cost keeps growing, an unmasked
    textured object on a quarter of the frame biased the cameras by 3.7 degrees; with this one by 0.7)."""
    return r**2 / (1.0 + r**2)


def _loss_weight(r: np.ndarray) -> np.ndarray:
    """The weight of iteratively reweighted least squares for :func:`_loss`."""
    return 1.0 / (1.0 + r**2) ** 2


def _signed_epipolar(rays1, rays2, rotation, direction) -> np.ndarray:
    """Sine of each second ray's angle from the epipolar plane of its first ray."""
    normals = _cross(direction, rays1 @ rotation.T)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    return np.sum(normals * rays2, -1)


def _rotation_fit(rays1: np.ndarray, rays2: np.ndarray, rotation: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Rotation taking ``rays1`` (P, 3) to ``rays2``, from ``rotation``: Wahba's problem solved by SVD on the
    rays within a shrinking angle of the current fit."""
    for _ in range(iterations):
        residual = _angles(rays2, rays1 @ rotation.T)
        keep = residual <= max(np.quantile(residual, 0.75), 1e-9)
        u, _, vt = np.linalg.svd(rays2[keep].T @ rays1[keep])
        rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    return rotation


def _triangulate(x1, x2, rotation, direction) -> np.ndarray:
    """(P, 3) points in the first camera triangulated from normalised coordinates, with a unit baseline."""
    first = np.hstack([np.eye(3), np.zeros((3, 1))])
    second = np.hstack([rotation, direction[:, None]])
    points = cv2.triangulatePoints(first, second, x1.T, x2.T)
    return (points[:3] / points[3]).T


def _average_rotations(num: int, pairs: list[_Pair], iterations: int = 20) -> np.ndarray:
    """(N, 3, 3) world -> camera rotations (frame 0's is the identity) that best agree with the pairs'.

    Linear chordal averaging gives the start; then iteratively reweighted Lie-algebraic averaging (Chatterjee &
    Govindu 2013) with Cauchy weights: each iteration solves, for small world-frame corrections ``phi``,
    ``phi_j - phi_i = R_j^T log(R_ij R_i R_j^T)`` over all pairs in weighted least squares. Consecutive frames
    are also tied by a weak identity prior (:data:`PRIOR_WEIGHT`), which keeps the graph connected."""
    edges = [(p.first, p.second, p.rotation, p.weight) for p in pairs]
    edges += [(t, t + 1, np.eye(3), PRIOR_WEIGHT * _typical_weight(pairs)) for t in range(num - 1)]
    first = np.array([e[0] for e in edges], dtype=int)
    second = np.array([e[1] for e in edges], dtype=int)
    relative = np.stack([e[2] for e in edges]) if edges else np.zeros((0, 3, 3))
    base = np.array([e[3] for e in edges])
    measured = np.arange(len(edges)) < len(pairs)
    rotations = _chordal(num, first, second, relative, base)
    weight = base.copy()
    for _ in range(iterations):
        residual = so3_log(relative @ rotations[first] @ rotations[second].transpose(0, 2, 1))
        degrees = np.degrees(np.linalg.norm(residual, axis=-1))
        weight = np.where(measured, base / (1.0 + (degrees / ROBUST_DEGREES) ** 2), base)
        target = np.einsum("nji,nj->ni", rotations[second], residual)
        correction = _solve_differences(num, first, second, weight, target)
        rotations = rotations @ so3_exp(correction)
        if np.abs(correction).max() < 1e-7:
            break
    return rotations


def _typical_weight(pairs: list[_Pair]) -> float:
    return float(np.median([p.weight for p in pairs])) if pairs else 1.0


def _chordal(num, first, second, relative, weight) -> np.ndarray:
    """Linear least squares for ``R_j = R_ij R_i`` (R_0 = I) in the rotations' entries, projected onto SO(3)."""
    size = 3 * num
    system = np.zeros((size, size))
    for i, j, rel, w in zip(first, second, relative, weight):
        # Residual R_j - rel R_i: blocks I (j) and -rel (i).
        blocks = {(j, j): np.eye(3), (i, i): rel.T @ rel, (i, j): -rel.T, (j, i): -rel}
        for (a, b), block in blocks.items():
            system[3 * a : 3 * a + 3, 3 * b : 3 * b + 3] += w * block
    free = np.arange(3, size)
    rhs = -system[free][:, :3]
    solution = np.linalg.lstsq(system[np.ix_(free, free)], rhs, rcond=None)[0]
    stacked = np.concatenate([np.eye(3), solution]).reshape(num, 3, 3)
    u, _, vt = np.linalg.svd(stacked)
    u[:, :, 2] *= np.linalg.det(u @ vt)[:, None]
    return u @ vt


def _solve_differences(num, first, second, weight, target) -> np.ndarray:
    """(N, 3) x with x_0 = 0 minimising sum_e w_e |x_second - x_first - target_e|^2."""
    laplacian = np.zeros((num, num))
    rhs = np.zeros((num, 3))
    np.add.at(laplacian, (first, first), weight)
    np.add.at(laplacian, (second, second), weight)
    np.add.at(laplacian, (first, second), -weight)
    np.add.at(laplacian, (second, first), -weight)
    np.add.at(rhs, second, weight[:, None] * target)
    np.add.at(rhs, first, -weight[:, None] * target)
    out = np.zeros((num, 3))
    if num > 1:
        out[1:] = np.linalg.solve(laplacian[1:, 1:], rhs[1:])
    return out


def _baselines(pairs: list[_Pair]) -> np.ndarray:
    """The length of each pair's baseline in one unit for all: the median depth of the background seen by the
    earliest frame with parallax (zero for pairs without).

    Each pair triangulates its matches with its own baseline as unit. Two pairs that share a frame and
    keypoints there see the same points, whose depths must agree: the log-baselines ``s`` obey
    ``s_a - s_b = median(log d_b - log d_a)`` over shared keypoints. These are solved in least squares, with a
    weak pull of every pair towards the unit of its own median depth (which decides pairs that share nothing)."""
    moving = [k for k, pair in enumerate(pairs) if pair.translation.any() and len(pair.seen[0][0])]
    out = np.zeros(len(pairs))
    if not moving:
        return out
    index = {k: n for n, k in enumerate(moving)}
    by_frame: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for k in moving:
        for frame, (keypoints, logs) in zip((pairs[k].first, pairs[k].second), pairs[k].seen):
            by_frame.setdefault(frame, []).append((index[k], keypoints, logs))
    size = len(moving)
    normal = np.eye(size) * PRIOR_WEIGHT
    rhs = PRIOR_WEIGHT * -np.array([np.median(pairs[k].seen[0][1]) for k in moving])
    for seen in by_frame.values():
        for n, (a, keys_a, logs_a) in enumerate(seen):
            for b, keys_b, logs_b in seen[n + 1 :]:
                _, at_a, at_b = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
                if len(at_a) < MIN_SHARED:
                    continue
                difference = np.median(logs_b[at_b] - logs_a[at_a])
                normal[a, a] += 1.0
                normal[b, b] += 1.0
                normal[a, b] -= 1.0
                normal[b, a] -= 1.0
                rhs[a] += difference
                rhs[b] -= difference
    logs = np.linalg.solve(normal, rhs)
    earliest = by_frame[min(by_frame)]
    logs -= np.median([logs[n] + np.median(frame_logs) for n, _, frame_logs in earliest])
    out[moving] = np.exp(logs)
    return out


def _average_centres(
    num: int, pairs: list[_Pair], rotations: np.ndarray, baselines: np.ndarray, iterations: int = 10
) -> np.ndarray:
    """(N, 3) camera centres in the world (frame 0's at the origin) that best fit the pairs' baselines.

    Pair (i, j) with baseline length ``b`` says ``c_j - c_i = -b R_j^T t_ij`` (a pair without parallax: the
    camera kept its place); the fit is least squares reweighted (Huber) against pairs whose direction is off,
    with the weak prior ``c_j = c_i`` between consecutive frames."""
    first = np.array([p.first for p in pairs] + list(range(num - 1)), dtype=int)
    second = np.array([p.second for p in pairs] + list(range(1, num)), dtype=int)
    target = np.concatenate(
        [
            np.array([-b * rotations[p.second].T @ p.translation for p, b in zip(pairs, baselines)]).reshape(-1, 3),
            np.zeros((num - 1, 3)),
        ]
    )
    base = np.array([p.weight for p in pairs] + [PRIOR_WEIGHT * _typical_weight(pairs)] * (num - 1))
    measured = np.arange(len(first)) < len(pairs)
    lengths = np.linalg.norm(target, axis=-1)
    weight = base
    centres = np.zeros((num, 3))
    for _ in range(iterations):
        centres = _solve_differences(num, first, second, weight, target)
        residual = np.linalg.norm(centres[second] - centres[first] - target, axis=-1)
        scale = max(float(np.median(lengths[measured])) if measured.any() else 0.0, 1e-9)
        weight = np.where(measured, base / np.maximum(1.0, residual / scale), base)
    return centres


KEYFRAME_KEYS = ("frame", "azimuth", "elevation", "roll")
"""Keys of a manual keyframe; angles in degrees, ``elevation`` and ``roll`` default to 0."""


def manual_root_rotations(keyframes: list[dict], num_frames: int) -> np.ndarray:
    """(N, 3, 3) object -> camera rotations of a video's N kept frames from lab4d-style manual keyframes.

    Each keyframe is ``{"frame": index among the kept frames, "azimuth": deg, "elevation": deg, "roll": deg}``,
    the camera's place on a sphere around the object, in the object's canonical frame (y down, facing +z, its
    right side at +x: the frame of :mod:`lab4d_core.geometry.up` and the skeletons):

    - azimuth 0, elevation 0, roll 0: the camera faces the object's front at its height, the image upright;
    - azimuth turns the camera about the vertical, counter-clockwise seen from above: 90 puts it on the object's
      left side (-x), 180 behind it;
    - elevation lifts it: positive is above the object looking down (90: straight down on its back);
    - roll turns it about its viewing axis: positive turns the object clockwise in the image.

    Rotations are interpolated between keyframes along the shortest turn (slerp; a turn of more than 180
    degrees needs a keyframe in between) and held constant before the first and after the last.
    """
    if not keyframes:
        raise Lab4dError("manual camera keyframes: none given; give at least one {frame, azimuth, elevation, roll}")
    frames, rotations = [], []
    for number, keyframe in enumerate(keyframes):
        where = f"manual camera keyframe {number} ({keyframe!r})"
        if not isinstance(keyframe, dict) or "frame" not in keyframe or "azimuth" not in keyframe:
            raise Lab4dError(f"{where}: needs at least 'frame' and 'azimuth' (degrees); add them")
        unknown = sorted(set(keyframe) - set(KEYFRAME_KEYS))
        if unknown:
            raise Lab4dError(f"{where}: unknown keys {unknown}; use only {list(KEYFRAME_KEYS)}")
        frame = keyframe["frame"]
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < num_frames:
            raise Lab4dError(f"{where}: 'frame' must be an integer index among the {num_frames} kept frames")
        if frame in frames:
            raise Lab4dError(f"{where}: frame {frame} has two keyframes; keep one")
        try:
            angles = [float(keyframe.get(key, 0.0)) for key in KEYFRAME_KEYS[1:]]
        except (TypeError, ValueError):
            raise Lab4dError(f"{where}: azimuth, elevation and roll must be numbers (degrees)") from None
        frames.append(int(frame))
        rotations.append(view_rotation(*angles))
    order = np.argsort(frames)
    times = np.asarray(frames, dtype=np.float64)[order]
    if len(times) == 1:
        return np.tile(rotations[order[0]], (num_frames, 1, 1))
    interpolate = Slerp(times, Rotation.from_matrix(np.stack(rotations)[order]))
    return interpolate(np.clip(np.arange(num_frames, dtype=np.float64), times[0], times[-1])).as_matrix()


def view_rotation(azimuth: float, elevation: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """(3, 3) object -> camera rotation of a camera at ``azimuth``, ``elevation`` and ``roll`` (degrees; see
    :func:`manual_root_rotations`): roll about the viewing axis, after pitching down by the elevation, after
    facing the front (image x along the object's -x, y along its +y), after the turn about the vertical."""
    azimuth, elevation, roll = np.radians([azimuth, elevation, roll])
    front = np.diag([-1.0, 1.0, -1.0])
    return so3_exp(roll * np.eye(3)[2]) @ so3_exp(elevation * np.eye(3)[0]) @ front @ so3_exp(azimuth * np.eye(3)[1])
