"""What every benchmark prints first: the software, the device and how busy the machine is."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

import course_utils as cu


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. "0.93 1.54 1.89" (on 2 cores, well below 2 is idle)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_line(device: torch.device) -> str:
    """torch, torchvision and Python versions; the device; CPU cores and torch threads; load average."""
    try:
        vision = f", torchvision {metadata.version('torchvision')}"
    except metadata.PackageNotFoundError:
        vision = ""
    return (f"torch {torch.__version__}{vision}, Python {platform.python_version()}; device: "
            f"{cu.describe_device(device)}; CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}; "
            f"load average: {load_average()}")


def run_child(script: str, args: list[str], what: str) -> object:
    """Run ``script`` (a benchmark's ``__file__``) again in a fresh Python with ``args``; its last line
    of output, read as JSON. A child that fails stops the benchmark with its error, naming ``what``."""
    out = subprocess.run([sys.executable, str(Path(script).resolve()), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the {what} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def seconds_per_call(work: Callable[[], object], repeats: int = 20) -> float:
    """Mean seconds of ``work()`` over ``repeats`` calls, after 3 calls of warm-up."""
    for _ in range(3):
        work()
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - start) / repeats


def matmul_gflops(rows: int, inner: int, columns: int, dtype: torch.dtype) -> float:
    """GFLOP/s of one (rows x inner) @ (inner x columns) product in ``dtype`` at torch's thread count."""
    a, b = torch.randn(rows, inner).to(dtype), torch.randn(inner, columns).to(dtype)
    return 2 * rows * inner * columns / seconds_per_call(lambda: a @ b) / 1e9


def matmul_table(shapes: tuple[tuple[int, int, int], ...]) -> dict[torch.dtype, float]:
    """Print a table of GFLOP/s, float32 and bfloat16, of one product of each (rows, inner, columns)
    in ``shapes``; return each precision's fastest rate."""
    print("\n| matrix product | float32 GFLOP/s | bfloat16 GFLOP/s |\n| --- | --- | --- |")
    best = {torch.float32: 0.0, torch.bfloat16: 0.0}
    for shape in shapes:
        speeds = {dtype: matmul_gflops(*shape, dtype) for dtype in best}
        best = {dtype: max(best[dtype], speeds[dtype]) for dtype in best}
        print(f"| {' x '.join(map(str, shape))} | {speeds[torch.float32]:.0f} | {speeds[torch.bfloat16]:.0f} |")
    return best
