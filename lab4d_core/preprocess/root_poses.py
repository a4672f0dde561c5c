"""Initial root poses (object -> camera per frame), from whatever the processed data holds.

In order of what the data has (lab4d's ``Cameras/`` files):

1. ``01-canonical.npy``: a root pose per frame (a viewpoint network's estimate in lab4d's downloads, the
   truth in synthetic data), used as it is.
2. ``00.npy`` (or ``00-canonical.npy``): background cameras (world -> camera). The object stands upright on
   the vertical the cameras imply (people hold cameras level), facing the first camera at first, and turns
   about that vertical as its silhouettes say (:func:`silhouette_headings`: an animal turns while the camera
   moves); its translation comes from its masks (:func:`silhouette_depths`).
3. Neither: rotations chained from frame to frame by a robust rigid fit of the object's pixels, carried by
   the optical flow and lifted by the depth maps, then made upright the same way; without depth maps,
   the identity. Both with a warning, since the trainer then has the most to recover.

Whatever the source, the trainer refines them (``lab4d_core.model.pose``).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from lab4d_core.data.database import Video
from lab4d_core.geometry.transforms import similarity_fit, so3_exp
from lab4d_core.geometry.up import estimate_up_axis, upright_rotation

ROOT_POSE_SOURCES = ("01-canonical", "manual", "00", "flow", "none")
"""Where initial root poses came from, best first ("manual": viewpoint keyframes set by hand, written by
``lab4d_core.preprocess.videos``, as are estimates from "00" there)."""


@dataclass
class PairRotations:
    """The object's rotation from each frame of a video to the next, as optical flow and depth measure it."""

    rotations: np.ndarray
    """(N - 1, 3, 3) rotation (camera coordinates) taking the object from frame t to frame t + 1."""
    valid: np.ndarray
    """(N - 1,) bool: whether pair t could be measured (enough object pixels with flow and depth)."""


@dataclass
class RootPoseInit:
    poses: np.ndarray
    """(N, 4, 4) object -> camera of the video's kept frames."""
    source: str
    """One of :data:`ROOT_POSE_SOURCES`."""
    pairs: PairRotations | None = None
    """Frame-to-frame rotations from flow and depth, where the video has depth maps."""
    estimated: bool = True
    """Whether the poses are only a starting point: the trainer fades their prior (``cam_prior_fade``).
    Given root poses are trusted unless the optical flow contradicts them (:data:`TRUST_DEGREES`)."""


TRUST_WINDOW = 8
"""Frames over which given root poses are compared with the turns that flow and depth measure."""
TRUST_DEGREES = 9.0
"""Given root poses whose turn over :data:`TRUST_WINDOW` frames differs from the measured one by more than this
(median) are treated as an estimate. Measured: true root poses 3-7 degrees (the measured turns drift too:
limbs move, depth is discrete), a viewpoint-network-like estimate 11-28 degrees (``bench_cameras.py``, case (b))."""


def flow_disagreement(rotations: np.ndarray, pairs: PairRotations | None, window: int = TRUST_WINDOW) -> float | None:
    """Median angle (degrees) between how root rotations (N, 3, 3) turn over ``window`` frames and how the
    chained frame-to-frame turns that flow and depth measured do; None without enough measured windows."""
    if pairs is None:
        return None
    angles = []
    for t in range(len(rotations) - window):
        if not pairs.valid[t : t + window].all():
            continue
        measured = np.eye(3)
        for relative in pairs.rotations[t : t + window]:
            measured = relative @ measured
        turn = rotations[t + window] @ rotations[t].T
        cosine = (np.trace(turn @ measured.T) - 1.0) / 2.0
        angles.append(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return float(np.median(angles)) if angles else None


def initial_root_poses(video: Video, prefix: str, crop2raw: np.ndarray) -> RootPoseInit:
    """The best initial root poses the video's data allows (see the module doc)."""
    pairs = relative_rotations(video, prefix, crop2raw) if video.has("depth", prefix) else None
    canonical = video.camera("01-canonical")
    notes = video.camera_notes("01-canonical") if canonical is not None else {}
    if notes.get("estimated"):
        # Our own preprocessing's guess (from background cameras, or keyframes set by hand): a starting point.
        return RootPoseInit(np.asarray(canonical, np.float64), notes.get("source", "01-canonical"), pairs)
    if canonical is not None:
        poses = np.asarray(canonical, np.float64)
        disagreement = flow_disagreement(poses[:, :3, :3], pairs)
        contradicted = disagreement is not None and disagreement > TRUST_DEGREES
        if contradicted:
            warnings.warn(
                f"{video.seqname}: its root poses (Cameras/01-canonical.npy) turn unlike the optical flow "
                f"({disagreement:.0f} degrees over {TRUST_WINDOW} frames, median): training treats them as an "
                "estimate, whose prior fades over cam_prior_fade of training (0 holds them: right for exact poses "
                "of an articulated body, whose flow turns unlike its root)",
                stacklevel=2,
            )
        return RootPoseInit(poses, "01-canonical", pairs, estimated=contradicted)
    background = video.camera("00")
    if background is None:
        background = video.camera("00-canonical")
    if background is not None:
        rotations = rotations_from_background(np.asarray(background, np.float64)[:, :3, :3])
        masks = np.asarray(video.array("mask", prefix)[..., 0])
        fx, fy = array_intrinsics(np.asarray(video.ks, np.float64), crop2raw)[:, :2].T
        rotations = rotations @ _turns_about_y(silhouette_headings(masks, fx, fy, rotations))
        return RootPoseInit(_poses(rotations, translations_from_masks(video, prefix, crop2raw, rotations)), "00", pairs)
    if pairs is not None:
        warnings.warn(
            f"{video.seqname}: no root poses (Cameras/01-canonical.npy) nor background cameras (Cameras/00.npy): "
            "starting from rotations chained along the optical flow and depth; quality will suffer "
            "(give the video root poses, or background cameras, for a better start)",
            stacklevel=2,
        )
        rotations = upright(chained(pairs))
        return RootPoseInit(
            _poses(rotations, translations_from_masks(video, prefix, crop2raw, rotations)), "flow", pairs
        )
    warnings.warn(
        f"{video.seqname}: no root poses (Cameras/01-canonical.npy), background cameras (Cameras/00.npy) or depth "
        "maps: every frame starts facing the camera; expect a poor reconstruction unless the object barely turns",
        stacklevel=2,
    )
    rotations = np.tile(np.eye(3), (video.num_frames, 1, 1))
    return RootPoseInit(_poses(rotations, translations_from_masks(video, prefix, crop2raw)), "none")


def _poses(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(rotations), 1, 1))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = translations
    return poses


def array_intrinsics(ks: np.ndarray, crop2raw: np.ndarray) -> np.ndarray:
    """(N, 4) fx, fy, cx, cy of each frame's array, from the raw intrinsics ``ks`` (4,) and ``crop2raw`` (N, 4)."""
    scale, offset = crop2raw[:, :2], crop2raw[:, 2:]
    return np.concatenate([ks[None, :2] / scale, (ks[None, 2:] - offset) / scale], axis=-1)


def translations_from_masks(
    video: Video, prefix: str, crop2raw: np.ndarray, rotations: np.ndarray | None = None
) -> np.ndarray:
    """(N, 3) the object's centre on the ray through its mask's centroid, at the median depth of its pixels
    where the video has depth maps, else at the depth its silhouettes imply (:func:`silhouette_depths`, given the
    root rotations (N, 3, 3) where known), clipped to [0.5, 50]."""
    masks = np.asarray(video.array("mask", prefix)[..., 0])
    count = len(masks)
    area = masks.reshape(count, -1).sum(1).astype(np.float64)
    ys, xs = np.mgrid[: masks.shape[1], : masks.shape[2]]
    weight = np.maximum(area, 1.0)
    sums = np.stack([(masks * xs).reshape(count, -1).sum(1), (masks * ys).reshape(count, -1).sum(1)], -1)
    centroid = sums / weight[:, None]
    fx, fy, cx, cy = array_intrinsics(np.asarray(video.ks, np.float64), crop2raw).T
    depth = silhouette_depths(masks, fx, fy, rotations)
    if video.has("depth", prefix):
        maps = np.asarray(video.array("depth", prefix), dtype=np.float64)
        for t in range(count):
            values = maps[t][masks[t] & (maps[t] > 0)]
            if len(values):
                depth[t] = np.median(values)
    return np.stack([(centroid[:, 0] - cx) / fx * depth, (centroid[:, 1] - cy) / fy * depth, depth], -1)


SILHOUETTE_MOMENTS = ((0, 0), (0, 1), (1, 1))
"""The image covariance entries (x x, x y, y y) a silhouette's second moments give."""
_SYMMETRIC_ENTRIES = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def silhouette_depths(
    masks: np.ndarray, fx: np.ndarray, fy: np.ndarray, rotations: np.ndarray | None = None
) -> np.ndarray:
    """(N,) the object's depth in each frame, from its masks (N, H, W) in arrays of focal lengths ``fx``, ``fy``
    (N,) (crops are anisotropic), in units of about the object's radius, clipped to [0.5, 50].

    lab4d puts the object at ``f / sqrt(area)``: but an animal seen end-on covers half the pixels it covers from
    the side, so the depth swings with the view while the camera stands still (demo-quad's orbit: 1.45 times
    between nearest and farthest, against the truth). Given the root rotations, one ellipsoid is fitted to every
    frame's silhouette instead: each frame's image covariance (in focal units) is the ellipsoid's covariance
    turned by its rotation, projected, and scaled by 1 / depth^2 (weak perspective), each frame weighing alike
    (1.25 times on the orbit). The overall scale, which masks cannot tell, stays lab4d's (median depth). Frames
    without a mask take their neighbours' depth."""
    count = len(masks)
    moments, area, found = _silhouette_moments(masks, fx, fy)
    if not found.any():
        return np.full(count, 50.0)
    depth = _area_depths(area[found])
    if rotations is not None and found.sum() >= 3:
        depth = _ellipsoid_depths(moments[found], rotations[found], depth)
    log_depth = np.interp(np.arange(count), np.flatnonzero(found), np.log(depth))
    return np.clip(np.exp(log_depth), 0.5, 50.0)


def _silhouette_moments(masks: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each mask's image covariance (N, 3: :data:`SILHOUETTE_MOMENTS`) and area (N,), in focal units, and
    whether it has enough pixels to tell (N,)."""
    count = len(masks)
    moments, area, found = np.zeros((count, 3)), np.zeros(count), np.zeros(count, dtype=bool)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs) < 10:
            continue
        covariance = np.cov(np.stack([xs / fx[t], ys / fy[t]]))
        moments[t] = [covariance[i, j] for i, j in SILHOUETTE_MOMENTS]
        area[t], found[t] = len(xs) / (fx[t] * fy[t]), True
    return moments, area, found


def _area_depths(area: np.ndarray) -> np.ndarray:
    """lab4d's depth from the area: a disc of the object's area at this depth has unit radius."""
    return 1.0 / np.sqrt(area / np.pi)


HEADING_BINS = 72
"""Headings are searched on a grid of this many (every 5 degrees): a start for training, which refines them."""
HEADING_SMOOTHNESS = 1.0
"""Cost of a turn between consecutive frames, per radian squared, against a silhouette misfit of at most 4 (the
squared distance of unit moment vectors): a turn of 10 degrees costs 0.03, one of 180 degrees 9."""
HEADING_ELONGATION = 4.0
"""Variance ratio (length to width and height) of the ellipsoids the heading search starts from: an animal
about twice as long as it is wide."""
HEADING_STARTS = 12
"""Directions (every 180 / this degrees) of the starting ellipsoid's long axis; a round start is tried too."""
HEADING_MIN_ELONGATION = 3.0
"""Headings are kept only for a body whose fitted ellipsoid is at least this variance ratio longer than wide
(length 1.7 times the width) and longer than tall. Measured: quadrupeds 7-30, people 1.2-1.7 (upright people
are taller than long; with a weaker smoothness their silhouettes flipped a heading by 180 degrees)."""
HEADING_ROUNDS = 4
"""Alternations of fitting the ellipsoid to the headings and the headings to the ellipsoid."""


def silhouette_headings(masks: np.ndarray, fx: np.ndarray, fy: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(N,) radians the object turns about its vertical (its y axis: ``rotations @ turn_about_y(heading)``) in
    each frame, from its masks (N, H, W) in arrays of focal lengths ``fx``, ``fy`` (N,), given object -> camera
    rotations (N, 3, 3) of an object that stands still in the world, upright (background cameras).

    Background cameras say how the camera moved, not how the animal turned meanwhile: demo-quad's quadruped
    turning 180 degrees in 48 frames starts 37 degrees off (median) from them alone, and training from there
    collapses. Each frame's silhouette is taken as an ellipsoid's (as :func:`silhouette_depths`), turned by an
    unknown heading: headings on a grid, the best sequence by dynamic programming (silhouette misfit plus
    :data:`HEADING_SMOOTHNESS` per turn; frame 0 keeps heading 0, the canonical frame's choice), alternated
    with refitting the ellipsoid, from several starting ellipsoids; the cheapest sequence wins. An object whose
    silhouettes the cameras' motion already explains keeps headings near 0, as does a body not elongated
    horizontally (:data:`HEADING_MIN_ELONGATION`), whose silhouettes do not tell which way it faces. Turns are
    told up to the symmetry of an ellipsoid (a heading and its opposite look alike); smoothness picks the
    continuous one, so an animal turning faster than the frames sample it is not followed. Frames without a
    mask take their neighbours'."""
    count = len(masks)
    moments, area, found = _silhouette_moments(masks, fx, fy)
    headings = np.zeros(count)
    if found.sum() < 3:
        return headings
    moments, turned, depth = moments[found], rotations[found], _area_depths(area[found])
    grid = np.linspace(-np.pi, np.pi, HEADING_BINS, endpoint=False)
    turns = _turns_about_y(grid)
    target = moments * _MOMENT_WEIGHT
    target /= np.linalg.norm(target, axis=1, keepdims=True)

    def misfit(ellipsoid: np.ndarray) -> np.ndarray:
        """(frames, bins) squared distance of each frame's unit moments from the turned ellipsoid's."""
        costs = np.zeros((len(moments), HEADING_BINS))
        for b, turn in enumerate(turns):
            predicted = _projected_moments(turned @ turn, ellipsoid)
            predicted /= np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-12)
            costs[:, b] = ((predicted - target) ** 2).sum(1)
        return costs

    starts = [None] + [_turns_about_y(np.array([np.pi * k / HEADING_STARTS]))[0] for k in range(HEADING_STARTS)]
    best_cost, best = np.inf, np.zeros(len(moments))
    for start in starts:
        chosen = np.zeros(len(moments))
        ellipsoid = None if start is None else start @ np.diag([1.0, 1.0, HEADING_ELONGATION]) @ start.T
        for round_ in range(HEADING_ROUNDS):
            if ellipsoid is None or round_ > 0:
                current = turned @ _turns_about_y(chosen)
                ellipsoid = _fit_ellipsoid(moments, current, _ellipsoid_depths(moments, current, depth))
            path, cost = _cheapest_path(misfit(ellipsoid), grid)
            chosen = grid[path]
        if cost < best_cost:
            best_cost, best = cost, chosen
    current = turned @ _turns_about_y(best)
    if not _elongated(_fit_ellipsoid(moments, current, _ellipsoid_depths(moments, current, depth))):
        return headings
    return np.interp(np.arange(count), np.flatnonzero(found), np.unwrap(best))


def _elongated(ellipsoid: np.ndarray) -> bool:
    """Whether an ellipsoid covariance (y vertical) is a real ellipsoid longer along one horizontal direction than
    along the other by :data:`HEADING_MIN_ELONGATION` and than it is tall: a body whose silhouettes tell its
    heading (an animal's, not an upright person's)."""
    horizontal = np.linalg.eigvalsh(ellipsoid[np.ix_([0, 2], [0, 2])])
    if horizontal[0] <= 0 or ellipsoid[1, 1] <= 0:
        return False
    return horizontal[1] >= HEADING_MIN_ELONGATION * horizontal[0] and horizontal[1] > ellipsoid[1, 1]


def _turns_about_y(angles: np.ndarray) -> np.ndarray:
    angles = np.asarray(angles, np.float64)
    return so3_exp(np.stack([np.zeros_like(angles), angles, np.zeros_like(angles)], -1))


def _cheapest_path(costs: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """The bin per frame (frame 0 at angle 0) minimising ``costs`` (frames, bins) plus the turns' cost (Viterbi)."""
    step = np.angle(np.exp(1j * (grid[:, None] - grid[None, :])))
    transition = HEADING_SMOOTHNESS * step**2
    total = np.full(len(grid), np.inf)
    start = int(np.argmin(np.abs(grid)))
    total[start] = costs[0, start]
    back = np.zeros(costs.shape, dtype=int)
    for t in range(1, len(costs)):
        options = total[None, :] + transition
        back[t] = options.argmin(1)
        total = options.min(1) + costs[t]
    path = np.zeros(len(costs), dtype=int)
    path[-1] = int(total.argmin())
    for t in range(len(costs) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path, float(total.min())


_MOMENT_WEIGHT = np.array([1.0, np.sqrt(2.0), 1.0])
"""The off-diagonal entry counts twice in a covariance's Frobenius norm."""


def _symmetric_basis() -> np.ndarray:
    basis = np.zeros((len(_SYMMETRIC_ENTRIES), 3, 3))
    for p, (row, col) in enumerate(_SYMMETRIC_ENTRIES):
        basis[p, row, col] = basis[p, col, row] = 1.0
    return basis


def _projected_moments(rotations: np.ndarray, ellipsoid: np.ndarray) -> np.ndarray:
    """(N, 3) weighted image moments of an ellipsoid covariance (3, 3) turned by ``rotations``, at unit depth."""
    turned = np.einsum("nik,kl,njl->nij", rotations, ellipsoid, rotations)
    return np.stack([turned[:, i, j] for i, j in SILHOUETTE_MOMENTS], -1) * _MOMENT_WEIGHT


def _fit_ellipsoid(moments: np.ndarray, rotations: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The ellipsoid covariance (3, 3) whose turned projections best match ``moments`` (N, 3) times depth^2,
    every frame weighing alike."""
    basis = _symmetric_basis()
    design = np.stack([_projected_moments(rotations, b) for b in basis], -1)
    target = moments * _MOMENT_WEIGHT * depth[:, None] ** 2
    size = np.linalg.norm(target, axis=1, keepdims=True)
    solution = np.linalg.lstsq((design / size[..., None]).reshape(-1, len(basis)), (target / size).ravel())[0]
    return np.einsum("p,pij->ij", solution, basis)


def _ellipsoid_depths(moments: np.ndarray, rotations: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Depths (N,) such that ``moments`` (N, 3) times depth^2 is one ellipsoid's covariance turned by ``rotations``
    (N, 3, 3) and projected; the median depth kept at ``start``'s.

    Both unknowns enter linearly (moments_t * depth_t^2 = design_t @ ellipsoid), so the ellipsoid is eliminated
    (the residual is projected off its design's span) and the depths are the least singular vector of what is
    left: no iterations, nor a start to fall into a wrong valley from."""
    design = np.stack([_projected_moments(rotations, b) for b in _symmetric_basis()], -1)
    weighted = moments * _MOMENT_WEIGHT
    size = np.linalg.norm(weighted, axis=1)
    # Unit moments make every frame weigh alike; the unknown is then depth^2 * size, about the same in all.
    count = len(moments)
    stacked = np.zeros((count, 3, count))
    stacked[np.arange(count), :, np.arange(count)] = weighted / size[:, None]
    stacked, design = stacked.reshape(3 * count, count), design.reshape(3 * count, -1)
    u, singular, _ = np.linalg.svd(design, full_matrices=False)
    span = u[:, singular > 1e-9 * singular.max()]
    unknown = np.linalg.svd(stacked - span @ (span.T @ stacked))[2][-1]
    unknown = unknown * np.sign(unknown.sum())
    depth = np.sqrt(np.maximum(unknown, 1e-6 * unknown.max()) / size)
    return depth * np.median(start) / np.median(depth)


def rotations_from_background(world2cam: np.ndarray) -> np.ndarray:
    """(N, 3, 3) object -> camera: the cameras' world rotations (N, 3, 3) composed with one object orientation,
    upright (its -y along the world's vertical, estimated from the cameras) and facing the first camera."""
    up = estimate_up_axis(world2cam)
    object_to_world = upright_rotation(up, world2cam[0]).T
    return world2cam @ object_to_world


def upright(rotations: np.ndarray) -> np.ndarray:
    """Object -> camera rotations (N, 3, 3) of a re-oriented object frame whose -y is the vertical the
    cameras imply, facing the first camera (lab4d's canonical frames are y-down)."""
    return rotations @ upright_rotation(estimate_up_axis(rotations), rotations[0]).T


def relative_rotations(video: Video, prefix: str, crop2raw: np.ndarray, iterations: int = 4) -> PairRotations:
    """The object's rotation (camera coordinates) from each frame to the next: its pixels lifted by the depth
    maps, carried by the forward flow, and fitted with a similarity (depth maps may disagree in scale) whose
    worst-fitting quarter of pixels (limbs that swing, flow errors) is dropped, ``iterations`` times."""
    intrinsics = array_intrinsics(np.asarray(video.ks, np.float64), crop2raw)
    masks = np.asarray(video.array("mask", prefix)[..., 0])
    depth = np.asarray(video.array("depth", prefix), dtype=np.float64)
    flow = video.flow(1, "fw", prefix)
    rotations = np.tile(np.eye(3), (max(video.num_frames - 1, 0), 1, 1))
    valid = np.zeros(len(rotations), dtype=bool)
    for t in range(len(rotations)):
        points = _flow_correspondences(masks, depth, np.asarray(flow[t], np.float64), intrinsics, t)
        if points is not None:
            rotations[t], valid[t] = _robust_rotation(*points, iterations), True
    return PairRotations(rotations, valid)


def chained(pairs: PairRotations) -> np.ndarray:
    """(N, 3, 3) rotations from the identity at frame 0, each the previous one turned by its pair's rotation
    (an unmeasured pair: no turn)."""
    rotations = [np.eye(3)]
    for relative in pairs.rotations:
        rotations.append(relative @ rotations[-1])
    return np.stack(rotations)


def _flow_correspondences(masks, depth, flow, intrinsics, t) -> tuple[np.ndarray, np.ndarray] | None:
    """Camera-space points (P, 3) of the object in frame t and where the flow says they are at t + 1."""
    height, width = masks.shape[1:]
    ys, xs = np.nonzero(masks[t] & (flow[..., 2] > 0) & (depth[t] > 0))
    if len(xs) < 20:
        return None
    tx, ty = xs + flow[ys, xs, 0], ys + flow[ys, xs, 1]
    ix, iy = np.rint(tx).astype(int), np.rint(ty).astype(int)
    inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    xs, ys, tx, ty, ix, iy = (a[inside] for a in (xs, ys, tx, ty, ix, iy))
    keep = masks[t + 1, iy, ix] & (depth[t + 1, iy, ix] > 0)
    if keep.sum() < 20:
        return None
    source = _lift(xs[keep], ys[keep], depth[t, ys[keep], xs[keep]], intrinsics[t])
    target = _lift(tx[keep], ty[keep], depth[t + 1, iy[keep], ix[keep]], intrinsics[t + 1])
    return source, target


def _lift(x, y, z, intrinsics) -> np.ndarray:
    fx, fy, cx, cy = intrinsics
    return np.stack([(x - cx) / fx * z, (y - cy) / fy * z, z], -1)


def _robust_rotation(source: np.ndarray, target: np.ndarray, iterations: int) -> np.ndarray:
    """Rotation of the similarity that maps ``source`` (P, 3) to ``target``, refitted without the worst quarter."""
    keep = np.ones(len(source), dtype=bool)
    for _ in range(iterations):
        scale, rotation, shift = similarity_fit(source[keep], target[keep])
        residual = np.linalg.norm(scale * source @ rotation.T + shift - target, axis=-1)
        keep = residual <= np.quantile(residual, 0.75)
    return similarity_fit(source[keep], target[keep])[1]


SILHOUETTE_RES = 32
"""Side of the normalised silhouettes that compare views across videos."""
MATCH_DEGREES = 20.0
"""Two frames see the object alike when their root rotations differ by less than this."""


def normalised_silhouettes(video: Video, prefix: str, crop2raw: np.ndarray) -> np.ndarray:
    """(N, R, R) bool masks in raw-pixel proportions (crops are anisotropic), centred on their centroid and
    scaled by the square root of their area, so views of the object compare whatever its distance."""
    masks = np.asarray(video.array("mask", prefix)[..., 0])
    out = np.zeros((len(masks), SILHOUETTE_RES, SILHOUETTE_RES), dtype=bool)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs) < 10:
            continue
        raw = np.stack([xs * crop2raw[t, 0], ys * crop2raw[t, 1]], -1)
        centred = (raw - raw.mean(0)) / np.sqrt(len(xs) * crop2raw[t, 0] * crop2raw[t, 1])
        cells = np.floor((centred / 2.0 + 0.5) * SILHOUETTE_RES).astype(int)
        inside = ((cells >= 0) & (cells < SILHOUETTE_RES)).all(-1)
        out[t, cells[inside, 1], cells[inside, 0]] = True
    return out


def heading_offset(
    rotations: np.ndarray,
    silhouettes: np.ndarray,
    reference: np.ndarray,
    reference_silhouettes: np.ndarray,
    steps: int = 36,
) -> float | None:
    """The turn (radians) about the canonical vertical (-y) that best puts a video's object frame in a reference
    video's, or None when no turn makes enough of their views meet.

    Each video's upright object frame faces its own first camera, so two videos of one animal start with
    their canonical frames turned apart. For each candidate turn, every frame of the video is paired with the
    reference frame whose root rotation is nearest; pairs within :data:`MATCH_DEGREES` see the object from
    the same side, and their silhouettes should agree. The turn whose pairs agree best (mean IoU) wins."""
    vertical = np.array([0.0, -1.0, 0.0])
    best, best_score = None, -1.0
    needed = max(3, len(rotations) // 10)
    for angle in np.arange(steps) * 2 * np.pi / steps:
        turned = rotations @ so3_exp(angle * vertical)
        traces = np.einsum("nij,mij->nm", turned, reference)
        nearest = traces.argmax(1)
        close = np.degrees(np.arccos(np.clip((traces.max(1) - 1) / 2, -1, 1))) < MATCH_DEGREES
        if close.sum() < needed:
            continue
        a, b = silhouettes[close], reference_silhouettes[nearest[close]]
        union = (a | b).sum((1, 2))
        score = float(((a & b).sum((1, 2)) / np.maximum(union, 1)).mean())
        if score > best_score:
            best, best_score = float(angle), score
    return best


def align_headings(inits: list[RootPoseInit], silhouettes: list[np.ndarray]) -> list[RootPoseInit]:
    """Turn the upright object frames of videos without root poses into the first such video's (see
    :func:`heading_offset`); videos whose root poses came with the data or were set by hand keep them."""
    chosen = [v for v, init in enumerate(inits) if init.source in ("00", "flow", "none")]
    if len(chosen) < 2:
        return inits
    reference = inits[chosen[0]].poses[:, :3, :3]
    vertical = np.array([0.0, -1.0, 0.0])
    out = list(inits)
    for v in chosen[1:]:
        angle = heading_offset(inits[v].poses[:, :3, :3], silhouettes[v], reference, silhouettes[chosen[0]])
        if angle is None:
            warnings.warn(
                f"video {v}: its views never meet those of video {chosen[0]}, so its object frame may be turned "
                "relative to theirs; the shared shape will suffer",
                stacklevel=2,
            )
            continue
        poses = inits[v].poses.copy()
        poses[:, :3, :3] = poses[:, :3, :3] @ so3_exp(angle * vertical)
        out[v] = dataclasses.replace(inits[v], poses=poses)
    return out
