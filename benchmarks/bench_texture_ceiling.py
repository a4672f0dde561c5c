"""What the canonical field reaches when registration is perfect: training with the ground-truth deformation.

    python benchmarks/bench_texture_ceiling.py [--data data/demo-quad/manifest.json] [--set key=value ...] [--json PATH]

Masked PSNR mixes two limits: how consistently the deformation maps a surface point to the
same canonical point in every frame (``bench_registration.py`` measures that), and how fast
the field learns colour and shape from the rays it is given. This benchmark removes the
first: the dataset's own config trains as usual (cpu preset, same steps, same losses), but
the learned deformation is replaced by the synthetic dataset's ground truth, linear blend
skinning with the weights of the nearest ground-truth vertex (posed vertices for frame
points, rest vertices for canonical ones), so canonical space is the rest pose. It prints
mask IoU and masked PSNR of this oracle and of the same run with the learned deformation,
scored alike (12 frames per video at the training resolution); the gap is what perfect
registration would buy, the oracle's figure what the field delivers in the step budget.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from lab4d_core.config import load_yaml
from lab4d_core.data.manifest import read_manifest
from lab4d_core.errors import Lab4dError
from lab4d_core.eval.render_metrics import evaluate_training_views
from lab4d_core.model.deform.base import Deformation
from lab4d_core.train.presets import parse_overrides, resolve
from lab4d_core.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


class GroundTruthSkinning(Deformation):
    """The synthetic ground truth's linear blend skinning, applied with the nearest vertex's weights.

    Frame ``f`` of the model is frame ``f`` of the dataset (videos in order). Only for
    measurement: the nearest-vertex lookup has no gradient and nothing here learns.
    """

    def __init__(self, ground_truth: Path, seqnames: list[str]):
        super().__init__()
        rest, posed, blended = None, [], []
        for seq in seqnames:
            folder = ground_truth / seq
            field2cam = np.load(folder / "field2cam.npy")
            cam_verts = np.load(folder / "verts_cam.npy")
            # Object coordinates of the posed vertices: undo each frame's root pose.
            posed += list(np.einsum("nji,nvj->nvi", field2cam[:, :3, :3], cam_verts - field2cam[:, None, :3, 3]))
            weights, bones = np.load(folder / "skin_weights.npy"), np.load(folder / "bone_transforms.npy")
            blended.append(np.einsum("vb,nbij->nvij", weights, bones))
            rest = np.load(folder / "rest_verts.npy")
        self.posed_trees = [cKDTree(p) for p in posed]
        self.rest_tree = cKDTree(rest)
        self.rest_to_frame = torch.as_tensor(np.concatenate(blended), dtype=torch.float32)  # (F, V, 4, 4)
        self.frame_to_rest = torch.linalg.inv(self.rest_to_frame)

    @staticmethod
    def _nearest(trees, x: Tensor) -> Tensor:
        points = x.detach().cpu().numpy()
        return torch.as_tensor(np.stack([tree.query(p)[1] for tree, p in zip(trees, points)]))

    @staticmethod
    def _apply(transforms: Tensor, x: Tensor) -> Tensor:
        return (transforms[..., :3, :3] @ x[..., None])[..., 0] + transforms[..., :3, 3]

    def warp_to_canonical(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        vertex = self._nearest([self.posed_trees[f] for f in frame.tolist()], x)
        return self._apply(self.frame_to_rest[frame[:, None], vertex], x)

    def warp_to_frame(self, x: Tensor, frame: Tensor, inst: Tensor | None = None) -> Tensor:
        vertex = self._nearest([self.rest_tree] * len(frame), x)
        return self._apply(self.rest_to_frame[frame[:, None], vertex], x)


def train_and_score(config: Path, manifest: Path, overrides: list[str], oracle: bool) -> dict:
    cfg = resolve(load_yaml(config), parse_overrides(overrides), torch.cuda.is_available(), str(config))
    data = read_manifest(manifest)
    with tempfile.TemporaryDirectory() as out:
        run = Trainer(cfg, data, Path(out), torch.device("cpu"))
        if oracle:
            seqnames = [video.seqname for video in run.database.videos]
            run.model.deform = GroundTruthSkinning(manifest.parent / "GroundTruth", seqnames)
        start = time.perf_counter()
        run.train()
        seconds = time.perf_counter() - start
        run.model.eval()
        train = run.cfg.train  # train_res resolved from the dataset
        views = evaluate_training_views(
            run.model, run.database, train.data_prefix, train.train_res, train.num_samples, 12, train.num_importance
        )
    return {"seconds": seconds, "steps": run.total_steps, "mask_iou": views["mask_iou"], "psnr": views["psnr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data/demo-quad/manifest.json")
    parser.add_argument("--config", type=Path, help="dataset YAML (default: config/datasets/<data's folder>.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, as lab4d train")
    parser.add_argument("--json", type=Path, help="also write the table here as JSON")
    args = parser.parse_args()
    config = args.config or ROOT / "config/datasets" / f"{args.data.parent.name}.yaml"
    if not (args.data.parent / "GroundTruth").is_dir():
        raise SystemExit(
            f"error: {args.data.parent / 'GroundTruth'} not found: the oracle needs synthetic ground truth"
        )
    rows = {}
    try:
        rows["learned deformation"] = train_and_score(config, args.data, args.set, oracle=False)
        # The oracle replaces a rigid deformation, which has no parameters: the optimiser is the same.
        rows["ground-truth deformation"] = train_and_score(config, args.data, [*args.set, "fg_motion=rigid"], True)
    except Lab4dError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"| deformation | steps | train s | mask IoU | masked PSNR |\n|{'---|' * 5}")
    for name, row in rows.items():
        print(f"| {name} | {row['steps']} | {row['seconds']:.0f} | {row['mask_iou']:.3f} | {row['psnr']:.2f} dB |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
