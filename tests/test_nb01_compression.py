"""course_utils.lessons.nb01_compression (notebook 01): sizes, PCA, code-space sampling, confusion."""

from __future__ import annotations

import pytest
import torch

from course_utils.lessons import nb01_compression as cc
from course_utils.lessons import nb01_figures as cf


def test_sizes_and_rows():
    assert cc.compression_ratio(8) == 98.0
    assert cc.code_bytes(16) == 32
    assert cc.code_bytes(16, torch.float32) == 64
    assert cc.byte_ratio(12) == pytest.approx(784 / 24)
    row = cc.compression_row("AE", 4, 0.01)
    assert row.ratio == 196.0 and row.code_bytes == 8 and row.psnr_db == pytest.approx(20.0)
    assert "PSNR" in cc.format_rows([row])
    with pytest.raises(ValueError):
        cc.compression_ratio(0)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis = torch.rand(5, 784, generator=g)
    return (torch.rand(n, 5, generator=g) @ basis / 5 + 0.01 * torch.rand(n, 784, generator=g)).reshape(n, 1, 28, 28)


def test_pca_matches_eckart_young_and_is_orthonormal():
    x = _images(300)
    pca = cc.fit_pca(x)
    eye = torch.eye(784, dtype=pca.components.dtype)
    assert torch.allclose(pca.components.T @ pca.components, eye, atol=1e-8)
    assert torch.all(pca.variances[:-1] >= pca.variances[1:])
    curve = pca.mse_curve(x)
    for k in (0, 1, 5, 20):
        assert float(curve[k]) == pytest.approx(float(pca.variances[k:].sum() / 784), abs=1e-10)
        if k:
            assert pca.mse(x, k) == pytest.approx(float(curve[k]), rel=1e-4, abs=1e-9)
    assert pca.reconstruct(x, 5).shape == x.shape
    target = float(curve[3]) + 1e-12
    assert cc.pca_components_to_match(pca, x, target) <= 3


def test_box_sampling_and_interpolation():
    z = torch.tensor([[0.0, -1.0], [2.0, 3.0], [1.0, 0.0]])
    box = cc.code_box(z)
    assert box.low.tolist() == [0.0, -1.0] and box.high.tolist() == [2.0, 3.0]
    draws = cc.sample_code_box(z, 500, torch.Generator().manual_seed(0))
    assert draws.shape == (500, 2)
    assert torch.all(draws >= box.low) and torch.all(draws <= box.high)
    path = cc.interpolate_codes(z[0], z[1], 5)
    assert torch.equal(path[0], z[0]) and torch.equal(path[-1], z[1])
    assert torch.allclose(path[2], (z[0] + z[1]) / 2)
    with pytest.raises(ValueError):
        cc.interpolate_codes(z[0], z[:2], 3)
    assert torch.allclose(cc.nearest_code_distance(z, z), torch.zeros(3))


def test_code_confusion_finds_the_overlapping_pair():
    g = torch.Generator().manual_seed(0)
    centres = torch.arange(10, dtype=torch.float32).unsqueeze(1) * torch.tensor([[10.0, 0.0]])
    centres[4] = centres[9] + 0.01  # digits 4 and 9 share one cluster
    y_train = torch.arange(10).repeat(50)
    y_test = torch.arange(10).repeat(20)
    z_train = centres[y_train] + 0.5 * torch.randn(len(y_train), 2, generator=g)
    z_test = centres[y_test] + 0.5 * torch.randn(len(y_test), 2, generator=g)
    confusion = cc.code_confusion(z_train, y_train, z_test, y_test, neighbours=5)
    assert torch.allclose(confusion.sum(1), torch.ones(10))
    pair = cc.most_confused_pair(confusion)
    assert (pair.a, pair.b) == (4, 9) and pair.rate > 0.2
    assert len(cc.confused_pairs(confusion)) == 45
    assert confusion[0, 0] == 1.0


def test_random_pairs_have_different_labels():
    y = torch.tensor([0, 0, 1, 1, 2])
    pairs = cc.random_pairs(y, 100, torch.Generator().manual_seed(0))
    assert len(pairs.a) > 0 and torch.all(y[pairs.a] != y[pairs.b])


# ----------------------------------------------------------------------------- exercises
@pytest.mark.parametrize("key", ["01.byte-ratio", "01.confused-pair", "01.pca-match"])
def test_nb01_solutions_pass_their_checks(key: str) -> None:
    from course_utils import solutions

    exercise = solutions.get(key)
    correct, feedback = exercise.checker(exercise.solver())
    assert correct, feedback


def test_nb01_checks_catch_the_classic_mistakes() -> None:
    from course_utils import solutions

    check = solutions.get("01.byte-ratio").checker
    numbers_not_bytes = check(784 / 12)
    assert not numbers_not_bytes[0] and "bytes" in numbers_not_bytes[1]
    float32_code = check(784 / (4 * 12))
    assert not float32_code[0] and "float16" in float32_code[1]
    assert not solutions.get("01.confused-pair").checker((0, 1))[0]
    needed = solutions.get("01.pca-match").solver()
    assert not solutions.get("01.pca-match").checker(needed - 1)[0]
    assert not solutions.get("01.pca-match").checker(needed + 1)[0]


# ----------------------------------------------------------------------------- sample quality (FD)
def test_frechet_distance_is_zero_on_a_set_symmetric_and_adds_a_mean_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    b = torch.randn(400, 5, generator=g, dtype=torch.float64) * 2 + 1
    assert cc.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert cc.frechet_distance(a, b) == pytest.approx(cc.frechet_distance(b, a), rel=1e-8)
    shift = torch.tensor([3.0, 0.0, -1.0, 0.0, 2.0], dtype=torch.float64)
    assert cc.frechet_distance(a, a + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    # a second route to tr((C_a C_b)^(1/2)): the eigenvalues of the (non-symmetric) product
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    cross = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0).sqrt().sum()
    expected = (a.mean(0) - b.mean(0)).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    assert cc.frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-8)


def test_classifier_features_are_the_last_hidden_layer_with_dropout_off(x_batch):
    from conftest import small_classifier

    classifier = small_classifier().train()  # dropout on: features must switch it off, then restore it
    features = cc.classifier_features(classifier, x_batch, batch_size=3)
    assert features.shape == (len(x_batch), classifier.config.hidden_dim) and features.dtype == torch.float64
    assert torch.allclose(features, cc.classifier_features(classifier, x_batch), atol=1e-6)  # no dropout noise
    assert classifier.training and torch.all(features >= 0)  # after the ReLU


def test_codes_are_drawn_in_a_shuffled_order():
    z = torch.stack([torch.arange(50.0), torch.zeros(50)], dim=1)
    y = torch.arange(50) % 10
    fig = cf.plot_codes_shuffled(z, y, title="t")
    drawn = fig.axes[0].collections[0].get_offsets()[:, 0]
    assert sorted(drawn.tolist()) == list(range(50)) and drawn.tolist() != list(range(50))
    assert len(fig.axes[0].get_legend().get_texts()) == 10


# ----------------------------------------------------------------------------- new exercises
def test_training_loop_solution_passes_and_broken_loops_fail(monkeypatch):
    from course_utils import solutions

    monkeypatch.setenv("COURSE_FAST", "1")  # 160 steps on 2,000 images
    check = solutions.get("01.training-loop").checker
    correct, feedback = check(solutions.get("01.training-loop").solver())
    assert correct, feedback

    def summed(model, data, steps, batch_size=128, lr=1e-3, seed=0):
        x = data.x[:batch_size]
        return [float(((model(x).x_hat - x) ** 2).sum().detach())] * steps

    def no_steps(model, data, steps, batch_size=128, lr=1e-3, seed=0):
        return [0.1] * steps

    assert "do not sum" in check(summed)[1]
    assert not check(no_steps)[0]
    assert not check(lambda model, data, steps: [0.1] * (steps - 1))[0]


def test_frechet_solution_passes_and_means_only_fails():
    from course_utils import solutions

    exercise = solutions.get("01.frechet")
    assert exercise.checker(exercise.solver())[0]
    means_only = exercise.checker(lambda a, b: float((a.mean(0) - b.mean(0)).pow(2).sum()))
    assert not means_only[0] and "covariance" in means_only[1]


def test_chunked_pca_and_pixel_sums_equal_the_whole_set_at_once():
    """The chunks (kept small so no float64 copy of the training set is made) change no number."""
    x = torch.rand(203, 1, 28, 28, generator=torch.Generator().manual_seed(0)).pow(3)
    x[:, :, 0, 0] = 0.0  # a constant pixel, as MNIST's corners are
    whole, chunked = cc.fit_pca(x, chunk=len(x)), cc.fit_pca(x, chunk=17)
    flat = x.reshape(len(x), -1).double()
    torch.testing.assert_close(chunked.mean, flat.mean(0))
    torch.testing.assert_close(chunked.variances, whole.variances)
    torch.testing.assert_close(chunked.mse_curve(x, chunk=10), whole.mse_curve(x, chunk=len(x)))
    # the curve is the direct reconstruction error, chunked or not
    direct = cc.mse_per_pixel(chunked.reconstruct(x, 5), x)
    assert chunked.mse_curve(x, chunk=10)[5].item() == pytest.approx(direct, rel=1e-5)
    stats = cc.pixel_statistics(x, chunk=17)
    assert stats.mean == pytest.approx(float(flat.mean())) and stats.std == pytest.approx(float(flat.std()))
    assert stats.share_zero == pytest.approx(float((flat == 0).double().mean()))
    assert stats.share_above_half == pytest.approx(float((flat > 0.5).double().mean()))
    assert stats.constant_pixels == 1
    mean, squares = cc.pixel_moments(flat.float(), chunk=17)
    torch.testing.assert_close(squares / (len(x) - 1), flat.var(0))
    fig = cf.plot_pixel_statistics(x)
    assert len(fig.axes) >= 3
