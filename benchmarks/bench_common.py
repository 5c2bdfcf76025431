"""What every benchmark prints first: the software, the device and how busy the machine is."""

from __future__ import annotations

import os
import platform
from importlib import metadata

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
