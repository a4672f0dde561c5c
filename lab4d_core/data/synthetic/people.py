"""People built from the anny parametric body, on our 18-joint human skeleton.

`anny <https://github.com/naver/anny>`_ (Apache-2.0 code, CC0 MakeHuman assets) gives a
watertight, skinned mesh of about 13.7k vertices with a 104-bone rig, whose shape follows
phenotype parameters (gender, age, muscle, weight, height, proportions). A person here is
anny's rest mesh (its A-pose, arms about 45 degrees below horizontal), with:

- our skeleton's joints at the heads of the anny bones of :data:`JOINT_BONES`;
- anny's skin weights collapsed onto those joints: each bone's weight goes to the nearest of
  our joints up its chain (fingers to the hand, toes to the foot, neck, face and eyes to the
  head), at most four per vertex, renormalised;
- anny's axes (metres, z up, facing -y) turned into ours (metres, y down, facing +z) by a
  rotation, the pelvis (anny's root) at the origin.

The body is then posed by our forward kinematics and linear blend skinning like any other
:class:`~lab4d_core.data.synthetic.characters.Character`, so the procedural human motions,
the ground truth and the true reanimations apply unchanged. anny is imported only here, on
first use: it is an optional dependency (the ``people`` extra, installed by ``make setup``).
Its first load in a fresh environment builds anny's model cache (about a minute, then ~2 s).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from lab4d_core.data.synthetic.characters import Character
from lab4d_core.errors import Lab4dError
from lab4d_core.geometry.skeletons import Skeleton, get_skeleton

ANNY_VERSION = "0.6.2"
"""The anny release the joint mapping was made for (pinned by the ``people`` extra)."""

ANNY_TO_OBJECT = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])
"""Rotation from anny's axes (x to the person's left, y backwards, z up) to ours (x right, y down, z forward).

It is a rotation, not a mirror: seen from the front, a person facing +z with y down has its anatomical right
side at +x, which is where our skeleton's ``left_`` chains lie, so they take anny's ``.R`` bones."""

_CHAIN_BONES = {
    "shoulder": "clavicle",
    "arm": "upperarm01",
    "forearm": "lowerarm01",
    "hand": "wrist",
    "upper_leg": "upperleg01",
    "lower_leg": "lowerleg01",
    "foot": "foot",
}
JOINT_BONES: dict[str, str] = {
    "spine0": "root",  # pelvis
    "spine1": "spine03",  # lower back
    "spine2": "spine01",  # chest, carries the clavicles and the neck
    "head": "neck01",  # base of the neck: the neck turns with the head
    **{
        f"{side}_{joint}": f"{bone}.{suffix}"
        for side, suffix in (("left", "R"), ("right", "L"))
        for joint, bone in _CHAIN_BONES.items()
    },
}
"""Our joint -> the anny bone whose head it sits at (anny's ``.R`` side lies at our +x, see :data:`ANNY_TO_OBJECT`)."""

LEG_SPREAD = (0.72, 0.93)
"""Range of hip-to-ankle leg lengths in metres that the people of one dataset spread evenly over (a stature of
about 1.5 to 1.9 m): the longest legs are 1.29x the shortest, whatever the number of people."""

ADULT_AGE = (0.62, 0.9)
"""Range of anny's age parameter drawn for people: adults from about 20 to 70 (0.67 is anny's young adult)."""


def _install_hint() -> str:
    return (
        f"`pip install anny=={ANNY_VERSION}` in the project's environment, or `make setup` "
        "(which installs the `people` extra: `pip install -e '.[people]'`)"
    )


@functools.lru_cache(maxsize=1)
def anny_model():
    """The anny body model (loaded once per process), or a Lab4dError saying how to install it."""
    try:
        import anny
        import torch
    except ImportError as error:
        raise Lab4dError(
            f"character: anny needs the anny body model, which is not installed ({error}): {_install_hint()}"
        ) from error
    with torch.no_grad():
        # Pure torch skinning: the default (NVIDIA Warp) would compile CPU kernels that only anny's own posing uses.
        return anny.Anny(rig="anny", topology="anny", skinning_method="lbs")


@dataclass(frozen=True)
class PersonBuild:
    """anny phenotype parameters of one person (each in [0, 1]) and the leg length that sets its height."""

    gender: float = 0.5
    """0 male, 1 female."""
    age: float = 0.75
    muscle: float = 0.5
    weight: float = 0.5
    proportions: float = 0.5
    leg_length: float = 0.82
    """Hip-to-ankle length in metres; anny's height parameter is solved for it."""

    @classmethod
    def sample(cls, rng: np.random.Generator) -> PersonBuild:
        """A random adult."""
        return cls(
            gender=float(rng.uniform(0.0, 1.0)),
            age=float(rng.uniform(*ADULT_AGE)),
            muscle=float(rng.uniform(0.2, 0.8)),
            weight=float(rng.uniform(0.15, 0.85)),
            proportions=float(rng.uniform(0.2, 0.8)),
            leg_length=float(rng.uniform(*LEG_SPREAD)),
        )

    @classmethod
    def spread(cls, instance: int, num_instances: int, seed: int) -> PersonBuild:
        """Build of person ``instance`` of ``num_instances`` who differ deliberately.

        Leg lengths are evenly spaced over :data:`LEG_SPREAD`, genders over [0.05, 0.95] and weights over
        [0.15, 0.85], each in an order that ``seed`` shuffles (a single person gets the middle of each); age,
        muscle and proportions are drawn from ``seed`` and ``instance``. Arms follow the legs (within the few per
        cent that gender and proportions change), so they spread alike.
        """
        if not 0 <= instance < num_instances:
            raise ValueError(f"instance {instance} is not one of {num_instances} instances")
        rng = np.random.default_rng([seed, 4243])
        fractions = np.linspace(0.0, 1.0, num_instances) if num_instances > 1 else np.full(1, 0.5)
        legs, genders, weights = (fractions[rng.permutation(num_instances)] for _ in range(3))
        rest = cls.sample(np.random.default_rng([seed, 4243, instance]))
        low, high = LEG_SPREAD
        return cls(
            gender=float(0.05 + 0.9 * genders[instance]),
            age=rest.age,
            muscle=rest.muscle,
            weight=float(0.15 + 0.7 * weights[instance]),
            proportions=rest.proportions,
            leg_length=float(low + (high - low) * legs[instance]),
        )


def _rest_model(model, phenotype: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """anny's rest vertices (V, 3) and bone heads (B, 3), in anny's axes, for phenotype parameters."""
    import torch

    with torch.no_grad():
        out = model(pose_parameters=None, phenotype_kwargs=phenotype)
    return out["rest_vertices"][0].double().numpy(), out["rest_bone_heads"][0].double().numpy()


def _leg_length(model, heads: np.ndarray) -> float:
    index = model.bone_labels.index
    hip, knee, ankle = (heads[index(f"{bone}.L")] for bone in ("upperleg01", "lowerleg01", "foot"))
    return float(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))


def _solve_height(model, build: PersonBuild) -> tuple[float, np.ndarray, np.ndarray]:
    """anny's height parameter that gives ``build.leg_length`` (secant steps; the legs grow almost linearly)."""
    phenotype = {k: v for k, v in asdict(build).items() if k != "leg_length"}

    def evaluate(height: float):
        verts, heads = _rest_model(model, {**phenotype, "height": height})
        return _leg_length(model, heads) - build.leg_length, verts, heads

    (h0, f0), (h1, f1) = (0.0, evaluate(0.0)[0]), (1.0, evaluate(1.0)[0])
    for _ in range(3):
        h2 = float(np.clip(h1 - f1 * (h1 - h0) / (f1 - f0), 0.0, 1.0))
        f2, verts, heads = evaluate(h2)
        if abs(f2) < 1e-5 or h2 in (0.0, 1.0):
            break
        (h0, f0), (h1, f1) = (h1, f1), (h2, f2)
    return h2, verts, heads


def _joint_owners(bone_labels: list[str], bone_parents: list[int], skeleton: Skeleton) -> np.ndarray:
    """For each anny bone, the index of our joint that carries it: the nearest mapped bone up its chain."""
    mapped = {bone_labels.index(bone): skeleton.joint_names.index(joint) for joint, bone in JOINT_BONES.items()}
    owners = np.full(len(bone_labels), -1)
    for b, parent in enumerate(bone_parents):  # anny lists parents before children
        owners[b] = mapped[b] if b in mapped else owners[parent]
    if (owners < 0).any():
        raise ValueError(f"anny bones without one of our joints above them: {np.asarray(bone_labels)[owners < 0]}")
    return owners


def collapse_skin_weights(weights: np.ndarray, indices: np.ndarray, owners: np.ndarray, num_joints: int) -> np.ndarray:
    """(V, K) anny weights of bones ``indices`` -> (V, J) weights of our joints, top 4 per vertex, rows summing to 1."""
    dense = np.zeros((len(weights), num_joints))
    np.add.at(
        dense, (np.repeat(np.arange(len(weights)), weights.shape[1]), owners[indices].reshape(-1)), weights.reshape(-1)
    )
    keep = np.argsort(-dense, axis=1)[:, :4]
    top = np.zeros_like(dense)
    np.put_along_axis(top, keep, np.take_along_axis(dense, keep, axis=1), axis=1)
    return (top / top.sum(axis=1, keepdims=True)).astype(np.float32)


def _visible_parts(
    verts: np.ndarray, faces: np.ndarray, eye_vertex: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the body and the eyeballs, drop the mouth's inner parts (teeth, tongue) that no camera sees.

    Returns the kept vertices, the re-indexed faces and the old index of every kept vertex."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(verts), len(verts)))
    _, labels = connected_components(graph, directed=False)
    body = np.argmax(np.bincount(labels[faces[:, 0]]))
    eyes = np.unique(labels[eye_vertex])
    keep_vertex = (labels == body) | np.isin(labels, eyes)
    keep_faces = faces[keep_vertex[faces[:, 0]]]
    old = np.flatnonzero(keep_vertex)
    remap = np.full(len(verts), -1)
    remap[old] = np.arange(len(old))
    return verts[old], remap[keep_faces], old


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """From pale to deep brown: lightness and saturation move together, as skin tones do."""
    t = rng.uniform(0.0, 1.0)
    return _hsv(rng.uniform(0.045, 0.085), 0.28 + 0.3 * t, 0.92 - 0.6 * t)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


HAIR = np.array([[0.05, 0.04, 0.035], [0.18, 0.11, 0.06], [0.35, 0.22, 0.12], [0.72, 0.58, 0.36], [0.6, 0.6, 0.58]])
TROUSERS = np.array([[0.16, 0.22, 0.36], [0.08, 0.08, 0.09], [0.55, 0.5, 0.38], [0.35, 0.36, 0.38], [0.3, 0.33, 0.2]])
SHOES = np.array([[0.08, 0.07, 0.07], [0.85, 0.85, 0.83], [0.32, 0.2, 0.12]])


def _outfit(rng: np.random.Generator) -> dict:
    skin = _skin_tone(rng)
    shirts = [_hsv(rng.uniform(0.0, 1.0), rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.9)) for _ in range(8)]
    shoes = [s for s in SHOES if np.linalg.norm(s - skin) > 0.2]
    return {
        "skin": skin,
        "hair": HAIR[rng.integers(len(HAIR))] * rng.uniform(0.85, 1.15),
        # Clothes that stand out from the skin, so that sleeves and ankles show where they end.
        "shirt": next((c for c in shirts if np.linalg.norm(c - skin) > 0.3), shirts[0]),
        "trousers": TROUSERS[rng.integers(len(TROUSERS))] * rng.uniform(0.85, 1.15),
        "shoes": shoes[rng.integers(len(shoes))],
        "iris": HAIR[rng.integers(3)] if rng.uniform() < 0.7 else np.array([0.25, 0.4, 0.55]),
        "long_sleeves": bool(rng.uniform() < 0.5),
        "shorts": bool(rng.uniform() < 0.25),
    }


GRAIN = {"skin": 0.25, "hair": 0.7, "shirt": 0.6, "trousers": 0.5, "shoes": 0.35, "eye": 0.1}
"""Strength of the renderer's procedural grain over each region's colour: clothes carry the most texture."""


def _colors(
    verts: np.ndarray, weights: np.ndarray, eyeball: np.ndarray, skeleton: Skeleton, outfit: dict
) -> tuple[np.ndarray, dict]:
    """(V, 4) colours by body region (skin, hair, shirt, trousers, shoes, eyes) and the vertex count of each."""
    j = {name: k for k, name in enumerate(skeleton.joint_names)}
    joints = skeleton.rest_joints
    owner = np.argmax(weights, axis=1)
    y, z = verts[:, 1], verts[:, 2]
    region = np.full(len(verts), "skin", dtype=object)
    torso = np.isin(owner, [j["spine0"], j["spine1"], j["spine2"], j["left_shoulder"], j["right_shoulder"]])
    waist = joints[j["spine0"], 1] + 0.45 * (joints[j["spine1"], 1] - joints[j["spine0"], 1])
    region[torso] = "shirt"
    region[torso & (y > waist)] = "trousers"
    region[np.isin(owner, [j["left_arm"], j["right_arm"]])] = "shirt"
    if outfit["long_sleeves"]:
        region[np.isin(owner, [j["left_forearm"], j["right_forearm"]])] = "shirt"
    legs = [j[f"{side}_{part}"] for side in ("left", "right") for part in ("upper_leg", "lower_leg")]
    region[np.isin(owner, legs)] = "trousers"
    if outfit["shorts"]:
        region[np.isin(owner, legs) & (y > joints[j["left_lower_leg"], 1] - 0.06)] = "skin"
    region[(y > joints[j["left_foot"], 1] - 0.03) | np.isin(owner, [j["left_foot"], j["right_foot"]])] = "shoes"
    # Hair: the head above a hairline that drops from the forehead towards the nape.
    eye_y, eye_z = verts[eyeball, 1].mean(), verts[eyeball, 2].max()
    hairline = np.minimum(eye_y - 0.05 + 0.9 * np.clip(eye_z - z - 0.03, 0.0, None), eye_y + 0.07)
    region[(owner == j["head"]) & (y < hairline) & (y < joints[j["head"], 1]) & ~eyeball] = "hair"
    colors = np.empty((len(verts), 4))
    for name in ("skin", "hair", "shirt", "trousers", "shoes"):
        colors[region == name] = [*np.clip(outfit[name], 0.0, 1.0), GRAIN[name]]
    # Eyeballs, one per side: white, with the iris at the front.
    for side in (eyeball & (verts[:, 0] > 0), eyeball & (verts[:, 0] <= 0)):
        if side.any():
            centre = verts[side].mean(axis=0)
            radius = np.linalg.norm(verts[side] - centre, axis=1).max()
            region[side] = "eye"
            colors[side] = [0.9, 0.88, 0.84, GRAIN["eye"]]
            colors[side & (z - centre[2] > 0.75 * radius)] = [*outfit["iris"], GRAIN["eye"]]
    return colors, {name: int((region == name).sum()) for name in GRAIN}


def anny_person(seed: int, build: PersonBuild | None = None) -> Character:
    """A person whose clothes and colours, and build unless ``build`` is given, come from ``seed``."""
    model = anny_model()
    rng = np.random.default_rng([seed, 2718])
    sampled = PersonBuild.sample(rng)  # drawn either way, so that the outfit of a seed never changes
    build = build or sampled
    outfit = _outfit(rng)
    height, verts_anny, heads_anny = _solve_height(model, build)

    labels, parents = list(model.bone_labels), list(model.bone_parents)
    root = heads_anny[labels.index("root")]
    verts = (verts_anny - root) @ ANNY_TO_OBJECT.T
    heads = (heads_anny - root) @ ANNY_TO_OBJECT.T

    human = get_skeleton("human")
    rest = np.stack([heads[labels.index(JOINT_BONES[name])] for name in human.joint_names])
    # anny is symmetric to round-off; make left and right exactly equal.
    mirrored = rest[human.symmetry] * [-1.0, 1.0, 1.0]
    skeleton = Skeleton("human", human.joint_names, human.parents, 0.5 * (rest + mirrored))

    owners = _joint_owners(labels, parents, skeleton)
    bone_weights = model.vertex_bone_weights.double().numpy()
    bone_indices = model.vertex_bone_indices.long().numpy()
    eye_bones = [labels.index("eye.L"), labels.index("eye.R")]
    eye_vertex = np.flatnonzero(np.isin(bone_indices, eye_bones).any(axis=1) & (bone_weights.max(axis=1) > 0.99))
    faces = model.get_triangular_faces().long().numpy()
    verts, faces, old = _visible_parts(verts, faces, eye_vertex)
    weights = collapse_skin_weights(bone_weights[old], bone_indices[old], owners, skeleton.num_joints)
    colors, regions = _colors(verts, weights, np.isin(old, eye_vertex), skeleton, outfit)

    stature = float(verts[:, 1].max() - verts[:, 1].min())
    return Character(
        skeleton=skeleton,
        rest_verts=verts.astype(np.float32),
        faces=faces.astype(np.int32),
        skin_weights=weights,
        palette=np.stack([outfit["skin"], outfit["shirt"], outfit["trousers"]]).astype(np.float32),
        pattern_scale=18.0,
        colors=colors.astype(np.float32),
        meta={
            "kind": "anny",
            "seed": seed,
            "anny": {"version": _anny_version(), **asdict(build), "height": height},
            "stature": round(stature, 4),
            "outfit": {k: (v.round(3).tolist() if isinstance(v, np.ndarray) else v) for k, v in outfit.items()},
            "regions": regions,
        },
    )


def _anny_version() -> str:
    from importlib.metadata import version

    return version("anny")
