"""Bad input, case by case: one clear error that says what to do, never silent garbage, a raw
traceback or lost work (issue 15). Each row is a mistake a student or an instructor makes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import (
    REPO,
    VENV_PYTHON,
    copy_course_root,
    small_ae,
    small_classifier,
    small_cvae,
    small_vae,
    subprocess_env,
)

import course_utils as cu
from course_utils import data as course_data
from course_utils import settings
from course_utils.checkpoints import CheckpointMissing, read_payload
from course_utils.checks import PIXEL_TOLERANCE, NonFiniteInput, check_images


@pytest.fixture
def d(train_small, test_small) -> SimpleNamespace:
    """The inputs the table's cases are built from."""
    x = test_small.x[:8]
    nan = x.clone()
    nan[0, 0, 3, 3] = float("nan")
    inf = x.clone()
    inf[1, 0, 5, 5] = float("inf")
    return SimpleNamespace(x=x, y=test_small.y[:8], nan=nan, inf=inf, train=train_small, test=test_small,
                           all_nan=torch.full((4, 1, 28, 28), float("nan")))


def _scaled(split: cu.MNISTSplit, factor: float) -> cu.MNISTSplit:
    return cu.MNISTSplit(split.x * factor, split.y)


# ----------------------------------------------------------------------------- bad tensors
# (case, call, error type, words the message must contain). Before issue 15 the NaN and 0..255
# rows returned garbage with no error, and the others raised PyTorch's own words.
BAD_TENSORS = [
    ("AE, a NaN pixel", lambda d: small_ae()(d.nan), NonFiniteInput, "NaN"),
    ("VAE, a NaN pixel", lambda d: small_vae()(d.nan), NonFiniteInput, "NaN"),
    ("CVAE, a NaN pixel", lambda d: small_cvae()(d.nan, d.y), NonFiniteInput, "NaN"),
    ("VAE, an infinite pixel", lambda d: small_vae()(d.inf), NonFiniteInput, "infinite"),
    ("classifier.predict, NaN images", lambda d: small_classifier().predict(d.all_nan), NonFiniteInput, "NaN"),
    ("classifier.probabilities, NaN", lambda d: small_classifier().probabilities(d.nan), NonFiniteInput, "NaN"),
    ("VAE, pixels 0..255", lambda d: small_vae()(d.x * 255), ValueError, "divide them by 255"),
    ("AE loss, pixels 0..255", lambda d: small_ae().loss(d.x * 255), ValueError, "divide them by 255"),
    ("VAE, pixels in [-1, 1]", lambda d: small_vae()(d.x * 2 - 1), ValueError, r"clamp\(0, 1\)"),
    ("evaluate, pixels 0..255", lambda d: cu.evaluate(small_vae(), data=_scaled(d.test, 255)), ValueError, "255"),
    ("fit, pixels 0..255", lambda d: cu.fit(small_vae(), _scaled(d.train, 255), None, cu.TrainConfig(epochs=1),
                                            progress=False), ValueError, "divide them by 255"),
    ("fit, NaN pixels", lambda d: cu.fit(small_ae(), cu.MNISTSplit(d.nan, d.y), None, cu.TrainConfig(epochs=1),
                                         progress=False), cu.TrainingDiverged, "batch 1 of AutoEncoder"),
    ("decode, NaN codes", lambda d: small_vae().decode(torch.full((2, 4), float("nan"))), NonFiniteInput, "z"),
    ("decode, a list as z", lambda d: small_vae().decode([[0.0] * 4]), TypeError, r"shape \(B, 4\)"),
    ("decode, integer z", lambda d: small_ae().decode(torch.zeros(2, 4, dtype=torch.long)), TypeError, "z.float"),
    ("cvae.sample(3)", lambda d: small_cvae().sample(3), TypeError, r"e\.g\. \[3\] or torch\.full\(\(n,\), 3\)"),
    ("cvae.sample(tensor(3))", lambda d: small_cvae().sample(torch.tensor(3)), TypeError, r"e\.g\. \[3\]"),
    ("cvae.sample('3')", lambda d: small_cvae().sample("3"), TypeError, "list or tensor of labels"),
    ("cvae.sample([3.5])", lambda d: small_cvae().sample([3.5]), TypeError, "integers"),
    ("cvae.sample([12])", lambda d: small_cvae().sample([12]), ValueError, r"0\.\.9"),
    ("vae.sample(3.5)", lambda d: small_vae().sample(3.5), TypeError, "whole number"),
    ("vae.sample([3, 3])", lambda d: small_vae().sample([3, 3]), TypeError, "labels are for a CVAE"),
    ("sample, temperature 'hot'", lambda d: small_vae().sample(2, temperature="hot"), TypeError, "temperature"),
    ("sample, temperature inf", lambda d: small_vae().sample(2, temperature=float("inf")), ValueError, "finite"),
    ("label_accuracy, 0 per class", lambda d: cu.label_accuracy(small_cvae(), small_classifier(), n_per_class=0),
     ValueError, "n_per_class"),
    ("evaluate, data=a tensor", lambda d: cu.evaluate(small_vae(), data=d.test.x), TypeError, "MNISTSplit"),
    ("psnr_db of a negative MSE", lambda d: cu.psnr_db(-1.0), ValueError, ">= 0"),
    ("fit, a model class", lambda d: cu.fit(cu.VAE, d.train), TypeError, r"create one first, e\.g\. cu\.VAE\(\)"),
    ("fit, config given as test", lambda d: cu.fit(small_vae(), d.train, cu.TrainConfig()), TypeError, "config="),
    ("fit, config a dict", lambda d: cu.fit(small_vae(), d.train, None, {"epochs": 1}), TypeError, "TrainConfig"),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in BAD_TENSORS], ids=[c[0] for c in BAD_TENSORS])
def test_bad_tensor_gives_one_clear_error(d, call, error, words):
    with pytest.raises(error, match=words) as info:
        call(d)
    assert isinstance(info.value, cu.CourseError)  # one of the course's own errors, not PyTorch's
    assert "\n" not in str(info.value)


# Rows that used to fail or return garbage and now do the right thing.
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_any_float_dtype_of_images_is_cast_to_the_models(d, dtype):
    model = small_vae()
    eps = torch.zeros(len(d.x), 4)
    expected = model(d.x.to(dtype).float(), eps=eps).x_hat
    assert torch.equal(model(d.x.to(dtype), eps=eps).x_hat, expected)  # float64 used to be a dtype error
    assert torch.isfinite(model.loss(d.x.to(dtype)).loss)
    assert small_classifier().predict(d.x.to(dtype)).shape == (len(d.x),)


def test_float64_codes_decode_like_float32():
    z = torch.randn(3, 4, dtype=torch.float64)
    model = small_vae()
    assert torch.equal(model.decode(z), model.decode(z.float()))


def test_valid_float32_images_pass_through_unchanged(d):
    flat = check_images(d.x)
    assert flat.data_ptr() == d.x.data_ptr() and torch.equal(flat, d.x.flatten(1))  # no copy, same numbers
    # a blend that rounds a hair outside [0, 1] is still an image
    assert check_images(d.x.clamp(0, 1) * (1 + PIXEL_TOLERANCE / 2)).shape == (8, 784)


def test_cvae_sample_of_no_labels_gives_no_images():
    assert small_cvae().sample([]).shape == (0, 1, 28, 28)  # as vae.sample(0); it used to blame "float32"


def test_classifier_on_no_images_gives_no_answers():
    classifier = small_classifier()
    assert classifier.predict(torch.zeros(0, 1, 28, 28)).shape == (0,)
    assert classifier.probabilities(torch.zeros(0, 1, 28, 28)).shape == (0, 10)


# ----------------------------------------------------------------------------- training config
BAD_CONFIGS = [
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"epochs": 2.5}, "epochs must be a whole number >= 1"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"lr": "1e-3"}, "lr must be a finite number > 0"),
    ({"beta": -1.0}, "beta must be a finite number >= 0"),
    ({"beta": float("nan")}, "beta must be a finite number >= 0"),
    ({"seed": -1}, "seed must be a whole number >= 0"),
    ({"train_size": 0}, "train_size must be None"),
    ({"cosine_lr": "yes"}, "cosine_lr must be True or False"),
]


@pytest.mark.parametrize(("changes", "words"), BAD_CONFIGS, ids=[str(c) for c, _ in BAD_CONFIGS])
def test_train_config_names_the_bad_field(changes, words):
    with pytest.raises(ValueError, match="invalid training config") as info:
        cu.TrainConfig(**changes)
    message = str(info.value)
    assert words in message and f"got {next(iter(changes.values()))!r}" in message
    assert isinstance(info.value, cu.CourseError)


def test_a_loss_that_grows_a_thousandfold_stops_training(train_small):
    """lr = 1e6 sent the classifier's loss to 3e29 with no error; now it stops, naming where and the fix."""
    torch.manual_seed(0)
    classifier = cu.DigitClassifier(cu.ClassifierConfig(channels=(4, 8), hidden_dim=16))
    with pytest.raises(cu.TrainingDiverged, match=r"grew to .* at epoch 1, batch \d+ of DigitClassifier") as info:
        cu.fit(classifier, train_small, None, cu.TrainConfig(epochs=2, batch_size=64, lr=1e6), progress=False)
    assert "more than 1000 times its starting value" in str(info.value)
    assert "Lower the learning rate (now 1000000.0)" in str(info.value)


# ----------------------------------------------------------------------------- checkpoints
# Text files whose first byte torch.load reads as a pickle opcode: each used to escape as a
# different raw error (IndexError: pop from empty list, KeyError, struct.error, ...).
@pytest.mark.parametrize("text", ["all my notes\n", "hello\n", "Good luck\n", "0,1,2\n", "(x)\n", "N\n"])
def test_a_text_file_renamed_pt_is_a_checkpoint_error(tmp_path, text):
    path = tmp_path / "notes.pt"
    path.write_text(text)
    with pytest.raises(cu.CheckpointError, match="not a readable course checkpoint") as info:
        cu.load_model(path)
    assert str(path) in str(info.value) and "weights_only" not in str(info.value)


def test_train_or_load_retrains_over_a_text_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    (tmp_path / "tiny.pt").write_text("all my notes\n")  # IndexError inside torch.load before issue 15
    recipe = cu.Recipe("VAE", cu.VAEConfig(latent_dim=2, hidden_dims=(16,)),
                       cu.TrainConfig(epochs=1, batch_size=64, train_size=128))
    trained = cu.train_or_load("tiny", recipe, device="cpu", directory=tmp_path, verbose=False)
    assert trained.loaded is False
    assert cu.load_model(tmp_path / "tiny.pt", "VAE").config == recipe.config


def _edited(tmp_path: Path, **changes) -> Path:
    """A CVAE checkpoint with some payload keys replaced (a value) or removed (None)."""
    path = cu.save_checkpoint(tmp_path / "edited.pt", small_cvae(), {"epochs": 1}, {"train_loss": [1.0]}, {"m": 1.0})
    payload = read_payload(path)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value(payload)
    torch.save(payload, path)
    return path


BAD_CHECKPOINTS = [
    ("unknown conditioning", {"config": lambda p: {**p["config"], "conditioning": "film"}},
     "does not fit CVAE: conditioning must be one of"),
    ("config not a dict", {"config": lambda p: [8, 16]}, "config must be a dict"),
    ("negative latent size", {"config": lambda p: {**p["config"], "latent_dim": -3}}, "does not fit CVAE"),
    ("no weights", {"state_dict": None}, "damaged: it has no state_dict"),
    ("weights not tensors", {"state_dict": lambda p: {k: 0.0 for k in p["state_dict"]}}, "not a dict of tensors"),
    ("no model class", {"model_class": None}, "damaged: it has no model_class"),
]


@pytest.mark.parametrize(("changes", "words"), [c[1:] for c in BAD_CHECKPOINTS], ids=[c[0] for c in BAD_CHECKPOINTS])
def test_a_checkpoint_that_does_not_fit_is_a_checkpoint_error(tmp_path, changes, words):
    path = _edited(tmp_path, **changes)
    with pytest.raises(cu.CheckpointError, match=words) as info:
        cu.load_checkpoint(path)
    assert str(path) in str(info.value)


def test_an_older_checkpoint_without_history_loads_with_an_empty_one(tmp_path):
    ckpt = cu.load_checkpoint(_edited(tmp_path, history=None, metrics=None, train=None))  # KeyError: 'history'
    assert ckpt.history == {} and ckpt.metrics == {} and ckpt.train_config == {}
    assert cu.History.from_dict(ckpt.history) == cu.History()


class _Trap:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_with_code_says_it_was_refused(tmp_path):
    path = cu.save_checkpoint(tmp_path / "trap.pt", small_vae())
    payload = read_payload(path)
    payload["metrics"] = {"trap": _Trap(str(tmp_path / "pwned"))}
    torch.save(payload, path)
    with pytest.raises(cu.CheckpointError) as info:
        cu.load_checkpoint(path)
    message = str(info.value)
    assert "refused because it could run code" in message and "posix.mkdir" in message
    assert "weights_only" not in message  # the old text ended "Re-running torch.load with weights_only set to False"
    assert not (tmp_path / "pwned").exists()


def test_loading_the_wrong_model_is_one_clear_line(tmp_path):
    path = cu.save_checkpoint(tmp_path / "vae.pt", small_vae())
    with pytest.raises(cu.CheckpointError, match="holds a VAE, not a CVAE: load it as a VAE"):
        cu.load_model(path, expected_class="CVAE")
    with pytest.raises(ValueError, match="expected_class='GAN' is not a course model"):
        cu.load_model(path, expected_class="GAN")


def test_a_folder_or_a_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(cu.CheckpointError, match="is a folder, not a checkpoint"):
        cu.load_model(tmp_path)
    with pytest.raises(CheckpointMissing, match="No checkpoint at") as info:
        cu.load_model(tmp_path / "none.pt")
    assert isinstance(info.value, FileNotFoundError)


def test_saving_under_a_file_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(cu.CheckpointError, match="it is a file, not a folder"):  # FileExistsError before
        cu.save_checkpoint(blocker / "vae.pt", small_vae())


def test_an_interrupted_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = cu.save_checkpoint(tmp_path / "vae.pt", small_vae())
    before = path.read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cu.save_checkpoint(path, small_vae(seed=1))
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt"]  # and no .partial is left behind


# ----------------------------------------------------------------------------- error classes
@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (cu.MNISTDataError, RuntimeError), (cu.CheckpointError, RuntimeError), (CheckpointMissing, FileNotFoundError),
        (cu.TrainingDiverged, RuntimeError), (settings.SettingError, ValueError),
        (settings.DeviceUnavailable, RuntimeError), (settings.CourseRootNotFound, FileNotFoundError),
        (settings.CourseValueError, ValueError), (settings.CourseTypeError, TypeError), (NonFiniteInput, ValueError),
    ],
)
def test_every_course_error_shares_one_base_and_keeps_its_builtin_one(error, builtin):
    assert issubclass(error, cu.CourseError) and issubclass(error, builtin)


# ----------------------------------------------------------------------------- data wording
def _stale_course(tmp_path: Path, monkeypatch) -> Path:
    """A course whose t10k-labels .gz is missing and whose decompressed copy of it is stale."""
    root = copy_course_root(tmp_path / "course")
    (root / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    raw = root / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"stale")
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.setattr(course_data, "_CACHE", {})
    return root


def test_nothing_downloaded_is_not_called_a_download(tmp_path, monkeypatch):
    import torchvision.datasets

    _stale_course(tmp_path, monkeypatch)
    monkeypatch.setattr(torchvision.datasets, "MNIST", lambda *a, **k: None)  # a download step that fetched nothing
    with pytest.raises(cu.MNISTDataError) as info:
        cu.load_mnist("test")
    assert "torchvision downloaded" not in str(info.value)
    assert "is missing or has the wrong SHA-256" in str(info.value)


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...\n<urlopen error>")

    _stale_course(tmp_path, monkeypatch)
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(cu.MNISTDataError, match="could not download MNIST") as info:
        cu.load_mnist("test")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the command line
def _run(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_PYTHON), "-m", "course_utils", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=subprocess_env(**env))


def _one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2 and exactly one line on stderr, the course's own: no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m course_utils: error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture
def corrupt_course(tmp_path: Path) -> Path:
    root = copy_course_root(tmp_path / "course")
    gz = root / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    return root


# (case, command line, environment, words). Before issue 15 each printed a 15- to 52-line traceback, exit code 1.
TRAIN = ["train", "vae", "--fast", "--epochs", "1"]
CLI_ERRORS = [
    ("COURSE_DEVICE=tpu", TRAIN, {"COURSE_DEVICE": "tpu"}, ["COURSE_DEVICE='tpu' is not a device"]),
    ("COURSE_FAST=maybe", ["train", "vae", "--epochs", "1"], {"COURSE_FAST": "maybe"}, ["COURSE_FAST='maybe'"]),
    ("COURSE_ROOT missing", TRAIN, {"COURSE_ROOT": "{tmp}/nowhere"}, ["has no data/ folder"]),
    ("evaluate, COURSE_DEVICE=tpu", ["evaluate", "{ckpt}"], {"COURSE_DEVICE": "tpu"}, ["COURSE_DEVICE='tpu'"]),
]


@pytest.mark.parametrize(("args", "env", "words"), [c[1:] for c in CLI_ERRORS], ids=[c[0] for c in CLI_ERRORS])
def test_command_line_bad_environment_is_one_line(tmp_path, args, env, words):
    ckpt = cu.save_checkpoint(tmp_path / "vae.pt", small_vae())
    fill = {"tmp": str(tmp_path), "ckpt": str(ckpt)}
    args = [a.format(**fill) for a in args] + (["--out", str(tmp_path / "out")] if args[0] == "train" else [])
    _one_error_line(_run(*args, **{k: v.format(**fill) for k, v in env.items()}), *words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_command_line_cuda_without_cuda_is_one_line(tmp_path):
    result = _run(*TRAIN, "--out", str(tmp_path), COURSE_DEVICE="cuda")
    _one_error_line(result, "COURSE_DEVICE=cuda, but PyTorch sees no CUDA GPU here")


def test_command_line_corrupt_mnist_is_one_line(tmp_path, corrupt_course):
    result = _run(*TRAIN, "--out", str(tmp_path / "out"), COURSE_ROOT=str(corrupt_course))
    _one_error_line(result, "t10k-labels-idx1-ubyte.gz is not a readable gzip file", "git checkout")


def test_command_line_error_inside_a_parallel_job_is_one_line(tmp_path, corrupt_course):
    """Two models at once: the error a worker process raises reaches the user as the same one line."""
    out = tmp_path / "out"
    result = _run("train", "ae", "--fast", "--jobs", "2", "--out", str(out), COURSE_ROOT=str(corrupt_course))
    _one_error_line(result, "t10k-labels-idx1-ubyte.gz is not a readable gzip file", "git checkout")
    assert not list(out.glob("*.pt"))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, "not a readable course checkpoint"),  # a text file renamed .pt (IndexError before)
        ({"config": lambda p: {**p["config"], "conditioning": "film"}}, "does not fit CVAE"),
    ],
    ids=["text file renamed .pt", "unknown conditioning"],
)
def test_command_line_bad_checkpoint_is_one_line(tmp_path, changes, words):
    if changes:
        path = _edited(tmp_path, **changes)
    else:
        path = tmp_path / "notes.pt"
        path.write_text("all my notes\n")
    _one_error_line(_run("evaluate", str(path)), words, str(path))


def test_command_line_evaluates_an_older_checkpoint_without_history(tmp_path):
    path = _edited(tmp_path, history=None)
    result = _run("evaluate", str(path), COURSE_FAST="1")
    assert result.returncode == 0, result.stderr  # KeyError: 'history' before
    assert "neg_elbo_nats" in result.stdout


def test_command_line_fast_flag_overrides_a_bad_course_fast(tmp_path):
    out = tmp_path / "out"
    result = _run(*TRAIN, "--out", str(out), COURSE_FAST="maybe")
    assert result.returncode == 0, result.stderr
    assert cu.load_checkpoint(out / "vae.pt").train_config["train_size"] == settings.FAST_TRAIN_SIZE


def _not_writable(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores permissions: use a folder no one can create files in
        if not Path("/proc").is_dir():
            pytest.skip("no folder here that this user cannot write to")
        return Path("/proc") / "course-checkpoints"
    return folder / "out"


@pytest.mark.parametrize("where", ["a file", "inside a file", "not writable"])
def test_command_line_checks_out_before_training(tmp_path, where):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    out = {"a file": blocker, "inside a file": blocker / "sub", "not writable": None}[where] or _not_writable(tmp_path)
    result = _run(*TRAIN, "--out", str(out))
    _one_error_line(result, f"cannot save checkpoints in {out}", "--out FOLDER")
    assert "Training" not in result.stdout  # refused before any training, not at the save


def test_command_line_ctrl_c_says_what_was_kept(tmp_path):
    """SIGINT while the second of six autoencoders trains: one line naming what was kept, exit code 130."""
    out = tmp_path / "out"
    # ae-2 is saved when ae-4 starts
    returncode, err = _interrupt_train(["ae", "--fast", "--out", str(out), "--jobs", "1"], timeout=300)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = err.strip().splitlines()
    assert returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("python -m course_utils: interrupted: ")
    assert f"kept: ae-2 ({out / 'ae-2.pt'}" in lines[0]
    assert "was not saved" in lines[0] and "not started: " in lines[0] and "ae-64" in lines[0]
    assert cu.load_checkpoint(out / "ae-2.pt").metrics  # what was kept is complete
    assert not list(out.glob("*.partial"))


def test_command_line_ctrl_c_with_parallel_jobs_stops_every_worker(tmp_path):
    """SIGINT while two autoencoders train side by side: both named in one line, exit 130, no worker left."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("counts the worker processes through /proc (Linux)")
    out = tmp_path / "out"
    before = _spawned_workers()
    # ae-2 and ae-4 train in two worker processes (full mode: a minute each)
    returncode, err = _interrupt_train(["ae", "--out", str(out), "--jobs", "2"], timeout=120, COURSE_FAST="0")
    assert "Traceback" not in err and "leaked" not in err, err
    lines = err.strip().splitlines()
    assert returncode == 130 and len(lines) == 1, err
    assert "ae-2 and ae-4 were not saved (the next run trains them again)" in lines[0]
    assert "no checkpoint was written by this run" in lines[0] and "not started: ae-8" in lines[0]
    assert not out.exists() or not list(out.iterdir())
    assert _spawned_workers() <= before, "a worker process outlived the command"


def _interrupt_train(args: list[str], timeout: float, **env: str) -> tuple[int, str]:
    """Run ``train ARGS``, send SIGINT once a second model has started training: (exit code, stderr)."""
    proc = subprocess.Popen([str(VENV_PYTHON), "-m", "course_utils", "train", *args],
                            cwd=REPO, env=subprocess_env(PYTHONUNBUFFERED="1", CI="1", **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = 0
    for line in proc.stdout:
        started += line.startswith("Training ")
        if started == 2:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _spawned_workers() -> set[str]:
    """Process ids of multiprocessing's spawned workers now running on this machine (Linux only)."""
    pids = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"spawn_main" in cmdline.read_bytes():
                pids.add(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            pass
    return pids

