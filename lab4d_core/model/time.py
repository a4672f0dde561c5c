"""Per-frame time codes, so that bone motions and dense warps vary smoothly in time.

Frames are indexed globally over the kept (filter-passed) frames of all videos. Each
frame's time is its *raw* frame id normalised per video and scaled by the longest
video, as lab4d does, so dropped frames leave gaps in time instead of squeezing the
video, and one unit of time means the same number of frames in every video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lab4d_core.model.encodings import FourierEncoding
from lab4d_core.model.mlp import MLP


@dataclass(frozen=True, eq=False)
class FrameInfo:
    """Which video each kept frame belongs to and where it lies in time."""

    video_of_frame: Tensor
    """(F,) int64: global kept frame -> video index."""
    time_of_frame: Tensor
    """(F,) float32 in [-1, 1]: raw frame id centred per video, scaled by the longest video."""
    num_videos: int
    max_length: int
    """Raw frame count of the longest video; sets the number of time frequencies."""

    @property
    def num_frames(self) -> int:
        return int(self.video_of_frame.shape[0])

    @classmethod
    def from_counts(cls, kept_ids_per_video: list[np.ndarray], raw_counts: list[int]) -> FrameInfo:
        """Build from each video's kept raw frame ids and its raw frame count."""
        if len(kept_ids_per_video) != len(raw_counts):
            raise ValueError(f"{len(kept_ids_per_video)} kept-id lists for {len(raw_counts)} videos")
        max_length = max(raw_counts)
        half_span = max(max_length - 1, 1) / 2.0
        videos, times = [], []
        for video, (kept, length) in enumerate(zip(kept_ids_per_video, raw_counts)):
            kept = np.asarray(kept, dtype=np.float64)
            if kept.size and (kept.min() < 0 or kept.max() >= length):
                raise ValueError(f"video {video}: kept frame ids must lie in [0, {length})")
            videos.append(np.full(kept.shape, video, dtype=np.int64))
            times.append((kept - (length - 1) / 2.0) / half_span)
        return cls(
            video_of_frame=torch.from_numpy(np.concatenate(videos)),
            time_of_frame=torch.from_numpy(np.concatenate(times).astype(np.float32)),
            num_videos=len(raw_counts),
            max_length=max_length,
        )


def default_time_freqs(max_length: int) -> int:
    """lab4d's num_freq_t = round(log2(maxlen / 64) + 6), at least 2 so short clips still vary in time."""
    return max(2, round(math.log2(max_length / 64) + 6))


class TimeEmbedding(nn.Module):
    """Frame index -> code: Fourier features of time plus a learned per-video code, through a 2-layer MLP."""

    def __init__(
        self,
        frame_info: FrameInfo,
        out_dim: int = 64,
        num_freqs: int | None = None,
        video_dim: int = 8,
        width: int = 128,
    ) -> None:
        super().__init__()
        self.num_freqs = default_time_freqs(frame_info.max_length) if num_freqs is None else num_freqs
        self.register_buffer("time_of_frame", frame_info.time_of_frame.clone())
        self.register_buffer("video_of_frame", frame_info.video_of_frame.clone())
        self.video_code = nn.Embedding(frame_info.num_videos, video_dim)
        # Small video codes so the time features dominate until the videos' codes are learned.
        nn.init.normal_(self.video_code.weight, std=0.1)
        self.encoding = FourierEncoding(1, self.num_freqs)
        self.net = MLP(self.encoding.out_dim, out_dim, hidden=width, depth=1, activation="relu", cond_dim=video_dim)
        self.out_dim = out_dim

    def forward(self, frame: Tensor) -> Tensor:
        """(...,) global kept-frame indices -> (..., out_dim)."""
        t = self.encoding(self.time_of_frame[frame][..., None])
        return self.net(t, self.video_code(self.video_of_frame[frame]))
