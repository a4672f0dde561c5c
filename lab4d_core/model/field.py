"""The canonical shape and colour of an object: a neural SDF with VolSDF density.

Follows lab4d's canonical ``NeRF`` field: a geometry trunk conditioned on a per-instance
(morphology) code, a colour branch conditioned on a per-frame appearance code, a learnable
log-scale on the input coordinates, a sphere initialisation and VolSDF's Laplace-CDF density
with a learnable beta. Unlike lab4d the default encoding is a hash grid with a 2x64 trunk,
which trains far faster on CPU than lab4d's Fourier features with an 8x256 trunk (still
available as ``encoding="fourier"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from lab4d_core.model.encodings import build_encoding
from lab4d_core.model.mlp import MLP

TRUNK_DEFAULTS: dict[str, dict] = {
    "hashgrid": {"hidden": 64, "depth": 2, "skips": ()},
    "fourier": {"hidden": 256, "depth": 8, "skips": (4,)},  # lab4d's D=8, W=256, skip at 4
}
ENCODING_DEFAULTS: dict[str, dict] = {
    # The raw coordinates let the small trunk represent the coarse shape (the sphere) directly.
    "hashgrid": {"include_input": True},
    "fourier": {"num_freqs": 10},
}
OUTSIDE_SDF = 1e3
"""SDF of canonical points outside the bound: far enough that their density is exactly 0."""
MIN_BETA = 1e-4
FEATURE_HEAD_SEED = 16


class NeuralSDF(nn.Module):
    """Canonical SDF and colour of ``num_inst`` instances seen in ``num_frames`` frames.

    Coordinates are divided by the learnable ``scale`` (initially ``bound``) so that the
    encoding sees [-1, 1]^3; the trunk predicts the SDF in those units and it is scaled back,
    which keeps |grad sdf| = 1 whatever the scale.
    """

    def __init__(
        self,
        num_inst: int = 1,
        num_frames: int = 1,
        encoding: str = "hashgrid",
        encoding_options: dict | None = None,
        hidden: int | None = None,
        depth: int | None = None,
        skips: Sequence[int] | None = None,
        activation: str = "softplus",
        color_hidden: int = 64,
        color_depth: int = 2,
        inst_dim: int = 32,
        appr_dim: int = 32,
        feat_dim: int = 15,
        feature_dim: int = 16,
        bound: float = 1.0,
        init_beta: float = 0.1,
        init_radius: float | None = None,
        init_steps: int = 200,
    ) -> None:
        super().__init__()
        if encoding not in TRUNK_DEFAULTS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {', '.join(sorted(TRUNK_DEFAULTS))}")
        trunk = TRUNK_DEFAULTS[encoding]
        self.encoding = build_encoding(encoding, 3, **{**ENCODING_DEFAULTS[encoding], **(encoding_options or {})})
        self.inst_codes = nn.Embedding(num_inst, inst_dim)
        self.trunk = MLP(
            self.encoding.out_dim,
            1 + feat_dim,
            hidden=trunk["hidden"] if hidden is None else hidden,
            depth=trunk["depth"] if depth is None else depth,
            skips=trunk["skips"] if skips is None else skips,
            activation=activation,
            cond_dim=inst_dim,
        )
        # Zero codes: every frame starts with the same colour until photometric losses differ.
        self.appr_codes = nn.Embedding(num_frames, appr_dim)
        nn.init.zeros_(self.appr_codes.weight)
        # The colour branch also reads the encoding directly: through the trunk alone, whose encoding
        # weights start at zero (geometric init), texture detail took hundreds of steps to appear.
        self.color = MLP(
            feat_dim + self.encoding.out_dim,
            3,
            hidden=color_hidden,
            depth=color_depth,
            activation="relu",
            cond_dim=appr_dim,
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(bound)))
        self.log_beta = nn.Parameter(torch.tensor(math.log(init_beta)))
        # Set by the training schedule (beta_anneal); a buffer, so a checkpoint renders with the beta it ended on.
        self.register_buffer("beta_factor", torch.tensor(1.0))
        if init_steps > 0:
            self.init_sphere(0.25 * bound if init_radius is None else init_radius, init_steps)
        # lab4d's feature head, built last from its own seed: without features a run draws the same numbers
        # as it did before the head existed, and trains exactly as then.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(FEATURE_HEAD_SEED)
            self.feature_head = MLP(feat_dim + self.encoding.out_dim, feature_dim, color_hidden, color_depth)

    @property
    def alpha(self) -> float:
        """Coarse-to-fine window of the encoding (lab4d's ``alpha``), in [0, 1]."""
        return self.encoding.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.encoding.alpha = value

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    @property
    def beta(self) -> torch.Tensor:
        return (self.log_beta.exp() * self.beta_factor).clamp_min(MIN_BETA)

    @staticmethod
    def _code(table: nn.Embedding, index: torch.Tensor | None) -> torch.Tensor:
        """Codes of ``index`` (any shape), or the mean code when None (lab4d's default at render)."""
        return table.weight.mean(0) if index is None else table(index)

    def _geometry(self, x: torch.Tensor, inst: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SDF (...,), geometry feature (..., feat_dim) and encoding (..., encoding dims) of points (..., 3)."""
        scale = self.scale
        unit = x / scale
        encoded = self.encoding(unit)
        out = self.trunk(encoded, self._code(self.inst_codes, inst))
        inside = (unit.abs() <= 1.0).all(-1)
        sdf = torch.where(inside, out[..., 0] * scale, OUTSIDE_SDF)
        return sdf, out[..., 1:], encoded

    def sdf(self, x: torch.Tensor, inst: torch.Tensor | None = None) -> torch.Tensor:
        """SDF (...,) of canonical points (..., 3); ``inst`` (broadcastable to ...) picks the instance code."""
        return self._geometry(x, inst)[0]

    def shape_deviation(self, x: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        """|SDF of instances ``inst`` - SDF of the mean code| (...,) at canonical points (..., 3).

        Penalised (``reg_inst_shape_wt``), it makes individuals differ first by what a skeleton's bone lengths
        say: a shape code can draw a limb at any length, and a limb that never bends in its video then learned
        a wrong bone length at no cost (docs/category.md)."""
        return (self.sdf(x, inst) - self.sdf(x, None)).abs()

    def forward(
        self, x: torch.Tensor, inst: torch.Tensor | None = None, frame: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``sdf`` (...,) and ``rgb`` (..., 3) in [0, 1] of canonical points (..., 3).

        ``inst`` and ``frame`` are integer tensors broadcastable to ``x.shape[:-1]``; None means
        the mean instance or appearance code.
        """
        sdf, feature, encoded = self._geometry(x, inst)
        appearance = torch.cat([feature, encoded], dim=-1)
        rgb = torch.sigmoid(self.color(appearance, self._code(self.appr_codes, frame)))
        return {"sdf": sdf, "rgb": rgb}

    def feature(self, x: torch.Tensor, inst: torch.Tensor | None = None) -> torch.Tensor:
        """(..., feature_dim) unit-length canonical features of points (..., 3): what a pixel seeing the point
        should carry in the dataset's features (DINOv2's, or the synthetic stand-in)."""
        # Without gradients into the field: the features teach registration (where points go), not the shape or
        # its colour; and no graph through the encoding is built for the head's inputs.
        with torch.no_grad():
            _, geometry, encoded = self._geometry(x, inst)
        feature = self.feature_head(torch.cat([geometry, encoded], dim=-1))
        return torch.nn.functional.normalize(feature, dim=-1)

    def gradient(self, x: torch.Tensor, inst: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SDF (...,) and its spatial gradient (..., 3).

        The gradient stays differentiable (for the eikonal loss) when training with autograd on;
        otherwise both are detached. Works under ``torch.no_grad`` too.
        """
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_()
            sdf = self.sdf(x, inst)
            (grad,) = torch.autograd.grad(sdf, x, torch.ones_like(sdf), create_graph=self.training and keep_graph)
        return (sdf, grad) if keep_graph else (sdf.detach(), grad)

    def density(self, sdf: torch.Tensor) -> torch.Tensor:
        """VolSDF density ``Laplace_CDF(-sdf; beta) / beta``: 0.5/beta on the surface, 1/beta deep inside."""
        beta = self.beta
        decay = torch.exp(-sdf.abs() / beta)  # never overflows, so both branches have finite gradients
        cdf = torch.where(sdf >= 0, 0.5 * decay, 1.0 - 0.5 * decay)
        return cdf / beta

    def _geometric_init(self, radius: float) -> None:
        """SAL/IDR geometric initialisation of the trunk: its SDF output starts close to |x| - radius.

        Hidden layers get N(0, 2/width) weights and zero biases, the SDF output a positive mean
        weight and bias -radius; inputs other than the raw coordinates (encoding features, the
        instance code) start with zero weights, as IDR does for its Fourier features.
        """
        raw = self.encoding.raw_dims
        input_dim = self.trunk.in_dim + self.trunk.cond_dim
        keep = torch.zeros(input_dim, dtype=torch.bool)
        keep[raw] = True
        with torch.no_grad():
            for i, layer in enumerate(self.trunk.layers):
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / layer.out_features))
                nn.init.zeros_(layer.bias)
                if i == 0 or i in self.trunk.skips:
                    layer.weight[:, :input_dim][:, ~keep] = 0.0
            output = self.trunk.output
            nn.init.normal_(output.weight[:1], math.sqrt(math.pi / output.in_features), 1e-4)
            output.bias[:1] = -radius

    def init_sphere(self, radius: float, steps: int = 200, batch: int = 512, lr: float = 2e-3) -> None:
        """Make the SDF a sphere of ``radius``: geometric init, then a short pre-fit of the trunk
        (lab4d pre-fits 500 steps) on seeded samples, half uniform, half near the surface.

        The pre-fit runs with the coarse-to-fine window closed (alpha = 0), so the sphere is built
        from the raw coordinates alone: smooth (|grad sdf| ~ 1), no high frequencies baked into the
        encoding's weights, and no hash-grid cost. Codes, scale and beta keep their init.
        """
        if self.encoding.raw_dims is not None:
            self._geometric_init(radius / self.scale.item())
        alpha, self.alpha = self.alpha, 0.0
        try:
            with _single_cpu_thread():
                self._fit_sphere(radius, steps, batch, lr)
        finally:
            self.alpha = alpha

    def init_shape(
        self, target: Callable[[torch.Tensor], torch.Tensor], anchors: torch.Tensor, steps: int = 300, lr: float = 2e-3
    ) -> None:
        """Pre-fit the SDF to ``target`` (points (P, 3) -> SDF (P,)), sampled half uniformly and half near
        ``anchors`` (A, 3), points on or inside the shape; as :meth:`init_sphere`, with the coarse-to-fine
        window closed. lab4d starts its skeleton models from the bones' SDF this way."""
        bound = self.scale.detach()
        generator = torch.Generator(device=anchors.device).manual_seed(1)

        def near(count: int) -> torch.Tensor:
            index = torch.randint(len(anchors), (count,), generator=generator, device=anchors.device)
            jitter = 0.05 * bound * torch.randn(count, 3, generator=generator, device=anchors.device)
            return anchors[index] + jitter

        alpha, self.alpha = self.alpha, 0.0
        try:
            with _single_cpu_thread():
                self._fit(target, near, steps, 512, lr)
        finally:
            self.alpha = alpha

    def _fit_sphere(self, radius: float, steps: int, batch: int, lr: float) -> None:
        device = self.log_scale.device
        generator = torch.Generator(device=device).manual_seed(0)
        bound = self.scale.detach()

        def shell(count: int) -> torch.Tensor:
            normal = torch.randn(count, 3, generator=generator, device=device)
            radii = radius + 0.1 * bound * torch.randn(count, 1, generator=generator, device=device)
            return normal / normal.norm(dim=-1, keepdim=True) * radii

        self._fit(lambda x: x.norm(dim=-1) - radius, shell, steps, batch, lr, generator)

    def _fit(self, target, near, steps: int, batch: int, lr: float, generator: torch.Generator | None = None) -> None:
        """Adam on the trunk alone: L1 between the SDF and ``target`` at ``batch`` points per step, half
        uniform in the bound, half from ``near(count)``."""
        device = self.log_scale.device
        generator = generator or torch.Generator(device=device).manual_seed(0)
        params = list(self.trunk.parameters())
        optimizer = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.01 * lr)
        bound = self.scale.detach()
        for _ in range(steps):
            uniform = (torch.rand(batch // 2, 3, generator=generator, device=device) * 2.0 - 1.0) * bound
            x = torch.cat([uniform, near(batch - batch // 2)])
            inst = torch.randint(self.inst_codes.num_embeddings, (batch,), generator=generator, device=device)
            # L1: the far field (|x| up to sqrt(3) bound) would dominate a squared loss.
            loss = (self.sdf(x, inst) - target(x)).abs().mean()
            # Gradients of the trunk only: no dense table gradient, no stale .grad left elsewhere.
            for param, grad in zip(params, torch.autograd.grad(loss, params)):
                param.grad = grad
            optimizer.step()
            schedule.step()
        for param in params:
            param.grad = None


@contextmanager
def _single_cpu_thread() -> Iterator[None]:
    """Run small CPU ops on one thread (restored afterwards; no effect on accelerator work).

    The pre-fit's ops are too small to gain from threads, and on an oversubscribed CPU (shared
    runners) every parallel region waits for descheduled threads: 200 steps measured 20-50 s on
    two busy cores instead of 0.5 s.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
