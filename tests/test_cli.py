"""cli: ``python -m course_utils``: help, one-line errors with exit code 2, train and evaluate."""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, VENV_PYTHON, small_vae, subprocess_env

import course_utils as cu
from course_utils import cli

TRAIN_FLAGS = ("--epochs", "--latent-dim", "--seed", "--out", "--fast", "--jobs", "--help")


def _run_module(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_PYTHON), "-m", "course_utils", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=subprocess_env(**env),
    )


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; return (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- help
def test_module_help_exits_0_and_lists_the_commands():
    result = _run_module("--help")
    assert result.returncode == 0, result.stderr
    for word in ("train", "evaluate", "--help", "python -m course_utils"):
        assert word in result.stdout


def test_train_help_mentions_every_flag_and_choice(capsys):
    code, out, _ = _main(capsys, "train", "--help")
    assert code == 0
    for flag in TRAIN_FLAGS:
        assert flag in out, flag
    for choice in cli.GROUPS:
        assert f"{choice}:" in out, choice


def test_evaluate_help_mentions_every_flag(capsys):
    code, out, _ = _main(capsys, "evaluate", "--help")
    assert code == 0
    assert "--importance-samples" in out and "path" in out


def test_parser_flags_are_all_documented(capsys):
    """Every option the parser defines appears in the help (catches a flag added without help)."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        _, out, _ = _main(capsys, name, "--help")
        for action in sub._actions:
            for option in action.option_strings:
                assert option in out, (name, option)
            if action.help and action.option_strings:
                assert action.help.split()[0] in out


# ----------------------------------------------------------------------------- bad usage
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["train", "vae", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["--bogus"], ["error"]),
        (["fly"], ["invalid choice: 'fly'", "train", "evaluate"]),
        ([], ["required"]),
        (["train", "vea"], ["invalid choice: 'vea'", "cvae-concat"]),
        (["train", "vae", "--epochs", "two"], ["--epochs", "not an integer: 'two'"]),
        (["train", "vae", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["train", "vae", "--seed", "-1"], ["--seed", "0 or more"]),
        (["evaluate", "x.pt", "--importance-samples", "many"], ["--importance-samples", "not an integer"]),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(capsys, args, words):
    code, out, err = _main(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m course_utils") and "error:" in lines[0]
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in err


def test_bad_usage_through_python_m_exits_2():
    result = _run_module("train", "vae", "--epochs", "two")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m course_utils train: error: argument --epochs: not an integer: 'two' (see --help)"
    ]


def test_latent_dim_with_all_is_refused(capsys):
    code, _, err = _main(capsys, "train", "all", "--latent-dim", "4")
    assert code == 2
    assert "--latent-dim cannot be used with 'all'" in err


def test_out_pointing_at_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, _, err = _main(capsys, "train", "vae", "--out", str(target))
    assert code == 2
    assert "is a file, not a folder" in err


def test_evaluate_a_missing_path_exits_2(capsys, tmp_path):
    code, out, err = _main(capsys, "evaluate", str(tmp_path / "missing.pt"))
    assert code == 2 and out == ""
    missing = tmp_path / "missing.pt"
    assert err.strip().splitlines() == [f"python -m course_utils: error: no checkpoint file at {missing}"]


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b""])
def test_evaluate_a_non_checkpoint_exits_2(capsys, tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    code, out, err = _main(capsys, "evaluate", str(path))
    assert code == 2 and out == ""
    assert "not a readable course checkpoint" in err and "Traceback" not in err


def test_evaluate_a_plain_torch_file_exits_2(capsys, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(small_vae().state_dict(), path)
    code, _, err = _main(capsys, "evaluate", str(path))
    assert code == 2
    assert "not a course_utils checkpoint" in err


def test_evaluate_prints_metrics_in_process(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    path = cu.save_checkpoint(tmp_path / "v.pt", small_vae())
    code, out, _ = _main(capsys, "evaluate", str(path), "--importance-samples", "2")
    assert code == 0
    assert out.splitlines()[0].startswith(f"{path}: VAE {{'latent_dim': 4")
    for key in ("neg_elbo_nats", "recon_nats", "kl_nats", "mse_per_pixel", "psnr_db", "nll_nats"):
        assert key in out


# ----------------------------------------------------------------------------- end to end
def test_train_then_evaluate_end_to_end(tmp_path):
    out_dir = tmp_path / "ckpts"
    trained = _run_module("train", "vae", "--epochs", "1", "--fast", "--out", str(out_dir), COURSE_FAST="1", CI="1")
    assert trained.returncode == 0, trained.stderr
    path = out_dir / "vae.pt"
    assert path.is_file()
    assert "Training vae" in trained.stdout and "saved it to" in trained.stdout
    ckpt = cu.load_checkpoint(path, expected_class="VAE")
    assert ckpt.train_config["epochs"] == 1  # the override was applied
    assert ckpt.train_config["train_size"] is not None  # --fast: a subset
    assert ckpt.model.config == cu.course_recipe("vae", fast=True).config
    assert "neg_elbo_nats" in ckpt.metrics

    evaluated = _run_module("evaluate", str(path), COURSE_FAST="1")
    assert evaluated.returncode == 0, evaluated.stderr
    lines = evaluated.stdout.splitlines()
    assert lines[0].startswith(f"{path}: VAE")
    values = dict(line.split() for line in lines[1:])
    assert set(values) >= {"neg_elbo_nats", "recon_nats", "kl_nats", "mse_per_pixel", "psnr_db"}
    assert float(values["neg_elbo_nats"]) > 0


def test_a_bad_out_is_refused_before_anything_trains(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(cli, "train_or_load", must_not_train)
    code, out, err = _main(capsys, "train", "vae", "--fast", "--out", str(blocker / "sub"))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"python -m course_utils: error: cannot save checkpoints in {blocker / 'sub'}: it would lie inside "
        f"{blocker}, which is a file, not a folder. Choose another folder (--out FOLDER)"
    ]


def test_fast_flag_sets_fast_mode_for_the_command_only(capsys, tmp_path, monkeypatch):
    """--fast wins over any COURSE_FAST, even one the course cannot read, and only while the command runs."""
    seen = []

    def fake_train_or_load(name, recipe, directory):
        seen.append((os.environ.get("COURSE_FAST"), recipe.train.train_size, directory))
        return SimpleNamespace(loaded=True, path=directory / f"{name}.pt")

    monkeypatch.setattr(cli, "train_or_load", fake_train_or_load)
    monkeypatch.setenv("COURSE_FAST", "maybe")
    code, _, err = _main(capsys, "train", "vae", "--fast")
    assert code == 0, err
    assert seen == [("1", cu.settings.FAST_TRAIN_SIZE, cu.settings.work_dir() / "checkpoints" / "fast")]
    assert os.environ["COURSE_FAST"] == "maybe"  # restored afterwards


# ----------------------------------------------------------------------------- several models at once
@pytest.mark.parametrize(
    ("models", "device", "cores", "asked", "plan"),
    [
        (37, "cpu", 2, None, (2, 1)),  # the course machine: two models, one thread each
        (37, "cpu", 8, None, (2, 4)),  # a laptop: the cores shared equally
        (37, "cpu", 1, None, (1, 1)),  # one core: one model at a time
        (37, "cuda", 16, None, (1, 16)),  # a GPU: one model at a time
        (37, "mps", 8, None, (1, 8)),
        (1, "cpu", 2, None, (1, 2)),  # one model gets every core
        (3, "cpu", 2, 8, (3, 1)),  # --jobs wins, but never more jobs than models
        (37, "cpu", 2, 1, (1, 2)),
    ],
)
def test_plan_jobs(models, device, cores, asked, plan):
    assert cli.plan_jobs(models, device, cores, asked) == plan


def test_jobs_must_be_positive(capsys):
    code, _, err = _main(capsys, "train", "all", "--jobs", "0")
    assert code == 2 and "--jobs" in err and "positive integer" in err


def test_training_processes_keep_freed_blocks_for_reuse(tmp_path, monkeypatch, capsys):
    """`train` and each of its workers raise glibc's thresholds, so a step's tensors are not faulted in afresh."""
    asked = []
    monkeypatch.setattr(cli, "release_freed_memory", asked.append)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # _start_worker would ignore Ctrl-C here
    monkeypatch.setattr(cli.tqdm, "set_lock", lambda lock: None)  # and swap tqdm's lock for this process
    cli._start_worker()
    assert asked == [cli.TRAINING_FREED_BLOCK_MIB]
    monkeypatch.setenv("COURSE_FAST", "1")
    code, _, err = _main(capsys, "train", "ae-2", "--epochs", "1", "--jobs", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert asked == [cli.TRAINING_FREED_BLOCK_MIB] * 2 and cli.TRAINING_FREED_BLOCK_MIB >= 64


def test_train_all_in_parallel_trains_the_classifier_before_any_cvae(tmp_path):
    """Two at a time (fast mode, 1 epoch): every model saved, and no CVAE starts before the classifier is saved."""
    out = tmp_path / "out"
    result = _run_module("train", "all", "--fast", "--epochs", "1", "--jobs", "2", "--out", str(out),
                         timeout=900, COURSE_FAST="1", CI="1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"training {len(cu.course_names())} models, 2 at a time")
    assert sorted(p.stem for p in out.glob("*.pt")) == sorted(cu.course_names())
    saved = next(i for i, line in enumerate(lines) if line.startswith("Trained classifier"))
    first_cvae = next(i for i, line in enumerate(lines) if line.startswith("Training cvae-"))
    assert saved < first_cvae
    for name in ("classifier", "ae-8", "cvae-prior"):
        assert cu.load_checkpoint(out / f"{name}.pt").metrics  # complete checkpoints
