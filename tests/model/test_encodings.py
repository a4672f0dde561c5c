"""Encodings: the vectorised hash grid against a naive reference, Fourier features against the formula."""

import importlib.util
import itertools
import math

import pytest
import torch

from lab4d_core.model.encodings import (
    ENCODINGS,
    HASH_PRIMES,
    FourierEncoding,
    HashGridEncoding,
    build_encoding,
)

TINY = {"num_levels": 4, "features_per_level": 2, "log2_table_size": 8, "base_res": 2, "max_res": 16}


def tiny_grid(**options) -> HashGridEncoding:
    torch.manual_seed(0)
    grid = HashGridEncoding(3, **{**TINY, **options})
    with torch.no_grad():
        grid.table.uniform_(-1.0, 1.0)
    return grid


def naive_hashgrid(x: torch.Tensor, table: torch.Tensor, num_levels, log2_table_size, base_res, max_res, **_):
    """Per level and per corner, straight from the Instant-NGP definition; table is (F, rows)."""
    size = 2**log2_table_size
    growth = math.exp((math.log(max_res) - math.log(base_res)) / (num_levels - 1))
    unit = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    offset, levels = 0, []
    for level in range(num_levels):
        res = math.floor(base_res * growth**level)
        dense = (res + 1) ** 3 <= size
        pos = unit * res
        cell = pos.floor().clamp(0, res - 1)
        frac = pos - cell
        cell = cell.long()
        feature = torch.zeros(len(x), table.shape[0], dtype=x.dtype)
        for corner in itertools.product((0, 1), repeat=3):
            vertex = cell + torch.tensor(corner)
            if dense:
                row = vertex[:, 0] + vertex[:, 1] * (res + 1) + vertex[:, 2] * (res + 1) ** 2
            else:
                row = (
                    (vertex[:, 0] * HASH_PRIMES[0]) ^ (vertex[:, 1] * HASH_PRIMES[1]) ^ (vertex[:, 2] * HASH_PRIMES[2])
                )
                row = row % size
            weight = torch.ones(len(x), dtype=x.dtype)
            for d, bit in enumerate(corner):
                weight = weight * (frac[:, d] if bit else 1.0 - frac[:, d])
            feature += weight[:, None] * table[:, offset + row].t()
        offset += min((res + 1) ** 3, size)
        levels.append(feature)
    return torch.cat(levels, dim=-1)


def test_hashgrid_matches_naive_reference():
    grid = tiny_grid()
    assert 0 < grid.num_dense < grid.num_levels  # both indexing schemes are exercised
    x = torch.rand(500, 3) * 2.2 - 1.1  # a few points outside the bound are clamped
    x[:4] = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
    expected = naive_hashgrid(x, grid.table.detach(), **TINY)
    torch.testing.assert_close(grid(x), expected, rtol=1e-5, atol=1e-5)


def test_hashgrid_int64_indices_match_int32():
    """Tables too large for int32 hashing take the int64 path, which must index identically."""
    grid = tiny_grid()
    wide = tiny_grid()
    wide.index_dtype = torch.int64
    wide.multipliers = wide.multipliers.long()
    wide.offsets = wide.offsets.long()
    x = torch.rand(300, 3) * 2 - 1
    torch.testing.assert_close(wide(x), grid(x))


def test_trilinear_interpolation_is_exact_for_a_linear_function():
    grid = tiny_grid()
    res = int(grid.resolutions[0])
    vertices = torch.stack(torch.meshgrid(*[torch.arange(res + 1)] * 3, indexing="ij"), -1).flip(-1).reshape(-1, 3)
    slope, intercept = torch.tensor([0.3, -1.2, 2.0]), 0.7
    with torch.no_grad():
        grid.table.zero_()
        grid.table[0, : len(vertices)] = vertices.float() / res @ slope + intercept  # level 0 is dense
    x = torch.rand(200, 3) * 2 - 1
    unit = (x + 1) / 2
    torch.testing.assert_close(grid(x)[:, 0], unit @ slope + intercept, rtol=1e-5, atol=1e-5)


def test_hashgrid_gradients_reach_the_table_and_the_points():
    grid = tiny_grid(num_levels=3, log2_table_size=6, max_res=8).double()  # a dense and a hashed level
    x = (torch.rand(20, 3, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    assert torch.autograd.gradcheck(lambda table, points: grid(points), (grid.table, x), fast_mode=True)
    # second derivatives, as the eikonal loss needs (d/dtable of d features/dx)
    assert torch.autograd.gradgradcheck(lambda table, points: grid(points), (grid.table, x), fast_mode=True)
    grid.zero_grad()
    grid(x).sum().backward()
    assert grid.table.grad.abs().sum() > 0


def test_hashgrid_shapes_and_include_input():
    grid = HashGridEncoding(3, **TINY, include_input=True, bound=2.0)
    x = torch.rand(2, 5, 3) * 4 - 2
    out = grid(x)
    assert out.shape == (2, 5, grid.out_dim) and grid.out_dim == 4 * 2 + 3
    torch.testing.assert_close(out[..., grid.raw_dims], x)


def test_hashgrid_coarse_to_fine_window_masks_fine_levels():
    grid = HashGridEncoding(3, num_levels=16, log2_table_size=12)
    with torch.no_grad():
        grid.table.uniform_(-1.0, 1.0)
    x = torch.rand(100, 3) * 2 - 1
    full = grid(x).view(100, 16, 2)
    grid.alpha = 0.5
    half = grid(x).view(100, 16, 2)
    torch.testing.assert_close(half[:, :8], full[:, :8])
    assert (half[:, 8:] == 0).all()
    grid.alpha = 0.0
    assert (grid(x) == 0).all()


def test_tcnn_backend_falls_back_to_torch_with_a_warning():
    if importlib.util.find_spec("tinycudann") is not None:
        pytest.skip("tinycudann is installed")
    with pytest.warns(UserWarning, match="tinycudann"):
        grid = HashGridEncoding(3, **TINY, implementation="tcnn")
    assert grid.tcnn_encoding is None and grid(torch.zeros(4, 3)).shape == (4, grid.out_dim)


def test_fourier_matches_formula():
    encoding = FourierEncoding(3, num_freqs=4)
    x = torch.randn(10, 3)
    bands = [f(2.0**k * x) for k in range(4) for f in (torch.sin, torch.cos)]
    torch.testing.assert_close(encoding(x), torch.cat([x, *bands], dim=-1))
    assert encoding.out_dim == 3 * 9


def test_fourier_window():
    encoding = FourierEncoding(3, num_freqs=4)
    x = torch.randn(10, 3)
    full = encoding(x)
    encoding.alpha = 0.0
    masked = encoding(x)
    torch.testing.assert_close(masked[:, :3], x)
    assert (masked[:, 3:] == 0).all()
    encoding.alpha = 0.5  # alpha * N = 2: bands 0, 1 open, 2, 3 closed
    out = encoding(x)
    torch.testing.assert_close(out[:, : 3 + 12], full[:, : 3 + 12])
    assert (out[:, 3 + 12 :] == 0).all()
    encoding.alpha = 0.5 + 0.5 / 4  # band 2 half open: (1 - cos(pi / 2)) / 2 = 0.5
    torch.testing.assert_close(encoding(x)[:, 15:21], 0.5 * full[:, 15:21])


def test_registry_errors_name_the_choices():
    assert set(ENCODINGS) == {"fourier", "hashgrid"}
    assert build_encoding("fourier", 3, num_freqs=2).out_dim == 15
    with pytest.raises(ValueError, match="fourier.*hashgrid"):
        build_encoding("instant-ngp", 3)
    with pytest.raises(ValueError, match="'torch' or 'tcnn'"):
        build_encoding("hashgrid", 3, implementation="fast")
