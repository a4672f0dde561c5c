"""Your own videos -> lab4d's processed layout, one stage at a time, on the CPU.

Each video has a work folder (``data/<dataset>/preprocess/<video>/``) that the stages fill in order:

- ``frames``: decode, skip leading black frames, lab4d's flow-based frame filter -> ``frames/`` (every frame as
  a jpg, as lab4d's ``JPEGImagesRaw``, plus ``info.json``: which frames were kept, the frame rate, ...);
- ``masks``: one segmenter (:mod:`lab4d_core.preprocess.masks`) on the kept frames -> ``masks.npz``;
- ``crops``: lab4d's ``crop-<R>`` arrays around the masks -> ``crop/``;
- ``flow``: optical flow, forward and backward at the deltas 1, 2, 4, 8, in the crop arrays -> ``flow/``;
- ``cameras``: background cameras (``00``) and any viewpoint keyframes set by hand -> ``cameras.npz``.

Then :func:`gather` writes ``database/`` (lab4d's layout, the videos in order) and ``manifest.json``. A new
video preprocesses only itself; the gather is a copy. Every output is written to a temporary name and renamed
when complete, so an interrupted stage leaves nothing that a rerun would take as done.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lab4d_core import __version__
from lab4d_core.config import SourceConfig, to_dict
from lab4d_core.data.database import Database, PrefixArrays, Video, VideoRecord, write_config, write_video
from lab4d_core.errors import Lab4dError
from lab4d_core.utils.io import atomic_write, atomic_write_text, replace_dir, staged_dir
from lab4d_core.utils.progress import progress

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STAGES = ("frames", "masks", "crops", "flow", "cameras")
DEFAULT_TRAIN_RES = 256
"""lab4d's train_res: the resolution of the arrays written when the source does not say."""
MIN_FRAMES = 9
"""lab4d drops videos with fewer kept frames."""
JPEG_QUALITY = 95


# ---------------------------------------------------------------------------
# Which videos


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def _video_name(path: Path) -> str:
    """A video's name: its file or folder name without extension, in characters safe in paths and rule names."""
    stem = path.stem if path.is_file() else path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def find_videos(source: SourceConfig) -> dict[str, Path]:
    """{name: path} of every video a videos source names, in order (sorted within a folder).

    A folder is one video when it holds frames (jpg/png), else each video file and each folder of frames
    inside it is one video.
    """
    entries = source.videos if isinstance(source.videos, list) else [source.videos]
    found: dict[str, Path] = {}
    for entry in entries:
        path = Path(entry)
        if not path.exists():
            raise Lab4dError(f"source.videos: {path} does not exist; give a video file, a folder of videos or frames")
        if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
            raise Lab4dError(f"source.videos: {path} is not a video ({', '.join(VIDEO_SUFFIXES)})")
        if path.is_file() or _is_frame_folder(path):
            candidates = [path]
        else:
            candidates = sorted(
                p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() or _is_frame_folder(p)
            )
            if not candidates:
                raise Lab4dError(
                    f"source.videos: {path} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no frames "
                    f"({', '.join(IMAGE_SUFFIXES)}); put the videos there or name them one by one"
                )
        for candidate in candidates:
            name = _video_name(candidate)
            if name in found:
                raise Lab4dError(
                    f"source.videos: {found[name]} and {candidate} have the same name {name!r}; rename one"
                )
            found[name] = candidate
    return found


def _for_video(items: list, name: str, names: list[str], key: str) -> list:
    """The prompt or keyframe entries of video ``name`` (``video`` may be left out when there is one video)."""
    chosen = []
    for k, item in enumerate(items):
        if item.video is None and len(names) > 1:
            raise Lab4dError(
                f"source.{key}[{k}]: name its video (video: NAME) since there are {len(names)}: {', '.join(names)}"
            )
        if item.video is not None and item.video not in names:
            raise Lab4dError(f"source.{key}[{k}]: no video named {item.video!r}; the videos are {', '.join(names)}")
        if item.video in (None, name):
            chosen.append(item)
    return chosen


def stage_settings(source: SourceConfig, name: str, stage: str) -> dict:
    """The settings that decide one stage's output for one video (a Snakemake params value, so that editing
    another video's prompt, or adding a video, reruns nothing of this one)."""
    videos = find_videos(source)
    names = list(videos)
    if stage == "frames":
        return {"video": str(videos[name]), "max_frames": source.max_frames, "frame_filter": source.frame_filter}
    if stage == "masks":
        settings = {"method": source.mask_method, "category": source.category}
        if source.mask_method == "given":
            settings["masks"] = str(_masks_dir(source, name, names))
        if source.mask_method == "track":
            settings["prompt"] = [to_dict(p) for p in _for_video(source.prompt, name, names, "prompt")]
        if source.mask_method == "onnx":
            settings["onnx"] = to_dict(source.onnx)
        return settings
    if stage in ("crops", "flow"):
        return {"train_res": source.train_res or DEFAULT_TRAIN_RES}
    if stage == "cameras":
        return {"keyframes": [to_dict(c) for c in _for_video(source.cameras, name, names, "cameras")]}
    raise Lab4dError(f"unknown preprocessing stage {stage!r}; the stages are {', '.join(STAGES)}")


def _masks_dir(source: SourceConfig, name: str, names: list[str]) -> Path:
    root = Path(source.masks)
    if not root.is_dir():
        raise Lab4dError(f"source.masks: {root} is not a folder; give the folder of your masks")
    if (root / name).is_dir():
        return root / name
    if len(names) == 1:
        return root
    raise Lab4dError(
        f"source.masks: {root} has no folder {name!r} for video {name}; with several videos, put each video's masks "
        "in a sub-folder named as the video"
    )


# ---------------------------------------------------------------------------
# Stages


@dataclass
class FramesInfo:
    """``frames/info.json``: what the frames stage decided."""

    source: str
    """The video it came from."""
    skipped: int
    """Leading black frames skipped: raw frame 0 is the video's frame ``skipped``."""
    num_raw: int
    """Frames written (lab4d's JPEGImagesRaw)."""
    kept: list[int]
    """Raw ids the frame filter kept (lab4d's JPEGImages)."""
    fps: float
    height: int
    width: int

    @property
    def ks(self) -> tuple[float, float, float, float]:
        """lab4d's write_config: focal max(H, W), principal point at the centre."""
        focal = float(max(self.height, self.width))
        return focal, focal, self.width / 2, self.height / 2


def read_info(work: Path) -> FramesInfo:
    path = work / "frames" / "info.json"
    if not path.is_file():
        raise Lab4dError(f"{path} not found: run the frames stage first (lab4d preprocess frames)")
    return FramesInfo(**json.loads(path.read_text()))


def load_frames(work: Path, raw_ids: list[int] | np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 frames ``raw_ids`` as the frames stage wrote them."""
    return np.stack([np.asarray(Image.open(work / "frames" / f"{int(i):05d}.jpg").convert("RGB")) for i in raw_ids])


def frames_stage(video: Path, work: Path, max_frames: int = 500, frame_filter: float = 0.05) -> FramesInfo:
    from lab4d_core.preprocess.frames import filter_frames, first_content_frame, read_video

    frames, fps = read_video(video)
    first = first_content_frame(frames)
    if first is None:
        raise Lab4dError(f"{video}: every frame is black; check the file (or the lens cap) and replace it")
    frames = frames[first:]
    kept = np.asarray(filter_frames(frames, threshold=frame_filter, max_frames=max_frames))
    if len(kept) < MIN_FRAMES:
        raise Lab4dError(
            f"{video}: only {len(kept)} frames move enough to keep (lab4d's frame filter; {MIN_FRAMES} needed): "
            "the object or the camera barely moves; use a longer clip or remove it from source.videos"
        )
    info = FramesInfo(
        str(video), int(first), len(frames), [int(i) for i in kept], float(fps), frames.shape[1], frames.shape[2]
    )
    with staged_dir(work / "frames") as folder:
        for raw_id, frame in enumerate(progress(frames, desc=f"frames {video.name}", unit="frame")):
            Image.fromarray(frame).save(folder / f"{raw_id:05d}.jpg", quality=JPEG_QUALITY)
        atomic_write_text(folder / "info.json", json.dumps(info.__dict__, indent=1))
    return info


TRACK_STEPS_BETWEEN = 3
"""The ``track`` segmenter also follows the object through at most this many frames between two kept ones (all of
them where the gap is that short): flow over one frame errs less than over the jump between kept frames, and a
prompt box drawn on a dropped frame is used on that frame. Masks of the kept frames against the truth: demo-quad
0.923 -> 0.930; horsejump from one box 0.783 -> 0.771 (on the original PNGs instead of the stage's JPEGs 0.751 ->
0.827: the tracker's figures move by several hundredths with the input's encoding); the model trained on them
0.713 -> 0.766 against the DAVIS masks."""


TRACK_MOST_FRAMES = 1000
"""At most this many frames go to the ``track`` segmenter (it holds them at full resolution): fewer frames between
kept ones where a long video would pass it (500 kept 1080p frames alone are 3 GB)."""


def tracking_frames(
    kept: np.ndarray, prompted: list[int], steps_between: int = TRACK_STEPS_BETWEEN, most: int = TRACK_MOST_FRAMES
) -> np.ndarray:
    """Raw ids the ``track`` segmenter runs through: the kept frames, the frames with a prompt box, and up to
    ``steps_between`` evenly spaced frames in each gap between consecutive ones (all of a short gap's), fewer
    where that would make more than ``most`` frames."""
    anchors = np.unique(np.concatenate([np.asarray(kept, int), np.asarray(prompted, int)]))
    for steps in range(steps_between, -1, -1):
        chosen = [anchors]
        for a, b in zip(anchors, anchors[1:]):
            inside = np.arange(a + 1, b)
            if len(inside) > steps:
                inside = np.unique(np.linspace(a, b, steps + 2).round().astype(int)[1:-1])
            chosen.append(inside)
        frames = np.unique(np.concatenate(chosen))
        if len(frames) <= most:
            break
    return frames


def masks_stage(source: SourceConfig, name: str, work: Path) -> np.ndarray:
    from lab4d_core.preprocess.masks import MaskRequest, segment

    info = read_info(work)
    names = list(find_videos(source))
    kept = np.asarray(info.kept)
    method = source.mask_method
    frame_ids, prompts = kept, []
    if method == "track":
        video_prompts = _for_video(source.prompt, name, names, "prompt")
        if not video_prompts:
            raise Lab4dError(
                f"source.prompt: no box for video {name!r}; the track segmenter needs one "
                f"({{video: {name}, frame: 0, box: [x0, y0, x1, y1]}})"
            )
        for prompt in video_prompts:
            raw = prompt.frame - info.skipped
            if raw < 0 or raw >= info.num_raw:
                raise Lab4dError(
                    f"source.prompt: frame {prompt.frame} of {name} is not a usable frame (the video's frames "
                    f"{info.skipped}..{info.skipped + info.num_raw - 1} have content); draw the box on one of them"
                )
            prompts.append((raw, *map(float, prompt.box)))
        frame_ids = tracking_frames(kept, [raw for raw, *_ in prompts])
    frames = load_frames(work, frame_ids)
    request = MaskRequest(frames=frames, raw_ids=frame_ids + info.skipped, source=info.source, category=source.category)
    if method == "given":
        request.masks_dir = _masks_dir(source, name, names)
        request.num_frames = info.skipped + info.num_raw
    elif method == "track":
        position = {int(raw): index for index, raw in enumerate(frame_ids)}
        request.prompts = [(position[raw], *box) for raw, *box in prompts]
    elif method == "onnx":
        request.onnx_model = Path(source.onnx.model)
        request.onnx_size = tuple(source.onnx.size)
        request.onnx_mean = tuple(source.onnx.mean)
        request.onnx_std = tuple(source.onnx.std)
    with progress(total=len(frames), desc=f"masks {name} ({method})", unit="frame") as bar:
        masks = segment(method, request, bar)
    masks = masks[np.searchsorted(frame_ids, kept)]
    lost = int((masks.reshape(len(masks), -1) < 0).all(1).sum())
    if lost:
        warnings.warn(
            f"{name}: the object was not found in {lost} of {len(masks)} frames; they are left out of training",
            stacklevel=2,
        )
    atomic_write(work / "masks.npz", lambda f: np.savez_compressed(f, masks=masks.astype(np.int8)))
    return masks


def read_masks(work: Path) -> np.ndarray:
    path = work / "masks.npz"
    if not path.is_file():
        raise Lab4dError(f"{path} not found: run the masks stage first (lab4d preprocess masks)")
    with np.load(path) as data:
        return data["masks"]


def detection_boxes(masks: np.ndarray, train_res: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) crop2raw of each frame (lab4d's box around the mask ×1.2) and (N,) is_detected. A frame where the
    object was lost takes the crop of the nearest frame where it was found, so its arrays still frame it."""
    from lab4d_core.preprocess.crop import crop_params

    detected = (masks == 1).reshape(len(masks), -1).any(1)
    if not detected.any():
        raise Lab4dError("no frame has the object; nothing to crop")
    found = np.flatnonzero(detected)
    crop2raw = np.zeros((len(masks), 4))
    for t in range(len(masks)):
        source = t if detected[t] else found[np.abs(found - t).argmin()]
        crop2raw[t] = crop_params(masks[source] == 1, train_res, full=False)
    return crop2raw, detected


CROP_FILES = ("rgb", "mask", "vis2d", "crop2raw", "is_detected")


def crops_stage(work: Path, train_res: int) -> None:
    from lab4d_core.preprocess.crop import crop_image, inside_raw

    info = read_info(work)
    masks = read_masks(work)
    crop2raw, detected = detection_boxes(masks, train_res)
    rgb = np.zeros((len(masks), train_res, train_res, 3), np.float16)
    mask = np.zeros((len(masks), train_res, train_res), bool)
    vis2d = np.zeros_like(mask)
    bar = progress(info.kept, desc=f"crops {Path(info.source).name}", unit="frame")
    for t, raw_id in enumerate(bar):
        frame = load_frames(work, [raw_id])[0]
        rgb[t] = crop_image(frame.astype(np.float32) / 255.0, crop2raw[t], train_res)
        mask[t] = crop_image((masks[t] == 1).astype(np.uint8), crop2raw[t], train_res, nearest=True) > 0
        vis2d[t] = inside_raw(crop2raw[t], train_res, (info.height, info.width))
    arrays = {"rgb": rgb * vis2d[..., None], "mask": mask & vis2d, "vis2d": vis2d, "crop2raw": crop2raw}
    with staged_dir(work / "crop") as folder:
        for key, value in {**arrays, "is_detected": detected}.items():
            np.save(folder / f"{key}.npy", value)


def read_crops(work: Path) -> dict[str, np.ndarray]:
    folder = work / "crop"
    if not folder.is_dir():
        raise Lab4dError(f"{folder} not found: run the crops stage first (lab4d preprocess crops)")
    return {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in CROP_FILES}


def flow_stage(work: Path, train_res: int) -> None:
    from lab4d_core.preprocess.flow import FLOW_DELTAS, crop_flows, num_flow_pairs

    info = read_info(work)
    crop2raw = np.asarray(read_crops(work)["crop2raw"])
    if _crop_resolution(work) != train_res:
        raise Lab4dError(f"{work / 'crop'} was made at another resolution than {train_res}: run the crops stage again")
    frames = load_frames(work, info.kept)
    with progress(total=num_flow_pairs(len(frames)), desc=f"flow {Path(info.source).name}", unit="pair") as bar:
        forward, backward = crop_flows(frames, crop2raw, train_res, FLOW_DELTAS, bar)
    with staged_dir(work / "flow") as folder:
        for direction, flows in (("fw", forward), ("bw", backward)):
            for delta, value in flows.items():
                np.save(folder / f"{direction}-{delta}.npy", value.astype(np.float16))


def _crop_resolution(work: Path) -> int:
    return int(np.load(work / "crop" / "rgb.npy", mmap_mode="r").shape[1])


def read_flows(work: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    from lab4d_core.preprocess.flow import FLOW_DELTAS

    folder = work / "flow"
    if not folder.is_dir():
        raise Lab4dError(f"{folder} not found: run the flow stage first (lab4d preprocess flow)")
    return tuple(
        {d: np.load(folder / f"{direction}-{d}.npy", mmap_mode="r") for d in FLOW_DELTAS} for direction in ("fw", "bw")
    )


def cameras_stage(source: SourceConfig, name: str, work: Path) -> None:
    from lab4d_core.preprocess.cameras import background_cameras, manual_root_rotations, num_pairs

    info = read_info(work)
    masks = read_masks(work)
    frames = load_frames(work, info.kept)
    with progress(total=num_pairs(len(frames)), desc=f"cameras {name}", unit="pair") as bar:
        cameras = {"00": background_cameras(frames, masks, np.asarray(info.ks), bar)}
    keyframes = _for_video(source.cameras, name, list(find_videos(source)), "cameras")
    if keyframes:
        kept = np.asarray(info.kept)
        frames_of = [int(np.abs(kept - (k.frame - info.skipped)).argmin()) for k in keyframes]
        # The keyframe's video was used to pick it; the rotations take only the keyframe's own keys.
        cameras["manual"] = manual_root_rotations(
            [
                {"azimuth": k.azimuth, "elevation": k.elevation, "roll": k.roll, "frame": f}
                for k, f in zip(keyframes, frames_of)
            ],
            len(kept),
        )
    atomic_write(work / "cameras.npz", lambda f: np.savez(f, **cameras))


def run_stage(stage: str, source: SourceConfig, name: str, work: Path) -> None:
    """Run one stage of video ``name`` in its work folder ``work``."""
    videos = find_videos(source)
    if name not in videos:
        raise Lab4dError(f"no video named {name!r} in source.videos; the videos are {', '.join(videos)}")
    train_res = source.train_res or DEFAULT_TRAIN_RES
    if stage == "frames":
        frames_stage(videos[name], work, source.max_frames, source.frame_filter)
    elif stage == "masks":
        masks_stage(source, name, work)
    elif stage == "crops":
        crops_stage(work, train_res)
    elif stage == "flow":
        flow_stage(work, train_res)
    elif stage == "cameras":
        cameras_stage(source, name, work)
    else:
        raise Lab4dError(f"unknown preprocessing stage {stage!r}; the stages are {', '.join(STAGES)}")


# ---------------------------------------------------------------------------
# Gather


def gather(source: SourceConfig, collection: str, works: dict[str, Path], out: Path) -> dict:
    """Write ``out/database`` (lab4d's layout; videos ``<collection>-%04d`` in the order of ``works``) and
    ``out/manifest.json`` from the videos' work folders."""
    out = Path(out)
    train_res = _crop_resolution(next(iter(works.values())))
    partial = out / f".gather.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    records = []
    try:
        for k, (_name, work) in enumerate(progress(works.items(), desc=f"gather {collection}", unit="video")):
            if _crop_resolution(work) != train_res:
                raise Lab4dError(f"{work / 'crop'}: made at another resolution than the others; run its crops again")
            record = _record(f"{collection}-{k:04d}", work)
            write_video(partial, record)
            records.append((record.seqname, record.ks, record.shape))
        write_config(partial, collection, records)
        database = Database(partial, collection, resolution=train_res, prefixes=("crop",))
        for video, work in zip(database.videos, works.values()):
            _write_root_poses(video, work)
        replace_dir(partial / "database", out / "database")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    manifest = {
        "root": ".",
        "collection": collection,
        "videos": [seqname for seqname, _, _ in records],
        "num_frames": [len(read_info(work).kept) for work in works.values()],
        "train_res": train_res,
        "prefixes": ["crop"],
        "ground_truth": False,
        "source": {"videos": {name: str(work) for name, work in works.items()}, **_source_summary(source)},
        "lab4d_core": __version__,
        # A rebuilt dataset must not resume a model trained on the old one (training keys runs by the manifest).
        "created": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def _write_root_poses(video: Video, work: Path) -> None:
    """lab4d's ``01-canonical.npy`` as the trainer would start from it, noted as an estimate (so training lets it
    move): rotations from keyframes set by hand, else from the background cameras; translations from the masks."""
    from lab4d_core.preprocess.root_poses import initial_root_poses, translations_from_masks

    crop2raw = np.asarray(video.array("crop2raw"), np.float64)
    with np.load(work / "cameras.npz") as cameras:
        manual = cameras["manual"] if "manual" in cameras else None
    if manual is not None:
        poses = np.tile(np.eye(4), (video.num_frames, 1, 1))
        poses[:, :3, :3] = manual
        poses[:, :3, 3] = translations_from_masks(video, "crop", crop2raw, manual)
        origin = "manual"
    else:
        poses, origin = initial_root_poses(video, "crop", crop2raw).poses, "00"
    video.release()
    folder = video.dir("Cameras")
    atomic_write(folder / "01-canonical.npy", lambda f: np.save(f, poses))
    atomic_write_text(folder / "01-canonical.json", json.dumps({"estimated": True, "source": origin}))


def _source_summary(source: SourceConfig) -> dict:
    return {"segmenter": source.mask_method, "category": source.category}


def _record(seqname: str, work: Path) -> VideoRecord:
    info = read_info(work)
    crops = read_crops(work)
    forward, backward = read_flows(work)
    with np.load(work / "cameras.npz") as cameras:
        background = cameras["00"]
    arrays = PrefixArrays(
        rgb=crops["rgb"],
        mask=crops["mask"],
        vis2d=crops["vis2d"],
        crop2raw=np.asarray(crops["crop2raw"]),
        is_detected=np.asarray(crops["is_detected"]),
        flow_fw=forward,
        flow_bw=backward,
    )
    return VideoRecord(
        seqname=seqname,
        frames_raw=load_frames(work, range(info.num_raw)),
        kept_ids=np.asarray(info.kept),
        masks_raw=read_masks(work),
        ks=info.ks,
        arrays={"crop": arrays},
        cameras={"00": background},
    )


def preprocess(source: SourceConfig, collection: str, out: Path) -> dict:
    """Every stage of every video, then the gather: what the Snakemake rules do, in one call."""
    out = Path(out)
    works = {name: out / "preprocess" / name for name in find_videos(source)}
    for name, work in works.items():
        for stage in STAGES:
            run_stage(stage, source, name, work)
    return gather(source, collection, works, out)
