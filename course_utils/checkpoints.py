"""Checkpoints: config, weights, training history and metrics in one file.

Loading uses ``torch.load(..., weights_only=True)``, so a checkpoint can hold only
tensors and plain Python values and can never run code when it is opened.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import MODEL_CLASSES

FORMAT = "course_utils.checkpoint/1"


class CheckpointError(RuntimeError):
    """A file is not a course checkpoint, is damaged, or holds another model."""


@dataclass
class Checkpoint:
    model: nn.Module
    train_config: dict[str, Any]  # the TrainConfig it was trained with, as a dict
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch losses
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluate() on the test set
    path: Path | None = None


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The class name and config that rebuild ``model``."""
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"{name} is not one of the course's models {sorted(MODEL_CLASSES)}")
    return {"model_class": name, "config": dataclasses.asdict(model.config)}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    train_config: dict[str, Any] | None = None,
    history: dict[str, list[float]] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a checkpoint atomically. ``half=True`` stores float weights as float16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        **model_spec(model),
        "train": dict(train_config or {}),
        "state_dict": state,
        "history": {k: [float(v) for v in vs] for k, vs in (history or {}).items()},
        "metrics": dict(metrics or {}),
        "torch_version": str(torch.__version__),
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


@torch.no_grad()
def round_to_half(model: nn.Module) -> nn.Module:
    """Round the model's float weights to float16 and back, in place: what a half checkpoint keeps."""
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().to(tensor.dtype))
    return model


def read_payload(path: str | Path) -> dict[str, Any]:
    """The raw dictionary inside a checkpoint, checked to be one of ours."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No checkpoint at {path}. Train one with: python -m course_utils train all"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError,
            ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{path} is not a readable course checkpoint (it may be truncated or another "
            f"kind of file): {type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}. "
            "Delete it and retrain with: python -m course_utils train all"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a course_utils checkpoint "
            f"(expected format {FORMAT!r}). Delete it and retrain."
        )
    return payload


def build_model(model_class: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild an untrained model from its class name and config dict."""
    if model_class not in MODEL_CLASSES:
        raise CheckpointError(f"unknown model class {model_class!r} in checkpoint")
    cls, config_cls = MODEL_CLASSES[model_class]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    try:
        return cls(config_cls(**kwargs))
    except TypeError as err:
        raise CheckpointError(f"the checkpoint's config does not fit {model_class}: {err}") from err


def load_checkpoint(
    path: str | Path,
    expected_class: str | type | None = None,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Load a checkpoint and rebuild its model (in eval mode) on ``device``.

    ``expected_class`` (a class or its name) makes loading another model an error.
    """
    payload = read_payload(path)
    name = payload["model_class"]
    if expected_class is not None:
        want = expected_class if isinstance(expected_class, str) else expected_class.__name__
        if name != want:
            raise CheckpointError(f"{path} holds a {name}, not a {want}. Check the file name.")
    model = build_model(name, payload["config"])
    state = payload["state_dict"]
    reference = model.state_dict()
    try:
        state = {k: v.to(reference[k].dtype) for k, v in state.items()}
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(
            f"{path}: the weights do not fit a {name} with config {payload['config']}: "
            f"{str(err).splitlines()[0][:200]}. Delete it and retrain."
        ) from err
    model.to(device).eval()
    return Checkpoint(model, payload["train"], payload["history"], payload["metrics"], Path(path))


def load_model(
    path: str | Path,
    expected_class: str | type | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Rebuild the model stored at ``path`` (the right class, in eval mode)."""
    return load_checkpoint(path, expected_class, device).model
