"""CPU throughput of the canonical SDF: our hash grid + 2x64 trunk vs lab4d's Fourier PE 10 + 8x256 trunk.

    python benchmarks/bench_encodings.py [--points 65536] [--repeats 2] [--threads N]

One table, one run: points per second of the SDF forward + backward (all parameters), and of the
forward + backward of the eikonal term (the spatial gradient with create_graph, as training does).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from lab4d_core.model.field import NeuralSDF

CONFIGS = {
    "hashgrid L16 F2 T2^17 + 2x64 (ours)": {"encoding": "hashgrid"},
    "fourier PE10 + 8x256 skip 4 (lab4d)": {"encoding": "fourier", "encoding_options": {"num_freqs": 10}},
}


def sdf_step(field: NeuralSDF, x: torch.Tensor) -> None:
    field.sdf(x).sum().backward()


def eikonal_step(field: NeuralSDF, x: torch.Tensor) -> None:
    _, grad = field.gradient(x)
    (grad.norm(dim=-1) - 1.0).square().mean().backward()


def throughput(
    step: Callable[[NeuralSDF, torch.Tensor], None], field: NeuralSDF, x: torch.Tensor, repeats: int
) -> float:
    """Points per second of ``step``, best of ``repeats`` (noise only slows runs down).

    The warm-up (lazy kernel initialisation) uses a slice, as one full lab4d-like eikonal step takes seconds.
    """
    step(field, x[:4096])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step(field, x)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.points, 3) * 2.0 - 1.0

    rows = []
    for name, config in CONFIGS.items():
        field = NeuralSDF(init_steps=0, **config).train()
        params = sum(p.numel() for p in field.parameters())
        rows.append(
            (
                name,
                params,
                throughput(sdf_step, field, x, args.repeats),
                throughput(eikonal_step, field, x, args.repeats),
            )
        )

    print(f"{args.points} points, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'canonical SDF':40s} {'params':>10s} {'sdf fwd+bwd pts/s':>18s} {'eikonal fwd+bwd pts/s':>22s}")
    for name, params, sdf_rate, eikonal_rate in rows:
        print(f"{name:40s} {params:10d} {sdf_rate:18,.0f} {eikonal_rate:22,.0f}")
    (_, _, hash_sdf, hash_eik), (_, _, fourier_sdf, fourier_eik) = rows
    print(f"{'speed-up of the hash grid':40s} {'':10s} {hash_sdf / fourier_sdf:17.1f}x {hash_eik / fourier_eik:21.1f}x")


if __name__ == "__main__":
    main()
