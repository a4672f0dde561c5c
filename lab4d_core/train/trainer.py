"""``lab4d train``: optimise the 4D model on a processed dataset, resumable to the step.

Output folder (``results/<dataset>/train/``): ``config.yaml`` (resolved),
``ckpt_latest.pth`` after every round (what a rerun resumes from),
``ckpt_<step>.pth`` four times per run, ``ckpt_final.pth`` once training is
complete, and TensorBoard events.

A rerun resumes only the same run: the same resolved config on the same dataset (the
checkpoint's ``run`` fingerprint). A folder holding another run's files (the config or data
changed since) is moved aside to ``replaced-<time>/`` and training starts over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from lab4d_core.config import DatasetConfig, to_dict
from lab4d_core.data.database import Database
from lab4d_core.data.manifest import Manifest
from lab4d_core.data.sampler import PairSampler
from lab4d_core.model.dynamic import DynamicModel
from lab4d_core.model.render import pixel_grid
from lab4d_core.preprocess.scene import SceneInfo
from lab4d_core.tools.fingerprint import fingerprint
from lab4d_core.train import losses as L
from lab4d_core.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lab4d_core.train.distributed import global_sum, is_distributed, is_main_process
from lab4d_core.train.schedules import linear, log_linear
from lab4d_core.utils.io import atomic_write_text
from lab4d_core.utils.progress import progress

EIKONAL_RAY_FRACTION = 1 / 16
"""Share of rays whose samples get the eikonal term (lab4d: 1/16)."""
PROXY_UPDATE_STEPS = 25
"""Steps between refits of the proxy boxes that bound the rays (lab4d: once per round of 200)."""


@dataclass
class StepRecord:
    step: int
    loss: float
    terms: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    """Ray samples shaded in this step, over all ranks."""


class Trainer:
    def __init__(
        self,
        cfg: DatasetConfig,
        manifest: Manifest,
        out_dir: Path,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
    ):
        if cfg.train.train_res is None:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, train_res=manifest.train_res))
        self.cfg, self.out_dir, self.device, self.rank, self.world = cfg, Path(out_dir), device, rank, world
        # lab4d's rule: every rank adds imgs_per_gpu pairs to the step's batch.
        self.pairs_per_step = cfg.train.imgs_per_gpu * world
        # Transmittance and densities far behind surfaces underflow to denormal floats, which make
        # CPU matrix products ~100x slower in the backward pass; flushing them to zero is harmless.
        torch.set_flush_denormal(True)
        train = cfg.train
        self.database = manifest.database() if manifest.train_res == train.train_res else None
        if self.database is None:
            self.database = Database(manifest.root, manifest.collection, train.train_res, (train.data_prefix,))
        torch.manual_seed(train.seed)
        scene = SceneInfo.from_database(self.database, train.data_prefix)
        self.model = DynamicModel(cfg.model, scene).to(device)
        self.sampler = PairSampler(
            self.database,
            prefix=train.data_prefix,
            pairs_per_step=self.pairs_per_step,
            pixels_per_image=train.pixels_per_image,
            world_size=world,
            rank=rank,
            seed=train.seed,
            fg_fraction=train.fg_fraction,
            feature_type=train.feature_type if train.feature_wt > 0 or train.feat_reproj_wt > 0 else None,
        )
        lr = train.learning_rate
        explicit_lr = 10 * lr if train.explicit_lr is None else train.explicit_lr
        self.model.intrinsics.requires_grad_(not train.freeze_intrinsics)
        groups = self.model.parameter_groups()
        peaks = {"implicit": lr, "explicit": explicit_lr, "grid": lr * train.grid_lr_mult}
        self.optimizer = torch.optim.AdamW(
            [{"params": params, "lr": peaks[name]} for name, params in groups.items()], weight_decay=1e-4
        )
        self.total_steps = train.num_rounds * train.iters_per_round
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=[peaks[name] for name in groups],
            total_steps=self.total_steps,
            pct_start=min(2 / train.num_rounds, 0.3),  # lab4d: warm up over 2 rounds
            anneal_strategy="linear",
            div_factor=25.0,
            final_div_factor=1.0,
        )
        self.depth_is_estimate = train.depth_type == "estimate" or (
            train.depth_type == "auto" and not manifest.ground_truth
        )
        if self.depth_is_estimate and self.sampler.has_depth:
            self.model.log_depth_scale.data.copy_(
                torch.as_tensor(depth_scales(self.database, scene, train.data_prefix)).log()
            )
        self.step = 0
        config_text = json.dumps(to_dict(self.cfg), sort_keys=True, default=str)
        # The code too: a run that other training code made is not continued (it may not even load) but redone,
        # which is what the workflow's rerun of train after such an edit asks for.
        identity = f"{config_text}\n{manifest.digest}\n{fingerprint('train')}"
        self.run_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._resume()

    # -- state -------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "config": to_dict(self.cfg),
            # So that renders, exports and evaluations find the data without being told.
            "dataset": {"root": str(Path(self.database.root).resolve()), "collection": self.database.collection},
            "run": self.run_id,
        }

    def _resume(self) -> None:
        latest = self.out_dir / "ckpt_latest.pth"
        state = load_checkpoint(latest, self.device) if latest.exists() else None
        if is_distributed():
            torch.distributed.barrier()  # every rank has read it before the main one may move it aside
        if state is None:
            return
        if state.get("run") != self.run_id:
            if is_main_process():
                self._set_aside_other_run()
            return
        self.model.load_trained_state(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    def _set_aside_other_run(self) -> None:
        aside = self.out_dir / time.strftime("replaced-%Y%m%d-%H%M%S")
        aside.mkdir()
        for path in [*self.out_dir.glob("ckpt_*.pth"), self.out_dir / "tensorboard", self.out_dir / "config.yaml"]:
            if path.exists():
                path.rename(aside / path.name)
        warnings.warn(
            f"{self.out_dir} held a run with another config, dataset or training code: moved it to {aside} and "
            "starting over",
            stacklevel=3,
        )

    def save(self) -> None:
        if not is_main_process():
            return
        # Renders and exports turn the object about the vertical its learned cameras imply.
        self.model.update_up_axis()
        state = self.state()
        save_checkpoint(self.out_dir / "ckpt_latest.pth", state)
        rounds = self.step // self.cfg.train.iters_per_round
        if rounds % max(self.cfg.train.num_rounds // 4, 1) == 0 or self.step == self.total_steps:
            save_checkpoint(self.out_dir / f"ckpt_{self.step:06d}.pth", state)
        if self.step == self.total_steps:
            # Written last and only when training is complete: the workflow's output.
            save_checkpoint(self.out_dir / "ckpt_final.pth", state)

    # -- one step ---------------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[dict[str, torch.Tensor], int]:
        """Loss terms of this rank's share of the batch, and how many ray samples it shaded."""
        train, model = self.cfg.train, self.model
        model.field.alpha = linear(progress, 0.5, 1.0, 0.0, 0.5)
        model.field.beta_factor.fill_(log_linear(progress, 1.0, train.beta_anneal, 0.5, 1.0))
        noise = self._noise(batch["xy"].shape[1])
        frame_inst = self._instances(batch["frame"], progress)
        out = model.render_rays(
            batch["frame"],
            batch["xy"],
            train.num_samples,
            train.num_importance,
            noise,
            occupancy=model.training_occupancy(batch["frame"]),
            inst=frame_inst,
        )
        # Frames where the object was lost (lab4d's is_detected, mask -1) teach nothing, as in lab4d.
        valid = batch["vis2d"] & batch["is_detected"][:, None]
        mask = batch["mask"] & valid
        # Over a random background colour, a see-through surface is wrong whatever the colour behind
        # it; over black (or any fixed colour) the field could fake dark texture with transparency.
        rgb = out["rgb"] + (1.0 - out["opacity"])[..., None] * noise["background"]
        terms = {
            "mask": L.mask_loss(out["opacity"], batch["mask"], valid),
            "rgb": L.rgb_loss(rgb, batch["rgb"], mask),
        }
        flow = model.predict_flow(out["canonical"], batch["xy"], batch["partner"], frame_inst)
        # Weighted by the flow's confidence: exact (synthetic) flow has 1 or 0; estimated flow has its forward-backward
        # consistency, so a pixel where the estimate is doubtful pulls less.
        has_flow = mask & out["hit"] & (batch["flow"][..., 2] > 0)
        terms["flow"] = L.flow_loss(flow, batch["flow"][..., :2], has_flow * batch["flow"][..., 2], train.train_res)
        if "depth" in batch and train.depth_wt > 0:
            target = batch["depth"]
            if self.depth_is_estimate:
                target = target * model.log_depth_scale.exp()[batch["video"]][:, None]
            terms["depth"] = L.depth_loss(out["depth"], target, mask & out["hit"])
        if "feature" in batch:
            terms.update(self._feature_terms(batch, out["canonical"], frame_inst, mask & out["hit"]))
        # Regularizers on the samples of the first pixels of every frame: the same points whatever
        # the world size, since each frame lives wholly on one rank.
        pixels = batch["xy"].shape[1]
        chosen = (out["ray_index"] % pixels) < max(1, round(pixels * EIKONAL_RAY_FRACTION))
        samples = out["samples"][chosen]
        ray_frames = batch["frame"][out["ray_index"][chosen] // pixels]
        ray_inst = frame_inst[out["ray_index"][chosen] // pixels]
        count = global_sum(torch.tensor(float(samples[..., 0].numel()), device=samples.device)).clamp(min=1.0)
        # Means over this rank's samples, re-weighted to their share of all ranks' samples; a rank
        # without any still computes every term (at weight 0), so all ranks reduce the same terms.
        share = samples[..., 0].numel() / count
        if not len(samples):
            samples, ray_frames, ray_inst = samples.new_zeros(1, 1, 3), batch["frame"][:1], frame_inst[:1]
        points = samples.reshape(-1, 3)
        inst = ray_inst[:, None].expand(samples.shape[:2]).reshape(-1)
        terms["reg_eikonal"] = L.eikonal_loss(*model.sdf_gradient(points, inst)) * (share > 0)
        if train.reg_inst_shape_wt > 0 and model.num_inst > 1 and model.deform.instance_bone_lengths:
            terms["reg_inst_shape"] = model.field.shape_deviation(points, inst).mean() / model.bound * share
        for name, value in model.deform.regularizers(samples, ray_frames, ray_inst).items():
            terms[name] = value * share
        if hasattr(model.deform, "gauss_occupancy") and train.reg_gauss_skin_wt > 0:
            terms["reg_gauss_skin"] = self._gauss_skin(points, inst) * share
        # Each rank's mean over its frames, over the world size: every rank holds as many frames.
        # The prior of root poses that are only an estimate fades, so they can leave a wrong start.
        fade = linear(progress, 1.0, 0.0, 0.0, train.cam_prior_fade) if train.cam_prior_fade > 0 else 1.0
        terms["reg_cam_prior"] = model.root.prior_distance(batch["frame"].reshape(-1), fade).mean() / self.world
        if train.reg_root_flow_wt > 0:
            terms["reg_root_flow"] = model.root.pair_disagreement() / self.world
        return terms, out["samples"].shape[0] * out["samples"].shape[1]

    def _feature_terms(
        self, batch: dict[str, torch.Tensor], canonical: torch.Tensor, inst: torch.Tensor, seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """lab4d's feature terms at the object pixels ``seen`` (N, K) that carry a feature: the canonical feature
        field at each pixel's surface point against its feature, and the pixel's feature matched to the canonical
        surface and projected back into its frame, against the pixel."""
        train, terms = self.cfg.train, {}
        target = batch["feature"]
        # Bilinear samples straddling the silhouette are short vectors between an object feature and zero.
        weight = seen & (target.norm(dim=-1) > 0.5)
        target = torch.nn.functional.normalize(target, dim=-1)
        if train.feature_wt > 0:
            terms["feature"] = L.feature_loss(self.model.field.feature(canonical, inst[:, None]), target, weight)
        if train.feat_reproj_wt > 0:
            matched = self.model.match_features(target, inst, weight)
            residual = self.model.predict_flow(matched, batch["xy"], batch["frame"], inst)
            terms["feat_reproj"] = L.reprojection_loss(residual, weight, train.train_res)
        return terms

    def _instances(self, frames: torch.Tensor, progress: float) -> torch.Tensor:
        """Instance of each of this rank's frames (N,): its own, or with lab4d's code swapping (``inst_swap_prob``)
        another video's, drawn for the global batch so any world size swaps alike."""
        own = self.model.instance(frames)
        train, count = self.cfg.train, self.model.num_inst
        probability = linear(progress, 1.0, train.inst_swap_prob, 0.0, train.inst_swap_fade)
        if count == 1 or probability == 0:
            return own
        generator = torch.Generator().manual_seed(train.seed * 1_000_003 + self.step + 7)
        total = 2 * self.pairs_per_step
        shard = slice(self.rank * total // self.world, (self.rank + 1) * total // self.world)
        swap = (torch.rand(total, generator=generator) < probability)[shard].to(own.device)
        other = torch.randint(count, (total,), generator=generator)[shard].to(own.device)
        return torch.where(swap, other, own)

    def _noise(self, pixels: int) -> dict[str, torch.Tensor]:
        """Sampling noise of this rank's rays, cut from draws for the global batch (same for any world size)."""
        train = self.cfg.train
        generator = torch.Generator().manual_seed(train.seed * 1_000_003 + self.step)
        frames = 2 * self.pairs_per_step
        shard = slice(self.rank * frames // self.world, (self.rank + 1) * frames // self.world)
        return {
            name: torch.rand((frames, pixels, count), generator=generator)[shard].to(self.device)
            for name, count in (
                ("stratified", train.num_samples),
                ("importance", train.num_importance),
                ("background", 3),
            )
        }

    def _gauss_skin(self, points: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        """Bones inside the shape: their Gaussian occupancy should match the field's (lab4d's gauss-skin)."""
        with torch.no_grad():
            sdf = self.model.field.sdf(points, inst)
            inside = (sdf < 0).to(points.dtype)
        occupancy = self.model.deform.gauss_occupancy(points, inst=inst).clamp(1e-4, 1 - 1e-4)
        return torch.nn.functional.binary_cross_entropy(occupancy, inside)

    def weights(self, progress: float) -> dict[str, float]:
        train = self.cfg.train
        return {
            "mask": train.mask_wt,
            "rgb": train.rgb_wt,
            "flow": train.flow_wt,
            "depth": train.depth_wt,
            "feature": train.feature_wt,
            "feat_reproj": train.feat_reproj_wt,
            "reg_eikonal": train.reg_eikonal_wt * log_linear(progress, 1.0, 100.0),
            "reg_deform_cyc": train.reg_deform_cyc_wt,
            "reg_delta_skin": train.reg_delta_skin_wt,
            "reg_skin_entropy": train.reg_skin_entropy_wt,
            "reg_gauss_skin": train.reg_gauss_skin_wt,
            "reg_inst_shape": train.reg_inst_shape_wt,
            "reg_skel_prior": train.reg_skel_prior_wt * linear(progress, 1.0, 0.0, 0.0, 1.0),
            "reg_soft_deform": train.reg_soft_deform_wt,
            "reg_joint_limit": train.reg_joint_limit_wt,
            "reg_cam_prior": train.reg_cam_prior_wt,
            "reg_root_flow": train.reg_root_flow_wt,
        }

    def train_step(self) -> StepRecord:
        progress = self.step / max(self.total_steps, 1)
        if self.step % PROXY_UPDATE_STEPS == 0:
            self.model.update_proxy()
        batch = {k: v.to(self.device) for k, v in self.sampler.batch(self.step).items()}
        batch["xy"] = batch["xy"].float()
        terms, samples = self.losses(batch, progress)
        weights = self.weights(progress)
        loss = sum(weights[name] * value for name, value in terms.items())
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        if is_distributed():
            for parameter in filter(lambda p: p.requires_grad, self.model.parameters()):
                if parameter.grad is None:  # unused this step here, maybe not on another rank
                    parameter.grad = torch.zeros_like(parameter)
                torch.distributed.all_reduce(parameter.grad)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        # Every rank holds its share of each term (see losses.py): their sum is the global value.
        local = [loss.detach(), *[v.detach() for v in terms.values()], torch.tensor(float(samples), device=loss.device)]
        values = global_sum(torch.stack(local)).tolist()
        return StepRecord(self.step, values[0], dict(zip(terms, values[1:-1])), int(values[-1]))

    def batch_summary(self) -> str:
        """The effective batch, counted as lab4d's docs count it (ranks x imgs_per_gpu x pixels_per_image)."""
        train = self.cfg.train
        items = self.world * train.imgs_per_gpu * train.pixels_per_image
        ranks = f"{self.world} {self.device.type} rank{'s' if self.world > 1 else ''}"
        return (
            f"batch: {ranks} x imgs_per_gpu {train.imgs_per_gpu} x pixels_per_image {train.pixels_per_image} = "
            f"{items} (lab4d's count; each item is a frame pair, so {2 * items} rays per step)"
        )

    # -- loop -------------------------------------------------------------------------------------------
    def train(self, until: int | None = None) -> list[StepRecord]:
        """Train to the end (or to step ``until``, checkpointing there); returns this call's step records."""
        end = min(self.total_steps, until if until is not None else self.total_steps)
        if is_main_process():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out_dir / "config.yaml", yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
            print(self.batch_summary(), flush=True)
        writer = _summary_writer(self.out_dir) if is_main_process() else None
        records: list[StepRecord] = []
        started = time.perf_counter()
        bar = progress(
            total=end, initial=self.step, desc="train", unit="step", disable=not is_main_process(), dynamic_ncols=True
        )
        while self.step < end:
            record = self.train_step()
            records.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in list(record.terms.items())[:4]}, refresh=False)
            if writer is not None:
                writer.add_scalar("loss/total", record.loss, record.step)
                for name, value in record.terms.items():
                    writer.add_scalar(f"loss/{name}", value, record.step)
            if not math.isfinite(record.loss):
                raise FloatingPointError(f"loss became {record.loss} at step {record.step}")
            if self.step % self.cfg.train.iters_per_round == 0 or self.step == end:
                self.save()
                if writer is not None:
                    self._log_images(writer)
        bar.close()
        if self.step == self.total_steps and not (self.out_dir / "ckpt_final.pth").exists():
            self.save()  # a complete run whose final checkpoint was deleted (e.g. by Snakemake before a rerun)
        if writer is not None:
            writer.add_scalar("time/seconds", time.perf_counter() - started, self.step)
            writer.close()
        return records

    def _log_images(self, writer) -> None:
        """Renders at ``eval_res`` of the first frame of up to three videos: ground truth | rgb | opacity."""
        train = self.cfg.train
        res, array_res, prefix = train.eval_res, self.database.resolution, train.data_prefix
        centres = pixel_grid(res, array_res)
        nearest = np.clip(np.rint(centres).astype(int), 0, array_res - 1)
        xy = torch.as_tensor(centres, dtype=torch.float32)
        rows = []
        for v, video in enumerate(self.database.videos[:3]):
            out = self.model.render_pixels(
                int(self.database.frame_offset[v]), xy, train.num_samples, train.num_importance
            )
            truth = np.asarray(video.array("rgb", prefix)[0, nearest[:, 1], nearest[:, 0]], dtype=np.float32)
            opacity = out["opacity"].numpy()[:, None].repeat(3, 1)
            rows.append(np.concatenate([x.reshape(res, res, 3) for x in (truth, out["rgb"].numpy(), opacity)], 1))
        image = np.clip(np.concatenate(rows, 0), 0.0, 1.0)
        writer.add_image("render/truth_rgb_opacity", image, self.step, dataformats="HWC")


def depth_scales(database: Database, scene: SceneInfo, prefix: str, frames: int = 8) -> np.ndarray:
    """(V,) per video, the root poses' depth over the median depth of the object in the depth maps (median over
    ``frames`` evenly spaced frames): the scale that brings estimated maps to the scene's units."""
    scales, offset = [], 0
    for video in database.videos:
        ratios = []
        for f in np.unique(np.linspace(0, video.num_frames - 1, frames).round().astype(int)):
            mask = np.asarray(video.array("mask", prefix)[f, ..., 0])
            depth = np.asarray(video.array("depth", prefix)[f], dtype=np.float32)[mask]
            depth = depth[depth > 0]
            if len(depth):
                ratios.append(scene.root_poses[offset + f, 2, 3] / np.median(depth))
        scales.append(float(np.median(ratios)) if ratios else 1.0)
        offset += video.num_frames
    return np.asarray(scales, dtype=np.float32)


def _summary_writer(out_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))
