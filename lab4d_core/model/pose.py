"""Cameras of the model: a root pose (object -> camera) per frame and learnable intrinsics per video."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lab4d_core.geometry.rotation import rigid_matrix, so3_exp


class RootPose(nn.Module):
    """Object-to-camera pose of every frame: an initial estimate times a learned residual.

    The residual is a per-frame se(3) increment applied in the camera frame,
    zero at the start, so training begins exactly at the dataset's cameras
    (``Cameras/01-canonical.npy``) and can correct noisy ones. ``scale`` (the object's size in
    scene units) makes translations comparable with rotation angles in :meth:`prior_distance`.
    """

    def __init__(self, initial: Tensor, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.register_buffer("base_rotation", initial[:, :3, :3].float().clone())
        self.register_buffer("base_translation", initial[:, :3, 3].float().clone())
        self.residual = nn.Parameter(torch.zeros(len(initial), 6))

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """(N,) frame ids -> rotation (N, 3, 3) and translation (N, 3): x_cam = R x_obj + t."""
        residual = self.residual[frame]
        rotation = so3_exp(residual[:, :3]) @ self.base_rotation[frame]
        return rotation, self.base_translation[frame] + residual[:, 3:]

    def prior_distance(self, frame: Tensor) -> Tensor:
        """(N,) distance of frames' poses from their initial ones: rotation angle (radians) plus
        translation in units of ``scale`` (lab4d's camera prior, ``reg_cam_prior``)."""
        residual = self.residual[frame]
        # The residuals start at exactly zero, where the derivative of a plain norm is 0/0 (NaN).
        angle = (residual[:, :3].square().sum(-1) + 1e-12).sqrt()
        shift = (residual[:, 3:].square().sum(-1) + 1e-12).sqrt() / self.scale
        return angle + shift

    def matrices(self, frame: Tensor) -> Tensor:
        return rigid_matrix(*self(frame))


class Intrinsics(nn.Module):
    """Raw-frame intrinsics per video, learned, mapped to each frame's crop.

    lab4d learns a log-focal and principal point per video from the config's
    ``ks``; the arrays are crops, so each frame's array intrinsics follow from
    its ``crop2raw`` (array pixel -> raw pixel: raw = a * x + b).
    """

    def __init__(self, ks: Tensor, video_of_frame: Tensor, crop2raw: Tensor):
        super().__init__()
        self.log_focal = nn.Parameter(ks[:, :2].float().log().clone())
        self.principal = nn.Parameter(ks[:, 2:].float().clone())
        self.register_buffer("video_of_frame", video_of_frame.long().clone())
        self.register_buffer("crop2raw", crop2raw.float().clone())

    def raw(self) -> Tensor:
        """(V, 4) fx, fy, cx, cy of the raw frames."""
        return torch.cat([self.log_focal.exp(), self.principal], dim=-1)

    def forward(self, frame: Tensor) -> Tensor:
        """(N,) frame ids -> (N, 4) intrinsics of those frames' arrays."""
        raw = self.raw()[self.video_of_frame[frame]]
        scale, offset = self.crop2raw[frame, :2], self.crop2raw[frame, 2:]
        return torch.cat([raw[:, :2] / scale, (raw[:, 2:] - offset) / scale], dim=-1)
