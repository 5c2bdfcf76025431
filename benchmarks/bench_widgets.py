"""How long a slider move takes in each of notebook 04's explorers.

    OMP_NUM_THREADS=1 python benchmarks/bench_widgets.py            # the course's models
    OMP_NUM_THREADS=1 python benchmarks/bench_widgets.py --moves 500

Each explorer's main slider is moved ``--moves`` times from code; each move is timed
from setting the value to the return of every callback (update the cached code,
decode one image or, for the traversal's range slider, a row and a grid, encode the
PNG, assign it to the Image widget). The table gives the wall-clock median, 95th
percentile and maximum, and the median CPU time of this process (which other busy
processes do not inflate). Outside a kernel the widgets have no front end, so sending
the PNG costs nothing here; notebook 04, section 6, measures it inside a kernel.

Models come from ``train_or_load``: full mode loads ``checkpoints/``; with
``COURSE_FAST=1`` it uses (or trains) the fast-mode ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=200, help="slider moves timed per explorer (default 200)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    args = parser.parse_args(argv)

    import course_utils as cu
    from course_utils import widgets

    device = torch.device(args.device)
    start = time.perf_counter()
    test = cu.load_mnist("test")
    models = widgets.course_models(device, test=test)
    explorers = {
        "latent sliders": widgets.LatentExplorer(models, test),
        "traversal": widgets.TraversalExplorer(models, test),
        "interpolation": widgets.InterpolationExplorer([models["AE"], models["VAE"]], test),
        "2-D plane": widgets.PlaneExplorer(widgets.plane_model(device, test=test)),
    }
    explorers["latent sliders"].model.value = "VAE"
    setup = time.perf_counter() - start
    timings = widgets.time_explorers(explorers, n=args.moves)
    print()
    print(f"mode {cu.mode_name()} | {cu.describe_device(device)} | torch {torch.__version__} | "
          f"Python {platform.python_version()} | OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} | "
          f"load average {os.getloadavg()[0]:.2f} | set-up {setup:.1f} s")
    print(widgets.timing_table(timings))
    slow = [t for t in timings if t.median_ms >= 100]
    if slow:
        print(f"slower than 100 ms: {', '.join(t.name for t in slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
