"""Typed configuration: dataclasses with a docstring per field, YAML in and out.

The docstring under each field is the single source of the CLI help text and of
the JSON schema that Snakemake validates dataset configs against
(``lab4d schema`` regenerates ``workflow/schemas/config.schema.yaml``).
Field names follow lab4d's flags where lab4d has one.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lab4d_core.errors import Lab4dError


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (attribute docstrings), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (recursing into dataclasses)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise Lab4dError(
                f"{where}: expected a mapping of {sorted(f.name for f in dataclasses.fields(tp))}, got {value!r}"
            )
        return from_dict(tp, value, where)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except Lab4dError as error:
                errors.append(str(error))
        raise Lab4dError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not {_type_name(tp)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise Lab4dError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in typing.get_args(tp))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise Lab4dError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{k}]") for k, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
        # YAML 1.1 (PyYAML) reads 1e-2 as a string: it wants 1.0e-2. Accept what people write.
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise Lab4dError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float, str) and (not isinstance(value, tp) or isinstance(value, bool) and tp is not bool):
        raise Lab4dError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: dict, where: str = "config"):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are errors naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise Lab4dError(
            f"{where}: unknown key {', '.join(repr(u) for u in unknown)}; valid keys are {', '.join(sorted(names))}"
        )
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise Lab4dError(f"{where}: {error}") from None


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def load_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise Lab4dError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise Lab4dError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(data, dict):
        raise Lab4dError(f"{path}: expected a mapping at the top level")
    return data


def json_schema(cls: type) -> dict:
    """JSON schema (draft 2020-12 subset) of a dataclass: types, enums, defaults, descriptions."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    properties = {}
    required = []
    for f in dataclasses.fields(cls):
        prop = _schema_of(hints[f.name])
        if f.name in docs:
            prop["description"] = docs[f.name]
        if f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
            prop["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            if not dataclasses.is_dataclass(default):
                prop["default"] = default
        else:
            required.append(f.name)
        properties[f.name] = prop
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    if required:
        schema["required"] = required
    return schema


def _schema_of(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return json_schema(tp)
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_schema_of(a) for a in typing.get_args(tp)]}
    if origin is list:
        return {"type": "array", "items": _schema_of(typing.get_args(tp)[0])}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    return {"type": simple[tp]}


@dataclass
class SynthConfig:
    """Procedural or glTF characters rendered along moving cameras, with exact ground truth."""

    character: Literal["quad", "human", "asset", "anny"] = "quad"
    """Which character to animate: a procedural quadruped or human, a skinned glTF asset, or a person built from
    the anny body model (MakeHuman assets, on the human skeleton; needs the `people` extra, which `make setup`
    installs)."""
    asset: str | None = None
    """Path to a skinned, animated .glb (with character: asset), relative to the working directory."""
    animations: list[str] = field(default_factory=list)
    """Animation names of the asset, one per video (cycled)."""
    num_videos: int = 2
    """Number of videos (sequences) in the dataset."""
    num_frames: int | list[int] = 48
    """Frames per video (at least 9: lab4d drops shorter videos): one count for all videos, or a list of counts,
    one per video (cycled)."""
    fps: float = 30.0
    """Frame rate that motion speeds refer to."""
    resolution: int = 256
    """Height and width of the raw frames in pixels."""
    train_res: int = 256
    """Resolution of the processed arrays (lab4d's train_res): <prefix>-<train_res>.npy."""
    prefixes: list[Literal["crop", "full"]] = field(default_factory=lambda: ["crop", "full"])
    """Which processed arrays to write: lab4d's object crops and/or full frames."""
    single_inst: bool = True
    """One individual in every video (true) or a new morphology per video (false)."""
    motions: list[Literal["walk", "trot", "wave", "turn"]] = field(
        default_factory=lambda: ["walk", "trot", "turn", "wave"]
    )
    """Motion of each video (cycled) for procedural characters and anny people."""
    cameras: list[Literal["orbit", "arc", "handheld"]] = field(default_factory=lambda: ["orbit", "handheld", "arc"])
    """Camera path of each video (cycled)."""
    focal: float = 1.0
    """Focal length in units of the raw frame's larger side (lab4d's default guess is 1)."""
    supersample: int = 3
    """Colour samples per pixel along each axis (odd), averaged as a camera integrates light over a pixel;
    1 point-samples the texture, which aliases its fine detail differently in every view."""
    seed: int = 0
    """Seed of morphology, colours, scene, motion phase and camera paths."""
    voxel: float = 0.012
    """Marching-cubes voxel size in metres for procedural characters (smaller: finer mesh)."""
    reanimate: list[list[int]] = field(default_factory=list)
    """Pairs [A, B] of videos whose true reanimation is written: B's body driven by A's joint rotations and root
    pose, seen by A's cameras (GroundTruth/reanimate/A-to-B/; procedural characters and anny people only)."""

    def __post_init__(self) -> None:
        if self.character == "asset" and not self.asset:
            raise ValueError("character: asset needs asset: PATH.glb")
        if self.num_videos < 1:
            raise ValueError(f"needs num_videos >= 1, got {self.num_videos}")
        counts = self.num_frames if isinstance(self.num_frames, list) else [self.num_frames]
        if not counts:
            raise ValueError("num_frames: give a count, or a list of counts (one per video), not an empty list")
        for k, count in enumerate(counts):
            if count < 9:
                where = f"num_frames[{k}]" if isinstance(self.num_frames, list) else "num_frames"
                raise ValueError(f"{where} is {count}: each video needs at least 9 frames (lab4d drops shorter ones)")
        if self.resolution < 16 or self.train_res < 16:
            raise ValueError("resolution and train_res must be at least 16 pixels")
        for pair in self.reanimate:
            if len(pair) != 2:
                raise ValueError(f"reanimate: {pair} is not a pair [A, B] of video indices")
            if not all(0 <= v < self.num_videos for v in pair):
                raise ValueError(f"reanimate: {pair} names a video outside 0..{self.num_videos - 1}")
        if self.reanimate and self.character == "asset":
            raise ValueError(
                "reanimate: true reanimation is written for procedural characters only (character: human, quad "
                "or anny), not for character: asset; remove reanimate or pick a procedural character"
            )

    def frames(self, video: int) -> int:
        """Number of frames of video ``video`` (num_frames, cycled when it is a list)."""
        if isinstance(self.num_frames, list):
            return self.num_frames[video % len(self.num_frames)]
        return self.num_frames

    @property
    def frame_counts(self) -> list[int]:
        """Number of frames of every video, in order."""
        return [self.frames(video) for video in range(self.num_videos)]


@dataclass
class PromptConfig:
    """A box around the object on one frame of one video: where the `track` segmenter starts."""

    box: list[float]
    """x0, y0, x1, y1 in pixels of the video's frames (x to the right, y down)."""
    frame: int = 0
    """Frame the box is drawn on, counted from the video's first frame (0)."""
    video: str | None = None
    """Video the box belongs to (its file or folder name without extension); may be left out with one video."""

    def __post_init__(self) -> None:
        if len(self.box) != 4 or not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError(f"prompt box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {self.box}")
        if self.frame < 0:
            raise ValueError(f"prompt frame must be 0 or more, got {self.frame}")


@dataclass
class ManualCameraConfig:
    """One keyframe of the object's viewpoint, set by hand (lab4d's 01-manual.json without its GUI)."""

    azimuth: float
    """Degrees about the object's up axis: 0 sees its front, 90 its left side (the camera moves counter-clockwise
    seen from above)."""
    elevation: float = 0.0
    """Degrees above the object's horizon that the camera looks down from."""
    roll: float = 0.0
    """Degrees the camera turns about its viewing axis."""
    frame: int = 0
    """Frame of the keyframe, counted from the video's first frame; between keyframes the view is interpolated."""
    video: str | None = None
    """Video the keyframe belongs to (its file or folder name without extension); may be left out with one video."""


@dataclass
class OnnxConfig:
    """A segmentation model of your own, run with onnxruntime (segmenter: onnx)."""

    model: str
    """Path to the .onnx file, relative to the working directory."""
    size: list[int] = field(default_factory=lambda: [1024, 1024])
    """Height and width the model takes."""
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    """Per-channel mean subtracted from RGB in 0..1."""
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """Per-channel divisor after the mean."""


@dataclass
class SourceConfig:
    """Where a dataset comes from: exactly one of synthetic, path, url and videos."""

    synthetic: SynthConfig | None = None
    """Render a synthetic dataset with ground truth."""
    path: str | None = None
    """An existing processed database (folder containing database/), used in place, never copied."""
    videos: str | list[str] | None = None
    """Your own footage, preprocessed on the CPU into lab4d's layout: a folder of videos (mp4, mov, webm, ...), one
    video file, a folder of frames (jpg/png), or a list of any of these; paths relative to the working directory."""
    category: Literal["human", "quad", "other"] = "other"
    """With videos: what they show (human picks the mediapipe segmenter by default)."""
    segmenter: Literal["given", "mediapipe", "track", "motion", "onnx"] | None = None
    """With videos: how masks are made: given (masks:), mediapipe (people), track (from a prompt box), motion (no
    prompt; unreliable for slow subjects) or onnx (your model). Default: given with masks, else mediapipe for
    category human, else track with a prompt, else motion."""
    masks: str | None = None
    """With videos: your masks, one per frame (png, jpg or npy; nonzero is the object; any size): a folder with one
    sub-folder per video named as the video, or, with one video, the folder of its masks."""
    prompt: list[PromptConfig] = field(default_factory=list)
    """With videos: a box around the object on one frame per video, for the track segmenter."""
    cameras: list[ManualCameraConfig] = field(default_factory=list)
    """With videos: viewpoint keyframes set by hand; they replace the viewpoint guessed from the background."""
    onnx: OnnxConfig | None = None
    """With videos and segmenter onnx: the model and its input convention."""
    max_frames: int = 500
    """With videos: most frames kept per video by lab4d's flow-based frame filter."""
    frame_filter: float = 0.05
    """With videos: lab4d's frame filter keeps a frame when the flow from the last kept one exceeds this fraction
    of the image size (0.05, lab4d's); 0 keeps every frame (short clips, where each view counts)."""
    url: str | None = None
    """Address of a zipped processed database, such as lab4d's downloads (Dropbox share links work as they are):
    downloaded with resume, checked and unpacked to data/<dataset>/download/ (database/ at the zip's root or inside
    its single top folder)."""
    sha256: str | None = None
    """With url: the zip's SHA-256, checked after download (a mismatch deletes the file); when absent, the download
    prints the checksum to pin here."""
    collection: str | None = None
    """With path or url: the collection name, i.e. database/configs/<collection>.config (defaults to the dataset
    name)."""
    train_res: int | None = None
    """With path or url: resolution of the processed arrays to use, <prefix>-<train_res>.npy (default: the one on
    disk; needed only when the database holds several). With videos: the resolution to write (default 256)."""

    def __post_init__(self) -> None:
        given = [k for k in ("synthetic", "path", "url", "videos") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"source needs exactly one of synthetic, path, url, videos; got {given or 'none'}")
        video_keys = [
            key
            for key, default in (
                ("masks", None),
                ("segmenter", None),
                ("onnx", None),
                ("category", "other"),
                ("max_frames", 500),
                ("frame_filter", 0.05),
            )
            if getattr(self, key) != default
        ] + [key for key in ("prompt", "cameras") if getattr(self, key)]
        if self.videos is None and video_keys:
            raise ValueError(f"{', '.join(video_keys)} belong to a videos source; remove them or give videos")
        if self.videos is not None:
            self._check_videos()
        if self.url is not None and not re.match(r"https?://", self.url):
            raise ValueError(f"url must be an http:// or https:// address, got {self.url!r}")
        if self.sha256 is not None and self.url is None:
            raise ValueError("sha256 is the checksum of a url's download; remove it or give the url")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ValueError(f"sha256 must be 64 hexadecimal digits, got {self.sha256!r}")
        if self.synthetic is not None and (self.collection is not None or self.train_res is not None):
            raise ValueError("collection and train_res belong to path and url sources; synthetic sets its own")
        if self.train_res is not None and self.train_res < 16:
            raise ValueError(f"train_res must be at least 16 pixels, got {self.train_res}")

    def _check_videos(self) -> None:
        if self.collection is not None:
            raise ValueError("collection belongs to path and url sources; a videos source is named after the dataset")
        if isinstance(self.videos, list) and not self.videos:
            raise ValueError("videos: give a folder, a file, or a non-empty list of them")
        if self.segmenter == "given" and self.masks is None:
            raise ValueError("segmenter given needs masks: DIR (one folder of masks per video)")
        if self.segmenter == "onnx" and self.onnx is None:
            raise ValueError("segmenter onnx needs onnx: {model: PATH.onnx} (and its size, mean, std)")
        if self.segmenter == "track" and not self.prompt:
            raise ValueError("segmenter track needs prompt: [{video: NAME, frame: 0, box: [x0, y0, x1, y1]}]")
        if not 0.0 <= self.frame_filter < 1.0:
            raise ValueError(f"frame_filter is a fraction of the image size in [0, 1), got {self.frame_filter}")
        if self.max_frames < 9:
            raise ValueError(f"max_frames must be at least 9 (lab4d drops shorter videos), got {self.max_frames}")

    @property
    def mask_method(self) -> str:
        """The segmenter a videos source uses: the one named, else the best the settings allow."""
        if self.segmenter is not None:
            return self.segmenter
        if self.masks is not None:
            return "given"
        if self.category == "human":
            return "mediapipe"
        return "track" if self.prompt else "motion"


@dataclass
class ModelConfig:
    """The 4D model: canonical shape and colour field, deformation and cameras."""

    fg_motion: Literal[
        "rigid", "dense", "bob", "skel-human", "skel-quad", "comp_skel-human_dense", "comp_skel-quad_dense"
    ] = "rigid"
    """Deformation (lab4d): rigid (root pose only), dense (offset fields), bob (25 Gaussian bones, blend
    skinning), skel-human / skel-quad (a kinematic tree: joint rotations per frame, bone lengths per instance)
    or comp_skel-<tree>_dense (the tree, then a small soft warp in rest space)."""
    single_inst: bool = True
    """One morphology code shared by all videos (true) or one per video (lab4d's --nosingle_inst)."""
    encoding: Literal["hashgrid", "fourier"] = "hashgrid"
    """Coordinate encoding of the field: a multi-resolution hash grid (fast) or lab4d's Fourier features."""
    implementation: Literal["torch", "tcnn"] = "torch"
    """Hash-grid backend: pure PyTorch (default, tested) or tinycudann when installed."""
    hash_levels: int = 16
    """Hash grid: number of resolution levels."""
    hash_log2_size: int = 17
    """Hash grid: log2 of the table size per level."""
    hash_max_res: int = 512
    """Hash grid: finest resolution over the object's bounding cube."""
    num_freq_xyz: int = 10
    """Fourier encoding: number of frequencies (lab4d: 10)."""
    field_hidden: int | None = None
    """Width of the SDF network (default: 64 with the hash grid, 256 with Fourier features as in lab4d)."""
    field_depth: int | None = None
    """Hidden layers of the SDF network (default: 2 with the hash grid, 8 with Fourier features as in lab4d)."""
    field_bound: float = 2.0
    """Half-size of the canonical field's cube, relative to the object's radius (estimated from the masks);
    a tighter cube gives the encoding's cells a finer grain on the object."""
    num_bones: int = 25
    """Gaussian bones of fg_motion: bob."""
    occupancy_res: int = 16
    """Cells per axis of the per-frame occupancy grids that confine training rays to the space near
    the shape (refit with the proxy boxes); 0 samples the whole proxy box."""
    bone_scale: float = 0.15
    """Initial size (standard deviation) of the Gaussian bones, relative to the object's radius."""
    init_beta: float = 0.1
    """Initial VolSDF beta, relative to the object's radius (lab4d: 0.1 for an object of radius ~1)."""
    shading: Literal["none", "sh"] = "none"
    """Shade each ray's colour by its posed surface normal under a learned light per video (sh: order-2 spherical
    harmonics), so the canonical colour is an albedo that holds as limbs turn in a fixed light; none: as lab4d."""


@dataclass
class TrainConfig:
    """Optimisation and rendering during training; lab4d's flag names and defaults unless a preset says otherwise."""

    preset: Literal["auto", "cpu", "gpu"] = "auto"
    """Defaults for the machine: cpu (fewer samples and steps, small batch) or gpu; auto picks by CUDA availability.
    Keys set in the YAML or with --set always win over the preset."""
    ngpu: int = 1
    """GPUs the train rule asks Snakemake (or Slurm) for, its gpu resource (lab4d's train.sh GPU list): that many
    torchrun ranks, NCCL between them; fewer where fewer are visible, and the CPU where CUDA is not (or with
    snakemake --resources gpu=0)."""
    learning_rate: float = 5e-4
    """Peak learning rate of the one-cycle schedule of the networks (and of the hash grids, times grid_lr_mult)."""
    explicit_lr: float | None = None
    """Peak learning rate of explicit parameters (poses, intrinsics, beta, scale, bones); default 10x learning_rate, as in lab4d."""
    beta_anneal: float = 1.0
    """Factor that scales VolSDF's learned beta down, log-linearly over the second half of training (1: off, as in
    lab4d). The density's surface is about 3 beta thick: in a short run, where beta is never learned down far,
    thin parts stay semi-transparent and silhouettes soft."""
    grid_lr_mult: float = 1.0
    """Learning rate of hash-grid tables relative to learning_rate (Instant-NGP trains its tables faster than its MLPs;
    each table entry sees few gradients per step)."""
    num_rounds: int = 20
    """Rounds of training; a checkpoint and TensorBoard images are written after each."""
    iters_per_round: int = 200
    """Optimisation steps per round."""
    imgs_per_gpu: int = 128
    """Frame pairs per step and process (GPU or CPU rank): a step's batch is ranks x imgs_per_gpu pairs, so
    2x that many frames (lab4d's rule)."""
    pixels_per_image: int = 16
    """Pixels sampled per frame."""
    fg_fraction: float = 0.0
    """Fraction of the sampled pixels drawn from the object mask (0: uniform, like lab4d)."""
    data_prefix: Literal["crop", "full"] = "crop"
    """Which processed arrays to train on: object crops or full frames."""
    train_res: int | None = None
    """Resolution of the processed arrays to read (<prefix>-<train_res>.npy); default: the dataset's (its manifest's)."""
    num_samples: int = 64
    """Stratified samples per ray (lab4d: 64)."""
    num_importance: int = 0
    """Extra samples per ray drawn from the coarse weights (lab4d trains with none)."""
    mask_wt: float = 0.1
    """Weight of the silhouette loss."""
    rgb_wt: float = 0.1
    """Weight of the colour loss."""
    depth_wt: float = 0.1
    """Weight of the depth loss (used when the dataset has depth). Depth is what fixes each frame's distance:
    silhouettes and flow say nothing of it, so wherever root poses are free to move (estimated ones, once their
    prior fades) lab4d's 1e-4 let each frame drift by its own 5 % in depth, and the meshes of a sequence
    scattered (the Fox from true poses left free: F@5% 0.76 against 0.98 at 0.1; docs/cameras.md)."""
    depth_type: Literal["auto", "exact", "estimate"] = "auto"
    """What the dataset's depth maps are: exact (a synthetic dataset's own depth, in the scene's units), or an
    estimate (a monocular network's, such as the ZoeDepth maps of lab4d's downloads), trusted only up to one
    scale per video, which is learned from the ratio of the root poses' depth to the maps'. auto: exact for a
    dataset with ground truth (synthetic), an estimate otherwise."""
    flow_wt: float = 0.5
    """Weight of the optical-flow loss."""
    feature_type: Literal["dinov2", "cse"] = "dinov2"
    """Which per-pixel features of the dataset (Features/<prefix>-<res>-<type>-01.npy) the feature losses use;
    a dataset without them trains without those losses."""
    feature_wt: float = 1e-2
    """Weight of the feature loss: the canonical feature field at a pixel's surface point against the pixel's
    feature (lab4d's feature_wt)."""
    feat_reproj_wt: float = 5e-2
    """Weight of the feature reprojection loss: each pixel's feature is matched (soft-argmax) to the canonical
    surface, carried to its frame and projected; its distance to the pixel, over train_res (lab4d's
    feat_reproj_wt). Unlike flow, it ties frames any distance apart to the same canonical point."""
    reg_eikonal_wt: float = 1e-3
    """Weight of the eikonal regulariser (|grad sdf| = 1), ramped up x100 over training as in lab4d."""
    reg_deform_cyc_wt: float = 0.01
    """Weight of the forward/backward warp cycle consistency."""
    reg_delta_skin_wt: float = 5e-3
    """Weight of the skinning-weight correction penalty (bob)."""
    reg_skin_entropy_wt: float = 5e-4
    """Weight of the skinning-weight entropy (bob)."""
    reg_gauss_skin_wt: float = 1e-3
    """Weight keeping Gaussian bones inside the shape (bob; lab4d's multi-video tutorial uses 0.01)."""
    reg_inst_shape_wt: float = 1.0
    """With single_inst: false and a skeleton (skel-*), weight keeping each instance's shape near the mean
    body's (their SDFs' mean absolute difference over the field's bound), so that individuals differ first by
    their bone lengths: without it, a video whose legs never bend learned them 12 % too long
    (docs/category.md)."""
    inst_swap_prob: float = 0.0
    """With single_inst: false, the probability that a frame is rendered with another video's instance (shape,
    colour, bone lengths, skinning) once the swapping has faded from 1 (lab4d's code swapping: 0.2, reached over
    its first 2000 steps, i.e. inst_swap_fade 0.5). Off by default: in a CPU run it cost demo-human's videos
    up to 0.07 mask IoU (docs/category.md)."""
    inst_swap_fade: float = 0.0
    """Fraction of training over which the swap probability falls from 1 to inst_swap_prob; 0 (the default):
    inst_swap_prob from the start, so with both at 0 no frame is ever swapped."""
    reg_skel_prior_wt: float = 0.1
    """Weight keeping the mean body's bone lengths near the skeleton's predefined proportions (skel-*), fading
    to zero over training as in lab4d; individuals differ from the mean body freely."""
    reg_joint_limit_wt: float = 1.0
    """Weight keeping a skeleton's hinge joints (a human's knees and elbows) from bending the wrong way: the
    squared excess in radians. Without it the knees of demo-human's walkers learned no bend at all."""
    reg_soft_deform_wt: float = 100.0
    """Weight keeping the soft warp of comp_skel-* small (its squared offset over the object's radius squared),
    so the skeleton explains the articulation (lab4d: 100)."""
    reg_cam_prior_wt: float = 0.1
    """Weight keeping root poses near the dataset's cameras (rotation angle plus translation over the object's size)."""
    cam_prior_fade: float = 0.3
    """Fraction of training over which the camera prior fades to zero for videos whose root poses are an
    estimate: given ones that turn unlike the optical flow, or none (lab4d fades it for all over its first 800
    of 4000 steps). Held, the prior keeps wrong root poses where they started; faded for right ones, they drift.
    0 holds it for every video."""
    reg_root_flow_wt: float = 5.0
    """Weight keeping each frame-to-frame turn of the root trajectory at the one optical flow and depth measure
    (a robust rigid fit of the object's pixels; lab4d fits its viewpoint estimates to such pairs before training):
    unlike the camera prior, it corrects a wrong start instead of holding it. Needs depth maps."""
    freeze_intrinsics: bool = False
    """Keep the intrinsics at the dataset's ks instead of learning them (lab4d's ppr branch): for exact ks, as
    synthetic data has; learned, the focal length drifts, since it trades off against the object's size."""
    grad_clip: float = 5.0
    """Gradient-norm clipping threshold."""
    eval_res: int = 64
    """Resolution of the renders logged to TensorBoard after each round."""
    seed: int = 0
    """Seed of initialisation and sampling."""

    def __post_init__(self) -> None:
        if not 0.0 < self.beta_anneal <= 1.0:
            raise ValueError(f"beta_anneal must be in (0, 1] (1: off), got {self.beta_anneal}")
        if not (0.0 <= self.inst_swap_prob <= 1.0 and 0.0 <= self.inst_swap_fade <= 1.0):
            raise ValueError(
                f"inst_swap_prob and inst_swap_fade are a probability and a fraction of training in [0, 1], "
                f"got {self.inst_swap_prob} and {self.inst_swap_fade}"
            )
        if not 0.0 <= self.cam_prior_fade <= 1.0:
            raise ValueError(f"cam_prior_fade must be a fraction of training in [0, 1], got {self.cam_prior_fade}")


@dataclass
class DatasetConfig:
    """One dataset: its source, then the model and training options."""

    source: SourceConfig
    """Where the data comes from."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The 4D model."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training."""


def load_dataset_config(path: Path) -> DatasetConfig:
    """Read and validate ``config/datasets/<name>.yaml``."""
    return from_dict(DatasetConfig, load_yaml(path), where=str(path))


@dataclass
class WorkflowConfig:
    """Top-level Snakemake config (config/config.yaml)."""

    datasets: list[str] = field(default_factory=lambda: ["demo-quad"])
    """Datasets that `rule all` (and `make demo`) builds; each names config/datasets/<name>.yaml."""
    dataset_configs: str = "config/datasets"
    """Folder of the per-dataset YAML files."""


def add_arguments(parser, cls: type, rename: dict[str, str] | None = None) -> None:
    """Add one ``--flag`` per field of ``cls``, with help from the field's docstring.

    Defaults are suppressed so that only flags given on the command line override
    a config file.
    """
    import argparse

    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    rename = rename or {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            continue
        flag = "--" + rename.get(f.name, f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{docs.get(f.name, '')} (default: {default})",
        }
        origin = typing.get_origin(tp)
        inner = typing.get_args(tp)[0] if origin is list else tp
        if typing.get_origin(inner) in (types.UnionType, typing.Union):
            inner = next(a for a in typing.get_args(inner) if a is not type(None))
        if origin is list:
            kwargs["nargs"] = "+"
        if typing.get_origin(inner) is list:
            # A list of lists on the command line: each item comma-separated, e.g. --reanimate 0,3 3,0.
            kwargs["type"] = _comma_list(typing.get_args(inner)[0])
            kwargs["metavar"] = "A,B"
        elif tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(inner) is Literal:
            kwargs["choices"] = typing.get_args(inner)
        else:
            kwargs["type"] = inner
        parser.add_argument(flag, **kwargs)


def _comma_list(item: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        return [item(part) for part in text.split(",")]

    parse.__name__ = f"comma-separated {item.__name__} list"
    return parse


def given_arguments(args, cls: type) -> dict:
    """The fields of ``cls`` that were given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
