"""``lab4d synth``: render a synthetic dataset in lab4d's processed layout, plus ground truth.

Output (``out`` is a lab4d-style root)::

    out/database/configs/<name>.config
    out/database/processed/<Type>/Full-Resolution/<name>-%04d/...   (lab4d arrays, both prefixes)
    out/GroundTruth/<name>-%04d/                                      (meshes, cameras, bones)
    out/GroundTruth/reanimate/<A>-to-<B>/                             (true reanimations, when asked for)
    out/manifest.json                                                 (written last)

Everything is first written to a sibling temp folder that replaces ``out`` only
when complete, so an interrupted run never leaves a dataset that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from lab4d_core import __version__
from lab4d_core.config import SynthConfig, to_dict
from lab4d_core.data.database import FLOW_DELTAS, PrefixArrays, VideoRecord, write_config, write_video
from lab4d_core.data.synthetic.background import background
from lab4d_core.data.synthetic.cameras import camera_path
from lab4d_core.data.synthetic.characters import Character, Morphology, procedural_character
from lab4d_core.data.synthetic.features import feature_maps
from lab4d_core.data.synthetic.gltf_asset import load_asset
from lab4d_core.data.synthetic.groundtruth import View, exact_flow, surface_points
from lab4d_core.data.synthetic.motion import ANGLE_GENERATORS, motion_phase, root_trajectory
from lab4d_core.data.synthetic.people import PersonBuild, anny_person
from lab4d_core.data.synthetic.reanimation import true_reanimation
from lab4d_core.data.synthetic.renderer import Mesh, Renderer
from lab4d_core.geometry.cameras import crop_intrinsics
from lab4d_core.geometry.transforms import apply_transform
from lab4d_core.preprocess.crop import crop_params, inside_raw
from lab4d_core.utils.io import atomic_write_text, replace_dir
from lab4d_core.utils.progress import progress as progress_bar

CHARACTER_ID = 1
"""Object id of the character in renders; the scene's meshes follow it."""


@dataclass
class Performance:
    """What one video of a character does: posed vertices and the truth behind them."""

    character: Character
    skinning: np.ndarray
    """(N, J, 4, 4) rest-object -> posed-object transforms per bone."""
    joint_so3: np.ndarray
    """(N, J, 3) local joint rotations."""
    object_to_world: np.ndarray
    """(N, 4, 4) root pose."""
    label: str

    def world_verts(self) -> np.ndarray:
        return apply_transform(self.object_to_world, self.character.pose(self.skinning))


@dataclass
class Shot:
    """A rendered video as the true reanimation needs it: the performance and the cameras that saw it."""

    performance: Performance
    world2cam: np.ndarray
    """(N, 4, 4) world -> camera."""
    ks: np.ndarray
    """(4,) raw intrinsics fx, fy, cx, cy."""


def _performance(cfg: SynthConfig, video: int, rng: np.random.Generator, characters: dict) -> Performance:
    times = np.arange(cfg.frames(video)) / cfg.fps
    heading0 = rng.uniform(0, 2 * np.pi)
    if cfg.character == "asset":
        name = cfg.animations[video % len(cfg.animations)] if cfg.animations else None
        if name not in characters:
            characters[name] = load_asset(Path(cfg.asset), name)
        asset = characters[name]
        key = asset.character.meta["animation"]
        gait = "trot" if "run" in key.lower() else "walk" if "walk" in key.lower() else "wave"
        size = _body_length(asset.character)
        return Performance(
            asset.character,
            asset.skinning_transforms(times),
            asset.joint_so3(times),
            root_trajectory(gait, times, size, heading0),
            f"{cfg.asset}:{key}",
        )
    instance = 0 if cfg.single_inst else video
    if instance not in characters:
        characters[instance] = _character(cfg, instance)
    character = characters[instance]
    motion = cfg.motions[video % len(cfg.motions)]
    kind = character.skeleton.name  # a person from anny moves as our human does
    angles = ANGLE_GENERATORS[kind](character.skeleton, motion, motion_phase(motion, times, rng.uniform(0, 2 * np.pi)))
    size = _body_length(character)
    # Humans walk at their own pace; scale by height rather than by body length.
    return Performance(
        character,
        character.skeleton.skinning_transforms(angles),
        angles,
        root_trajectory(motion, times, size * (0.5 if kind == "human" else 1.0), heading0),
        motion,
    )


def _character(cfg: SynthConfig, instance: int) -> Character:
    """Instance ``instance``: one individual keeps its seed's random build; several spread over a deliberate range."""
    seed = cfg.seed * 1000 + instance
    if cfg.character == "anny":
        return anny_person(seed, None if cfg.single_inst else PersonBuild.spread(instance, cfg.num_videos, cfg.seed))
    morph = None if cfg.single_inst else Morphology.spread(cfg.character, instance, cfg.num_videos, cfg.seed)
    return procedural_character(cfg.character, seed, voxel=cfg.voxel, morph=morph)


def _body_length(character: Character) -> float:
    extent = character.rest_verts.max(axis=0) - character.rest_verts.min(axis=0)
    return float(extent.max())


def _flow_pairs(num_frames: int) -> int:
    """Forward plus backward flow fields of one video and prefix."""
    return sum(2 * ((num_frames - 1) // delta) for delta in FLOW_DELTAS)


def _prefix_arrays(
    views: list[View],
    crop2raw: np.ndarray,
    is_detected: np.ndarray,
    world_verts,
    character: Character,
    scene,
    progress: tqdm,
) -> PrefixArrays:
    faces = character.faces
    flows: dict[str, dict[int, np.ndarray]] = {"fw": {}, "bw": {}}
    for delta in FLOW_DELTAS:
        pairs = [(k * delta, k * delta + delta) for k in range((len(views) - 1) // delta)]
        for direction, (src_of, dst_of) in (("fw", (0, 1)), ("bw", (1, 0))):
            stack = []
            for pair in pairs:
                src, dst = pair[src_of], pair[dst_of]
                points = surface_points(views[src], {CHARACTER_ID: (world_verts[dst], faces)}, scene)
                stack.append(exact_flow(views[src], views[dst], points))
                progress.update(1)
            flows[direction][delta] = (
                np.stack(stack) if stack else np.zeros((0,) + views[0].vis2d.shape + (3,), np.float32)
            )
    vis2d = np.stack([v.vis2d for v in views])
    return PrefixArrays(
        rgb=np.stack([v.frame.rgb for v in views]) * vis2d[..., None],
        mask=np.stack([v.frame.object_id == CHARACTER_ID for v in views]) & vis2d,
        vis2d=vis2d,
        crop2raw=crop2raw,
        is_detected=is_detected,
        flow_fw=flows["fw"],
        flow_bw=flows["bw"],
        depth=np.stack([v.frame.depth for v in views]) * vis2d,
        features={"dinov2": feature_maps(views, CHARACTER_ID, character.rest_verts, faces)},
    )


def synthesize_video(
    cfg: SynthConfig, video: int, seqname: str, renderer: Renderer, characters: dict, progress: tqdm
) -> tuple[VideoRecord, dict, Shot]:
    """Render one video: the lab4d record, the ground-truth arrays and the shot (for reanimations)."""
    num_frames = cfg.frames(video)
    rng = np.random.default_rng([cfg.seed, video])
    performance = _performance(cfg, video, rng, characters)
    character = performance.character
    world_verts = performance.world_verts().astype(np.float32)
    floor = float(world_verts[..., 1].max())
    scene_meshes = background(rng, floor)
    scene = {CHARACTER_ID + 1 + k: (m.verts, m.faces) for k, m in enumerate(scene_meshes)}
    size = _body_length(character)
    targets = performance.object_to_world[:, :3, 3] + np.array([0.0, -0.1 * size, 0.0])
    kind = cfg.cameras[video % len(cfg.cameras)]
    world2cam = camera_path(kind, targets, np.arange(num_frames) / cfg.fps, 1.9 * size, rng)
    height = width = cfg.resolution
    focal = cfg.focal * max(height, width)
    ks = np.array([focal, focal, width / 2, height / 2])

    static = [
        renderer.upload(Mesh(CHARACTER_ID + 1 + k, m.verts, m.faces, m.verts, m.palette, m.pattern_scale))
        for k, m in enumerate(scene_meshes)
    ]
    frames_raw, masks_raw = [], []
    crop2raw: dict[str, list[np.ndarray]] = {prefix: [] for prefix in cfg.prefixes}
    views: dict[str, list[View]] = {prefix: [] for prefix in cfg.prefixes}
    for f in range(num_frames):
        posed = renderer.upload(
            Mesh(
                CHARACTER_ID,
                world_verts[f],
                character.faces,
                character.rest_verts,
                character.palette,
                character.pattern_scale,
                character.uv,
                character.texture,
                character.colors,
            )
        )
        raw = renderer.render([posed] + static, world2cam[f], ks, width, height, cfg.supersample)
        mask = raw.object_id == CHARACTER_ID
        frames_raw.append(np.clip(raw.rgb * 255 + 0.5, 0, 255).astype(np.uint8))
        masks_raw.append(mask.astype(np.int8))
        # The crop of each frame follows from its own raw mask, as in lab4d's crop.py.
        for prefix in cfg.prefixes:
            box = crop_params(mask, cfg.train_res, full=prefix == "full")
            intrinsics = crop_intrinsics(ks, box)
            frame = renderer.render(
                [posed] + static, world2cam[f], intrinsics, cfg.train_res, cfg.train_res, cfg.supersample
            )
            crop2raw[prefix].append(box)
            views[prefix].append(View(frame, world2cam[f], intrinsics, inside_raw(box, cfg.train_res, (height, width))))
        posed.release()
        progress.update(1)
    for uploaded in static:
        uploaded.release()
    masks_raw = np.stack(masks_raw)
    is_detected = masks_raw.reshape(num_frames, -1).any(axis=1)
    arrays = {
        prefix: _prefix_arrays(
            views[prefix], np.stack(crop2raw[prefix]), is_detected, world_verts, character, scene, progress
        )
        for prefix in cfg.prefixes
    }

    field2cam = world2cam @ performance.object_to_world
    record = VideoRecord(
        seqname=seqname,
        frames_raw=np.stack(frames_raw),
        kept_ids=np.arange(num_frames),
        masks_raw=masks_raw,
        ks=tuple(float(k) for k in ks),
        arrays=arrays,
        # lab4d reads the background camera from 00-canonical.npy; 00.npy is its preprocessing output.
        cameras={"00": world2cam, "00-canonical": world2cam, "01-canonical": field2cam},
    )
    truth = {
        "verts_cam": apply_transform(world2cam, world_verts.astype(np.float64)).astype(np.float32),
        "faces": character.faces.astype(np.int32),
        "rest_verts": character.rest_verts.astype(np.float32),
        "skin_weights": character.skin_weights.astype(np.float32),
        "field2cam": field2cam.astype(np.float32),
        "world2cam": world2cam.astype(np.float32),
        "intrinsics": np.tile(ks, (num_frames, 1)).astype(np.float32),
        "bone_transforms": performance.skinning.astype(np.float32),
        "joint_so3": performance.joint_so3.astype(np.float32),
        "rest_joints": character.skeleton.rest_joints.astype(np.float32),
        "bone_lengths": character.skeleton.bone_lengths().astype(np.float32),
        "skeleton": {
            "name": character.skeleton.name,
            "joint_names": list(character.skeleton.joint_names),
            "parents": list(character.skeleton.parents),
        },
        "meta": {
            "motion": performance.label,
            "camera_path": kind,
            "fps": cfg.fps,
            "instance": 0 if cfg.single_inst else video,
            **_json_safe(character.meta),
        },
    }
    return record, truth, Shot(performance, world2cam, ks)


def reanimate_shot(
    cfg: SynthConfig, pair: tuple[int, int], shots: list[Shot], seqnames: list[str], renderer: Renderer, progress: tqdm
) -> dict:
    """True reanimation ``A-to-B``: B's character performing A's joint rotations and root pose, seen by A's cameras."""
    a, b = pair
    motion, body = shots[a], shots[b]
    truth = true_reanimation(
        body.performance.character,
        motion.performance.joint_so3,
        motion.performance.object_to_world,
        motion.world2cam,
        motion.ks,
        (cfg.resolution, cfg.resolution),
        renderer,
        object_id=CHARACTER_ID,
        progress=progress,
    )
    truth["meta"] = {
        "motion_id": a,
        "inst_id": b,
        "motion_seq": seqnames[a],
        "inst_seq": seqnames[b],
        "motion": motion.performance.label,
        "instance": 0 if cfg.single_inst else b,
        **truth["meta"],
    }
    return truth


def _json_safe(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=float))


def write_ground_truth(folder: Path, truth: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in truth.items():
        if isinstance(value, np.ndarray):
            np.save(folder / f"{key}.npy", value)
        else:
            (folder / f"{key}.json").write_text(json.dumps(value, indent=1))
    if "rest_verts" in truth:
        trimesh.Trimesh(truth["rest_verts"], truth["faces"], process=False).export(folder / "mesh-rest.obj")


def synthesize(cfg: SynthConfig, out: Path, name: str | None = None) -> dict:
    """Render the whole dataset into ``out`` atomically; returns the manifest."""
    out = Path(out)
    name = name or out.name
    start = time.perf_counter()
    renderer = Renderer()  # fails early, before anything is written, when OpenGL is missing
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    characters: dict = {}
    seqnames = [f"{name}-{v:04d}" for v in range(cfg.num_videos)]
    counts = cfg.frame_counts
    total = sum(n + len(cfg.prefixes) * _flow_pairs(n) for n in counts) + sum(counts[a] for a, _ in cfg.reanimate)
    records, shots = [], []
    try:
        with progress_bar(total=total, desc=f"synth {name}", unit="step", dynamic_ncols=True) as progress:
            for video, seqname in enumerate(seqnames):
                progress.set_postfix_str(f"{seqname}: render", refresh=False)
                record, truth, shot = synthesize_video(cfg, video, seqname, renderer, characters, progress)
                progress.set_postfix_str(f"{seqname}: write", refresh=False)
                write_video(partial, record)
                write_ground_truth(partial / "GroundTruth" / seqname, truth)
                records.append((record.seqname, record.ks, record.shape))
                shots.append(shot)
            for a, b in cfg.reanimate:
                progress.set_postfix_str(f"reanimate {a}-to-{b}", refresh=False)
                truth = reanimate_shot(cfg, (a, b), shots, seqnames, renderer, progress)
                write_ground_truth(partial / "GroundTruth" / "reanimate" / f"{a}-to-{b}", truth)
        write_config(partial, name, records)
        manifest = {
            "root": ".",
            "collection": name,
            "videos": seqnames,
            "num_frames": counts,
            "train_res": cfg.train_res,
            "prefixes": list(cfg.prefixes),
            "ground_truth": True,
            "source": {"synthetic": to_dict(cfg)},
            "lab4d_core": __version__,
            "seconds": round(time.perf_counter() - start, 2),
        }
        atomic_write_text(partial / "manifest.json", json.dumps(manifest, indent=1))
        replace_dir(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest
