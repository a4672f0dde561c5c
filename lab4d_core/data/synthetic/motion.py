"""Procedural motion: joint-angle cycles per skeleton plus root motion over a floor.

Angles follow the skeleton convention of :mod:`lab4d_core.geometry.skeletons`
(local axis-angle per joint, object axes x right, y down, z forward): a positive
rotation about x swings a downward limb forwards, rotation about y turns left or
right, rotation about z raises a limb sideways.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lab4d_core.geometry.skeletons import Skeleton
from lab4d_core.geometry.transforms import make_transform, so3_exp

MOTIONS = ("walk", "trot", "wave", "turn")


def _set(angles: np.ndarray, skeleton: Skeleton, name: str, axis: int, values: np.ndarray) -> None:
    index = skeleton.joint_names.index(name)
    angles[:, index, axis] += values


def _quad_gait(
    skeleton: Skeleton, phase: np.ndarray, offsets: dict[str, float], swing: float, flex: float
) -> np.ndarray:
    angles = np.zeros((len(phase), skeleton.num_joints, 3))
    for leg, offset in offsets.items():
        side, front = leg.split("_")
        p = phase + 2 * np.pi * offset
        upper, middle, lower = ("shoulder", "elbow", "wrist") if front == "front" else ("hip", "knee", "ankle")
        _set(angles, skeleton, f"{side}_{upper}", 0, swing * np.sin(p))
        # Knees and elbows bend only while the foot travels forwards (the swing phase).
        bend = flex * np.clip(np.cos(p), 0.0, None)
        _set(angles, skeleton, f"{side}_{middle}", 0, bend if front == "hind" else -bend)
        _set(angles, skeleton, f"{side}_{lower}", 0, -0.5 * bend if front == "hind" else 0.6 * bend)
    for k in range(5):
        _set(angles, skeleton, f"tail{k}", 1, 0.25 * np.sin(phase + 0.6 * k))
        _set(angles, skeleton, f"tail{k}", 0, -0.06)
    _set(angles, skeleton, "spine1", 1, 0.06 * np.sin(phase))
    _set(angles, skeleton, "spine3", 0, 0.08 * np.sin(2 * phase))
    return angles


def quad_angles(skeleton: Skeleton, motion: str, phase: np.ndarray) -> np.ndarray:
    """(N, J, 3) joint angles of a quadruped for a motion cycle at ``phase`` (radians)."""
    if motion in ("walk", "turn"):
        offsets = {"left_hind": 0.0, "left_front": 0.25, "right_hind": 0.5, "right_front": 0.75}
        return _quad_gait(skeleton, phase, offsets, swing=0.35, flex=0.6)
    if motion == "trot":
        offsets = {"left_front": 0.0, "right_hind": 0.0, "right_front": 0.5, "left_hind": 0.5}
        return _quad_gait(skeleton, phase, offsets, swing=0.5, flex=0.8)
    if motion == "wave":
        # A quadruped "waves" by pawing with one front leg, shifting its weight and looking around.
        angles = _quad_gait(skeleton, phase, {"left_hind": 0.0, "right_hind": 0.5}, swing=0.1, flex=0.1)
        _set(angles, skeleton, "left_shoulder", 0, 0.6 + 0.4 * np.sin(2 * phase))
        _set(angles, skeleton, "left_elbow", 0, -0.9 - 0.3 * np.sin(2 * phase))
        _set(angles, skeleton, "spine3", 1, 0.5 * np.sin(phase))
        return angles
    raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")


def human_angles(skeleton: Skeleton, motion: str, phase: np.ndarray) -> np.ndarray:
    """(N, J, 3) joint angles of a human for a motion cycle at ``phase`` (radians)."""
    angles = np.zeros((len(phase), skeleton.num_joints, 3))
    if motion in ("walk", "trot", "turn"):
        amplitude = 0.55 if motion == "trot" else 0.4
        for side, offset in (("left", 0.0), ("right", np.pi)):
            p = phase + offset
            _set(angles, skeleton, f"{side}_upper_leg", 0, amplitude * np.sin(p))
            _set(angles, skeleton, f"{side}_lower_leg", 0, -1.6 * amplitude * np.clip(np.cos(p), 0.0, None))
            _set(angles, skeleton, f"{side}_foot", 0, 0.3 * amplitude * np.sin(p))
            _set(angles, skeleton, f"{side}_arm", 0, -0.8 * amplitude * np.sin(p))
            _set(angles, skeleton, f"{side}_forearm", 0, 0.3 + 0.2 * np.sin(p))
        _set(angles, skeleton, "spine1", 1, 0.08 * np.sin(phase))
        _set(angles, skeleton, "head", 1, 0.1 * np.sin(phase))
        return angles
    if motion == "wave":
        _set(angles, skeleton, "left_arm", 2, -2.3 + 0.1 * np.sin(phase))
        _set(angles, skeleton, "left_forearm", 2, 0.5 * np.sin(2 * phase))
        _set(angles, skeleton, "right_arm", 0, 0.15 * np.sin(phase))
        _set(angles, skeleton, "spine1", 2, 0.06 * np.sin(phase))
        _set(angles, skeleton, "head", 1, 0.3 * np.sin(phase))
        for side in ("left", "right"):
            _set(angles, skeleton, f"{side}_lower_leg", 0, -0.1 - 0.1 * np.sin(phase))
        return angles
    raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")


ANGLE_GENERATORS: dict[str, Callable[[Skeleton, str, np.ndarray], np.ndarray]] = {
    "quad": quad_angles,
    "human": human_angles,
}
"""Joint-angle generators by skeleton name."""

GAIT = {"walk": (1.4, 0.55), "trot": (2.4, 1.1), "wave": (1.0, 0.0), "turn": (1.2, 0.15)}
"""Cycle frequency (Hz) and forward speed (body lengths per second) of each motion."""


def root_trajectory(motion: str, times: np.ndarray, body_length: float, heading0: float) -> np.ndarray:
    """(N, 4, 4) object-to-world root poses: travel along a gently curving path.

    The world is y-down and the root stays near y = 0, so a floor at the rest
    pose's lowest point carries the character.
    """
    frequency, speed = GAIT[motion]
    turn_rate = 1.6 if motion == "turn" else 0.35 * np.sin(heading0 * 3.0)
    heading = heading0 + turn_rate * times
    step = np.gradient(times) if len(times) > 1 else np.zeros_like(times)
    forward = np.stack([np.sin(heading), np.zeros_like(heading), np.cos(heading)], axis=-1)
    position = np.cumsum(forward * (speed * body_length * step)[:, None], axis=0)
    position -= position.mean(axis=0)
    # A small vertical bob at twice the gait frequency (y is down, so up is negative).
    position[:, 1] = -0.015 * body_length * np.abs(np.sin(2 * np.pi * frequency * times)) if speed > 0 else 0.0
    rotation = so3_exp(np.stack([np.zeros_like(heading), heading, np.zeros_like(heading)], axis=-1))
    return make_transform(rotation, position)


def motion_phase(motion: str, times: np.ndarray, phase0: float) -> np.ndarray:
    return 2 * np.pi * GAIT[motion][0] * times + phase0
