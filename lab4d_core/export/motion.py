"""Motion of one video: root pose and bone poses per frame, and the mesh carried through them.

``motion.json`` keeps lab4d's keys: ``field2cam`` (T, 4, 4) object -> camera per frame and
``t_articulation`` (T, B, 4, 4) bone -> object per frame, plus ``t_articulation_rest`` (B, 4, 4),
the bones at rest, so a canonical point moves with bone b as
``t_articulation[t, b] @ inv(t_articulation_rest[b])``; and ``up_axis`` (3,), the object's up
direction in object coordinates (``DynamicModel.up_axis``), on which the glb stands. A skeleton model
(``skel-*``) adds lab4d's ``joint_so3`` (T, J, 3), each joint's local rotation per frame, and ``skeleton``
(its name, joint names and parents); its bones are then the tree's joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lab4d_core.model.deform import ComposedDeformation, SkeletonDeformation
from lab4d_core.model.dynamic import DynamicModel


@dataclass
class Motion:
    frame_ids: np.ndarray
    """(T,) raw frame ids in the video (names of its frames)."""
    field2cam: np.ndarray
    """(T, 4, 4) object -> camera transforms."""
    t_articulation: np.ndarray
    """(T, B, 4, 4) bone -> object transforms."""
    t_articulation_rest: np.ndarray
    """(B, 4, 4) bone -> canonical transforms at rest."""
    up_axis: np.ndarray
    """(3,) unit up direction in object coordinates."""
    fps: float = 30.0
    joint_so3: np.ndarray | None = None
    """(T, J, 3) local joint rotations (axis-angle) of a skeleton model, else None."""
    parents: tuple[int, ...] | None = None
    """Parent of each joint of a skeleton model (-1: the root), else None: bones without a hierarchy."""
    joint_names: tuple[str, ...] | None = None
    skeleton: str | None = None

    def to_json(self) -> dict:
        out = {
            "frame_ids": self.frame_ids.tolist(),
            "fps": self.fps,
            "field2cam": _rounded(self.field2cam),
            "t_articulation": _rounded(self.t_articulation),
            "t_articulation_rest": _rounded(self.t_articulation_rest),
            "up_axis": _rounded(self.up_axis),
        }
        if self.joint_so3 is not None:
            out["joint_so3"] = _rounded(self.joint_so3)
            out["skeleton"] = {
                "name": self.skeleton,
                "joint_names": list(self.joint_names),
                "parents": list(self.parents),
            }
        return out


def _rounded(array: np.ndarray) -> list:
    return np.round(array.astype(np.float64), 7).tolist()


@torch.no_grad()
def video_motion(model: DynamicModel, frames: torch.Tensor, frame_ids: np.ndarray, inst: int) -> Motion:
    """Motion at model frames ``frames`` (T,) of one video whose raw ids are ``frame_ids``, on instance
    ``inst``'s bones (a skeleton's bone lengths are the instance's)."""
    insts = torch.full_like(frames, inst)
    tree = skeleton_of(model)
    return Motion(
        frame_ids=np.asarray(frame_ids),
        field2cam=model.root.matrices(frames).cpu().numpy(),
        t_articulation=model.deform.bone_frames(frames, insts).cpu().numpy(),
        t_articulation_rest=model.deform.bone_frames(None, insts[:1]).cpu().numpy(),
        up_axis=model.up_axis.cpu().numpy(),
        joint_so3=None if tree is None else tree.joint_so3(frames).cpu().numpy(),
        parents=None if tree is None else tuple(tree.parents),
        joint_names=None if tree is None else tuple(tree.skeleton.joint_names),
        skeleton=None if tree is None else tree.skeleton.name,
    )


def skeleton_of(model: DynamicModel) -> SkeletonDeformation | None:
    """The model's kinematic tree (skel-*, comp_skel-*), or None for deformations without one."""
    deform = model.deform
    if isinstance(deform, ComposedDeformation):
        return deform.skeleton
    return deform if isinstance(deform, SkeletonDeformation) else None


@torch.no_grad()
def posed_vertices(model: DynamicModel, vertices: np.ndarray, frames: torch.Tensor, inst: int) -> np.ndarray:
    """(T, V, 3) camera-space positions of canonical vertices (V, 3) at each of ``frames`` (T,)."""
    device = model.bound.device
    points = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    out = []
    for frame in frames.to(device):
        frame = frame.reshape(1)
        warped = model.deform.warp_to_frame(points[None], frame, torch.full_like(frame, inst))[0]
        rotation, translation = model.root(frame)
        out.append((warped @ rotation[0].T + translation[0]).cpu().numpy())
    return np.stack(out).astype(np.float32)
