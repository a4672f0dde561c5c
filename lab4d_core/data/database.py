"""Read and write lab4d's processed dataset layout.

The layout is lab4d's own (``database/configs/<collection>.config`` plus
``database/processed/<Type>/Full-Resolution/<seq>/``), so lab4d's pre-processed
downloads read without conversion and what we write trains in lab4d unchanged.
See ``reference/lab4d.md`` section 3 and "Layout details".

Opening a :class:`Database` validates the whole layout from directory listings
and ``.npy`` headers only: a 48-video dataset is many GB, so array data is
memory-mapped per video and per array on first access, never at open.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from lab4d_core.errors import Lab4dError
from lab4d_core.utils.io import atomic_write, atomic_write_text

FLOW_DELTAS = (1, 2, 4, 8)
PREFIXES = ("crop", "full")
FEATURE_TYPES = ("dinov2", "cse")
FEATURE_SHAPE = (112, 112, 16)
DATA_KINDS = ("rgb", "mask", "crop2raw", "is_detected", "depth") + tuple(f"features-{t}" for t in FEATURE_TYPES)
FLOW_KINDS = tuple(f"flow-{d}-{delta}" for d in ("fw", "bw") for delta in FLOW_DELTAS)
ARRAY_KINDS = DATA_KINDS + FLOW_KINDS
MAX_LISTED_PROBLEMS = 10

# Expected dtypes: an exact dtype name, or "float" for any floating type
# (lab4d writes crop2raw and cameras as float32 or float64 depending on the step).
_FLOAT = "float"


@dataclass(frozen=True)
class ArraySpec:
    """Where one training array lives and what it must look like."""

    folder: str  # processed Type, e.g. "FlowFW_2"
    filename: str
    shape: tuple[int, ...]
    dtype: str  # "float16", "bool" or _FLOAT
    required: bool
    # lab4d's loader reads features as "<p>-<type>-01.npy" while its extractor
    # writes "<p>-<R>-<type>-01.npy"; accept both so either kind of download reads.
    fallback: str | None = None

    def describe(self) -> str:
        return f"shape {self.shape} {self.dtype}"


def array_spec(kind: str, prefix: str, resolution: int, num_frames: int) -> ArraySpec:
    """The file and expected shape/dtype of array ``kind`` for N = ``num_frames``."""
    name, res, n = f"{prefix}-{resolution}", resolution, num_frames
    if kind == "rgb":
        return ArraySpec("JPEGImages", f"{name}.npy", (n, res, res, 3), "float16", True)
    if kind == "mask":
        return ArraySpec("Annotations", f"{name}.npy", (n, res, res, 2), "bool", True)
    if kind == "crop2raw":
        return ArraySpec("Annotations", f"{name}-crop2raw.npy", (n, 4), _FLOAT, True)
    if kind == "is_detected":
        return ArraySpec("Annotations", f"{name}-is_detected.npy", (n,), "bool", True)
    if kind == "depth":
        return ArraySpec("Depth", f"{name}.npy", (n, res, res), "float16", False)
    if kind in FLOW_KINDS:
        _, direction, delta = kind.split("-")
        count = (n - 1) // int(delta)
        folder = f"Flow{direction.upper()}_{delta}"
        return ArraySpec(folder, f"{name}.npy", (count, res, res, 3), "float16", True)
    if kind in DATA_KINDS:  # features-<type>
        ftype = kind.split("-", 1)[1]
        return ArraySpec(
            "Features",
            f"{name}-{ftype}-01.npy",
            (n,) + FEATURE_SHAPE,
            "float16",
            False,
            fallback=f"{prefix}-{ftype}-01.npy",
        )
    raise ValueError(f"unknown array kind {kind!r}; expected one of {ARRAY_KINDS}")


def camera_spec(name: str, num_frames: int) -> ArraySpec:
    """Per-frame 4x4 world/object -> camera matrices, e.g. "00" or "01-canonical"."""
    return ArraySpec("Cameras", f"{name}.npy", (num_frames, 4, 4), _FLOAT, False)


def _dtype_matches(dtype: np.dtype, expected: str) -> bool:
    if expected == _FLOAT:
        return dtype.kind == "f"
    return dtype == np.dtype(expected)


def _mismatch(path: Path, spec: ArraySpec, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """One problem line if (shape, dtype) does not satisfy ``spec``."""
    if tuple(shape) == spec.shape and _dtype_matches(dtype, spec.dtype):
        return None
    return f"{path}: expected {spec.describe()}, found {tuple(shape)} {dtype}"


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file without mapping or reading its data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


def _check_file(path: Path, spec: ArraySpec) -> str | None:
    """One problem line for a present array whose header does not match ``spec``."""
    try:
        shape, dtype = read_npy_header(path)
    except (OSError, ValueError) as err:
        return f"{path}: not a readable .npy file ({err}); expected {spec.describe()}"
    return _mismatch(path, spec, shape, dtype)


def _raise_problems(title: str, problems: list[str]) -> None:
    """Raise once for all problems so the user can fix everything in one go."""
    if not problems:
        return
    lines = [f"{title}: {len(problems)} problem(s)"]
    lines += [f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    raise Lab4dError("\n".join(lines))


def _jpg_ids(folder: Path) -> list[int]:
    """Sorted frame ids of the ``%05d.jpg`` files in ``folder`` (empty if absent)."""
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.jpg") if p.stem.isdigit())


# ---------------------------------------------------------------------------
# Paths


def config_path(root: str | os.PathLike, collection: str) -> Path:
    return Path(root) / "database" / "configs" / f"{collection}.config"


def processed_dir(root: str | os.PathLike, folder: str, seqname: str) -> Path:
    """``database/processed/<folder>/Full-Resolution/<seqname>`` under ``root``."""
    return Path(root) / "database" / "processed" / folder / "Full-Resolution" / seqname


def _img_path_value(seqname: str) -> str:
    # Relative to root with a trailing slash, exactly as lab4d's write_config.py.
    return f"database/processed/JPEGImages/Full-Resolution/{seqname}/"


# ---------------------------------------------------------------------------
# Reading


class Video:
    """One video of a collection: frame lists from disk, arrays mapped on demand.

    ``kept_ids`` are the raw ids of the filter-kept frames (the names of the jpgs
    in ``JPEGImages``); the training arrays have one row per kept frame.
    """

    def __init__(
        self,
        img_dir: Path,
        ks: Sequence[float],
        shape: tuple[int, int],
        resolution: int,
    ) -> None:
        self.img_dir = img_dir
        self.seqname = img_dir.name
        # Derived from img_path as lab4d does (string replace of JPEGImages), so
        # a config pointing outside root still finds its sibling folders.
        self._processed = img_dir.parent.parent.parent
        self.ks = np.asarray(ks, dtype=np.float64)
        self.shape = shape
        self.resolution = resolution
        self.kept_ids = np.asarray(_jpg_ids(img_dir), dtype=np.int64)
        self.num_frames_raw = len(_jpg_ids(self.dir("JPEGImagesRaw")))
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    @property
    def num_frames(self) -> int:
        return len(self.kept_ids)

    def dir(self, folder: str) -> Path:
        """The ``<folder>/Full-Resolution/<seq>`` directory, e.g. ``dir("Depth")``."""
        return self._processed / folder / "Full-Resolution" / self.seqname

    def spec(self, kind: str, prefix: str = "crop") -> ArraySpec:
        return array_spec(kind, prefix, self.resolution, self.num_frames)

    def array_path(self, kind: str, prefix: str = "crop") -> Path:
        """Path of an array; for features the first existing of lab4d's two names."""
        spec = self.spec(kind, prefix)
        path = self.dir(spec.folder) / spec.filename
        if spec.fallback and not path.exists():
            alternative = path.with_name(spec.fallback)
            if alternative.exists():
                return alternative
        return path

    def has(self, kind: str, prefix: str = "crop") -> bool:
        return self.array_path(kind, prefix).exists()

    def array(self, kind: str, prefix: str = "crop") -> np.ndarray:
        """Memory-mapped, read-only array, mapped on first access and then cached.

        The shape/dtype is checked here too, since a prefix not validated at
        open time may still be read.
        """
        key = (kind, prefix)
        if key not in self._cache:
            path = self.array_path(kind, prefix)
            if not path.exists():
                raise Lab4dError(f"{path}: missing (expected {self.spec(kind, prefix).describe()})")
            data = np.load(path, mmap_mode="r")
            problem = _mismatch(path, self.spec(kind, prefix), data.shape, data.dtype)
            if problem:
                raise Lab4dError(problem)
            self._cache[key] = data
        return self._cache[key]

    def flow(self, delta: int, direction: str = "fw", prefix: str = "crop") -> np.ndarray:
        """Flow ``(N-1)//delta`` rows: fw[k] is frame k*delta -> k*delta+delta, bw[k] the reverse."""
        return self.array(f"flow-{direction}-{delta}", prefix)

    def release(self) -> None:
        """Drop cached maps: each map holds a file descriptor (lab4d's "too many open files")."""
        self._cache.clear()

    def camera(self, name: str = "01-canonical") -> np.ndarray | None:
        """Per-kept-frame (N, 4, 4) camera matrices, or None when not preprocessed."""
        spec = camera_spec(name, self.num_frames)
        path = self.dir(spec.folder) / spec.filename
        if not path.exists():
            return None
        cameras = np.load(path)
        problem = _mismatch(path, spec, cameras.shape, cameras.dtype)
        if problem:
            raise Lab4dError(problem)
        return cameras

    def camera_notes(self, name: str = "01-canonical") -> dict:
        """What the preprocessing recorded about camera file ``name`` (``Cameras/.../<name>.json``), e.g.
        ``{"estimated": true, "source": "00"}`` for root poses that are only a starting point; {} when none."""
        path = self.dir("Cameras") / f"{name}.json"
        if not path.exists():
            return {}
        try:
            notes = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise Lab4dError(f"{path}: not valid JSON ({error}); delete it or preprocess the video again") from None
        return notes if isinstance(notes, dict) else {}

    def frame_path(self, raw_id: int, raw: bool = False) -> Path:
        """The jpg of raw frame ``raw_id`` (kept frames are named by their raw id)."""
        folder = self.dir("JPEGImagesRaw") if raw else self.img_dir
        return folder / f"{raw_id:05d}.jpg"

    def raw_mask(self, raw_id: int) -> np.ndarray:
        """(H, W) int8 mask of a kept frame: -1 not detected, 0 background, 1 object."""
        path = self.dir("Annotations") / f"{raw_id:05d}.npy"
        if not path.exists():
            raise Lab4dError(f"{path}: missing raw mask of kept frame {raw_id}")
        mask = np.load(path)
        if mask.dtype != np.int8 or mask.ndim != 2:
            raise Lab4dError(f"{path}: expected a 2-D int8 mask, found shape {mask.shape} {mask.dtype}")
        return mask

    def check(self, prefixes: Sequence[str]) -> list[str]:
        """Problems of this video's layout, from listings and .npy headers only."""
        problems = self._check_frames()
        if self.num_frames == 0:
            return problems  # every array check would only repeat this problem
        for prefix in prefixes:
            for kind in ARRAY_KINDS:
                spec = self.spec(kind, prefix)
                path = self.array_path(kind, prefix)
                if path.exists():
                    problems.append(_check_file(path, spec))
                elif spec.required:
                    problems.append(f"{path}: missing (expected {spec.describe()}){self._hint(kind, prefix)}")
        for name in ("00", "01-canonical"):
            spec = camera_spec(name, self.num_frames)
            path = self.dir(spec.folder) / spec.filename
            if path.exists():
                problems.append(_check_file(path, spec))
        return [p for p in problems if p]

    def _hint(self, kind: str, prefix: str) -> str:
        """For a missing rgb, the resolutions that exist: a wrong train_res is the usual cause."""
        if kind != "rgb":
            return ""
        found = sorted(p.stem.split("-", 1)[1] for p in self.img_dir.glob(f"{prefix}-*.npy"))
        return f"; resolutions found for {prefix!r}: {', '.join(found)}" if found else ""

    def _check_frames(self) -> list[str]:
        raw_dir = self.dir("JPEGImagesRaw")
        problems = []
        if self.num_frames_raw == 0:
            problems.append(f"{raw_dir}: expected all raw frames as %05d.jpg, found none")
        if self.num_frames == 0:
            problems.append(f"{self.img_dir}: expected the filter-kept frames as %05d.jpg, found none")
        unknown = sorted(set(self.kept_ids.tolist()) - set(_jpg_ids(raw_dir)))
        if self.num_frames_raw and unknown:
            problems.append(f"{self.img_dir}: kept frames {unknown[:5]} have no raw frame in {raw_dir}")
        return problems


def _parse_numbers(text: str, cast: Callable[[str], float], count: int) -> list | None:
    """Space-separated numbers of a config value; tolerates quotes around it."""
    try:
        values = [cast(v) for v in text.strip().strip("\"'").split()]
    except ValueError:
        return None
    return values if len(values) == count else None


def read_collection_config(root: Path, collection: str) -> tuple[list[tuple[Path, list, tuple]], list[str]]:
    """(img_dir, ks, shape) of each [data_i] section, and the problems found."""
    path = config_path(root, collection)
    if not path.is_file():
        configs = path.parent
        found = sorted(p.stem for p in configs.glob("*.config")) if configs.is_dir() else []
        listing = ", ".join(found) if found else f"none ({configs} has no .config files)"
        raise Lab4dError(f"{path}: dataset config not found; collections that exist: {listing}")
    # Raw parser, like lab4d: values are paths and numbers, never interpolated.
    config = configparser.RawConfigParser()
    try:
        config.read(path)
    except configparser.Error as err:
        raise Lab4dError(f"{path}: not a valid ini file ({err})") from err
    videos, problems = [], []
    sections = [s for s in config.sections() if s != "data"]
    expected = [f"data_{i}" for i in range(len(sections))]
    if set(sections) != set(expected):
        problems.append(f"{path}: expected sections [data] and {expected}, found {config.sections()}")
    if not sections:
        problems.append(f"{path}: no [data_0] section, so the collection has no videos")
    for name in expected:
        if name not in config:
            continue
        entry = _parse_section(root, path, name, config[name])
        if isinstance(entry, str):
            problems.append(entry)
        else:
            videos.append(entry)
    return videos, problems


def _parse_section(root: Path, path: Path, name: str, section: configparser.SectionProxy) -> tuple | str:
    """(img_dir, ks, shape) of one [data_i] section, or its problem line."""
    missing = [k for k in ("ks", "shape", "img_path") if k not in section]
    if missing:
        return f"{path}: [{name}] is missing {', '.join(missing)}"
    ks = _parse_numbers(section["ks"], float, 4)
    shape = _parse_numbers(section["shape"], int, 2)
    if ks is None or shape is None:
        return (
            f"{path}: [{name}] expected ks = 'fx fy cx cy' and shape = 'H W', "
            f"found ks = {section['ks']!r}, shape = {section['shape']!r}"
        )
    img_dir = Path(section["img_path"].strip().strip("\"'"))
    if not img_dir.is_absolute():
        img_dir = root / img_dir
    return img_dir, ks, tuple(shape)


class Database:
    """A validated collection: its videos and lab4d's frame indexing.

    Indexing follows lab4d's data_utils: ``frame_offset`` and
    ``frame_offset_raw`` are cumulative kept/raw counts (length V+1), and
    ``frame_mapping[i]`` is the global raw id of global kept frame ``i``, the
    time axis the model is trained on.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        collection: str,
        resolution: int = 256,
        prefixes: Sequence[str] = PREFIXES,
    ) -> None:
        self.root = Path(root)
        self.collection = collection
        self.resolution = resolution
        self.prefixes = tuple(prefixes)
        unknown = [p for p in self.prefixes if p not in PREFIXES]
        if unknown:
            raise Lab4dError(f"unknown data prefix(es) {unknown}; expected some of {PREFIXES}")
        entries, problems = read_collection_config(self.root, collection)
        self.videos = [Video(img_dir, ks, shape, resolution) for img_dir, ks, shape in entries]
        for video in self.videos:
            problems += video.check(self.prefixes)
        _raise_problems(f"dataset {collection!r} under {self.root}", problems)

        kept = [v.num_frames for v in self.videos]
        raw = [v.num_frames_raw for v in self.videos]
        self.frame_offset = np.cumsum([0] + kept, dtype=np.int64)
        self.frame_offset_raw = np.cumsum([0] + raw, dtype=np.int64)
        self.frame_mapping = np.concatenate([v.kept_ids + off for v, off in zip(self.videos, self.frame_offset_raw)])

    @property
    def num_frames(self) -> int:
        """Total number of kept frames over all videos."""
        return int(self.frame_offset[-1])

    def __len__(self) -> int:
        return len(self.videos)


# ---------------------------------------------------------------------------
# Writing


@dataclass
class PrefixArrays:
    """The training arrays of one video for one prefix ("crop" or "full")."""

    rgb: np.ndarray  # (N,R,R,3) float in [0,1]; stored float16
    mask: np.ndarray  # (N,R,R) bool
    vis2d: np.ndarray  # (N,R,R) bool: array pixel lies inside the raw image
    crop2raw: np.ndarray  # (N,4) fx, fy, cx, cy
    is_detected: np.ndarray  # (N,) bool
    flow_fw: dict[int, np.ndarray]  # delta -> ((N-1)//delta, R, R, 3) dx, dy, confidence
    flow_bw: dict[int, np.ndarray]
    depth: np.ndarray | None = None  # (N,R,R)
    features: dict[str, np.ndarray] = field(default_factory=dict)  # type -> (N,112,112,16)


@dataclass
class VideoRecord:
    """One video to write: raw frames, the filter's choice and the derived arrays."""

    seqname: str  # e.g. "demo-quad-0000"
    frames_raw: np.ndarray  # (N_raw,H,W,3) uint8
    kept_ids: np.ndarray  # (N,) sorted raw ids of the filter-kept frames
    masks_raw: np.ndarray  # (N,H,W) int8 raw masks of the kept frames
    ks: tuple[float, float, float, float]
    arrays: dict[str, PrefixArrays]  # prefix -> arrays; resolution from the arrays
    cameras: dict[str, np.ndarray] = field(default_factory=dict)  # "00", "01-canonical" -> (N,4,4)
    camera_notes: dict[str, dict] = field(default_factory=dict)  # "01-canonical" -> {"estimated": True, ...}

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.frames_raw.shape[1:3])


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _save_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    atomic_write(path, lambda f: Image.fromarray(frame).save(f, format="JPEG", quality=quality))


def _remove_stale(folder: Path, suffix: str, keep: set[str]) -> None:
    """Delete ``%05d<suffix>`` frame files of an earlier write not in ``keep``.

    Frame counts come from directory listings, so a stale frame from a longer
    earlier version of the video would silently corrupt the indexing.
    """
    for path in folder.glob(f"*{suffix}"):
        if re.fullmatch(r"\d{5}", path.stem) and path.name not in keep:
            path.unlink()


def _input_problem(label: str, path: Path, shape: tuple[int, ...], dtype: str, value: np.ndarray) -> str | None:
    """Problem line for a writer input whose shape or kind of dtype cannot be stored."""
    value = np.asarray(value)
    where = f"{label} (for {path})"
    if value.shape != shape:
        return f"{where}: expected shape {shape}, found {value.shape}"
    if dtype == "bool" and value.dtype.kind not in "biu":
        return f"{where}: expected a bool or 0/1 integer array, found {value.dtype}"
    if dtype != "bool" and value.dtype.kind != "f":
        return f"{where}: expected a float array, found {value.dtype}"
    return None


def _stored(value: np.ndarray, dtype: str) -> np.ndarray:
    """``value`` in lab4d's stored dtype; crop2raw and cameras keep their float precision."""
    value = np.asarray(value)
    if dtype == "bool":
        return value != 0  # masks may come as 0/1 integers from image ops
    if dtype == _FLOAT:
        return value
    return value.astype(dtype, copy=False)


def _prefix_inputs(arrays: PrefixArrays) -> list[tuple[str, str, np.ndarray]]:
    """(field label, array kind, value) of every array given for one prefix."""
    inputs = [
        ("rgb", "rgb", arrays.rgb),
        ("crop2raw", "crop2raw", arrays.crop2raw),
        ("is_detected", "is_detected", arrays.is_detected),
    ]
    if arrays.depth is not None:
        inputs.append(("depth", "depth", arrays.depth))
    for direction, flows in (("fw", arrays.flow_fw), ("bw", arrays.flow_bw)):
        inputs += [(f"flow_{direction}[{d}]", f"flow-{direction}-{d}", v) for d, v in flows.items()]
    inputs += [(f"features[{t!r}]", f"features-{t}", v) for t, v in arrays.features.items()]
    return inputs


def _prefix_problems(name: str, arrays: PrefixArrays) -> list[str]:
    """Flows lab4d requires but absent, and given arrays it has no place for."""
    problems = [
        f"{name}: flow_{direction}[{d}] is required (deltas {FLOW_DELTAS})"
        for direction, flows in (("fw", arrays.flow_fw), ("bw", arrays.flow_bw))
        for d in FLOW_DELTAS
        if d not in flows
    ]
    problems += [
        f"{name}: unknown {label}, expected deltas {FLOW_DELTAS} and features {FEATURE_TYPES}"
        for label, kind, _ in _prefix_inputs(arrays)
        if kind not in ARRAY_KINDS
    ]
    return problems


def _prefix_outputs(
    root: Path, record: VideoRecord, prefix: str, arrays: PrefixArrays
) -> tuple[list[tuple[Path, np.ndarray]], list[str]]:
    """(path, stored value) of every array of one prefix, or the problems found."""
    name = f"{record.seqname} {prefix}"
    if np.ndim(arrays.rgb) != 4:
        return [], [f"{name} rgb: expected (N, R, R, 3), found shape {np.shape(arrays.rgb)}"]
    problems = _prefix_problems(name, arrays)
    if problems:
        return [], problems
    resolution, num_frames = np.shape(arrays.rgb)[1], len(record.kept_ids)

    def target(kind: str) -> tuple[ArraySpec, Path]:
        spec = array_spec(kind, prefix, resolution, num_frames)
        return spec, processed_dir(root, spec.folder, record.seqname) / spec.filename

    array_checks = [(label, *target(kind), value) for label, kind, value in _prefix_inputs(arrays)]
    # mask and vis2d are given apart but stored stacked as the two channels of one file.
    mask_spec, mask_path = target("mask")
    plane = replace(mask_spec, shape=mask_spec.shape[:-1])
    mask_checks = [("mask", plane, mask_path, arrays.mask), ("vis2d", plane, mask_path, arrays.vis2d)]
    problems = [
        _input_problem(f"{name} {label}", path, spec.shape, spec.dtype, value)
        for label, spec, path, value in array_checks + mask_checks
    ]
    if np.any(np.asarray(arrays.rgb) < 0) or np.any(np.asarray(arrays.rgb) > 1):
        problems.append(f"{name} rgb: expected values in [0, 1] (lab4d's scale), found values outside")
    problems = [p for p in problems if p]
    if problems:
        return [], problems
    outputs = [(path, _stored(value, spec.dtype)) for _, spec, path, value in array_checks]
    stacked = np.stack([_stored(arrays.mask, "bool"), _stored(arrays.vis2d, "bool")], axis=-1)
    return outputs + [(mask_path, stacked)], []


def _check_record(record: VideoRecord) -> list[str]:
    """Problems of the raw part of a record (frames, kept ids, raw masks, ks)."""
    name = record.seqname
    frames = np.asarray(record.frames_raw)
    kept, masks = np.asarray(record.kept_ids), np.asarray(record.masks_raw)
    problems = []
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        problems.append(f"{name} frames_raw: expected (N_raw, H, W, 3) uint8, found {frames.shape} {frames.dtype}")
    if kept.ndim != 1 or kept.size == 0 or kept.dtype.kind not in "iu":
        problems.append(f"{name} kept_ids: expected a non-empty 1-D integer array, found {kept.shape} {kept.dtype}")
    elif np.any(np.diff(kept) <= 0) or kept[0] != 0 or kept[-1] >= len(frames):
        # lab4d locates a video's Cameras/ through its kept frame 00000.jpg.
        problems.append(
            f"{name} kept_ids: expected strictly increasing ids from 0 to below "
            f"{len(frames)} (the raw frame count), found {kept.tolist()[:10]}"
        )
    expected = (len(kept),) + tuple(frames.shape[1:3])
    if masks.shape != expected or not np.isin(masks, (-1, 0, 1)).all():
        problems.append(
            f"{name} masks_raw: expected shape {expected} with values -1/0/1, "
            f"found shape {masks.shape} values {np.unique(masks)[:5].tolist()}"
        )
    if len(record.ks) != 4:
        problems.append(f"{name} ks: expected (fx, fy, cx, cy), found {record.ks}")
    if not record.arrays:
        problems.append(f"{name} arrays: expected at least one of the prefixes {PREFIXES}")
    return problems


def _camera_outputs(root: Path, record: VideoRecord) -> tuple[list[tuple[Path, np.ndarray]], list[str]]:
    """(path, stored value) of every camera file, and the problems found."""
    outputs, problems = [], []
    for name, cameras in record.cameras.items():
        spec = camera_spec(name, len(record.kept_ids))
        path = processed_dir(root, spec.folder, record.seqname) / spec.filename
        label = f"{record.seqname} cameras[{name!r}]"
        problems.append(_input_problem(label, path, spec.shape, spec.dtype, cameras))
        outputs.append((path, _stored(cameras, spec.dtype)))
    return outputs, [p for p in problems if p]


def write_video(root: str | os.PathLike, record: VideoRecord, jpeg_quality: int = 95) -> None:
    """Write one video's frames, raw masks, the arrays of every prefix, and cameras.

    Everything is validated before anything is written, so a bad record leaves
    the dataset as it was.
    """
    root = Path(root)
    problems = _check_record(record)
    outputs, camera_problems = _camera_outputs(root, record)
    problems += camera_problems
    for prefix, arrays in record.arrays.items():
        if prefix not in PREFIXES:
            problems.append(f"{record.seqname}: unknown prefix {prefix!r}, expected one of {PREFIXES}")
            continue
        prefix_outputs, prefix_problems = _prefix_outputs(root, record, prefix, arrays)
        outputs += prefix_outputs
        problems += prefix_problems
    _raise_problems(f"cannot write video {record.seqname!r}", problems)

    _write_frames(root, record, jpeg_quality)
    for path, value in outputs:
        _save_npy(path, value)
    for name, notes in record.camera_notes.items():
        atomic_write_text(processed_dir(root, "Cameras", record.seqname) / f"{name}.json", json.dumps(notes))


def _write_frames(root: Path, record: VideoRecord, quality: int) -> None:
    raw_dir = processed_dir(root, "JPEGImagesRaw", record.seqname)
    img_dir = processed_dir(root, "JPEGImages", record.seqname)
    mask_dir = processed_dir(root, "Annotations", record.seqname)
    kept = [int(i) for i in record.kept_ids]
    for raw_id, frame in enumerate(record.frames_raw):
        _save_jpeg(raw_dir / f"{raw_id:05d}.jpg", frame, quality)
    for raw_id, mask in zip(kept, record.masks_raw):
        # Copy the raw jpg rather than re-encode, so both folders hold identical pixels.
        jpg = (raw_dir / f"{raw_id:05d}.jpg").read_bytes()
        atomic_write(img_dir / f"{raw_id:05d}.jpg", lambda f, data=jpg: f.write(data))
        _save_npy(mask_dir / f"{raw_id:05d}.npy", np.asarray(mask, dtype=np.int8))
    _remove_stale(raw_dir, ".jpg", {f"{i:05d}.jpg" for i in range(len(record.frames_raw))})
    _remove_stale(img_dir, ".jpg", {f"{i:05d}.jpg" for i in kept})
    _remove_stale(mask_dir, ".npy", {f"{i:05d}.npy" for i in kept})


def write_config(
    root: str | os.PathLike,
    collection: str,
    videos: Sequence[VideoRecord | tuple[str, Sequence[float], tuple[int, int]]],
) -> Path:
    """Write ``database/configs/<collection>.config`` as lab4d's write_config.py does.

    ``videos`` are records or ``(seqname, ks, (H, W))`` tuples, in video order.
    """
    config = configparser.RawConfigParser()
    config["data"] = {"init_frame": "0", "end_frame": "-1"}
    for i, video in enumerate(videos):
        seqname, ks, shape = (video.seqname, video.ks, video.shape) if isinstance(video, VideoRecord) else video
        config[f"data_{i}"] = {
            # repr() round-trips floats exactly; lab4d parses with float().
            "ks": " ".join(repr(float(k)) for k in ks),
            "shape": " ".join(str(int(s)) for s in shape),
            "img_path": _img_path_value(seqname),
        }
    path = config_path(root, collection)
    atomic_write(path, lambda f: f.write(_config_text(config).encode()))
    return path


def _config_text(config: configparser.RawConfigParser) -> str:
    buffer = io.StringIO()
    config.write(buffer)
    return buffer.getvalue()
