"""``lab4d <subcommand>``: the command-line entry point the Snakemake rules call.

Each subcommand is a thin adapter from flags to a function in the package; a
``Lab4dError`` (bad input) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lab4d_core import __version__
from lab4d_core.config import (
    DatasetConfig,
    SynthConfig,
    add_arguments,
    from_dict,
    given_arguments,
    load_dataset_config,
    to_dict,
)
from lab4d_core.errors import Lab4dError
from lab4d_core.train.distributed import DEVICE_CHOICES
from lab4d_core.utils.io import atomic_write_text

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}
"""Registry: name -> (one-line help, add_arguments, run)."""


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], None]):
        COMMANDS[name] = (help, arguments, run)
        return run

    return register


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="dataset YAML whose source.synthetic section is the base; flags override it"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (a lab4d root: database/, GroundTruth/, manifest.json)"
    )
    parser.add_argument(
        "--name",
        help="collection name: database/configs/<name>.config and sequences <name>-%%04d (default: the --out folder's name)",
    )
    add_arguments(parser, SynthConfig, rename={"animations": "animation"})


@command(
    "synth", "render a synthetic articulated dataset in lab4d's processed layout, with ground truth", _synth_arguments
)
def _synth(args: argparse.Namespace) -> None:
    from lab4d_core.data.synthetic.synthesize import synthesize

    base: dict = {}
    if args.config is not None:
        source = load_dataset_config(args.config).source
        if source.synthetic is None:
            raise Lab4dError(f"{args.config}: source is not synthetic; nothing to synthesize")
        base = to_dict(source.synthetic)
    cfg = from_dict(SynthConfig, {**base, **given_arguments(args, SynthConfig)}, where="synth")
    manifest = synthesize(cfg, args.out, args.name)
    counts = cfg.frame_counts
    frames = f"x {counts[0]} frames" if len(set(counts)) == 1 else f"of {', '.join(map(str, counts))} frames"
    print(f"wrote {args.out} ({cfg.num_videos} videos {frames}) in {manifest['seconds']:.1f} s")


def _link_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, required=True, help="folder containing database/ (e.g. an unzipped lab4d download)"
    )
    parser.add_argument("--collection", required=True, help="collection name: database/configs/<collection>.config")
    parser.add_argument("--out", type=Path, required=True, help="manifest to write, e.g. data/<dataset>/manifest.json")
    parser.add_argument(
        "--train-res",
        type=int,
        help="resolution of the arrays to use, <prefix>-<train-res>.npy (default: the one on disk)",
    )
    parser.add_argument(
        "--prefixes",
        nargs="+",
        default=["crop"],
        choices=["crop", "full"],
        help="array prefixes that must exist (default: crop)",
    )


@command(
    "link", "validate an existing processed database in place and write a manifest pointing to it", _link_arguments
)
def _link(args: argparse.Namespace) -> None:
    from lab4d_core.data.manifest import link_database

    manifest = link_database(args.root, args.collection, args.out, args.train_res, tuple(args.prefixes))
    print(
        f"{args.root}: {len(manifest['videos'])} videos, {sum(manifest['num_frames'])} frames at "
        f"{manifest['train_res']} px; wrote {args.out}"
    )


def _preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=["frames", "masks", "crops", "flow", "cameras", "gather", "all"],
        help="one stage of one video (frames, masks, crops, flow, cameras, in that order), gather (every video's "
        "stages into database/ and manifest.json), or all (everything, in one call)",
    )
    parser.add_argument("--config", type=Path, required=True, help="dataset YAML with source.videos")
    parser.add_argument(
        "--out", type=Path, required=True, help="the dataset's folder: preprocess/<video>/, database/, manifest.json"
    )
    parser.add_argument("--video", help="with a stage: the video's name (its file or folder name, no extension)")
    parser.add_argument(
        "--name", help="collection name: database/configs/<name>.config (default: the --out folder's name)"
    )


@command(
    "preprocess",
    "your own videos -> lab4d's processed layout on the CPU: frames, masks, flow, crops, cameras",
    _preprocess_arguments,
)
def _preprocess(args: argparse.Namespace) -> None:
    from lab4d_core.preprocess import videos

    source = load_dataset_config(args.config).source
    if source.videos is None:
        raise Lab4dError(f"{args.config}: source has no videos; nothing to preprocess")
    collection = args.name or args.out.name
    if args.stage == "all":
        manifest = videos.preprocess(source, collection, args.out)
    elif args.stage == "gather":
        works = {name: args.out / "preprocess" / name for name in videos.find_videos(source)}
        manifest = videos.gather(source, collection, works, args.out)
    else:
        if args.video is None:
            raise Lab4dError(f"preprocess {args.stage}: name the video with --video")
        started = time.perf_counter()
        videos.run_stage(args.stage, source, args.video, args.out / "preprocess" / args.video)
        seconds = time.perf_counter() - started
        print(f"{args.video}: {args.stage} done in {args.out / 'preprocess' / args.video} ({seconds:.1f} s)")
        return
    frames = ", ".join(map(str, manifest["num_frames"]))
    print(f"wrote {args.out}/database and manifest.json ({len(manifest['videos'])} videos of {frames} frames)")


def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="dataset YAML whose source.url and source.sha256 are the defaults")
    parser.add_argument("--url", help="address of the zip (a Dropbox share link works as it is)")
    parser.add_argument("--sha256", help="the zip's expected SHA-256 (default: none; the checksum is printed to pin)")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to create, holding database/ (e.g. data/<dataset>/download)"
    )


@command(
    "download",
    "download a zipped processed database (e.g. lab4d's), check it and unpack it; resumes an interrupted transfer",
    _download_arguments,
)
def _download(args: argparse.Namespace) -> None:
    from lab4d_core.data.download import download

    url, sha256 = args.url, args.sha256
    if args.config is not None:
        # The workflow passes the YAML rather than the checksum, so pinning one does not re-download.
        source = load_dataset_config(args.config).source
        url, sha256 = url or source.url, sha256 or source.sha256
    if url is None:
        raise Lab4dError("nothing to download: give --url, or --config with a dataset YAML whose source has a url")
    digest = download(url, args.out, sha256)
    collections = sorted(p.stem for p in (args.out / "database" / "configs").glob("*.config"))
    print(f"unpacked {url} to {args.out}; collections: {', '.join(collections) or 'none'}")
    if sha256 is None:
        print(f"sha256: {digest}  (pin it as source.sha256 or --sha256, so that a changed or damaged file is caught)")


def _preview_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="data/<dataset>/manifest.json")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--frames", type=int, default=4, help="frames per video (default: 4)")
    parser.add_argument(
        "--prefix", default="crop", choices=["crop", "full"], help="which arrays to show (default: crop)"
    )
    parser.add_argument(
        "--strip",
        action="store_true",
        help="a compact strip of the first video (frames as columns, rgb/mask/depth/flow as rows)",
    )
    parser.add_argument("--width", type=int, help="downscale the picture to this width in pixels")


@command("preview", "contact sheet of a dataset: rgb | mask | depth | flow per sampled frame", _preview_arguments)
def _preview(args: argparse.Namespace) -> None:
    from lab4d_core.data.manifest import read_manifest
    from lab4d_core.tools.preview import contact_sheet, frame_strip, save_png

    manifest = read_manifest(args.manifest)
    make = frame_strip if args.strip else contact_sheet
    save_png(
        make(manifest.root, manifest.collection, manifest.train_res, args.frames, args.prefix), args.out, args.width
    )
    print(f"wrote {args.out}")


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument(
        "--pred-meshes", type=Path, help="folder of predicted per-frame meshes {frame:05d}.obj in camera coordinates"
    )
    parser.add_argument("--gt", type=Path, help="ground-truth folder GroundTruth/<seq> (verts_cam.npy, faces.npy)")
    parser.add_argument(
        "--protocol",
        default="sim3",
        choices=["sim3", "icp"],
        help="sim3: one Sim(3) for the sequence (lab4d-PPR/DASR); icp: per-frame rigid ICP after depth scaling (BANMo) (default: sim3)",
    )
    parser.add_argument(
        "--points",
        default="surface",
        choices=["surface", "vertices"],
        help="compare area-weighted surface samples or mesh vertices (default: surface)",
    )
    parser.add_argument("--num-samples", type=int, default=10000, help="surface samples per mesh (default: 10000)")
    parser.add_argument("--pred-masks", type=Path, help="predicted masks: .npy (N,H,W) or a folder of frames")
    parser.add_argument(
        "--gt-masks", type=Path, help="ground-truth masks: .npy, a folder of PNGs, or lab4d Annotations/ (%%05d.npy)"
    )
    parser.add_argument("--pred-rgb", type=Path, help="predicted frames for masked PSNR (.npy or folder)")
    parser.add_argument(
        "--gt-rgb", type=Path, help="ground-truth frames for masked PSNR (.npy or folder); masked by --gt-masks"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="trained model: render every training frame, score masks and colour, and its consistency across views",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="with --checkpoint: the dataset manifest (data/<name>/manifest.json; default: the one it was trained on)",
    )
    parser.add_argument(
        "--res", type=int, help="with --checkpoint: render resolution (default: the training resolution)"
    )
    parser.add_argument(
        "--gt-root",
        type=Path,
        help="with --checkpoint: a synthetic dataset's GroundTruth/ folder: also score every video's meshes and, "
        "for a skeleton model, each true reanimation (GroundTruth/reanimate/<A>-to-<B>) and the bone lengths",
    )
    parser.add_argument(
        "--reference-masks",
        type=Path,
        help="with --checkpoint: score the training views' masks against these instead of the dataset's (e.g. "
        "hand-made masks of real footage whose training masks were estimated): a mask per frame of the video "
        "(png/jpg/npy), in this folder for one video or in <folder>/<seqname>/ for several",
    )
    _ray_sampling_arguments(parser, "with --checkpoint: ")


def _ray_sampling_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(
        "--ray-samples",
        type=int,
        help=prefix + "stratified samples per ray within the occupied cells (default: the training's num_samples)",
    )
    parser.add_argument(
        "--importance-samples",
        type=int,
        help=prefix + "extra samples per ray drawn near the surface (default: the training's num_importance)",
    )


def _ray_sampling(args: argparse.Namespace, cfg: DatasetConfig) -> tuple[int, int]:
    """(stratified, importance) samples per ray: the flags, else as the model was trained."""
    samples = cfg.train.num_samples if args.ray_samples is None else args.ray_samples
    importance = cfg.train.num_importance if args.importance_samples is None else args.importance_samples
    if samples < 1 or importance < 0:
        raise Lab4dError(f"--ray-samples {samples} / --importance-samples {importance}: need >= 1 and >= 0")
    return samples, importance


@command(
    "evaluate",
    "metrics against ground truth (Chamfer/F-score of meshes, mask IoU, masked PSNR) and a model's consistency across views",
    _evaluate_arguments,
)
def _evaluate(args: argparse.Namespace) -> None:
    from lab4d_core.eval.evaluate import (
        evaluate_masks,
        evaluate_mesh_sequence,
        evaluate_rgb,
        load_ground_truth,
        load_obj_sequence,
    )
    from lab4d_core.utils.images import as_mask, as_rgb, load_stack

    results: dict = {}
    warnings: list[str] = []
    if (args.pred_meshes is None) != (args.gt is None):
        raise Lab4dError("mesh evaluation needs both --pred-meshes and --gt")
    if args.pred_meshes is not None:
        results["meshes"] = evaluate_mesh_sequence(
            load_obj_sequence(args.pred_meshes),
            load_ground_truth(args.gt),
            protocol=args.protocol,
            points=args.points,
            num_samples=args.num_samples,
        )
    if args.pred_masks is not None or args.pred_rgb is not None:
        if args.gt_masks is None:
            raise Lab4dError("mask IoU and masked PSNR need --gt-masks")
        gt_masks = as_mask(load_stack(args.gt_masks))
        if args.pred_masks is not None:
            results["masks"] = evaluate_masks(
                _same_shape(as_mask(load_stack(args.pred_masks)), gt_masks, args.pred_masks), gt_masks
            )
        if args.pred_rgb is not None:
            if args.gt_rgb is None:
                raise Lab4dError("masked PSNR needs --gt-rgb as well as --pred-rgb")
            gt_rgb = as_rgb(load_stack(args.gt_rgb))
            results["rgb"] = evaluate_rgb(
                _same_shape(as_rgb(load_stack(args.pred_rgb)), gt_rgb, args.pred_rgb), gt_rgb, gt_masks
            )
    if args.checkpoint is not None:
        from lab4d_core.eval.consistency import evaluate_consistency
        from lab4d_core.eval.render_metrics import evaluate_training_views
        from lab4d_core.model.loading import load_model
        from lab4d_core.train.distributed import select_device

        model, cfg, database = load_model(args.checkpoint, args.data, select_device())
        res = args.res or cfg.train.train_res
        samples, importance = _ray_sampling(args, cfg)
        reference = None
        if args.reference_masks is not None:
            from lab4d_core.eval.render_metrics import cropped_reference_masks

            folders = [args.reference_masks] if len(database.videos) == 1 else None
            folders = folders or [args.reference_masks / video.seqname for video in database.videos]
            reference = cropped_reference_masks(database, folders, cfg.train.data_prefix)
        results["views"] = evaluate_training_views(
            model, database, cfg.train.data_prefix, res, samples, num_importance=importance, reference_masks=reference
        )
        results["consistency"] = evaluate_consistency(model, database)
        warnings = results["consistency"]["warnings"]
        if args.gt_root is not None:
            results.update(_category_metrics(model, database, args.gt_root, samples))
    elif args.gt_root is not None:
        raise Lab4dError("--gt-root scores a model: give --checkpoint too")
    if not results:
        raise Lab4dError("nothing to evaluate: give --checkpoint, --pred-meshes/--gt or --pred-masks/--gt-masks")
    atomic_write_text(args.out, json.dumps(results, indent=1))
    for kind, values in results.items():
        summary = values.get("mean", values)
        # Floats and verdicts (consistency's); per-frame lists and sections stay in the file.
        print(
            kind,
            {k: v if isinstance(v, bool) else round(v, 4) for k, v in summary.items() if isinstance(v, float | bool)},
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out}")


def _category_metrics(model, database, gt_root: Path, samples: int) -> dict:
    """Every video's meshes; with a skeleton, the reanimations the ground truth holds and, with one body per
    video, the bone lengths."""
    from lab4d_core.eval.category import evaluate_bone_lengths, evaluate_reanimations, evaluate_video_meshes
    from lab4d_core.export.motion import skeleton_of

    if not gt_root.is_dir():
        raise Lab4dError(f"--gt-root {gt_root}: no such folder (a synthetic dataset's data/<name>/GroundTruth)")
    results = {"video_meshes": evaluate_video_meshes(model, database, gt_root)}
    if skeleton_of(model) is not None:
        reanimations = evaluate_reanimations(model, database, gt_root, num_samples=samples)
        if reanimations:
            results["reanimation"] = reanimations
        if model.num_inst > 1:
            results["bone_lengths"] = evaluate_bone_lengths(model, database, gt_root)
    return results


def _same_shape(pred, gt, path: Path):
    if pred.shape[:3] != gt.shape[:3]:
        raise Lab4dError(
            f"{path}: shape {pred.shape[:3]} differs from the ground truth's {gt.shape[:3]} (frames, height, width)"
        )
    return pred


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="dataset YAML: config/datasets/<name>.yaml")
    parser.add_argument("--data", type=Path, help="dataset manifest (default: data/<name>/manifest.json)")
    parser.add_argument("--out", type=Path, help="output folder (default: results/<name>/train)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model or train option, lab4d-style (--set num_rounds=5 --set fg_motion=bob)",
    )
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs to train on; >= 2 runs torchrun, 0 the CPU")
    parser.add_argument("--nproc", type=int, default=1, help="CPU processes (gloo ranks) when --ngpu is 0")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="device (default: auto)")
    parser.add_argument("--until", type=int, help="stop at this step (checkpointed); the same command resumes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


@command("train", "train the 4D model on a dataset (resumes from the last checkpoint)", _train_arguments)
def _train(args: argparse.Namespace) -> None:
    from lab4d_core.train.launch import TrainRequest, launch, run

    name = args.config.stem
    request = TrainRequest(
        config=args.config,
        data=args.data or Path("data") / name / "manifest.json",
        out=args.out or Path("results") / name / "train",
        overrides=args.overrides,
        ngpu=args.ngpu,
        nproc=args.nproc,
        device=args.device,
        until=args.until,
    )
    if args.worker:
        run(request, args.device)
    else:
        launch(request)


DATA_HELP = "its dataset manifest (data/<name>/manifest.json; default: the dataset it was trained on)"


def _checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="trained model (results/<name>/train/ckpt_final.pth)"
    )
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--inst_id", type=int, default=0, help="video to use (lab4d's --inst_id; default: 0)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="device (default: auto)")


def _render_arguments(parser: argparse.ArgumentParser) -> None:
    _checkpoint_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output video (results/<name>/reference-<inst_id>.mp4)")
    parser.add_argument(
        "--viewpoint",
        default="ref",
        help="ref (input cameras), rot-<elevation>-<degrees> (turntable) or bev-<elevation>",
    )
    parser.add_argument(
        "--freeze_id", type=int, help="hold the shape of this frame of the video while the camera moves"
    )
    parser.add_argument(
        "--render_res", type=int, default=128, help="pixels per side of each panel (even; default: 128)"
    )
    parser.add_argument("--num_frames", type=int, help="frames to render, evenly over the video (default: all)")
    _ray_sampling_arguments(parser)


@command(
    "render", "video of one video's reconstruction: rgb | mask | depth | normal | canonical xyz", _render_arguments
)
def _render(args: argparse.Namespace) -> None:
    from lab4d_core.model.loading import load_model
    from lab4d_core.render.video import render_panels, video_frames, write_video
    from lab4d_core.render.views import parse_viewpoint
    from lab4d_core.train.distributed import select_device

    viewpoint = parse_viewpoint(args.viewpoint)
    if args.render_res < 2 or args.render_res % 2:
        raise Lab4dError(f"--render_res {args.render_res}: H.264 needs an even size, e.g. 128")
    model, cfg, database = load_model(args.checkpoint, args.data, select_device(args.device))
    frames = video_frames(database, args.inst_id, args.num_frames, args.freeze_id)
    images = render_panels(model, database, frames, viewpoint, args.render_res, *_ray_sampling(args, cfg))
    count = write_video(args.out, images, len(frames[0]))
    print(
        f"wrote {args.out}: {count} frames of {args.render_res}x{args.render_res} x "
        f"{6 if viewpoint.kind == 'ref' else 5} panels, viewpoint {viewpoint.name}"
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    _checkpoint_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (results/<name>/export/<inst_id>)")
    parser.add_argument("--grid", type=int, default=128, help="marching-cubes cells per axis (default: 128)")


@command(
    "export",
    "meshes (rest and per frame), motion.json, bones and a skinned animated glb of one video",
    _export_arguments,
)
def _export(args: argparse.Namespace) -> None:
    from lab4d_core.export.export import export_video
    from lab4d_core.model.loading import load_model
    from lab4d_core.train.distributed import select_device

    model, _, database = load_model(args.checkpoint, args.data, select_device(args.device))
    summary = export_video(model, database, args.inst_id, args.out, args.grid)
    print(
        f"{summary.vertices} vertices, {summary.faces} faces in one piece "
        f"({summary.components} pieces found, {100 * summary.kept_area_fraction:.1f}% of the area kept); "
        f"{summary.frames} frames, {summary.bones} bones; glb skin vs meshes: "
        f"{100 * summary.glb_mean_error:.2f}% of the diagonal"
    )
    print(f"wrote {args.out}")


def _reanimate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="trained skeleton model (results/<name>/train/ckpt_final.pth)"
    )
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--motion_id", type=int, required=True, help="video A whose motion and cameras are played")
    parser.add_argument("--inst_id", type=int, required=True, help="video B whose individual (body) performs it")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (results/<name>/reanimate/<A>-to-<B>): meshes, glb"
    )
    parser.add_argument("--video", type=Path, help="output video (default: the folder's name with .mp4)")
    parser.add_argument(
        "--render_res", type=int, default=128, help="pixels per side of each panel (even; default: 128)"
    )
    parser.add_argument("--grid", type=int, default=128, help="marching-cubes cells per axis (default: 128)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="device (default: auto)")
    _ray_sampling_arguments(parser)


@command(
    "reanimate",
    "video A's motion performed by video B's individual: video, meshes, motion.json and a rigged glb",
    _reanimate_arguments,
)
def _reanimate(args: argparse.Namespace) -> None:
    from lab4d_core.export.reanimate import reanimate
    from lab4d_core.model.loading import load_model
    from lab4d_core.train.distributed import select_device

    if args.render_res < 2 or args.render_res % 2:
        raise Lab4dError(f"--render_res {args.render_res}: H.264 needs an even size, e.g. 128")
    video = args.video or args.out.with_name(args.out.name + ".mp4")
    model, cfg, database = load_model(args.checkpoint, args.data, select_device(args.device))
    summary = reanimate(
        model,
        database,
        args.motion_id,
        args.inst_id,
        args.out,
        video,
        args.render_res,
        *_ray_sampling(args, cfg),
        grid=args.grid,
    )
    print(
        f"video {args.motion_id}'s motion on video {args.inst_id}'s body: {summary.frames} frames, "
        f"{summary.vertices} vertices, {summary.bones} joints; glb skin vs meshes: "
        f"{100 * summary.glb_mean_error:.2f}% of the diagonal"
    )
    print(f"wrote {video} and {args.out}")


def _strip_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, action="append", required=True, help="a rendered mp4 (repeatable): a row")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--frames", type=int, default=6, help="frames per video, evenly over it (default: 6)")
    parser.add_argument(
        "--panels",
        nargs="+",
        default=["rgb"],
        help="panels of each frame: rgb mask depth normal xyz, and input in renders from the input cameras (default: rgb)",
    )
    parser.add_argument("--width", type=int, help="downscale to this many pixels wide")


@command("strip", "frames of rendered videos in one PNG, a row per video", _strip_arguments)
def _strip(args: argparse.Namespace) -> None:
    from lab4d_core.tools.strip import write_strip

    write_strip(args.video, args.out, args.frames, args.panels, args.width)
    print(f"wrote {args.out}")


def _curves_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logdir", type=Path, required=True, help="TensorBoard folder of a run (results/<name>/train/tensorboard)"
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (results/<name>/train/curves.png)")
    parser.add_argument("--title", help="plot title (default: the run folder's name)")


@command("curves", "plot a training run's losses from its TensorBoard scalars", _curves_arguments)
def _curves(args: argparse.Namespace) -> None:
    from lab4d_core.report.curves import write_curves

    scalars = write_curves(args.logdir, args.out, args.title)
    print(f"wrote {args.out} ({len(scalars)} scalars)")


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="page to write (results/<name>/report.html)")
    parser.add_argument("--title", required=True, help="page title, e.g. the dataset's name")
    parser.add_argument("--video", type=Path, action="append", default=[], help="an mp4 to show (repeatable)")
    parser.add_argument("--glb", type=Path, help="animated glb for the 3D viewer (export/<inst>/animated.glb)")
    parser.add_argument("--curves", type=Path, help="training curves PNG (from `lab4d curves`)")
    parser.add_argument("--metrics", type=Path, help="metrics JSON (from `lab4d evaluate`)")
    parser.add_argument("--preview", type=Path, help="data preview PNG (from `lab4d preview`)")
    parser.add_argument("--link", type=Path, action="append", default=[], help="a file to link to (repeatable)")


@command(
    "report", "one self-contained HTML page of a dataset's videos, 3D model, curves and metrics", _report_arguments
)
def _report(args: argparse.Namespace) -> None:
    from lab4d_core.report.page import VIEWER_PACKAGE, ReportInputs, write_report

    inputs = ReportInputs(args.title, args.video, args.glb, args.curves, args.metrics, args.preview, args.link)
    if write_report(inputs, args.out) is None and args.glb is not None:
        print(
            f"warning: the 3D viewer ({VIEWER_PACKAGE}) is not installed, so the page links the glb instead; "
            "`make setup` installs it",
            file=sys.stderr,
        )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, self-contained)")


def _schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="repository root to write into (default: the current folder)"
    )


@command(
    "schema",
    "regenerate workflow/schemas/*.schema.yaml and config/README.md from the typed configs",
    _schema_arguments,
)
def _schema(args: argparse.Namespace) -> None:
    from lab4d_core.tools.reference import generated_files

    for path, text in generated_files().items():
        atomic_write_text(args.root / path, text)
        print(f"wrote {args.root / path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lab4d", description="4D reconstruction of deformable objects from monocular videos."
    )
    parser.add_argument("--version", action="version", version=f"lab4d_core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (summary, arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except Lab4dError as error:
        print(f"lab4d {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lab4d {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
