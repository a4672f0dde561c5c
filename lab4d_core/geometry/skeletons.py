"""Kinematic skeletons shared by the synthesizer and the skeleton deformation model.

The joint trees follow lab4d's (RAC's) predefined skeletons: an 18-joint human
(spine x3, head, two shoulder-arm-forearm-hand chains, two upper leg-lower
leg-foot chains) and a 25-joint quadruped (spine x4 ending in the head, two
shoulder-elbow-wrist-hand chains, a 5-joint tail, two hip-knee-ankle-foot chains).
Rest joints are our own, in metres, in object coordinates with OpenCV axes
(x right, y down, z forward): the character faces +z and stands on +y.

Forward kinematics convention: the local rotation of joint j turns everything
below j (its bone towards each child, and the children's subtrees) about j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4d_core.geometry.transforms import make_transform, so3_exp


@dataclass(frozen=True)
class Skeleton:
    """A joint tree with rest joint positions."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    """Parent index of each joint; -1 for the root. Parents precede children."""
    rest_joints: np.ndarray
    """(J, 3) rest joint positions in object coordinates."""

    def __post_init__(self) -> None:
        if len(self.joint_names) != len(self.parents) or len(self.parents) != len(self.rest_joints):
            raise ValueError(f"skeleton {self.name}: names, parents and rest joints differ in length")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise ValueError(f"skeleton {self.name}: joint {j} has parent {p}; parents must precede children")

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def symmetry(self) -> np.ndarray:
        """Index of each joint's mirror joint (itself for joints on the midline)."""
        index = {name: j for j, name in enumerate(self.joint_names)}
        mirror = []
        for name in self.joint_names:
            if name.startswith("left_"):
                mirror.append(index["right_" + name[5:]])
            elif name.startswith("right_"):
                mirror.append(index["left_" + name[6:]])
            else:
                mirror.append(index[name])
        return np.asarray(mirror)

    def rest_offsets(self) -> np.ndarray:
        """(J, 3) joint position relative to its parent (the root's is its position)."""
        parents = np.asarray(self.parents)
        offsets = self.rest_joints.copy()
        has_parent = parents >= 0
        offsets[has_parent] -= self.rest_joints[parents[has_parent]]
        return offsets

    def bone_lengths(self) -> np.ndarray:
        """(J,) distance of each joint to its parent (0 for the root)."""
        lengths = np.linalg.norm(self.rest_offsets(), axis=-1)
        lengths[np.asarray(self.parents) < 0] = 0.0
        return lengths

    def with_offsets(self, offsets: np.ndarray) -> Skeleton:
        """A skeleton with the same tree and new parent-relative rest offsets."""
        joints = np.zeros_like(offsets)
        for j, p in enumerate(self.parents):
            joints[j] = offsets[j] if p < 0 else joints[p] + offsets[j]
        return Skeleton(self.name, self.joint_names, self.parents, joints)

    def forward_kinematics(self, joint_so3: np.ndarray, root: np.ndarray | None = None) -> np.ndarray:
        """Global joint frames of a posed skeleton.

        Args:
            joint_so3: (..., J, 3) local axis-angle rotation of each joint.
            root: optional (..., 4, 4) transform applied to the whole skeleton.

        Returns:
            (..., J, 4, 4) posed frames G_j; G_j @ inv(rest frame of j) is the
            blend-skinning transform of the body part attached to joint j.
        """
        joint_so3 = np.asarray(joint_so3, dtype=np.float64)
        local = make_transform(so3_exp(joint_so3), None)
        offsets = self.rest_offsets()
        frames = np.empty(joint_so3.shape[:-1] + (4, 4))
        for j, p in enumerate(self.parents):
            translate = make_transform(None, offsets[j])
            parent = root if p < 0 else frames[..., p, :, :]
            frames[..., j, :, :] = (
                translate @ local[..., j, :, :] if parent is None else parent @ translate @ local[..., j, :, :]
            )
        return frames

    def skinning_transforms(self, joint_so3: np.ndarray, root: np.ndarray | None = None) -> np.ndarray:
        """(..., J, 4, 4) transforms taking rest-pose points of each body part to the posed object."""
        rest_inverse = make_transform(None, -self.rest_joints)
        return self.forward_kinematics(joint_so3, root) @ rest_inverse


def _mirrored(chain: list[tuple[str, tuple[float, float, float]]]) -> list[tuple[str, tuple[float, float, float]]]:
    """Left (x > 0) and right copies of a limb chain."""
    left = [("left_" + name, (x, y, z)) for name, (x, y, z) in chain]
    right = [("right_" + name, (-x, y, z)) for name, (x, y, z) in chain]
    return left + right


def _build(name: str, joints: list[tuple[str, tuple[float, float, float], str | None]]) -> Skeleton:
    names = tuple(j[0] for j in joints)
    index = {n: i for i, n in enumerate(names)}
    parents = tuple(-1 if j[2] is None else index[j[2]] for j in joints)
    rest = np.asarray([j[1] for j in joints], dtype=np.float64)
    return Skeleton(name, names, parents, rest)


def _limb(side_joints, first_parent: str):
    """Attach a mirrored chain: the first joint of each side hangs off ``first_parent``."""
    out = []
    chain_len = len(side_joints) // 2
    for side in range(2):
        chain = side_joints[side * chain_len : (side + 1) * chain_len]
        for k, (name, pos) in enumerate(chain):
            out.append((name, pos, first_parent if k == 0 else chain[k - 1][0]))
    return out


def quadruped() -> Skeleton:
    """25 joints like lab4d's quad: a dog-sized animal, about 1 m nose to tail tip."""
    joints = [
        ("spine0", (0.0, 0.0, -0.24), None),  # pelvis, the root
        ("spine1", (0.0, -0.02, 0.0), "spine0"),
        ("spine2", (0.0, -0.03, 0.22), "spine1"),  # chest, carries the shoulders
        ("spine3", (0.0, -0.17, 0.38), "spine2"),  # head
    ]
    joints += _limb(
        _mirrored(
            [
                ("shoulder", (0.08, 0.06, 0.22)),
                ("elbow", (0.08, 0.22, 0.24)),
                ("wrist", (0.08, 0.37, 0.22)),
                ("hand", (0.08, 0.45, 0.25)),
            ]
        ),
        "spine2",
    )
    tail = [(0.0, -0.04, -0.34), (0.0, -0.06, -0.42), (0.0, -0.08, -0.50), (0.0, -0.09, -0.58), (0.0, -0.10, -0.65)]
    for k, pos in enumerate(tail):
        joints.append((f"tail{k}", pos, "spine0" if k == 0 else f"tail{k - 1}"))
    joints += _limb(
        _mirrored(
            [
                ("hip", (0.08, 0.06, -0.26)),
                ("knee", (0.08, 0.21, -0.20)),
                ("ankle", (0.08, 0.35, -0.30)),
                ("foot", (0.08, 0.45, -0.27)),
            ]
        ),
        "spine0",
    )
    return _build("quad", joints)


def human() -> Skeleton:
    """18 joints like lab4d's human: about 1.75 m tall, arms slightly lowered (A-pose)."""
    joints = [
        ("spine0", (0.0, 0.0, 0.0), None),  # pelvis, the root
        ("spine1", (0.0, -0.20, 0.0), "spine0"),
        ("spine2", (0.0, -0.40, 0.0), "spine1"),
        ("head", (0.0, -0.60, 0.0), "spine2"),
    ]
    joints += _limb(
        _mirrored(
            [
                ("shoulder", (0.04, -0.50, 0.0)),
                ("arm", (0.19, -0.49, 0.0)),
                ("forearm", (0.25, -0.21, 0.0)),
                ("hand", (0.29, 0.05, 0.0)),
            ]
        ),
        "spine2",
    )
    joints += _limb(
        _mirrored([("upper_leg", (0.10, 0.04, 0.0)), ("lower_leg", (0.10, 0.46, 0.0)), ("foot", (0.10, 0.87, 0.0))]),
        "spine0",
    )
    return _build("human", joints)


LEG_JOINTS = ("knee", "ankle", "foot", "lower_leg")
"""Joints (without their left_/right_ prefix) whose offset from their parent is a leg bone: a quadruped's hind
leg below the hip, a human's thigh and shin (the hip's own offset belongs to the pelvis)."""
ARM_JOINTS = ("elbow", "wrist", "hand", "forearm")
"""Joints whose offset from their parent is an arm bone: a quadruped's front leg below the shoulder, a human's
upper arm and forearm (shoulder offsets belong to the chest)."""


FLEXION = {"human": {"lower_leg": -1, "forearm": 1}}
"""Hinge joints per skeleton (names without their left_/right_ prefix) and the sign of the rotation about x that
bends them: a human's knee folds the shin backwards (-z), an elbow the forearm forwards. The quadruped's are
left free: which way its tree's knees and elbows fold depends on the animal's stance."""


def flexion_signs(skeleton: Skeleton) -> np.ndarray:
    """(J,) per joint: +1 or -1 for a hinge that bends only by a positive or negative turn about x, 0 if free."""
    hinges = FLEXION.get(skeleton.name, {})
    return np.asarray(
        [hinges.get(n.removeprefix("left_").removeprefix("right_"), 0) for n in skeleton.joint_names], dtype=np.int64
    )


def limb_joints(skeleton: Skeleton, limb: str) -> list[int]:
    """Indices of the joints whose parent offsets make up ``limb`` ("leg" or "arm"), both sides."""
    names = {"leg": LEG_JOINTS, "arm": ARM_JOINTS}[limb]
    return [
        j for j, name in enumerate(skeleton.joint_names) if name.removeprefix("left_").removeprefix("right_") in names
    ]


SKELETONS = {"quad": quadruped, "human": human}
"""Registry of predefined skeletons by the name used in ``fg_motion: skel-<name>``."""


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]()
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; choose one of {sorted(SKELETONS)}") from None
