"""Checkpoints: config, weights, training history and metrics in one file.

Loading uses ``torch.load(..., weights_only=True)``, so a checkpoint can hold only
tensors and plain Python values and can never run code when it is opened.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import MODEL_CLASSES
from .settings import CourseError, CourseValueError

FORMAT = "course_utils.checkpoint/1"
REQUIRED_KEYS = ("model_class", "config", "state_dict")  # what a checkpoint cannot do without
RETRAIN = "python -m course_utils train all"


class CheckpointError(CourseError, RuntimeError):
    """A file is not a course checkpoint, is damaged, holds another model, or cannot be written."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """There is no checkpoint file at the path given."""


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
    """Write a checkpoint atomically (complete, or not at all). ``half=True`` stores float weights as float16."""
    path = Path(path)
    check_destination(path.parent)
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
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except OSError as err:
        raise CheckpointError(
            f"cannot write the checkpoint {path} ({err.strerror or err}): choose a folder you can write to"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)  # an interrupted or failed save leaves nothing half-written
    return path


def check_destination(folder: str | Path) -> Path:
    """Make sure checkpoints can be saved in ``folder`` (created if needed); else one clear CheckpointError.

    Call it before training, so that a bad destination fails in a second, not after the training.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == folder else f"would lie inside {probe}, which is a file"
        raise CheckpointError(f"cannot save checkpoints in {folder}: it {where}, not a folder. Choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CheckpointError(
            f"cannot save checkpoints in {folder}: it cannot be written to ({err.strerror or err}). "
            "Choose a folder you can write to"
        ) from err
    return folder


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
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint: give the path of a .pt file in it")
    if not path.exists():
        raise CheckpointMissing(f"No checkpoint at {path}. Train one with: {RETRAIN}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # damaged or foreign bytes fail in many ways (IndexError, KeyError, struct.error...)
        raise CheckpointError(_unreadable(path, err)) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a course_utils checkpoint "
            f"(expected format {FORMAT!r}). Delete it and retrain."
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is damaged: it has no {', '.join(missing)}. Delete it and retrain: {RETRAIN}")
    return payload


def _unreadable(path: Path, err: Exception) -> str:
    """One line for a file torch.load refused; never the advice to turn the safety check off."""
    text = str(err)
    danger = re.search(r"GLOBAL ([\w.]+)", text) if isinstance(err, pickle.UnpicklingError) else None
    if danger:
        return (
            f"{path} was refused because it could run code when opened (it asks for {danger.group(1)}); "
            "a course checkpoint holds only tensors and numbers. Do not use this file: delete it, and take "
            f"the checkpoint from the course repository or retrain with: {RETRAIN}"
        )
    boilerplate = ("weights only load failed", "please file an issue", "check the documentation", "in pytorch 2.6")
    lines = [line.strip() for line in text.splitlines()]
    detail = next((line for line in lines if line and "weights_only" not in line
                   and not line.lower().startswith(boilerplate)), "")
    return (
        f"{path} is not a readable course checkpoint (it may be truncated, or another kind of file "
        f"renamed .pt): {type(err).__name__}{': ' + detail[:160] if detail else ''}. "
        f"Delete it and retrain with: {RETRAIN}"
    )


def build_model(model_class: str, config: dict[str, Any], where: str = "the config") -> nn.Module:
    """Rebuild an untrained model from its class name and config dict (``where`` names it in errors)."""
    if model_class not in MODEL_CLASSES:
        known = ", ".join(MODEL_CLASSES)
        raise CheckpointError(f"{where}: unknown model class {model_class!r} (the course has {known})")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must be a dict for a {model_class}, got {type(config).__name__}")
    cls, config_cls = MODEL_CLASSES[model_class]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    try:
        return cls(config_cls(**kwargs))
    except (TypeError, ValueError, RuntimeError) as err:
        hint = "" if where == "the config" else ". It was made by another version of the course: retrain it"
        reason = (str(err).splitlines() or [""])[0][:200]
        raise CheckpointError(f"{where} does not fit {model_class}: {reason}{hint}") from err


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
        want = expected_class if isinstance(expected_class, str) else getattr(expected_class, "__name__", "?")
        if want not in MODEL_CLASSES:
            known = ", ".join(MODEL_CLASSES)
            raise CourseValueError(f"expected_class={want!r} is not a course model: use one of {known}")
        if name != want:
            raise CheckpointError(
                f"{path} holds a {name}, not a {want}: load it as a {name}, or pick the file of a {want}"
            )
    model = build_model(name, payload["config"], where=f"{path}: the checkpoint's config")
    state = payload["state_dict"]
    reference = model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is damaged: its weights are not a dict of tensors. Delete it and retrain.")
    try:
        state = {k: v.to(reference[k].dtype) for k, v in state.items()}
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(
            f"{path}: the weights do not fit a {name} with config {payload['config']}: "
            f"{(str(err).splitlines() or [''])[0][:200]}. Delete it and retrain."
        ) from err
    model.to(device).eval()
    # Older checkpoints may lack the training config, history or metrics: they load with empty ones.
    train, history, metrics = (_dict(payload.get(key)) for key in ("train", "history", "metrics"))
    return Checkpoint(model, train, history, metrics, Path(path))


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def load_model(
    path: str | Path,
    expected_class: str | type | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Rebuild the model stored at ``path`` (the right class, in eval mode)."""
    return load_checkpoint(path, expected_class, device).model
