"""checkpoints: exact round trips, float16 storage, clear errors, and no code run on load."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from conftest import small_ae, small_classifier, small_cvae, small_vae

import course_utils as cu
from course_utils.checkpoints import FORMAT, read_payload

MAKERS = {
    "AutoEncoder": small_ae,
    "VAE": small_vae,
    "CVAE": lambda: small_cvae("project"),
    "DigitClassifier": small_classifier,
}


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A deterministic output of any course model (reparameterization noise pinned to 0)."""
    with torch.no_grad():
        if not model.generative:
            return model(x)
        y = torch.arange(len(x)) % 10
        if model.variational:
            return model(x, y, eps=torch.zeros(len(x), model.latent_dim)).x_hat
        return model(x, y).x_hat


@pytest.mark.parametrize("class_name", list(MAKERS))
def test_round_trip_is_bit_for_bit(tmp_path, x_batch, class_name):
    model = MAKERS[class_name]().eval()
    history = {"train_loss": [3.0, 2.0]}
    metrics = {"neg_elbo_nats": 123.5, "device": "cpu"}
    path = cu.save_checkpoint(tmp_path / "sub" / "m.pt", model, {"epochs": 2}, history, metrics)
    assert path.is_file() and not (tmp_path / "sub" / "m.pt.partial").exists()
    ckpt = cu.load_checkpoint(path)
    assert type(ckpt.model) is type(model)
    assert ckpt.model.config == model.config
    assert not ckpt.model.training
    assert ckpt.train_config == {"epochs": 2}
    assert ckpt.history == history and ckpt.metrics == metrics
    assert ckpt.path == path
    saved, loaded = model.state_dict(), ckpt.model.state_dict()
    assert list(saved) == list(loaded)
    for name in saved:
        assert saved[name].dtype == loaded[name].dtype
        assert torch.equal(saved[name], loaded[name]), name
    assert torch.equal(_outputs(model, x_batch), _outputs(ckpt.model, x_batch))


def test_half_stores_float16_and_loads_float32(tmp_path, x_batch):
    model = small_vae()
    path = cu.save_checkpoint(tmp_path / "half.pt", model, half=True)
    full_path = cu.save_checkpoint(tmp_path / "full.pt", model, half=False)
    state = read_payload(path)["state_dict"]
    assert {v.dtype for v in state.values()} == {torch.float16}
    assert {v.dtype for v in read_payload(full_path)["state_dict"].values()} == {torch.float32}
    assert path.stat().st_size < 0.75 * full_path.stat().st_size
    loaded = cu.load_model(path)
    for name, value in model.state_dict().items():
        restored = loaded.state_dict()[name]
        assert restored.dtype == torch.float32
        assert torch.equal(restored, value.half().float()), name  # exactly the rounded weights
    assert torch.allclose(_outputs(model, x_batch), _outputs(loaded, x_batch), atol=1e-2)


def test_half_keeps_integer_buffers(tmp_path):
    model = small_classifier()
    model.register_buffer("counts", torch.arange(3))
    path = cu.save_checkpoint(tmp_path / "c.pt", model, half=True)
    assert read_payload(path)["state_dict"]["counts"].dtype == torch.int64


@pytest.mark.parametrize("class_name", list(MAKERS))
def test_load_model_rebuilds_the_right_class(tmp_path, class_name):
    model = MAKERS[class_name]()
    path = cu.save_checkpoint(tmp_path / "m.pt", model)
    loaded = cu.load_model(path)
    assert type(loaded).__name__ == class_name
    assert loaded.config == model.config
    assert cu.load_model(path, expected_class=class_name).config == model.config
    assert isinstance(cu.load_model(path, expected_class=type(model)), type(model))


def test_load_model_to_a_device(tmp_path):
    path = cu.save_checkpoint(tmp_path / "m.pt", small_vae())
    model = cu.load_model(path, device="cpu")
    assert next(model.parameters()).device == torch.device("cpu")


# ----------------------------------------------------------------------------- bad files
def _assert_clear(path, match: str) -> None:
    with pytest.raises(cu.CheckpointError, match=match) as info:
        cu.load_checkpoint(path)
    assert str(path) in str(info.value)


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist()))
    _assert_clear(path, "not a readable course checkpoint")


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("These are my notes, not weights.\n")
    _assert_clear(path, "not a readable course checkpoint")


def test_empty_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _assert_clear(path, "not a readable course checkpoint")


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_checkpoint_raises(tmp_path, fraction):
    whole = cu.save_checkpoint(tmp_path / "whole.pt", small_vae()).read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    _assert_clear(path, "truncated")


def test_plain_torch_save_dict_is_not_a_course_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(small_vae().state_dict(), path)
    _assert_clear(path, f"not a course_utils checkpoint.*{FORMAT}")
    torch.save({"format": "something else", "x": torch.zeros(2)}, path)
    _assert_clear(path, "not a course_utils checkpoint")
    torch.save([1, 2, 3], path)
    _assert_clear(path, "not a course_utils checkpoint")


def test_another_model_with_expected_class_raises(tmp_path):
    path = cu.save_checkpoint(tmp_path / "vae.pt", small_vae())
    with pytest.raises(cu.CheckpointError, match="holds a VAE, not a CVAE") as info:
        cu.load_model(path, expected_class="CVAE")
    assert str(path) in str(info.value)
    with pytest.raises(cu.CheckpointError, match="holds a VAE, not a DigitClassifier"):
        cu.load_checkpoint(path, expected_class=cu.DigitClassifier)


def test_weights_that_do_not_fit_the_config_raise(tmp_path):
    path = cu.save_checkpoint(tmp_path / "vae.pt", small_vae(latent_dim=4))
    payload = read_payload(path)
    payload["config"]["latent_dim"] = 5  # the stored weights are for 4
    torch.save(payload, path)
    _assert_clear(path, "do not fit a VAE")


def test_unknown_model_class_and_bad_config_raise(tmp_path):
    path = cu.save_checkpoint(tmp_path / "vae.pt", small_vae())
    payload = read_payload(path)
    torch.save({**payload, "model_class": "GAN"}, path)
    with pytest.raises(cu.CheckpointError, match="unknown model class 'GAN'"):
        cu.load_checkpoint(path)
    torch.save({**payload, "config": {**payload["config"], "depth": 3}}, path)
    with pytest.raises(cu.CheckpointError, match="config does not fit VAE"):
        cu.load_checkpoint(path)


def test_missing_file_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m course_utils train"):
        cu.load_checkpoint(tmp_path / "nothing.pt")


def test_model_spec_rejects_a_foreign_module(tmp_path):
    with pytest.raises(TypeError, match="not one of the course's models"):
        cu.save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- no code on load
class _Malicious:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    # 1) the zip format torch.save writes, holding a course-looking payload with a trap inside
    path = cu.save_checkpoint(tmp_path / "trap.pt", small_vae())
    payload = read_payload(path)
    payload["metrics"] = {"trap": _Malicious(str(marker))}
    torch.save(payload, path)
    with pytest.raises(cu.CheckpointError, match="refused because it could run code") as info:
        cu.load_checkpoint(path)
    assert "weights_only" not in str(info.value)  # never the advice to turn the check off
    assert not marker.exists()
    # 2) a bare (legacy) pickle stream
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"format": FORMAT, "trap": _Malicious(str(marker))}, protocol=2))
    with pytest.raises(cu.CheckpointError, match="refused because it could run code"):
        cu.load_checkpoint(legacy)
    assert not marker.exists()
    # the trap is real: unpickling it without weights_only would have created the marker
    pickle.loads(legacy.read_bytes())
    assert marker.exists()
