"""How long a slider move takes in each of notebook 04's explorers.

    OMP_NUM_THREADS=1 python benchmarks/bench_widgets.py            # the course's models
    OMP_NUM_THREADS=1 python benchmarks/bench_widgets.py --moves 500

Each explorer's main slider is moved ``--moves`` times from code; each move is timed
from setting the value to the return of every callback (update the cached code,
decode one image or, for the traversal's range slider, a row and a grid, encode the
PNG, assign it to the Image widget). The table gives the wall-clock median, 95th
percentile and maximum, and the median CPU time of this process (which other busy
processes do not inflate). Outside a kernel the widgets have no front end, so sending
the PNG costs nothing here.

Models come from ``train_or_load``: full mode loads ``checkpoints/``; with
``COURSE_FAST=1`` it uses (or trains) the fast-mode ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import ipywidgets as w
import numpy as np
import torch

import course_utils as cu
from course_utils import explorers as ex
from course_utils.lessons import nb04_traversal as nb04


class CallbackTiming(NamedTuple):
    name: str
    n: int  # slider moves timed
    median_ms: float  # wall-clock time of a move, callbacks included: what a user waits
    p95_ms: float
    max_ms: float
    cpu_median_ms: float  # CPU time of this process for a move: unaffected by other busy processes


def slider_values(slider: w.Widget, n: int) -> list:
    """n values for ``slider`` that differ from each move to the next (a sweep back and forth)."""
    if isinstance(slider, w.SelectionSlider):
        options = [v for _, v in slider.options] if isinstance(slider.options[0], tuple) else list(slider.options)
    else:
        options = np.linspace(slider.min, slider.max, 25).tolist()
    sweep = options + options[-2:0:-1]
    return [sweep[i % len(sweep)] for i in range(1, n + 1)]


def time_slider(slider: w.Widget, n: int = 200, name: str = "") -> CallbackTiming:
    """Move ``slider`` n times from code and time each move, callbacks included (ms)."""
    start_value = slider.value
    wall, cpu = [], []
    for value in slider_values(slider, n):
        if value == slider.value:
            continue
        start, start_cpu = time.perf_counter(), time.process_time()
        slider.value = value
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    slider.value = start_value
    t = np.asarray(wall)
    return CallbackTiming(name or slider.description, len(t), float(np.median(t)), float(np.percentile(t, 95)),
                          float(t.max()), float(np.median(cpu)))


def timing_table(timings: Sequence[CallbackTiming]) -> str:
    """The timings as a text table (wall-clock median, 95th percentile and maximum; CPU median)."""
    lines = [f"{'explorer (slider)':<34} {'moves':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'CPU ms':>7}"]
    for t in timings:
        lines.append(f"{t.name:<34} {t.n:>5} {t.median_ms:>10.2f} {t.p95_ms:>8.2f} {t.max_ms:>8.2f} "
                     f"{t.cpu_median_ms:>7.2f}")
    return "\n".join(lines)


def time_explorers(explorers: Mapping[str, object], n: int = 200) -> list[CallbackTiming]:
    """Time the main slider of every explorer (see ``Explorer.timed_slider``)."""
    return [time_slider(e.timed_slider, n, f"{name} ({e.timed_slider.description})") for name, e in explorers.items()]




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=200, help="slider moves timed per explorer (default 200)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    start = time.perf_counter()
    test = cu.load_mnist("test")
    models = nb04.course_models(device, test=test)
    chosen = {
        "latent sliders": ex.LatentExplorer(models, test),
        "traversal": ex.TraversalExplorer(models, test),
        "interpolation": ex.InterpolationExplorer([models["AE"], models["VAE"]], test),
        "2-D plane": ex.PlaneExplorer(nb04.plane_model(device, test=test)),
    }
    chosen["latent sliders"].model.value = "VAE"
    setup = time.perf_counter() - start
    timings = time_explorers(chosen, n=args.moves)
    print()
    print(f"mode {cu.mode_name()} | {cu.describe_device(device)} | torch {torch.__version__} | "
          f"Python {platform.python_version()} | OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} | "
          f"load average {os.getloadavg()[0]:.2f} | set-up {setup:.1f} s")
    print(timing_table(timings))
    slow = [t for t in timings if t.median_ms >= 100]
    if slow:
        print(f"slower than 100 ms: {', '.join(t.name for t in slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
