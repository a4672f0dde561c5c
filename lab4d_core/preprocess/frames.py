"""A user's video as frames: decoding, skipping a black lead-in, and lab4d's flow-based frame filter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from lab4d_core.errors import Lab4dError

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FOLDER_FPS = 30.0
"""Frame rate assumed for a folder of frames (lab4d's extract_frames targets 30 fps)."""

BLACK_MEAN = 4.0
BLACK_BRIGHT_LEVEL = 32
BLACK_BRIGHT_FRACTION = 1e-3
"""A frame is black when its mean intensity (0-255) is below :data:`BLACK_MEAN` and fewer than this fraction
of its pixels exceed :data:`BLACK_BRIGHT_LEVEL`. lab4d asks for every pixel to be exactly 0, but decoded
black frames carry compression noise."""

FILTER_AREA = 300 * 300
"""lab4d's frame filter runs its flow at about 300^2 pixels, shrinking or enlarging the frames to it (a small
moving object in a small video needs the enlargement for its motion to be measured in full)."""
FILTER_PERCENTILE = 99.9
"""lab4d's filter takes the maximum of VCN+'s smooth flow. DIS can leave a few wild vectors (untextured
areas, occlusions) that would decide alone, so the 99.9th percentile stands in for the maximum: on
cat-pikachu-7 it keeps 91 of 212 frames, the maximum 97, the 99th percentile 77 (and would miss an object
covering less than 1% of the frame); on a still frame re-encoded as jpeg the maximum is 0.008."""


def _input_hint() -> str:
    return f"pass a video ({'/'.join(s[1:] for s in VIDEO_SUFFIXES)}) or a folder of {'/'.join(IMAGE_SUFFIXES)} frames"


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """(N, H, W, 3) uint8 RGB frames and the frame rate of a video file or a folder of frames.

    A folder's images are read in name order, at :data:`FOLDER_FPS`. Videos are decoded by OpenCV's bundled
    FFmpeg (no system ffmpeg needed), which applies the rotation phones record in the metadata.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path), FOLDER_FPS
    if not path.is_file():
        raise Lab4dError(f"{path}: not found; {_input_hint()}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise Lab4dError(f"{path}: cannot be decoded as a video; {_input_hint()}")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise Lab4dError(f"{path}: the video has no frames that can be decoded; re-encode it (e.g. to H.264 mp4)")
    return np.stack(frames), float(fps) if fps and np.isfinite(fps) and fps > 0 else FOLDER_FPS


def _read_folder(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise Lab4dError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder; {_input_hint()}")
    frames = []
    for file in files:
        try:
            with Image.open(file) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as error:
            raise Lab4dError(f"{file}: cannot be read as an image ({error}); replace or remove it") from None
        if frames[-1].shape != frames[0].shape:
            raise Lab4dError(
                f"{file}: {frames[-1].shape[1]}x{frames[-1].shape[0]} pixels, but {files[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames of a folder must have one size"
            )
    return np.stack(frames)


def first_content_frame(frames: np.ndarray) -> int | None:
    """Index of the first frame that is not black, or None when all are (the caller names the file).

    lab4d's extract_frames skips leading black frames (a camera app's fade-in).
    """
    for index, frame in enumerate(frames):
        small = frame[::4, ::4]
        if small.mean() >= BLACK_MEAN or (small > BLACK_BRIGHT_LEVEL).mean() >= BLACK_BRIGHT_FRACTION:
            return index
    return None


def _robust_max(flow: np.ndarray) -> float:
    """The largest flow length, divided by the image size, of pixels that stay in view.

    Pixels that leave the frame have nothing to match, and DIS extrapolates them (21 px on a 12 px pan).
    """
    height, width = flow.shape[:2]
    landing = np.indices((height, width))[::-1].transpose(1, 2, 0) + flow
    in_view = (landing >= 0).all(axis=-1) & (landing[..., 0] <= width - 1) & (landing[..., 1] <= height - 1)
    if not in_view.any():
        return np.inf
    magnitude = np.hypot(flow[..., 0] / width, flow[..., 1] / height)[in_view]
    return float(np.percentile(magnitude, FILTER_PERCENTILE))


def filter_frames(frames: np.ndarray, threshold: float = 0.05, max_frames: int = 500) -> np.ndarray:
    """Raw ids of the frames lab4d's flow filter keeps: increasing, the first 0, at most ``max_frames``.

    lab4d (``vcnplus/frame_filter.py``) keeps frame 0, then every frame whose flow from the last kept frame,
    computed at about 300^2 pixels and divided by the image width (x) and height (y), has a maximum length
    above ``threshold``: a still camera on a still object keeps only frame 0. Here the flow is DIS and the
    maximum a 99.9th percentile (:data:`FILTER_PERCENTILE`). lab4d stops at ``max_frames`` kept frames; here
    the kept frames of the whole video are thinned evenly to ``max_frames`` instead. lab4d drops a video that
    keeps 8 frames or fewer ("lack of motion"); that is the caller's decision. A ``threshold`` of 0 keeps every
    frame (thinned to ``max_frames``).
    """
    if threshold <= 0:
        return np.round(np.linspace(0, len(frames) - 1, min(len(frames), max_frames))).astype(np.int64)
    height, width = frames.shape[1:3]
    factor = np.sqrt(FILTER_AREA / (height * width))
    size = (max(int(round(width * factor)), 8), max(int(round(height * factor)), 8))
    small = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames]
    kept = [0]
    for index in range(1, len(frames)):
        flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(small[kept[-1]], small[index], None)
        if _robust_max(flow) > threshold:
            kept.append(index)
    kept = np.asarray(kept, dtype=np.int64)
    if len(kept) > max_frames:
        kept = kept[np.round(np.linspace(0, len(kept) - 1, max_frames)).astype(np.int64)]
    return kept
