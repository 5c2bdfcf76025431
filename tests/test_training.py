"""training: reproducible fit, divergence errors, History, evaluate, train_or_load, recipes."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from conftest import small_ae, small_classifier, small_cvae, small_vae

import course_utils as cu
from course_utils import settings

SMALL = cu.TrainConfig(epochs=2, batch_size=64, seed=3)
LOSS_FIELDS = ("epoch", "train_loss", "train_recon", "train_kl", "test_loss", "test_recon", "test_kl")


def _fit(model, train, test, config=SMALL) -> cu.History:
    return cu.fit(model, train, test, config, progress=False)


def _losses(history: cu.History) -> dict[str, list[float]]:
    """Everything in a History except the wall-clock seconds."""
    return {name: getattr(history, name) for name in LOSS_FIELDS}


# ----------------------------------------------------------------------------- fit
@pytest.mark.parametrize("make", [small_vae, small_ae, lambda: small_cvae("project")])
def test_same_seed_gives_identical_history_and_weights(train_small, test_small, make):
    first_model, second_model = make(), make()
    first = _fit(first_model, train_small, test_small)
    second = _fit(second_model, train_small, test_small)
    assert _losses(first) == _losses(second)
    for (name, a), (_, b) in zip(first_model.state_dict().items(), second_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_different_seed_gives_a_different_history(train_small, test_small):
    first = _fit(small_vae(), train_small, test_small)
    other = _fit(small_vae(), train_small, test_small, dataclasses.replace(SMALL, seed=4))
    assert first.train_loss != other.train_loss


def test_fit_records_every_epoch_and_learns(train_small, test_small):
    model = small_vae()
    history = _fit(model, train_small, test_small, dataclasses.replace(SMALL, epochs=3))
    assert history.epoch == [1, 2, 3]
    for name in (*LOSS_FIELDS, "seconds"):
        assert len(getattr(history, name)) == 3, name
    assert history.train_loss[-1] < history.train_loss[0]
    for loss, recon, kl in zip(history.train_loss, history.train_recon, history.train_kl, strict=True):
        assert loss == pytest.approx(recon + kl, rel=1e-5)
    assert not model.training  # left in eval mode


def test_fit_without_test_set_and_with_train_size(train_small):
    history = _fit(small_ae(), train_small, None, dataclasses.replace(SMALL, train_size=100, epochs=1))
    assert history.test_loss == [] and len(history.train_loss) == 1
    assert history.train_kl == [0.0]


def test_fit_trains_the_classifier(train_small, test_small):
    history = _fit(small_classifier(), train_small, test_small, dataclasses.replace(SMALL, epochs=1))
    assert history.train_kl == [0.0]
    assert history.train_loss[0] == pytest.approx(history.train_recon[0])
    assert 0 < history.test_loss[0] < 2.4  # better than chance (log 10 = 2.30) plus slack


def test_fit_trains_even_inside_no_grad(train_small):
    model = small_vae()
    before = model.to_mu.weight.clone()
    with torch.no_grad():
        _fit(model, train_small, None, dataclasses.replace(SMALL, epochs=1))
    assert not torch.equal(before, model.to_mu.weight)


def test_fit_uses_fused_adam_on_the_cpu_and_it_agrees_with_the_default_adam(train_small, test_small, monkeypatch):
    """fit's Adam is fused on the CPU; trained the default (foreach) way instead, the same model from the
    same weights ends with the same losses and weights up to float rounding."""
    seen: list[bool | None] = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.defaults["fused"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    fused_model = small_vae()
    default_model = small_vae()
    fused = _fit(fused_model, train_small, test_small)
    assert seen and set(seen) == {True}
    assert cu.training.optimizer_name("cpu") == "Adam (fused)"
    assert cu.training.optimizer_name("mps") == "Adam"
    monkeypatch.setattr(cu.training, "FUSED_ADAM_DEVICES", ())
    seen.clear()
    default = _fit(default_model, train_small, test_small)
    assert set(seen) == {None}  # torch's default implementation
    assert fused.train_loss == pytest.approx(default.train_loss, rel=1e-4)
    assert fused.test_loss == pytest.approx(default.test_loss, rel=1e-4)
    for (name, a), (_, b) in zip(fused_model.state_dict().items(), default_model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_fit_keeps_adams_state_free_of_subnormal_numbers(train_small, monkeypatch):
    """Adam's running mean of a gradient that has turned exactly zero (a rarely lit pixel's weights)
    shrinks by 0.9 a step and, some 800 steps on, would sit below float32's smallest normal number,
    where a CPU computes many times slower. Here that happens within 960 steps of a small
    autoencoder, on every torch thread, unless fit sets such moments to zero first."""
    subnormal_counts: list[int] = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        moments = [state["exp_avg"] for state in self.state.values()]  # Adam's first moments
        subnormal_counts.append(sum(cu.training.count_subnormal(m) for m in moments))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    history = _fit(small_ae(), train_small, None, cu.TrainConfig(epochs=30, batch_size=16))
    assert all(math.isfinite(v) for v in history.train_loss)
    assert len(subnormal_counts) == 960
    assert max(subnormal_counts) == 0, f"{sum(map(bool, subnormal_counts))} steps left subnormal numbers"


def test_count_subnormal_reads_the_bits():
    t = torch.tensor([1e-39, -1e-40, 0.0, 2e-38, 1e-30, -3.0])  # two subnormal; 2e-38 is normal
    assert cu.training.count_subnormal(t) == 2


def test_zero_vanishing_moments_zeroes_only_the_moments_below_the_floor():
    weight = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.Adam([weight])
    weight.grad = torch.ones(4)
    optimizer.step()
    state = optimizer.state[weight]
    state["exp_avg"].copy_(torch.tensor([1e-39, 1e-31, 2e-30, -1e-20]))
    state["exp_avg_sq"].copy_(torch.tensor([1e-32, 5e-30, 0.0, 1e-35]))
    cu.training.zero_vanishing_moments(optimizer)
    assert state["exp_avg"].tolist() == pytest.approx([0.0, 0.0, 2e-30, -1e-20], rel=1e-6)
    assert state["exp_avg_sq"].tolist() == pytest.approx([0.0, 5e-30, 0.0, 0.0], rel=1e-6)


def test_fit_follows_the_cosine_schedule(train_small, monkeypatch):
    """cosine_lr must change the learning rate of every step: from lr at the start to 0 at the end."""
    seen: list[float] = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    history = _fit(small_vae(), train_small, None, dataclasses.replace(SMALL, cosine_lr=True))
    assert all(math.isfinite(v) for v in history.train_loss)
    steps = len(seen)
    assert seen[0] == pytest.approx(SMALL.lr)
    assert seen[steps // 2] == pytest.approx(SMALL.lr / 2, rel=0.1)  # halfway down the cosine
    assert seen[-1] < 0.01 * SMALL.lr
    seen.clear()
    _fit(small_vae(), train_small, None, SMALL)
    assert set(seen) == {SMALL.lr}  # without the schedule the rate never moves


def test_nan_input_raises_training_diverged_naming_epoch_and_batch(train_small):
    x = train_small.x.clone()
    bad_index = 300
    x[bad_index, 0, 14, 14] = float("nan")
    data = cu.MNISTSplit(x, train_small.y)
    # fit draws its shuffling from a generator seeded with config.seed: find the bad batch
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SMALL.seed))
    position = int((order == bad_index).nonzero())
    batch = position // SMALL.batch_size + 1
    with pytest.raises(cu.TrainingDiverged) as info:
        _fit(small_vae(), data, None)
    message = str(info.value)
    assert f"epoch 1, batch {batch} of VAE" in message
    assert "nan" in message and "NaN" in message  # says what happened and what to check


def test_huge_learning_rate_raises_training_diverged(train_small):
    with pytest.raises(cu.TrainingDiverged, match=r"at epoch \d+, batch \d+ of VAE") as info:
        _fit(small_vae(), train_small, None, dataclasses.replace(SMALL, lr=1e6, epochs=3))
    assert "Lower the learning rate (now 1000000.0)" in str(info.value)


@pytest.mark.parametrize(
    "changes", [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"lr": float("nan")}, {"beta": -1.0}]
)
def test_train_config_rejects_bad_values(changes):
    with pytest.raises(ValueError, match="invalid training config"):
        cu.TrainConfig(**changes)


# ----------------------------------------------------------------------------- History
def test_history_round_trips_through_a_dict(train_small, test_small):
    history = _fit(small_vae(), train_small, test_small, dataclasses.replace(SMALL, epochs=1))
    as_dict = history.as_dict()
    assert set(as_dict) == {*LOSS_FIELDS, "seconds"}
    assert cu.History.from_dict(as_dict) == history
    assert cu.History.from_dict(json.loads(json.dumps(as_dict))) == history  # survives JSON
    assert cu.History.from_dict({**as_dict, "unknown": [1.0]}) == history  # ignores extra keys
    assert cu.History.from_dict({}) == cu.History()


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_vae_metrics(test_small):
    model = small_vae()
    metrics = cu.evaluate(model, data=test_small)
    assert set(metrics) == {"neg_elbo_nats", "recon_nats", "kl_nats", "mse_per_pixel", "psnr_db"}
    assert metrics["neg_elbo_nats"] == pytest.approx(metrics["recon_nats"] + metrics["kl_nats"], rel=1e-5)
    assert 0 < metrics["mse_per_pixel"] < 1
    assert metrics["psnr_db"] == pytest.approx(10 * math.log10(1 / metrics["mse_per_pixel"]))
    assert cu.evaluate(model, data=test_small) == metrics  # pinned noise: repeatable
    with_nll = cu.evaluate(model, data=test_small, importance_samples=3)
    assert "nll_nats" in with_nll and math.isfinite(with_nll["nll_nats"])


def test_evaluate_vae_reconstructs_from_the_mean(test_small):
    model = small_vae()
    metrics = cu.evaluate(model, data=test_small)
    with torch.no_grad():
        x_hat = torch.sigmoid(model.decode(model.encode(test_small.x).mu))
    assert metrics["mse_per_pixel"] == pytest.approx(float((x_hat - test_small.x).pow(2).mean()), rel=1e-5)


def test_evaluate_cvae_uses_the_passed_classifier(test_small):
    metrics = cu.evaluate(small_cvae("concat"), data=test_small, classifier=small_classifier(),
                          label_samples_per_class=3)
    assert {"neg_elbo_nats", "recon_nats", "kl_nats", "mse_per_pixel", "label_accuracy"} <= set(metrics)
    assert 0 <= metrics["label_accuracy"] <= 1


def test_evaluate_autoencoder_and_classifier(test_small):
    ae_metrics = cu.evaluate(small_ae(), data=test_small)
    assert set(ae_metrics) == {"recon_nats", "mse_per_pixel", "psnr_db"}
    classifier_metrics = cu.evaluate(small_classifier(), data=test_small)
    assert set(classifier_metrics) == {"accuracy"}
    assert 0 <= classifier_metrics["accuracy"] <= 1


def test_evaluate_loads_the_test_split_in_fast_mode(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    metrics = cu.evaluate(small_ae())
    data = cu.load_mnist("test", limit=settings.FAST_TEST_SIZE)
    assert metrics == cu.evaluate(small_ae(), data=data)


def test_label_accuracy_confusion_is_consistent():
    result = cu.label_accuracy(small_cvae("project"), small_classifier(), n_per_class=4)
    assert isinstance(result, cu.LabelAccuracy)
    assert result.confusion.shape == (10, 10)
    assert result.confusion.sum(1).tolist() == [4] * 10
    assert result.accuracy == pytest.approx(float(result.confusion.trace()) / 40)
    assert result.per_class == pytest.approx((result.confusion.diag().float() / 4).tolist())


def test_label_accuracy_needs_a_cvae():
    with pytest.raises(TypeError, match="CVAE"):
        cu.label_accuracy(small_vae(), small_classifier())


def test_psnr_db():
    assert cu.psnr_db(0.01) == pytest.approx(20.0)
    assert cu.psnr_db(0.0) == math.inf


# ----------------------------------------------------------------------------- train_or_load
def _recipe(**train_changes) -> cu.Recipe:
    train = cu.TrainConfig(epochs=1, batch_size=64, train_size=256, **train_changes)
    return cu.Recipe("VAE", cu.VAEConfig(latent_dim=2, hidden_dims=(16,)), train)


def test_train_or_load_trains_then_loads_then_retrains(tmp_path, monkeypatch, capsys, test_small):
    monkeypatch.setenv("COURSE_FAST", "1")  # evaluation on FAST_TEST_SIZE test images
    trained = cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path)
    assert trained.loaded is False
    assert trained.path == tmp_path / "tiny.pt" and trained.path.is_file()
    assert "Training tiny" in capsys.readouterr().out
    assert {"neg_elbo_nats", "train_seconds", "device"} <= set(trained.metrics)

    loaded = cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path)
    assert loaded.loaded is True
    assert "Loaded tiny" in capsys.readouterr().out
    assert isinstance(loaded.model, cu.VAE)
    assert loaded.history == trained.history
    assert loaded.metrics == trained.metrics
    pairs = zip(trained.model.state_dict().items(), loaded.model.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name  # what was shown after training is what loads
    eps = torch.zeros(8, 2)
    assert torch.equal(trained.model(test_small.x[:8], eps=eps).x_hat, loaded.model(test_small.x[:8], eps=eps).x_hat)

    changed = cu.train_or_load("tiny", _recipe(seed=1), device="cpu", directory=tmp_path)
    assert changed.loaded is False
    out = capsys.readouterr().out
    assert "does not match the recipe" in out and "train.seed: saved 0, wanted 1" in out
    assert cu.train_or_load("tiny", _recipe(seed=1), device="cpu", directory=tmp_path).loaded is True


def test_train_or_load_retrains_over_an_unreadable_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    (tmp_path / "tiny.pt").write_text("not a checkpoint")
    trained = cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path)
    assert trained.loaded is False
    assert "unreadable" in capsys.readouterr().out
    assert cu.load_model(tmp_path / "tiny.pt", "VAE").config == _recipe().config


def test_train_or_load_retrains_when_the_model_config_differs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path, verbose=False)
    wider = dataclasses.replace(_recipe(), config=cu.VAEConfig(latent_dim=3, hidden_dims=(16,)))
    retrained = cu.train_or_load("tiny", wider, device="cpu", directory=tmp_path)
    assert retrained.loaded is False
    assert "config.latent_dim: saved 2, wanted 3" in capsys.readouterr().out
    assert retrained.model.config.latent_dim == 3


# ----------------------------------------------------------------------------- recipes
def test_course_recipes_are_complete_and_cut_down_in_fast_mode():
    names = cu.course_names()
    assert names[0] == "classifier"
    for name in ("ae-2", "ae-64", "vae", "vae-2d", "vae-beta-4", "cvae-concat", "cvae-project-z64",
                 "cvae-concat-seed2"):
        assert name in names
    for name in names:
        full, fast = cu.course_recipe(name, fast=False), cu.course_recipe(name, fast=True)
        assert fast.config == full.config
        assert fast.train.epochs <= settings.FAST_MAX_EPOCHS
        assert fast.train.train_size <= settings.FAST_TRAIN_SIZE
        assert fast.train.seed == full.train.seed and fast.train.beta == full.train.beta


def test_course_recipe_follows_the_mode(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cu.course_recipe("vae").train.train_size == settings.FAST_TRAIN_SIZE
    monkeypatch.setenv("COURSE_FAST", "0")
    assert cu.course_recipe("vae").train.train_size is None


def test_unknown_recipe_lists_the_names():
    with pytest.raises(KeyError, match="cvae-concat"):
        cu.course_recipe("vae-3d")


def _fake_course(tmp_path, monkeypatch):
    """A course root with the shipped data and an empty shipped checkpoints/ folder."""
    from conftest import copy_course_root

    root = copy_course_root(tmp_path / "course")
    (root / "checkpoints").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(root))
    return root


def test_a_retrain_never_overwrites_a_shipped_checkpoint(tmp_path, monkeypatch, capsys):
    """A shipped checkpoint that does not match the recipe stays as it was; the new one goes elsewhere."""
    root = _fake_course(tmp_path, monkeypatch)
    monkeypatch.setenv("COURSE_FAST", "0")
    shipped = root / "checkpoints" / "tiny.pt"
    recipe = dataclasses.replace(_recipe(), train=dataclasses.replace(_recipe().train, train_size=256))
    first = cu.train_or_load("tiny", recipe, device="cpu", directory=root / "checkpoints")  # "shipped"
    before = shipped.read_bytes()
    other = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, seed=5))
    retrained = cu.train_or_load("tiny", other, device="cpu")
    assert shipped.read_bytes() == before
    assert retrained.path == root / "checkpoints" / "trained" / "tiny.pt"
    assert "does not match the recipe" in capsys.readouterr().out
    # the shipped one still loads for its own recipe, and the retrained one for its recipe
    assert cu.train_or_load("tiny", recipe, device="cpu").path == shipped
    assert cu.train_or_load("tiny", other, device="cpu").loaded is True
    assert first.loaded is False


def test_a_checkpoint_without_metrics_counts_as_incomplete(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    trained = cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path)
    cu.save_checkpoint(trained.path, trained.model, _recipe().spec()["train"], trained.history.as_dict(), {})
    again = cu.train_or_load("tiny", _recipe(), device="cpu", directory=tmp_path)
    assert again.loaded is False and again.metrics
    assert "incomplete" in capsys.readouterr().out


# ----------------------------------------------------------------------------- host synchronisation
def _counting(function):
    """``function`` wrapped so that it counts its calls (in ``.calls``); also works as a method."""
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return function(*args, **kwargs)

    wrapper.calls = 0
    return wrapper


@pytest.mark.parametrize("make", [small_vae, small_cvae, small_classifier])
def test_fit_scans_clean_data_once_not_on_every_batch(train_small, test_small, make, monkeypatch):
    """Each value scan reads the range back to the host, a stall on every step of a GPU (issue 17):
    fit scans its clean training and test images and labels once, then trains without."""
    pixel_scans = _counting(torch.aminmax)
    label_scans = _counting(torch.Tensor.max)
    monkeypatch.setattr(torch, "aminmax", pixel_scans)
    monkeypatch.setattr(torch.Tensor, "max", label_scans)
    config = dataclasses.replace(SMALL, epochs=2)  # 2 epochs of 8 batches, and 2 test passes
    _fit(make(), train_small, test_small, config)
    assert pixel_scans.calls == 2, "the pixels were scanned on every batch, not once per data set"
    assert label_scans.calls <= 4, "the labels were scanned on every batch, not once per data set"


@pytest.mark.parametrize("make", [small_vae, lambda: small_cvae("prior")])
def test_fit_without_the_per_batch_scans_trains_the_same_model(train_small, test_small, make, monkeypatch):
    first_model, second_model = make(), make()
    first = _fit(first_model, train_small, test_small)
    monkeypatch.setattr(cu.training, "_values_clean", lambda data: False)  # as for data that fail the scan
    second = _fit(second_model, train_small, test_small)
    assert _losses(first) == _losses(second)
    for (name, a), (_, b) in zip(first_model.state_dict().items(), second_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_fit_still_checks_labels_against_a_model_with_fewer_classes(train_small):
    torch.manual_seed(0)
    model = cu.CVAE(cu.CVAEConfig(latent_dim=4, hidden_dims=(32,), num_classes=5))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.4"):
        _fit(model, train_small, None)  # the digits 0..9 passed the data set's scan, not this model's
