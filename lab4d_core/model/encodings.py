"""Coordinate encodings behind one interface, so fields can swap Fourier features for a hash grid.

* ``fourier``: lab4d's ``PosEmbedding`` (``[x, sin(2^k x), cos(2^k x)]``), the encoding of
  every lab4d MLP field.
* ``hashgrid``: Instant-NGP's multi-resolution hash grid in pure PyTorch (lab4d leaves this as a
  TODO). It is the default of our fields because a tiny MLP on top of it trains much faster on
  CPU than lab4d's 8x256 MLP. ``implementation="tcnn"`` swaps in tiny-cuda-nn when it is installed.

Both expose lab4d's coarse-to-fine window ``alpha`` in [0, 1]: frequency bands (or grid levels)
above ``alpha * n`` are faded out, so optimisation can fit the coarse shape first.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

import torch
from torch import nn

# Instant-NGP's per-axis hashing primes (the first is 1 so that x alone keeps its locality).
HASH_PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


def coarse_to_fine_window(alpha: float, n: int, device: torch.device | None = None) -> torch.Tensor:
    """(n,) weights of lab4d's window: band k gets (1 - cos(pi * clamp(alpha * n - k, 0, 1))) / 2."""
    progress = (alpha * n - torch.arange(n, dtype=torch.float32, device=device)).clamp(0.0, 1.0)
    return (1.0 - torch.cos(math.pi * progress)) / 2.0


class Encoding(nn.Module, ABC):
    """Maps (..., in_dim) coordinates to (..., out_dim) features.

    ``alpha`` is a plain attribute (not state): the training schedule sets it every step.
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.alpha = 1.0

    @property
    @abstractmethod
    def out_dim(self) -> int:
        """Number of output features."""

    @property
    @abstractmethod
    def raw_dims(self) -> slice | None:
        """Output features that are the raw input, if any (geometric initialisation keeps only these)."""


class FourierEncoding(Encoding):
    """lab4d's PosEmbedding: ``[x, (sin(2^k x), cos(2^k x)) for k < num_freqs]``, band-major."""

    def __init__(self, in_dim: int, num_freqs: int = 10) -> None:
        super().__init__(in_dim)
        self.num_freqs = num_freqs
        self.register_buffer("freqs", 2.0 ** torch.arange(num_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (1 + 2 * self.num_freqs)

    @property
    def raw_dims(self) -> slice:
        return slice(0, self.in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x[..., None, :] * self.freqs[:, None]  # (..., K, D)
        bands = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # (..., K, 2, D)
        window = coarse_to_fine_window(self.alpha, self.num_freqs, x.device)
        bands = bands * window[:, None, None]
        return torch.cat([x, bands.flatten(-3)], dim=-1)


class _Gather(torch.autograd.Function):
    """Columns ``table[:, index]`` of a feature-major (F, T) table, with a fast, differentiable backward.

    The table gradient dominates a hash grid's cost. On CPU, ``index_add_`` along dim 1 of an
    (F, T) buffer is ~4x faster than autograd's scatter into rows of a (T, F) one, and ~30x
    faster with an int64 index than with our int32 one, so the backward widens the index once.
    It is itself differentiable (``_Scatter``), as second derivatives for the eikonal loss need.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.num_columns = table.shape[1]
        return table.index_select(1, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        return _Scatter.apply(grad, index, ctx.num_columns), None


class _Scatter(torch.autograd.Function):
    """Sums (F, M) columns into an (F, num_columns) table at ``index``; the adjoint of ``_Gather``."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, index: torch.Tensor, num_columns: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        return values.new_zeros(values.shape[0], num_columns).index_add_(1, index.long(), values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (index,) = ctx.saved_tensors
        return _Gather.apply(grad, index), None, None


class HashGridEncoding(Encoding):
    """Multi-resolution hash grid (Instant-NGP) with multilinear interpolation, vectorised over levels.

    Level l has ``res_l = floor(base_res * b^l)`` cells per axis over [0, 1] (b spaces the levels
    geometrically up to ``max_res``). Like tcnn, a level whose ``(res_l + 1)^D`` vertices fit in the
    table is indexed densely (no collisions); finer levels use the XOR-prime hash. All levels share
    one feature-major (F, sum of level sizes) ``table``, so the dense and the hashed levels are one
    gather each.

    Inputs are in [-bound, bound]^D (clamped there); output is (..., L*F), level-major, with the
    raw input appended when ``include_input``.
    """

    def __init__(
        self,
        in_dim: int,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 17,
        base_res: int = 16,
        max_res: int = 512,
        bound: float = 1.0,
        include_input: bool = False,
        init_scale: float = 1e-4,
        implementation: str = "torch",
    ) -> None:
        super().__init__(in_dim)
        if in_dim > len(HASH_PRIMES):
            raise ValueError(f"hashgrid supports at most {len(HASH_PRIMES)} input dims, got {in_dim}")
        if implementation not in ("torch", "tcnn"):
            raise ValueError(f"unknown hashgrid implementation {implementation!r}; choose 'torch' or 'tcnn'")
        self.num_levels = num_levels
        self.features_per_level = features_per_level
        self.table_size = 2**log2_table_size
        self.bound = bound
        self.include_input = include_input
        growth = math.exp((math.log(max_res) - math.log(base_res)) / (num_levels - 1)) if num_levels > 1 else 1.0
        resolutions = [int(math.floor(base_res * growth**level)) for level in range(num_levels)]
        sizes = [min((res + 1) ** in_dim, self.table_size) for res in resolutions]
        self.num_dense = sum((res + 1) ** in_dim <= self.table_size for res in resolutions)
        # Only the low log2_table_size bits of a hash matter, so primes reduced modulo the table
        # size give the same rows; int32 then suffices (half the memory traffic) while neither a
        # product vertex * reduced prime nor a row of the whole table can overflow it.
        fits_int32 = (max_res + 1) * self.table_size < 2**31 and sum(sizes) < 2**31
        self.index_dtype = torch.int32 if fits_int32 else torch.int64
        multipliers = [
            [(res + 1) ** d if level < self.num_dense else HASH_PRIMES[d] % self.table_size for d in range(in_dim)]
            for level, res in enumerate(resolutions)
        ]
        self.register_buffer("resolutions", torch.tensor(resolutions, dtype=torch.float32), persistent=False)
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]]).cumsum(0).to(self.index_dtype), persistent=False)
        self.register_buffer("multipliers", torch.tensor(multipliers, dtype=self.index_dtype), persistent=False)

        self.tcnn_encoding = self._make_tcnn(growth, base_res, log2_table_size) if implementation == "tcnn" else None
        if self.tcnn_encoding is None:
            table = torch.empty(features_per_level, sum(sizes)).uniform_(-init_scale, init_scale)
            self.table = nn.Parameter(table)

    def _make_tcnn(self, growth: float, base_res: int, log2_table_size: int) -> nn.Module | None:
        """tiny-cuda-nn's HashGrid, or None (with a warning) when it cannot be loaded here."""
        try:
            import tinycudann
        except (ImportError, OSError) as error:
            warnings.warn(f"tinycudann unavailable ({error}); hashgrid uses the torch implementation", stacklevel=3)
            return None
        config = {
            "otype": "HashGrid",
            "n_levels": self.num_levels,
            "n_features_per_level": self.features_per_level,
            "log2_hashmap_size": log2_table_size,
            "base_resolution": base_res,
            "per_level_scale": growth,
        }
        return tinycudann.Encoding(n_input_dims=self.in_dim, encoding_config=config)

    @property
    def out_dim(self) -> int:
        return self.num_levels * self.features_per_level + (self.in_dim if self.include_input else 0)

    @property
    def raw_dims(self) -> slice | None:
        grid_dims = self.num_levels * self.features_per_level
        return slice(grid_dims, grid_dims + self.in_dim) if self.include_input else None

    def _interpolate(self, unit: torch.Tensor, levels: slice, hashed: bool) -> torch.Tensor:
        """(F, N, l) features of (N, D) points in [0, 1] on a run of levels that index alike.

        Corner indices and weights are built axis by axis (two values per axis, then outer
        sums/XORs and products), far cheaper than materialising all corners' coordinates. Corners
        lead and features come first so that every elementwise op runs over contiguous memory.
        """
        res = self.resolutions[levels]
        pos = unit[:, None, :] * res[:, None]  # (N, l, D)
        cell = torch.minimum(pos.floor(), (res - 1)[:, None]).clamp_min(0)
        frac = (pos - cell).permute(2, 0, 1)  # (D, N, l)
        cell = cell.to(self.index_dtype).permute(2, 0, 1)
        step = torch.tensor([0, 1], dtype=self.index_dtype, device=unit.device)[:, None, None]
        multipliers = self.multipliers[levels].t()  # (D, l)
        index = weight = None
        for d in range(self.in_dim):
            axis_index = (cell[d] + step) * multipliers[d]  # (2, N, l)
            axis_weight = torch.stack([1.0 - frac[d], frac[d]])
            if index is None:
                index, weight = axis_index, axis_weight
            else:
                combine = torch.bitwise_xor if hashed else torch.add
                index = combine(index[:, None], axis_index[None]).flatten(0, 1)
                weight = (weight[:, None] * axis_weight[None]).flatten(0, 1)
        if hashed:
            index &= self.table_size - 1
        index += self.offsets[levels]
        rows = _Gather.apply(self.table, index.view(-1)).view(self.features_per_level, *index.shape)  # (F, 2^D, N, l)
        return (rows * weight).sum(1)

    def _grid_features(self, unit: torch.Tensor) -> torch.Tensor:
        """(N, L, F) features of (N, D) points in [0, 1].

        Levels that the coarse-to-fine window zeroes are not computed, so early coarse training
        is cheaper too.
        """
        active = min(self.num_levels, max(0, math.ceil(self.alpha * self.num_levels)))
        runs = [(0, min(self.num_dense, active), False), (self.num_dense, active, True)]
        parts = [self._interpolate(unit, slice(start, stop), hashed) for start, stop, hashed in runs if stop > start]
        parts.append(unit.new_zeros(self.features_per_level, unit.shape[0], self.num_levels - active))
        return torch.cat(parts, dim=2).permute(1, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_shape = x.shape[:-1]
        flat = x.reshape(-1, self.in_dim)
        unit = ((flat / self.bound + 1.0) / 2.0).clamp(0.0, 1.0)
        if self.tcnn_encoding is not None:
            features = self.tcnn_encoding(unit).to(x.dtype).view(-1, self.num_levels, self.features_per_level)
        else:
            features = self._grid_features(unit)
        window = coarse_to_fine_window(self.alpha, self.num_levels, x.device)
        features = (features * window[:, None]).flatten(-2)
        if self.include_input:
            features = torch.cat([features, flat], dim=-1)
        return features.view(*batch_shape, self.out_dim)


ENCODINGS: dict[str, type[Encoding]] = {"fourier": FourierEncoding, "hashgrid": HashGridEncoding}


def build_encoding(name: str, in_dim: int, **options) -> Encoding:
    """Encoding ``name`` from ``ENCODINGS`` with its keyword options."""
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; choose one of {', '.join(sorted(ENCODINGS))}")
    return ENCODINGS[name](in_dim, **options)
