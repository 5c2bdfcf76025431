"""Precision chosen at run time: bfloat16 detection, what "auto" picks, fit under autocast."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from conftest import small_vae

import course_utils as cu
from course_utils import settings, training

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Some CPU
flags\t\t: fpu vme de pse tsc msr avx2 avx512f avx512bw {extra} arat
"""


def _cpuinfo(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(settings, "_read_cpuinfo", lambda: text)
    monkeypatch.setattr(sys, "platform", "linux")


def _fast_bfloat16(monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    monkeypatch.setattr(settings, "cpu_has_fast_bfloat16", lambda: present)


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize(("extra", "expected"), [
    ("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx512_vnni", False), ("", False),
])
def test_bfloat16_hardware_is_read_from_the_cpuinfo_flags(monkeypatch, extra, expected):
    _cpuinfo(monkeypatch, CPUINFO.format(extra=extra))
    assert settings.cpu_has_fast_bfloat16() is expected


def test_no_cpuinfo_or_another_system_means_no_fast_bfloat16(monkeypatch):
    _cpuinfo(monkeypatch, "")
    assert settings.cpu_has_fast_bfloat16() is False
    _cpuinfo(monkeypatch, CPUINFO.format(extra="avx512_bf16"))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert settings.cpu_has_fast_bfloat16() is False


def test_a_flag_must_match_whole(monkeypatch):
    _cpuinfo(monkeypatch, CPUINFO.format(extra="xavx512_bf16x"))
    assert settings.cpu_has_fast_bfloat16() is False


# ----------------------------------------------------------------------------- what "auto" picks
@pytest.mark.parametrize("present", [True, False])
def test_auto_is_bfloat16_from_the_course_batch_only_with_the_flag(monkeypatch, present):
    _fast_bfloat16(monkeypatch, present)
    assert settings.BF16_MIN_BATCH == 128
    assert settings.autocast_dtype("cpu", 64) is None
    assert settings.autocast_dtype("cpu", 127) is None
    assert settings.autocast_dtype("cpu", 128) == (torch.bfloat16 if present else None)
    assert settings.autocast_dtype("cpu", 512) == (torch.bfloat16 if present else None)
    assert training.resolve_precision(cu.TrainConfig(), "cpu") == (torch.bfloat16 if present else None)
    small = cu.TrainConfig(batch_size=64)
    assert training.resolve_precision(small, "cpu") is None
    assert training.resolve_precision(dataclasses.replace(cu.TrainConfig(), precision="float32"), "cpu") is None
    assert training.resolve_precision(dataclasses.replace(small, precision="bfloat16"), "cpu") == torch.bfloat16


@pytest.mark.parametrize("present", [True, False])
def test_every_course_recipe_trains_in_bfloat16_on_a_cpu_with_the_flag_else_float32(monkeypatch, present):
    _fast_bfloat16(monkeypatch, present)
    for name in cu.course_names():
        recipe = cu.course_recipe(name, fast=False)
        assert recipe.train.precision == "auto"
        assert training.resolve_precision(recipe.train, "cpu") == (torch.bfloat16 if present else None), name


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_cuda_and_mps(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert settings.autocast_dtype(torch.device("cuda"), 128) == expected
    assert settings.autocast_dtype("mps", 1024) is None


def test_precision_names():
    assert training.precision_name(None) == "float32"
    assert training.precision_name(torch.bfloat16) == "bfloat16"
    assert training.precision_name(torch.float16) == "float16"


# ----------------------------------------------------------------------------- TrainConfig and recipes
@pytest.mark.parametrize("bad", ["fp16", "float16", "", None, "BFLOAT16"])
def test_an_unknown_precision_is_a_clear_error(bad):
    with pytest.raises(cu.CourseError, match="invalid training config: precision must be 'auto', 'float32' or "
                                              "'bfloat16'") as info:
        cu.TrainConfig(precision=bad)
    assert isinstance(info.value, ValueError)
    assert repr(bad) in str(info.value)


def test_the_default_precision_is_left_out_of_the_recipe_spec():
    """Checkpoints made before the field existed have no "precision": they must still match."""
    recipe = cu.course_recipe("vae", fast=False)
    assert "precision" not in recipe.spec()["train"]
    forced = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, precision="bfloat16"))
    assert forced.spec()["train"]["precision"] == "bfloat16"


def test_train_or_load_records_the_precision_and_a_forced_one_retrains(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    recipe = cu.Recipe("VAE", cu.VAEConfig(latent_dim=2, hidden_dims=(16,)),
                       cu.TrainConfig(epochs=1, batch_size=64, train_size=256))
    trained = cu.train_or_load("tiny", recipe, device="cpu", directory=tmp_path, verbose=False)
    assert trained.metrics["precision"] == "float32"
    assert trained.metrics["optimizer"] == "Adam (fused)"  # the checkpoint says how it was trained
    assert cu.load_checkpoint(trained.path).metrics["optimizer"] == "Adam (fused)"
    assert "precision" not in cu.load_checkpoint(trained.path).train_config
    forced = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, precision="bfloat16"))
    again = cu.train_or_load("tiny", forced, device="cpu", directory=tmp_path)
    assert again.loaded is False and again.metrics["precision"] == "bfloat16"
    assert "train.precision: saved None, wanted 'bfloat16'" in capsys.readouterr().out


# ----------------------------------------------------------------------------- fit
def test_fit_in_bfloat16_runs_and_lands_near_float32(train_small, test_small):
    config = cu.TrainConfig(epochs=1, batch_size=64, seed=3, precision="float32")
    full = cu.fit(small_vae(), train_small, test_small, config, progress=False)
    model = small_vae()
    half = cu.fit(model, train_small, test_small, dataclasses.replace(config, precision="bfloat16"), progress=False)
    # autocast really ran (the test loss alone can round to the same float: 528.5806884765625 both)
    assert half.train_loss != full.train_loss and half.test_recon != full.test_recon
    assert half.test_loss[0] == pytest.approx(full.test_loss[0], rel=0.05)
    assert half.train_loss[0] == pytest.approx(full.train_loss[0], rel=0.05)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay float32


def test_fit_scores_the_test_set_after_each_epoch_in_its_training_precision(train_small, test_small):
    config = cu.TrainConfig(epochs=1, batch_size=64, seed=3, precision="bfloat16")
    model = small_vae()
    history = cu.fit(model, train_small, test_small, config, progress=False)
    in_bfloat16 = training.average_loss(model, test_small, dtype=torch.bfloat16)
    in_float32 = training.average_loss(model, test_small)
    assert history.test_loss[-1] == in_bfloat16[0]  # the same pinned noise, the same precision
    assert in_bfloat16 != in_float32  # autocast really ran
    assert in_bfloat16 == pytest.approx(in_float32, rel=0.01)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_auto_fit_on_this_cpu_is_exactly_float32(train_small, test_small):
    config = cu.TrainConfig(epochs=1, batch_size=64, seed=3)
    auto = cu.fit(small_vae(), train_small, test_small, config, progress=False)
    plain = cu.fit(small_vae(), train_small, test_small, dataclasses.replace(config, precision="float32"),
                   progress=False)
    assert auto.test_loss == plain.test_loss and auto.train_loss == plain.train_loss


def test_the_divergence_check_names_the_same_batch_whatever_its_window(train_small, monkeypatch):
    """Losses are checked every CHECK_EVERY batches: the error names the batch, not the window's end."""
    config = cu.TrainConfig(epochs=3, batch_size=64, seed=3, lr=1e6)
    messages = []
    for every in (50, 3, 1):
        monkeypatch.setattr(training, "CHECK_EVERY", every)
        with pytest.raises(cu.TrainingDiverged, match=r"at epoch \d+, batch \d+ of VAE") as info:
            cu.fit(small_vae(), train_small, None, config, progress=False)
        messages.append(str(info.value))
    assert messages[0] == messages[1] == messages[2]
