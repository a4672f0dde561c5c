"""The composed 4D model: cameras, deformation and canonical field, rendered along pixel rays.

A pixel ray of frame t is cast in camera coordinates, moved into the object's
frame by the inverse root pose, into canonical space by the deformation's
backward warp, and shaded by the canonical SDF field (VolSDF); optionally its colour is
lit by the posed surface normal under a learned light per video (``shading: sh``). Flow is
predicted by carrying the ray's expected canonical point forward to the
partner frame and projecting it with that frame's camera.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from lab4d_core.config import ModelConfig
from lab4d_core.geometry.up import estimate_up_axis
from lab4d_core.model.deform import build_deformation
from lab4d_core.model.encodings import HashGridEncoding
from lab4d_core.model.field import OUTSIDE_SDF, NeuralSDF
from lab4d_core.model.pose import Intrinsics, RootPose
from lab4d_core.model.render import (
    box_bounds,
    composite,
    importance_depths,
    occupied_interval,
    pixel_directions,
    project,
    stratified_depths,
    volsdf_weights,
)
from lab4d_core.model.shading import SphericalHarmonicShading
from lab4d_core.model.time import FrameInfo

if TYPE_CHECKING:  # built where the database is read; the model takes its plain arrays
    from lab4d_core.preprocess.scene import SceneInfo


PROXY_GRID_RES = 32
"""Resolution of the canonical grid that proxies and feature anchors are fit on."""


class Camera(NamedTuple):
    """Cameras of N frames: object -> camera rotations (N, 3, 3), translations (N, 3) and
    (fx, fy, cx, cy) intrinsics (N, 4) in the pixel coordinates rays are cast from."""

    rotation: Tensor
    translation: Tensor
    intrinsics: Tensor


class DynamicModel(nn.Module):
    """Canonical field + deformation + root poses + intrinsics."""

    def __init__(self, cfg: ModelConfig, scene: SceneInfo, init_field: bool = True):
        super().__init__()
        self.cfg = cfg
        info = FrameInfo.from_counts(scene.kept_ids, scene.raw_counts)
        self.num_inst = 1 if cfg.single_inst else info.num_videos
        radius = scene.object_radius
        self.register_buffer("video_of_frame", info.video_of_frame.clone())
        # Scene units are the dataset's; the field sees coordinates inside a cube of +-bound.
        self.register_buffer("bound", torch.tensor(cfg.field_bound * radius))
        # Per-frame boxes (object coordinates) that bound the rays; they start around the initial
        # sphere and follow the shape as training refits them (update_proxy).
        self.proxy_margin = PROXY_MARGIN * radius
        reach = torch.full((info.num_frames, 3), 0.6 * radius + self.proxy_margin)
        self.register_buffer("proxy_lo", -reach)
        self.register_buffer("proxy_hi", reach.clone())
        grid = (info.num_frames, cfg.occupancy_res, cfg.occupancy_res, cfg.occupancy_res)
        self.register_buffer("occupancy_grid", torch.ones(grid, dtype=torch.bool))
        # Canonical surface points per instance that pixel features are matched to (refit with the proxies; saved,
        # so a resumed run matches against the same ones).
        self.register_buffer("feature_anchors", torch.zeros(self.num_inst, FEATURE_ANCHORS, 3))
        self.log_feature_temperature = nn.Parameter(torch.tensor(math.log(INIT_FEATURE_TEMPERATURE)))
        # Per video, the scene's depth over the depth maps' (learned when the maps are only an estimate).
        self.log_depth_scale = nn.Parameter(torch.zeros(info.num_videos))
        self.field = NeuralSDF(
            num_inst=self.num_inst,
            num_frames=info.num_frames,
            encoding=cfg.encoding,
            encoding_options=_encoding_options(cfg),
            hidden=cfg.field_hidden,
            depth=cfg.field_depth,
            bound=cfg.field_bound * radius,
            init_beta=cfg.init_beta * radius,
            init_radius=0.6 * radius,
            init_steps=200 if init_field else 0,
        )
        self.deform = build_deformation(
            cfg.fg_motion,
            info,
            self.num_inst,
            **_deformation_options(cfg, radius),
        )
        if init_field and hasattr(self.deform, "rest_shape"):
            self.field.init_shape(*self.deform.rest_shape())
        self.shading = SphericalHarmonicShading(info.num_videos) if cfg.shading == "sh" else None
        self.root = RootPose(
            torch.as_tensor(scene.root_poses, dtype=torch.float32),
            scale=radius,
            pairs=torch.as_tensor(scene.pair_rotations, dtype=torch.float32),
            pair_valid=torch.as_tensor(scene.pair_valid),
            estimated=torch.as_tensor(scene.root_pose_estimated)[info.video_of_frame],
        )
        # The object's up axis (object coordinates): novel views turn about it, the glb stands on it.
        up = estimate_up_axis(scene.root_poses[:, :3, :3])
        self.register_buffer("up_axis", torch.as_tensor(up, dtype=torch.float32))
        self.intrinsics = Intrinsics(
            torch.as_tensor(scene.ks, dtype=torch.float32),
            info.video_of_frame,
            torch.as_tensor(scene.crop2raw, dtype=torch.float32),
        )

    def instance(self, frame: Tensor) -> Tensor:
        return torch.zeros_like(frame) if self.num_inst == 1 else self.video_of_frame[frame]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every parameter once, by learning rate: ``explicit`` (cameras, beta, scales, bones: lab4d
        trains them at 10x), ``grid`` (hash-grid tables and the feature head) and ``implicit`` (the networks)."""
        explicit = {id(p) for p in (*self.root.parameters(), *self.intrinsics.parameters())}
        explicit |= {id(p) for name, p in self.named_parameters() if name.rsplit(".", 1)[-1] in _EXPLICIT_NAMES}
        explicit |= {id(p) for p in self.deform.explicit_parameters()}
        grid = {id(p) for m in self.modules() if isinstance(m, HashGridEncoding) for p in m.parameters()}
        # The feature head reads the field detached, so its rate moves nothing else; at the networks' rate it
        # ended 336 steps well short of the features it can fit (docs/features.md).
        grid |= {id(p) for p in self.field.feature_head.parameters()}
        groups: dict[str, list[nn.Parameter]] = {"implicit": [], "explicit": [], "grid": []}
        for p in filter(lambda p: p.requires_grad, self.parameters()):
            groups["explicit" if id(p) in explicit else "grid" if id(p) in grid else "implicit"].append(p)
        return {name: params for name, params in groups.items() if params}

    def render_rays(
        self,
        frame: Tensor,
        xy: Tensor,
        num_samples: int,
        num_importance: int = 0,
        noise: dict[str, Tensor] | None = None,
        occupancy: dict[str, Tensor] | None = None,
        camera: Camera | None = None,
        inst: Tensor | None = None,
        appearance: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Render (N, K) pixels of N frames: rgb, opacity, depth and expected canonical point per pixel.

        Only rays that cross their frame's proxy box are shaded; the others are empty (opacity
        0) and cost nothing. ``hit`` (N, K) says which were shaded, ``samples`` (M, S, 3) holds
        the canonical samples of those M rays and ``ray_index`` (M,) their flat index in N x K.
        ``occupancy`` (from :meth:`frame_occupancy` of the same frames) tightens each ray to the
        occupied cells it crosses, which lets rendering skip empty space at a fraction of the samples.

        ``noise`` holds uniform draws ``stratified`` (N, K, num_samples) and ``importance``
        (N, K, num_importance) for training; None renders deterministically. ``camera`` replaces
        the frames' own cameras (their root poses and intrinsics), e.g. for novel views. ``inst`` (N,)
        replaces the frames' own instances (shape, colour, bone lengths, skinning): another individual
        moving as these frames do, for reanimation or lab4d's code swapping; ``occupancy`` then bounds it.
        ``appearance`` (N,) frames lend their per-frame appearance codes to the colour (default: the frames'
        own), so a reanimated individual keeps the look of its own video.
        """
        noise = noise or {}
        inst = self.instance(frame) if inst is None else inst
        appearance = frame if appearance is None else appearance
        n, k = xy.shape[:2]
        if camera is None:
            camera = Camera(*self.root(frame), self.intrinsics(frame))
        rotation, translation, intrinsics = camera.rotation, camera.translation, camera.intrinsics
        directions = pixel_directions(xy, intrinsics)
        lo, hi = (
            (self.proxy_lo[frame], self.proxy_hi[frame]) if occupancy is None else (occupancy["lo"], occupancy["hi"])
        )
        near, far, hit = box_bounds(directions, rotation, translation, lo, hi)
        if occupancy is not None:
            near, far, hit_occupied = self._occupied(directions, rotation, translation, near, far, occupancy)
            hit = hit & hit_occupied
        ray_index = hit.reshape(-1).nonzero().squeeze(1)
        ray_frame = ray_index // k

        def rays(values: Tensor) -> Tensor:
            return values.reshape(n * k, *values.shape[2:])[ray_index]

        pose = (rotation[ray_frame], translation[ray_frame])
        near, far, directions = rays(near), rays(far), rays(directions)
        frame_of_ray, inst_of_ray = frame[ray_frame], inst[ray_frame]
        depths = stratified_depths(near, far, num_samples, _rays_or_none(noise.get("stratified"), rays))
        if num_importance > 0:
            coarse = self._coarse_weights(depths, directions, *pose, frame_of_ray, inst_of_ray, far)
            uniform = _rays_or_none(noise.get("importance"), rays)
            fine = importance_depths(depths, coarse, num_importance, uniform)
            depths, _ = torch.sort(torch.cat([depths, fine], dim=-1), dim=-1)
        shaded = self._shade(depths, directions, *pose, frame_of_ray, inst_of_ray, appearance[ray_frame], far)
        out = {"hit": hit, "ray_index": ray_index, "samples": shaded.pop("samples"), "intrinsics": intrinsics}
        for key, value in shaded.items():
            full = value.new_zeros((n * k, *value.shape[1:]))
            out[key] = full.index_copy(0, ray_index, value).reshape(n, k, *value.shape[1:])
        return out

    @torch.no_grad()
    def render_pixels(
        self,
        frame: int,
        xy: Tensor,
        num_samples: int = 32,
        num_importance: int = 0,
        chunk: int = 4096,
        camera: Camera | None = None,
        inst: int | None = None,
        appearance: int | None = None,
    ) -> dict[str, Tensor]:
        """Opacity (P,), rgb (P, 3), depth (P,) and canonical point (P, 3) of pixels ``xy`` (P, 2)
        of one frame, on the CPU; ``camera`` (batch of one) replaces the frame's own, ``inst`` the frame's
        own instance (another individual moving as this frame does: reanimation), coloured with frame
        ``appearance``'s appearance code (default: this frame's).

        Rays are cut to the occupied cells of the frame's occupancy grid, so even a few stratified
        samples land near the surface; chunks of ``chunk`` rays bound the memory at any resolution.
        """
        device = self.bound.device
        frame_ids = torch.tensor([frame], device=device)
        inst_ids = self.instance(frame_ids) if inst is None else torch.tensor([inst], device=device)
        box = None if inst is None else self.posed_box(frame_ids, inst)
        occupancy = self.frame_occupancy(frame_ids, inst=inst_ids, box=box)
        parts: dict[str, list[Tensor]] = {"opacity": [], "rgb": [], "depth": [], "canonical": []}
        for start in range(0, len(xy), chunk):
            pixels = xy[None, start : start + chunk].to(device)
            out = self.render_rays(
                frame_ids,
                pixels,
                num_samples,
                num_importance,
                occupancy=occupancy,
                camera=camera,
                inst=inst_ids,
                appearance=None if appearance is None else torch.tensor([appearance], device=device),
            )
            for key in parts:
                parts[key].append(out[key][0].cpu())
        return {key: torch.cat(values) for key, values in parts.items()}

    @staticmethod
    def _occupied(directions, rotation, translation, near, far, occupancy) -> tuple[Tensor, Tensor, Tensor]:
        n, k = near.shape
        origin = -(translation[:, None] @ rotation)
        direction = directions @ rotation
        per_ray = torch.arange(n, device=near.device).repeat_interleave(k)
        res = occupancy["grid"].shape[-1]
        near, far, hit = occupied_interval(
            origin.expand(-1, k, -1).reshape(-1, 3),
            direction.reshape(-1, 3),
            near.reshape(-1),
            far.reshape(-1),
            occupancy["lo"][per_ray],
            occupancy["hi"][per_ray],
            occupancy["grid"],
            per_ray,
            steps=2 * res,
        )
        return near.view(n, k), far.view(n, k), hit.view(n, k)

    @torch.no_grad()
    def frame_occupancy(
        self,
        frame: Tensor,
        resolution: int = 32,
        inst: Tensor | None = None,
        box: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Occupancy grids of frames (N,) over their proxy boxes (or ``box``: lo, hi), for :meth:`render_rays`,
        of the frames' own instances (or ``inst`` (N,)).

        Cell centres are warped to canonical space and marked occupied where the SDF is within
        reach of the density (half a cell diagonal plus 4 beta), then dilated by a cell, since
        the warp bends straight lines between centres.
        """
        lo, hi = (self.proxy_lo[frame], self.proxy_hi[frame]) if box is None else box
        inst = self.instance(frame) if inst is None else inst
        u = (torch.arange(resolution, device=lo.device, dtype=lo.dtype) + 0.5) / resolution
        unit = torch.stack(torch.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)
        points = lo[:, None] + unit * (hi - lo)[:, None]
        canonical = self.deform.warp_to_canonical(points, frame, inst)
        sdf = self.field.sdf(canonical, inst[:, None])
        reach = 0.5 * ((hi - lo) / resolution).norm(dim=-1, keepdim=True) + 4 * self.field.beta
        grid = (sdf < reach).view(-1, 1, resolution, resolution, resolution).float()
        grid = torch.nn.functional.max_pool3d(grid, 3, stride=1, padding=1) > 0
        return {"lo": lo, "hi": hi, "grid": grid.view(-1, resolution, resolution, resolution)}

    def _canonical_samples(self, depths, directions, rotation, translation, frame, inst) -> Tensor:
        """(M, S, 3) canonical points at depths (M, S) along directions (M, 3) of frames (M,), instances (M,)."""
        points_cam = directions[:, None, :] * depths[..., None]
        # Row-vector form of R^T (p - t): camera -> object coordinates.
        points_obj = (points_cam - translation[:, None]) @ rotation
        return self.deform.warp_to_canonical(points_obj, frame, inst)

    @torch.no_grad()
    def _coarse_weights(self, depths, directions, rotation, translation, frame, inst, far) -> Tensor:
        """(M, S) volume-rendering weights that place the importance samples; no colour is needed."""
        canonical = self._canonical_samples(depths, directions, rotation, translation, frame, inst)
        sdf = self.field.sdf(canonical, inst[:, None])
        return volsdf_weights(self.field.density(sdf), depths, far)

    def _shade(self, depths, directions, rotation, translation, frame, inst, appearance, far) -> dict[str, Tensor]:
        """Shade M rays: depths (M, S), directions (M, 3), poses (M, 3, 3) / (M, 3), frames and instances (M,)."""
        canonical = self._canonical_samples(depths, directions, rotation, translation, frame, inst)
        field = self.field(canonical, inst[:, None], appearance[:, None])
        weights = volsdf_weights(self.field.density(field["sdf"]), depths, far)
        opacity = weights.sum(-1)
        rgb = composite(weights, field["rgb"])
        depth = (weights * depths).sum(-1) / opacity.clamp(min=1e-6)
        if self.shading is not None:
            surface = (((directions * depth[:, None] - translation)[:, None]) @ rotation).squeeze(1)
            rgb = rgb * self.shading(self._posed_normal(surface, frame, inst), self.video_of_frame[frame])[:, None]
        return {
            "opacity": opacity,
            "rgb": rgb,
            "depth": depth,
            "canonical": composite(weights, canonical) / opacity.clamp(min=1e-6)[..., None],
            "samples": canonical,
        }

    @torch.no_grad()
    def _posed_normal(self, points: Tensor, frame: Tensor, inst: Tensor) -> Tensor:
        """(M, 3) unit normals at points (M, 3, object coordinates) of frames (M,): central differences of the
        canonical SDF through the backward warp; zero where the stencil leaves the field's bound.

        The step, bound / 128, is a cell of the cpu preset's finest hash level: the normal follows the
        surface, not the trilinear facets within cells.
        """
        canonical = self.deform.warp_to_canonical(_central_stencil(points, float(self.bound) / 128.0), frame, inst)
        sdf = self.field.sdf(canonical, inst[:, None])
        gradient = sdf[:, :3] - sdf[:, 3:]
        valid = (sdf < OUTSIDE_SDF).all(-1, keepdim=True)
        return torch.nn.functional.normalize(gradient, dim=-1) * valid

    def proxy_sphere(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """Centres (N, 3, object coordinates) and radii (N,) of the spheres around frames' proxy boxes."""
        lo, hi = self.proxy_lo[frame], self.proxy_hi[frame]
        return 0.5 * (lo + hi), 0.5 * (hi - lo).norm(dim=-1)

    def training_occupancy(self, frame: Tensor) -> dict[str, Tensor] | None:
        """The stored occupancy grids of frames (N,) for :meth:`render_rays`, or None when disabled."""
        if self.cfg.occupancy_res == 0:
            return None
        return {"lo": self.proxy_lo[frame], "hi": self.proxy_hi[frame], "grid": self.occupancy_grid[frame]}

    @torch.no_grad()
    def update_proxy(self, resolution: int = PROXY_GRID_RES, chunk_frames: int = 16) -> None:
        """Fit every frame's proxy box, then its occupancy grid, to the current shape (lab4d
        rebuilds its proxy mesh per round).

        Canonical cells within one cell of the surface or inside it are carried to each frame by
        the deformation; the box around them, widened by ``proxy_margin`` so the shape can grow
        into it, bounds that frame's rays. An instance with no such cell keeps its boxes. The
        occupancy grids are dilated by a cell, so the shape can grow by a cell per refit.
        """
        instance_of_frame = self.instance(torch.arange(len(self.proxy_lo), device=self.bound.device))
        for inst in range(self.num_inst):
            grid, sdf, cell = self._canonical_grid(inst, resolution)
            self._fit_feature_anchors(inst, grid, sdf, cell)
            surface = self._surface_cells(inst, resolution, (grid, sdf, cell))
            if surface is None:
                continue
            frames = (instance_of_frame == inst).nonzero().squeeze(1)
            for part in frames.split(chunk_frames):
                self.proxy_lo[part], self.proxy_hi[part] = self._posed_cells_box(*surface, part, inst)
        if self.cfg.occupancy_res > 0:
            for part in torch.arange(len(self.proxy_lo), device=self.bound.device).split(chunk_frames):
                self.occupancy_grid[part] = self.frame_occupancy(part, self.cfg.occupancy_res)["grid"]

    @torch.no_grad()
    def posed_box(self, frame: Tensor, inst: int, resolution: int = 32) -> tuple[Tensor, Tensor] | None:
        """Boxes lo, hi (N, 3, object coordinates) around instance ``inst``'s shape posed at frames (N,),
        widened by ``proxy_margin`` as the proxy boxes are; None when the instance has no surface yet."""
        surface = self._surface_cells(inst, resolution)
        return None if surface is None else self._posed_cells_box(*surface, frame, inst)

    def _canonical_grid(self, inst: int, resolution: int) -> tuple[Tensor, Tensor, float]:
        """Centres (R^3, 3) of a grid of cells over the field's bound, instance ``inst``'s SDF there, and the cell size."""
        bound = float(self.field.scale)
        cell = 2.0 * bound / resolution
        axis = (torch.arange(resolution, device=self.bound.device, dtype=torch.float32) + 0.5) * cell - bound
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        code = torch.tensor(inst, device=grid.device)
        return grid, torch.cat([self.field.sdf(part, code) for part in grid.split(65536)]), cell

    def _surface_cells(
        self, inst: int, resolution: int, grid: tuple[Tensor, Tensor, float] | None = None
    ) -> tuple[Tensor, float] | None:
        """Centres of the canonical cells (at most :data:`PROXY_POINTS`) within a cell of instance ``inst``'s
        surface or inside it, and the cell size; None when there are none. ``grid``: a :meth:`_canonical_grid`
        already computed at ``resolution``."""
        centres, sdf, cell = self._canonical_grid(inst, resolution) if grid is None else grid
        points = centres[sdf < cell]
        if len(points) == 0:
            return None
        return points[:: max(1, len(points) // PROXY_POINTS)], cell

    @torch.no_grad()
    def load_trained_state(self, state: dict[str, Tensor]) -> None:
        """``load_state_dict`` for a checkpoint that may hold feature anchors of another count (older versions
        matched over fewer): those are refit to the loaded shape instead."""
        stale = (
            state.get("feature_anchors") is not None and state["feature_anchors"].shape != self.feature_anchors.shape
        )
        self.load_state_dict({**state, "feature_anchors": self.feature_anchors} if stale else state)
        if stale:
            for inst in range(self.num_inst):
                self._fit_feature_anchors(inst, *self._canonical_grid(inst, PROXY_GRID_RES))

    def _fit_feature_anchors(self, inst: int, centres: Tensor, sdf: Tensor, cell: float) -> None:
        """Spread :data:`FEATURE_ANCHORS` points over instance ``inst``'s surface. The cells the surface crosses
        are split into :data:`ANCHOR_SUBDIVISION` cubed sub-cells; the centres of those it crosses are moved onto
        it by one Newton step along the SDF's gradient. Kept as they were when there are none."""
        near = centres[sdf.abs() < cell]
        if len(near) == 0:
            return
        steps = (torch.arange(ANCHOR_SUBDIVISION, device=near.device) + 0.5) / ANCHOR_SUBDIVISION - 0.5
        offsets = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3) * cell
        sub = (near[:, None] + offsets).reshape(-1, 3)
        code = torch.tensor(inst, device=sub.device)
        sub_sdf = torch.cat([self.field.sdf(part, code) for part in sub.split(65536)])
        crossing = sub[sub_sdf.abs() < cell / ANCHOR_SUBDIVISION]
        points = crossing if len(crossing) else near
        points = points[torch.linspace(0, len(points) - 1, FEATURE_ANCHORS, device=points.device).round().long()]
        distance, gradient = self.field.gradient(points, torch.full(points.shape[:1], inst, device=points.device))
        self.feature_anchors[inst] = points - distance[:, None] * torch.nn.functional.normalize(gradient, dim=-1)

    def match_features(self, features: Tensor, inst: Tensor, valid: Tensor | None = None) -> Tensor:
        """(N, K, 3) canonical points that pixel features (N, K, C) of frames of instances ``inst`` (N,) match:
        lab4d's soft-argmax of the similarity of the instance's anchors' canonical features, over each pixel's
        :data:`FEATURE_MATCH_TOP_K` best anchors, so the match moves smoothly with the features and carries their
        gradients without being pulled towards the rest of the surface. Only the pixels ``valid`` (N, K) are
        matched when given; the others get zeros."""
        out = features.new_zeros(*features.shape[:2], 3)
        valid = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device) if valid is None else valid
        for code in inst.unique():
            chosen = valid & (inst == code)[:, None]
            if not chosen.any():
                continue
            anchors, wanted = self.feature_anchors[code], features[chosen]
            anchor_features = self.field.feature(anchors, code)
            with torch.no_grad():  # the search; gradients reach the chosen anchors' scores only
                best = (wanted @ anchor_features.T).topk(min(FEATURE_MATCH_TOP_K, len(anchors)), dim=-1).indices
            scores = (wanted[:, None] * anchor_features[best]).sum(-1) / self.log_feature_temperature.exp()
            out[chosen] = (torch.softmax(scores, dim=-1)[..., None] * anchors[best]).sum(-2)
        return out

    def _posed_cells_box(self, points: Tensor, cell: float, frame: Tensor, inst: int) -> tuple[Tensor, Tensor]:
        warped = self.deform.warp_to_frame(points.expand(len(frame), -1, -1), frame, torch.full_like(frame, inst))
        return warped.amin(1) - self.proxy_margin - 0.5 * cell, warped.amax(1) + self.proxy_margin + 0.5 * cell

    @torch.no_grad()
    def update_up_axis(self) -> None:
        """Re-estimate :attr:`up_axis` from the learned root rotations of every frame (the cameras'
        x axes are horizontal: :func:`~lab4d_core.geometry.up.estimate_up_axis`)."""
        rotation, _ = self.root(torch.arange(len(self.root.base_rotation), device=self.up_axis.device))
        self.up_axis.copy_(torch.as_tensor(estimate_up_axis(rotation), dtype=self.up_axis.dtype))

    def predict_flow(self, canonical: Tensor, xy: Tensor, partner: Tensor, inst: Tensor | None = None) -> Tensor:
        """Flow to ``partner`` of pixels whose expected canonical points are ``canonical`` (N, K, 3), of
        instances ``inst`` (N,) (default: the partners' own)."""
        points = self.deform.warp_to_frame(canonical, partner, self.instance(partner) if inst is None else inst)
        rotation, translation = self.root(partner)
        camera = points @ rotation.transpose(1, 2) + translation[:, None]
        return project(camera, self.intrinsics(partner)) - xy

    def sdf_gradient(self, points: Tensor, inst: Tensor) -> tuple[Tensor, Tensor]:
        """Central finite differences of the canonical SDF, and where they are valid.

        Cheap, and backends without double backward (tcnn) work too. A stencil
        that crosses the field's bound would difference against the constant
        outside value, so such points are marked invalid rather than trusted.
        """
        eps = float(self.bound) / 256.0
        stacked = _central_stencil(points, eps)
        sdf = self.field.sdf(stacked, inst[..., None])
        valid = (stacked.abs() <= self.field.scale.detach()).all(-1).all(-1)
        return (sdf[..., :3] - sdf[..., 3:]) / (2 * eps), valid


FEATURE_ANCHORS = 8192
"""Canonical surface points per instance that pixel features are matched to. lab4d matches over 1024; with the
synthetic stand-in features and their true embedding, 1024 points on demo-quad's body lie so far apart that a
match misses by 1.3 px (median, 128 px arrays) against 0.6 px with 8192 (docs/features.md)."""
ANCHOR_SUBDIVISION = 4
"""Feature anchors are placed on a grid this many times finer than the proxy grid's, in the cells the surface
crosses."""
FEATURE_MATCH_TOP_K = 16
"""A match averages only a pixel's best-scoring anchors: over the whole surface, a softmax warm enough to
interpolate between neighbouring anchors also averages in far ones, which drags matches off the surface and
towards its middle (1.7 px against 0.6 px with the true embedding on demo-quad)."""
INIT_FEATURE_TEMPERATURE = 0.05
"""Softmax temperature of feature matching over cosine similarities, learned from there (lab4d's logsigma)."""
PROXY_POINTS = 4096
"""At most this many canonical points are warped to each frame to fit its proxy box."""
PROXY_MARGIN = 0.15
"""Proxy boxes reach this far (relative to the object's radius) beyond the current shape."""

_EXPLICIT_NAMES = {
    "log_depth_scale",
    "log_feature_temperature",
    "log_beta",
    "log_scale",
    "centre",
    "orientation",
    "light",
    "log_size",
    "shift",
    "log_gauss",
}
"""Leaf names of explicit parameters: the videos' depth scales, the feature matching's temperature, the field's beta
and scale, the bones' rest centres, orientations and scales, the videos' lights, and a skeleton's size, placement
and part extents."""


def _central_stencil(points: Tensor, eps: float) -> Tensor:
    """(..., 6, 3): points (..., 3) moved by +eps along x, y, z, then by -eps, for central differences."""
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
    return torch.cat([points[..., None, :] + offsets, points[..., None, :] - offsets], dim=-2)


def _rays_or_none(values: Tensor | None, select) -> Tensor | None:
    return None if values is None else select(values)


def _deformation_options(cfg: ModelConfig, radius: float) -> dict:
    """Options of the deformation beyond frames and instances: bones are sized by the object."""
    if cfg.fg_motion == "bob":
        return {"num_bones": cfg.num_bones, "init_radius": 0.5 * radius, "init_scale": cfg.bone_scale * radius}
    if "skel-" in cfg.fg_motion:
        return {"object_radius": radius}
    return {}


def _encoding_options(cfg: ModelConfig) -> dict:
    if cfg.encoding == "hashgrid":
        return {
            "num_levels": cfg.hash_levels,
            "log2_table_size": cfg.hash_log2_size,
            "max_res": cfg.hash_max_res,
            "implementation": cfg.implementation,
        }
    return {"num_freqs": cfg.num_freq_xyz}
