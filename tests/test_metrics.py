"""metrics: the shared measures (codes, KL per dimension, active units, readability) and evaluate."""

from __future__ import annotations

import pytest
import torch
from conftest import small_ae, small_classifier, small_cvae, small_vae

import course_utils as cu
from course_utils import metrics


class CountingClassifier(cu.DigitClassifier):
    """A classifier that counts the images it is shown."""

    def __init__(self) -> None:
        torch.manual_seed(5)
        super().__init__(cu.ClassifierConfig(channels=(4, 8), hidden_dim=16))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return super().forward(x)


def biased_classifier(digit: int) -> cu.DigitClassifier:
    """A classifier that reads every image as ``digit``."""
    classifier = small_classifier()
    with torch.no_grad():
        classifier.head[-1].bias.fill_(-100.0)
        classifier.head[-1].bias[digit] = 100.0
    return classifier


def test_active_units_is_burda_s_variance_criterion():
    g = torch.Generator().manual_seed(0)
    spread = torch.tensor([1.0, 0.3, 0.05, 0.001, 0.0])  # standard deviations of mu_j across images
    mu = torch.randn(5000, 5, generator=g) * spread + 2.0  # a shared offset changes nothing
    mask = metrics.active_units(mu)
    assert mask.tolist() == [True, True, False, False, False]  # Var = 1, 0.09 active; 0.0025 and below not
    assert metrics.active_units(mu, threshold=0.001).tolist() == [True, True, True, False, False]
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.active_units(mu[:1])


def test_kl_per_dimension_sums_to_the_loss_kl(test_small):
    vae = small_vae(latent_dim=3)
    x = test_small.x[:64]
    per_dim = metrics.kl_per_dimension(vae, x, batch_size=20)
    assert per_dim.shape == (3,) and (per_dim >= 0).all()
    with torch.no_grad():
        torch.testing.assert_close(per_dim.sum(), cu.gaussian_kl(*vae.encode(x)).mean(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [small_ae, small_vae, lambda: small_cvae("project")])
def test_codes_work_for_every_model_and_match_code(make, test_small):
    model = make()
    x, y = test_small.x[:50], test_small.y[:50]
    z = metrics.codes(model, x, y, batch_size=16)
    with torch.no_grad():
        torch.testing.assert_close(z, model.code(x, y))
    assert z.shape == (50, model.latent_dim)


def test_posteriors_refuse_an_autoencoder(test_small):
    with pytest.raises(TypeError, match="not a variational model"):
        metrics.posteriors(small_ae(), test_small.x[:4])


def test_readability_counts_confidence_above_the_threshold(test_small):
    read = metrics.readability(biased_classifier(7), test_small.x[:20])
    assert read.digit.tolist() == [7] * 20
    assert read.confident_share == 1.0


def test_evaluate_uses_the_classifier_it_is_given(test_small):
    model = small_cvae("concat")
    spy = CountingClassifier()
    result = cu.evaluate(model, data=test_small, classifier=spy, label_samples_per_class=5)
    assert spy.seen == 50  # ten labels, five samples each
    expected = cu.label_accuracy(model, spy, n_per_class=5).accuracy
    assert result["label_accuracy"] == expected
    # a judge that reads every digit as 3 scores exactly one label in ten
    assert cu.evaluate(model, data=test_small, classifier=biased_classifier(3),
                       label_samples_per_class=5)["label_accuracy"] == pytest.approx(0.1)


def test_evaluate_without_a_classifier_reports_no_label_accuracy_and_trains_nothing(test_small, monkeypatch):
    from course_utils import training

    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("evaluate must never train"))
    result = cu.evaluate(small_cvae("project"), data=test_small)
    assert "label_accuracy" not in result and "neg_elbo_nats" in result


def test_read_paths_reads_each_step(test_small):
    images = test_small.x[:12].reshape(4, 3, 1, 28, 28)  # 4 pairs, 3 steps
    reading = metrics.read_paths(biased_classifier(1), images, [0.0, 0.5, 1.0])
    assert reading.t == [0.0, 0.5, 1.0]
    assert reading.confident_share == [1.0, 1.0, 1.0]
