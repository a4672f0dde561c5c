"""Where `lab4d synth` spends its time: a table per stage for a dataset config.

    python benchmarks/bench_synth.py [--config config/datasets/demo-quad.yaml] [--json out.json]

Stages are timed with cProfile's cumulative times of the functions that
implement them, in one run, so their shares are comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

from lab4d_core.config import load_dataset_config
from lab4d_core.data.synthetic.synthesize import synthesize

STAGES = {
    "character meshing (marching cubes, skinning weights)": "procedural_character",
    "OpenGL rasterisation + readback": "render",
    "mesh upload to the GL context": "upload",
    "surface correspondences (barycentric gathers)": "surface_points",
    "exact flow + visibility": "exact_flow",
    "writing lab4d arrays and JPEGs": "write_video",
    "writing ground truth": "write_ground_truth",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/datasets/demo-quad.yaml"))
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    cfg = load_dataset_config(args.config).source.synthetic

    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        profiler.runcall(synthesize, cfg, Path(tmp) / args.config.stem)
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats
    cumulative = {}
    for (_, _, name), (_, _, _, cum, _) in stats.items():
        cumulative[name] = cumulative.get(name, 0.0) + cum

    frames = sum(cfg.frame_counts)
    rows = [(stage, cumulative.get(function, 0.0)) for stage, function in STAGES.items()]
    print(
        f"{args.config.stem}: {cfg.num_videos} videos, {frames} frames, {cfg.resolution}px raw, "
        f"{cfg.train_res}px arrays, prefixes {'+'.join(cfg.prefixes)}"
    )
    print(f"{'stage':55s} {'seconds':>8s} {'share':>6s}")
    for stage, seconds in rows:
        print(f"{stage:55s} {seconds:8.2f} {seconds / total:6.1%}")
    print(f"{'total (profiled; unprofiled runs are faster)':55s} {total:8.2f} {1:6.1%}")
    print(f"{'frames per second':55s} {frames / total:8.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"config": str(args.config), "total_s": total, "frames": frames, "stages_s": dict(rows)}, indent=1
            )
        )


if __name__ == "__main__":
    main()
