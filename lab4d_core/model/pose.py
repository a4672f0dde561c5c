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

    def __init__(
        self,
        initial: Tensor,
        scale: float = 1.0,
        pairs: Tensor | None = None,
        pair_valid: Tensor | None = None,
        estimated: Tensor | None = None,
    ):
        super().__init__()
        self.scale = scale
        self.register_buffer("base_rotation", initial[:, :3, :3].float().clone())
        self.register_buffer("base_translation", initial[:, :3, 3].float().clone())
        self.residual = nn.Parameter(torch.zeros(len(initial), 6))
        # Measured from the data each time the model is built, so not part of a checkpoint.
        count = len(initial)
        pairs = torch.eye(3).expand(count, 3, 3) if pairs is None else pairs
        pair_valid = torch.zeros(count, dtype=torch.bool) if pair_valid is None else pair_valid
        self.register_buffer("pairs", pairs.float().clone(), persistent=False)
        self.register_buffer("pair_valid", pair_valid.bool().clone(), persistent=False)
        estimated = torch.zeros(count, dtype=torch.bool) if estimated is None else estimated
        self.register_buffer("estimated", estimated.bool().clone(), persistent=False)

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """(N,) frame ids -> rotation (N, 3, 3) and translation (N, 3): x_cam = R x_obj + t."""
        residual = self.residual[frame]
        rotation = so3_exp(residual[:, :3]) @ self.base_rotation[frame]
        return rotation, self.base_translation[frame] + residual[:, 3:]

    def prior_distance(self, frame: Tensor, estimate_weight: float = 1.0) -> Tensor:
        """(N,) distance of frames' poses from their initial ones: rotation angle (radians) plus
        translation in units of ``scale`` (lab4d's camera prior, ``reg_cam_prior``), times
        ``estimate_weight`` for frames whose initial poses are only an estimate (``estimated``)."""
        residual = self.residual[frame]
        # The residuals start at exactly zero, where the derivative of a plain norm is 0/0 (NaN).
        angle = (residual[:, :3].square().sum(-1) + 1e-12).sqrt()
        shift = (residual[:, 3:].square().sum(-1) + 1e-12).sqrt() / self.scale
        weight = torch.where(self.estimated[frame], estimate_weight, 1.0)
        return (angle + shift) * weight

    def pair_disagreement(self) -> Tensor:
        """Mean squared chordal distance (about twice the squared angle, radians) between each measured frame
        pair's rotation in the trajectory (frame t -> t + 1, camera coordinates) and the one optical flow and
        depth measured (``pairs``); zero when no pair was measured."""
        rotation = so3_exp(self.residual[:, :3]) @ self.base_rotation
        turn = rotation[1:] @ rotation[:-1].transpose(1, 2)
        valid = self.pair_valid[:-1]
        error = (turn - self.pairs[:-1]).square().sum((-1, -2))
        return (error * valid).sum() / valid.sum().clamp(min=1)

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
