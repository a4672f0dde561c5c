"""Articulated characters for synthetic data: procedural (from our skeletons) or glTF assets.

A procedural character is skin grown around the bones of a predefined skeleton:
capsules along bones and ellipsoids for torso, head, hands and feet, merged by a
smooth union and meshed with marching cubes. Each instance draws its morphology
(bone lengths, thickness, colours) from a seed, so several videos of one dataset
can show different individuals of one category.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.measure import marching_cubes

from lab4d_core.geometry.skeletons import ARM_JOINTS, LEG_JOINTS, Skeleton, get_skeleton


@dataclass
class Character:
    """A skinned mesh in its rest pose, in object coordinates (OpenCV axes, metres)."""

    skeleton: Skeleton
    rest_verts: np.ndarray
    """(V, 3) float32 rest-pose vertices."""
    faces: np.ndarray
    """(F, 3) int32 triangles, counter-clockwise seen from outside."""
    skin_weights: np.ndarray
    """(V, J) float32 blend weights, at most four non-zero per vertex, rows sum to 1."""
    palette: np.ndarray
    """(3, 3) RGB in [0, 1]: base, pattern and detail colours of the procedural texture."""
    pattern_scale: float = 9.0
    """Spatial frequency of the procedural pattern, in 1/m."""
    uv: np.ndarray | None = None
    """(V, 2) texture coordinates when the character has an image texture."""
    texture: np.ndarray | None = None
    """(H, W, 3) uint8 image texture, used instead of the procedural one when present."""
    colors: np.ndarray | None = None
    """(V, 4) per-vertex colours (RGB, then the strength of the procedural grain over them), used instead of the
    palette's pattern when present: skin, clothes and hair of a person."""
    meta: dict = field(default_factory=dict)

    def pose(self, skinning_transforms: np.ndarray) -> np.ndarray:
        """Linear blend skinning: (..., J, 4, 4) transforms -> (..., V, 3) posed vertices."""
        blended = np.einsum("vj,...jab->...vab", self.skin_weights, skinning_transforms[..., :3, :])
        return np.einsum("...vab,vb->...va", blended[..., :3], self.rest_verts) + blended[..., 3]


@dataclass(frozen=True)
class Capsule:
    start: int
    end: int
    radius_start: float
    radius_end: float


@dataclass(frozen=True)
class Ellipsoid:
    joint: int
    offset: tuple[float, float, float]
    radii: tuple[float, float, float]


def _primitives(skeleton: Skeleton) -> tuple[list[Capsule], list[Ellipsoid]]:
    """Body primitives for a predefined skeleton, bound to joints by name."""
    j = {n: i for i, n in enumerate(skeleton.joint_names)}
    caps: list[Capsule] = []
    ells: list[Ellipsoid] = []

    def chain(names: list[str], radii: list[float]) -> None:
        for a, b, ra, rb in zip(names[:-1], names[1:], radii[:-1], radii[1:]):
            caps.append(Capsule(j[a], j[b], ra, rb))

    if skeleton.name == "quad":
        chain(["spine0", "spine1", "spine2"], [0.12, 0.13, 0.135])
        chain(["spine2", "spine3"], [0.075, 0.065])
        ells.append(Ellipsoid(j["spine1"], (0.0, 0.01, 0.0), (0.13, 0.14, 0.28)))
        ells.append(Ellipsoid(j["spine3"], (0.0, 0.0, 0.03), (0.075, 0.075, 0.095)))
        ells.append(Ellipsoid(j["spine3"], (0.0, 0.03, 0.12), (0.04, 0.035, 0.07)))  # snout
        for side, sx in (("left", 1.0), ("right", -1.0)):
            ells.append(Ellipsoid(j["spine3"], (0.045 * sx, -0.08, -0.005), (0.022, 0.05, 0.02)))  # ear
            chain([f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", f"{side}_hand"], [0.055, 0.042, 0.032, 0.03])
            chain([f"{side}_hip", f"{side}_knee", f"{side}_ankle", f"{side}_foot"], [0.065, 0.045, 0.032, 0.03])
            ells.append(Ellipsoid(j[f"{side}_hand"], (0.0, 0.0, 0.015), (0.033, 0.022, 0.045)))
            ells.append(Ellipsoid(j[f"{side}_foot"], (0.0, 0.0, 0.015), (0.033, 0.022, 0.045)))
        chain(["spine0", "tail0", "tail1", "tail2", "tail3", "tail4"], [0.04, 0.035, 0.03, 0.025, 0.02, 0.014])
    elif skeleton.name == "human":
        chain(["spine0", "spine1", "spine2"], [0.13, 0.12, 0.14])
        ells.append(Ellipsoid(j["spine2"], (0.0, -0.02, 0.0), (0.17, 0.14, 0.1)))  # chest
        ells.append(Ellipsoid(j["spine0"], (0.0, 0.0, 0.0), (0.15, 0.1, 0.1)))  # hips
        chain(["spine2", "head"], [0.05, 0.05])
        ells.append(Ellipsoid(j["head"], (0.0, -0.1, 0.01), (0.08, 0.11, 0.095)))
        ells.append(Ellipsoid(j["head"], (0.0, -0.09, 0.09), (0.015, 0.025, 0.02)))  # nose
        for side, sx in (("left", 1.0), ("right", -1.0)):
            chain([f"{side}_shoulder", f"{side}_arm"], [0.06, 0.055])
            chain([f"{side}_arm", f"{side}_forearm", f"{side}_hand"], [0.05, 0.04, 0.032])
            ells.append(Ellipsoid(j[f"{side}_hand"], (0.01 * sx, 0.07, 0.0), (0.025, 0.07, 0.04)))
            chain([f"{side}_upper_leg", f"{side}_lower_leg", f"{side}_foot"], [0.075, 0.052, 0.04])
            ells.append(Ellipsoid(j[f"{side}_foot"], (0.0, 0.03, 0.06), (0.045, 0.035, 0.11)))
    else:
        raise ValueError(f"no body primitives for skeleton {skeleton.name!r}")
    return caps, ells


def _capsule_sdf(points: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    a, b = a.astype(points.dtype), b.astype(points.dtype)
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.linalg.norm(points - closest, axis=-1) - (ra + t * (rb - ra))


def _ellipsoid_sdf(points: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    # Scaled-sphere bound: exact on the axes, close enough for skinning and meshing.
    centre, radii = centre.astype(points.dtype), radii.astype(points.dtype)
    return (np.linalg.norm((points - centre) / radii, axis=-1) - 1.0) * radii.min()


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _primitive_distances(points: np.ndarray, skeleton: Skeleton, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance of ``points`` to every primitive, and the joint each is bound to."""
    caps, ells = _primitives(skeleton)
    joints = skeleton.rest_joints
    dists, owners = [], []
    for c in caps:
        dists.append(_capsule_sdf(points, joints[c.start], joints[c.end], c.radius_start * scale, c.radius_end * scale))
        owners.append(c.start)
    for e in ells:
        dists.append(_ellipsoid_sdf(points, joints[e.joint] + np.asarray(e.offset), np.asarray(e.radii) * scale))
        owners.append(e.joint)
    return np.stack(dists, axis=-1).astype(np.float32), np.asarray(owners)


def _skin_weights(points: np.ndarray, skeleton: Skeleton, thickness: float, falloff: float = 0.02) -> np.ndarray:
    """Soft assignment of points to the joints that own the nearest primitives, top 4."""
    dists, owners = _primitive_distances(points, skeleton, thickness)
    per_joint = np.full((len(points), skeleton.num_joints), np.inf)
    for k, joint in enumerate(owners):
        per_joint[:, joint] = np.minimum(per_joint[:, joint], dists[:, k])
    logits = -(per_joint - per_joint.min(axis=1, keepdims=True)) / falloff
    weights = np.exp(logits)
    keep = np.argsort(-weights, axis=1)[:, :4]
    top = np.zeros_like(weights)
    np.put_along_axis(top, keep, np.take_along_axis(weights, keep, axis=1), axis=1)
    return (top / top.sum(axis=1, keepdims=True)).astype(np.float32)


def _primitive_bounds(skeleton: Skeleton, scale: float) -> tuple[np.ndarray, np.ndarray]:
    caps, ells = _primitives(skeleton)
    joints = skeleton.rest_joints
    lows, highs = [], []
    for c in caps:
        radius = max(c.radius_start, c.radius_end) * scale
        lows.append(np.minimum(joints[c.start], joints[c.end]) - radius)
        highs.append(np.maximum(joints[c.start], joints[c.end]) + radius)
    for e in ells:
        centre = joints[e.joint] + np.asarray(e.offset)
        lows.append(centre - np.asarray(e.radii) * scale)
        highs.append(centre + np.asarray(e.radii) * scale)
    return np.min(lows, axis=0), np.max(highs, axis=0)


def _mesh_sdf(skeleton: Skeleton, thickness: float, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the smooth union of all primitives."""
    lo, hi = _primitive_bounds(skeleton, thickness)
    lo, hi = lo - 3 * voxel, hi + 3 * voxel
    axes = [np.arange(lo[i], hi[i] + voxel, voxel, dtype=np.float32) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    dists, _ = _primitive_distances(grid, skeleton, thickness)
    sdf = dists[:, 0]
    for k in range(1, dists.shape[1]):
        sdf = _smooth_min(sdf, dists[:, k], 0.025)
    volume = sdf.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(voxel, voxel, voxel))
    verts = verts + lo
    return _largest_component(verts, faces)


def _largest_component(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(verts), len(verts)))
    _, labels = connected_components(graph, directed=False)
    main = np.argmax(np.bincount(labels[faces[:, 0]]))
    keep_faces = faces[labels[faces[:, 0]] == main]
    used = np.unique(keep_faces)
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    return verts[used], remap[keep_faces]


LIMB_SPREAD = (0.86, 1.14)
"""Range of the leg, arm and trunk length factors that the instances of one dataset spread evenly over: the
longest-legged instance's legs are 1.14 / 0.86 = 1.33x the shortest's, whatever the number of instances."""


@dataclass(frozen=True)
class Morphology:
    """Per-instance body proportions: factors on the rest skeleton's bone lengths, and on thickness."""

    leg_length: float = 1.0
    """Thigh and shin (human), or the hind legs below the hip (quadruped)."""
    arm_length: float = 1.0
    """Upper arm and forearm (human), or the front legs below the shoulder (quadruped)."""
    body_length: float = 1.0
    """Spine segments between pelvis and chest."""
    neck_length: float = 1.0
    tail_length: float = 1.0
    thickness: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Morphology:
        """Random proportions; arms and legs share one factor (a quadruped's four feet then reach one floor)."""
        limb = rng.uniform(0.8, 1.25)
        return cls(
            leg_length=limb,
            arm_length=limb,
            body_length=rng.uniform(0.85, 1.2),
            neck_length=rng.uniform(0.8, 1.3),
            tail_length=rng.uniform(0.6, 1.4),
            thickness=rng.uniform(0.85, 1.15),
        )

    @classmethod
    def spread(cls, kind: str, instance: int, num_instances: int, seed: int) -> Morphology:
        """Proportions of instance ``instance`` of ``num_instances`` that differ deliberately.

        Leg, arm and trunk factors are evenly spaced over :data:`LIMB_SPREAD`, each in its own order
        shuffled by ``seed``, so the instances always span the whole range (the shortest- and
        longest-legged differ by 33 %; a single instance gets 1.0), whatever a random draw would have
        given. A quadruped's front legs take the factor of its hind legs, so that all four feet stand
        on one floor. Neck, tail and thickness are drawn at random from ``seed`` and ``instance``.
        """
        if not 0 <= instance < num_instances:
            raise ValueError(f"instance {instance} is not one of {num_instances} instances")
        rng = np.random.default_rng([seed, 7919])
        levels = np.linspace(*LIMB_SPREAD, num_instances) if num_instances > 1 else np.ones(1)
        legs, arms, trunks = (levels[rng.permutation(num_instances)] for _ in range(3))
        rest = cls.sample(np.random.default_rng([seed, 7919, instance]))
        return cls(
            leg_length=float(legs[instance]),
            arm_length=float(legs[instance] if kind == "quad" else arms[instance]),
            body_length=float(trunks[instance]),
            neck_length=rest.neck_length,
            tail_length=rest.tail_length,
            thickness=rest.thickness,
        )


def _morph_skeleton(skeleton: Skeleton, morph: Morphology) -> Skeleton:
    """Scale parent-relative offsets by body part; left and right limbs get the same factor."""
    offsets = skeleton.rest_offsets()
    for j, name in enumerate(skeleton.joint_names):
        if skeleton.parents[j] < 0:
            continue
        part = name.removeprefix("left_").removeprefix("right_")
        if name.startswith("tail"):
            factor = morph.tail_length
        elif name in ("spine3", "head"):
            factor = morph.neck_length
        elif name.startswith("spine"):
            factor = morph.body_length
        elif part in LEG_JOINTS:
            factor = morph.leg_length
        elif part in ARM_JOINTS:
            factor = morph.arm_length
        else:
            factor = 1.0
        offsets[j] = offsets[j] * factor
    return skeleton.with_offsets(offsets)


EARTH_HUES = (0.02, 0.16)
"""Fur, soil and bark hues (red-orange to yellow): characters and scenes both draw from them,
so colour alone never separates the object from the background."""


def random_palette(rng: np.random.Generator) -> np.ndarray:
    """Base, marking and detail colours: mostly earthy, sometimes one contrasting accent hue."""
    hue = rng.uniform(*EARTH_HUES)
    base = _hsv_to_rgb(hue, rng.uniform(0.25, 0.7), rng.uniform(0.45, 0.85))
    accent = rng.uniform(0.0, 1.0) if rng.uniform() < 0.3 else hue + rng.uniform(-0.03, 0.03)
    marking = _hsv_to_rgb(accent % 1.0, rng.uniform(0.2, 0.6), rng.uniform(0.12, 0.45))
    detail = _hsv_to_rgb(hue, rng.uniform(0.0, 0.25), rng.uniform(0.8, 1.0))
    return np.stack([base, marking, detail]).astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def procedural_character(kind: str, seed: int, voxel: float = 0.012, morph: Morphology | None = None) -> Character:
    """A procedural quadruped or human whose colours, and proportions unless ``morph`` is given, come from ``seed``."""
    rng = np.random.default_rng(seed)
    sampled = Morphology.sample(rng)  # drawn either way, so that the colours of a seed never change
    morph = morph or sampled
    skeleton = _morph_skeleton(get_skeleton(kind), morph)
    verts, faces = _mesh_sdf(skeleton, morph.thickness, voxel)
    weights = _skin_weights(verts, skeleton, morph.thickness)
    return Character(
        skeleton=skeleton,
        rest_verts=verts.astype(np.float32),
        faces=faces.astype(np.int32),
        skin_weights=weights,
        palette=random_palette(rng),
        pattern_scale=float(rng.uniform(6.0, 14.0)),
        meta={"kind": kind, "seed": seed, "morphology": morph.__dict__},
    )
