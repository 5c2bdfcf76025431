"""The course's three models (AE, VAE, CVAE) and the digit classifier that scores them.

Every model is a small MLP on flattened 28x28 MNIST; the decoders output logits
(one per pixel) so that losses can use the numerically stable with-logits form, and
``x_hat = sigmoid(logits)`` is the reconstruction in [0, 1]. Every forward returns a
NamedTuple with named fields, never a bare tuple. Each model has a ``@dataclass``
config that a checkpoint stores, so ``load_model`` can rebuild it.

Names follow the math: x (images), x_hat (reconstruction), z (latent code),
mu / logvar (the encoder's Gaussian q(z | x) = N(mu, diag(exp(logvar)))), y (labels).

One interface. The AE, VAE and CVAE all answer the same calls, so no code outside this
file needs to know which of them it holds:

    encode(x, y=None)          the encoder's output: z (AE) or Posterior(mu, logvar)
    code(x, y=None)            the point code of x, (B, k): z for the AE, mu otherwise
    decode(z, y=None)          logits of the image, (B, 1, 28, 28)
    reconstruct(x, y=None)     sigmoid(decode(code(x))), pixels in [0, 1]
    loss(x, y=None, beta=1)    the model's own training loss as named LossParts
    latent_dim, conditional (needs y), variational (has a posterior and a KL term)

``y`` is ignored by the unconditional models and required by the CVAE. The digit
classifier answers ``loss(x, y)`` too (cross-entropy), so one training loop serves all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checks import (
    check_count,
    check_images,
    check_labels,
    check_latent,
    check_temperature,
    require_tensor,
    sample_labels,
)
from .data import IMAGE_SHAPE, NUM_CLASSES, NUM_PIXELS
from .losses import LossParts, bernoulli_nll, gaussian_kl, gaussian_kl_between

CONDITIONINGS = ("concat", "project", "prior", "project-relu")  # how y enters a CVAE (see CVAE)


# ----------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class AEConfig:
    latent_dim: int = 16  # size of the bottleneck code z
    hidden_dims: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = 16  # size of z; the prior is N(0, I) in this many dimensions
    hidden_dims: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them


@dataclass(frozen=True)
class CVAEConfig:
    latent_dim: int = 16  # size of z; z's prior is N(0, I) for every y (see CVAE for "prior")
    hidden_dims: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them
    conditioning: str = "concat"  # how y enters: "concat", "project", "prior" or "project-relu"
    num_classes: int = NUM_CLASSES  # labels are integers 0 .. num_classes - 1
    projection_init_std: float | None = 3.0  # project(-relu): initial std of P's entries; None: PyTorch's init


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)  # output channels of the two conv layers
    hidden_dim: int = 128  # width of the fully connected layer
    dropout: float = 0.25  # dropout before each fully connected layer (training only)


# ----------------------------------------------------------------------------- outputs
class AEOutput(NamedTuple):
    z: torch.Tensor  # (B, latent_dim) code
    logits: torch.Tensor  # (B, 1, 28, 28) decoder output before the sigmoid
    x_hat: torch.Tensor  # (B, 1, 28, 28) reconstruction in [0, 1]


class Posterior(NamedTuple):
    mu: torch.Tensor  # (B, latent_dim) mean of q(z | x)
    logvar: torch.Tensor  # (B, latent_dim) log sigma^2 of q(z | x)


class VAEOutput(NamedTuple):
    mu: torch.Tensor  # (B, latent_dim)
    logvar: torch.Tensor  # (B, latent_dim)
    z: torch.Tensor  # (B, latent_dim) one sample from q(z | x)
    logits: torch.Tensor  # (B, 1, 28, 28)
    x_hat: torch.Tensor  # (B, 1, 28, 28) in [0, 1]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with a ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _unflatten(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, *IMAGE_SHAPE)  # (B, 784) -> (B, 1, 28, 28)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# ----------------------------------------------------------------------------- interface
class LatentModel(nn.Module):
    """What the AE, VAE and CVAE have in common (see the module docstring)."""

    config: AEConfig | VAEConfig | CVAEConfig
    conditional = False  # True: encode, decode and loss need the digit labels y
    variational = False  # True: encode returns a Posterior and the loss has a KL term
    generative = True  # False only for the digit classifier

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of each image, (B, latent_dim): z for the AE, the posterior mean mu otherwise."""
        out = self.encode(x, y)
        return out.mu if self.variational else out

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """sigmoid(decode(code(x))): the deterministic reconstruction, (B, 1, 28, 28) in [0, 1]."""
        return torch.sigmoid(self.decode(self.code(x, y), y))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
             eps: torch.Tensor | None = None) -> LossParts:
        raise NotImplementedError


# ----------------------------------------------------------------------------- AE
class AutoEncoder(LatentModel):
    """A deterministic autoencoder: z = encoder(x), x_hat = sigmoid(decoder(z)).

    The bottleneck is a plain linear layer, with no ReLU after it. A ReLU there (as
    in some tutorials) clips every negative code to 0: a unit whose
    pre-activation turns negative for all inputs gets no gradient again and is lost
    for good, so an 8-unit bottleneck can end up using fewer than 8 numbers.
    """

    def __init__(self, config: AEConfig = AEConfig()):
        super().__init__()
        self.config = config
        dims = [NUM_PIXELS, *config.hidden_dims, config.latent_dim]
        self.encoder = mlp(dims)  # 784 -> ... -> latent_dim (linear bottleneck)
        self.decoder = mlp(dims[::-1])  # latent_dim -> ... -> 784 logits

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code z, (B, latent_dim). ``y`` is ignored: the AE is not conditional."""
        return self.encoder(check_images(x))  # (B, 784) -> (B, latent_dim)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the reconstruction, shape (B, 1, 28, 28)."""
        z = check_latent(z, self.config.latent_dim)
        return _unflatten(self.decoder(z))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> AEOutput:
        z = self.encode(x)
        logits = self.decode(z)
        return AEOutput(z=z, logits=logits, x_hat=torch.sigmoid(logits))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
             eps: torch.Tensor | None = None) -> LossParts:
        """Mean squared error per pixel, (1 / N D) sum ||x - x_hat||^2 (``beta`` and ``eps`` unused)."""
        mse = F.mse_loss(self(x).x_hat, check_images(x).reshape(-1, *IMAGE_SHAPE))
        return LossParts(loss=mse, recon=mse, kl=torch.zeros((), device=mse.device))


# ----------------------------------------------------------------------------- VAE
class VAE(LatentModel):
    """Variational autoencoder (Kingma and Welling 2014) with a N(0, I) prior.

    Encoder: q(z | x) = N(mu, diag(sigma^2)), with logvar = log sigma^2 as output
    (unconstrained, so no positivity constraint is needed). Decoder: p(x | z) is a
    product of Bernoullis whose logits the decoder returns.
    """

    variational = True

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        dims = [NUM_PIXELS, *config.hidden_dims]
        self.encoder = nn.Sequential(mlp(dims), nn.ReLU())  # 784 -> hidden
        self.to_mu = nn.Linear(dims[-1], config.latent_dim)
        self.to_logvar = nn.Linear(dims[-1], config.latent_dim)
        self.decoder = mlp([config.latent_dim, *dims[::-1]])  # latent -> ... -> 784

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(z | x) as its mean and log-variance, each (B, latent_dim). ``y`` is ignored."""
        h = self.encoder(check_images(x))  # (B, 784) -> (B, hidden_dims[-1])
        return Posterior(mu=self.to_mu(h), logvar=self.to_logvar(h))

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I); pass ``eps`` to pin the noise."""
        return reparameterize(mu, logvar, eps)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x | z), shape (B, 1, 28, 28)."""
        z = check_latent(z, self.config.latent_dim)
        return _unflatten(self.decoder(z))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        logits = self.decode(z)
        return VAEOutput(mu, logvar, z, logits, torch.sigmoid(logits))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
             eps: torch.Tensor | None = None) -> LossParts:
        """recon + beta * KL in nats per image; beta = 1 is the negative ELBO (Higgins et al. 2017 for beta != 1)."""
        return _elbo_parts(self(x, y, eps=eps), x, beta)

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images in [0, 1], shape (n, 1, 28, 28), decoded from z ~ N(0, T^2 I)."""
        check_temperature(temperature)
        z = temperature * _prior_noise(n, self.config.latent_dim, generator, _device(self))
        return torch.sigmoid(self.decode(z))


def _elbo_parts(out: VAEOutput, x: torch.Tensor, beta: float) -> LossParts:
    # -ELBO = E_q[-log p(x | z)] + KL(q(z | x) || p(z)), one z per image (Kingma and Welling 2014, eq. 7)
    recon = bernoulli_nll(out.logits, check_images(x).reshape(-1, *IMAGE_SHAPE)).mean()
    kl = gaussian_kl(out.mu, out.logvar).mean()
    return LossParts(loss=recon + beta * kl, recon=recon, kl=kl)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw z ~ N(mu, diag(exp(logvar))) as a differentiable function of mu and logvar."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ in shape")
    if eps is None:
        eps = torch.randn_like(mu)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}")
    # Kingma and Welling 2014, eq. (10): z = mu + sigma * eps, sigma = exp(logvar / 2)
    return mu + torch.exp(0.5 * logvar) * eps


def _prior_noise(
    n: int, latent_dim: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    n = check_count(n)
    # Drawn on the CPU so that a seeded generator gives the same z on every device.
    return torch.randn(n, latent_dim, generator=generator).to(device)


# ----------------------------------------------------------------------------- CVAE
class CVAE(LatentModel):
    """Conditional VAE (Sohn, Lee and Yan 2015): q(z | x, y), p(x | z, y) and a prior p(z | y).

    ``conditioning`` says how the label y enters; nothing else differs between the variants:

    - ``"concat"``: encoder [x; onehot(y)], decoder [z; onehot(y)]; prior N(0, I).
    - ``"project"``: encoder [x; onehot(y)], decoder z + P onehot(y) with a learned
      (latent_dim x 10) P: the label moves the point in latent space; prior N(0, I). A KL
      is unchanged when both Gaussians shift together, so this is exactly a CVAE on
      u = z + P e_y with the learned prior N(P e_y, I) and a decoder that never sees y.
    - ``"prior"``: as "concat", plus a learned prior per label, p(u | y) = N(mu_y,
      diag(sigma_y^2)) (Sohn et al.'s prior network for a label: 10 means, 10 log-variances,
      starting at N(0, I)); the loss takes the KL between the two diagonal Gaussians in the
      prior's coordinates u (``encode_u``, ``prior``). The interface's z is the standardized
      code z = (u - mu_y) / sigma_y, whose prior is N(0, I): ``encode`` gives q(z | x, y),
      ``decode(z, y)`` reads u = mu_y + sigma_y z, so z ~ N(0, T^2 I) draws u from the label's prior.
    - ``"project-relu"``: seed 003's design: the encoder reads x alone, the decoder
      z + ReLU(P onehot(y) + b) (offsets that cannot be negative); prior N(0, I).

    (Adding a learned projection of y to the encoder's first layer is concatenating y to x,
    W [x; y] = W_x x + W_y y, so the variants share the encoder.) With "project", PyTorch's
    default init makes the offsets P y about as large as the N(0, I) noise; the encoder then
    carries the digit in z and samples ignore their label (about 40% label accuracy at
    latent size 8 and beta = 1: notebook 03's ``cvae-project-untuned``), so P starts from
    entries of std ``projection_init_std``.
    """

    conditional = True
    variational = True

    def __init__(self, config: CVAEConfig = CVAEConfig()):
        super().__init__()
        if config.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {config.conditioning!r}")
        self.config = config
        k, c = config.latent_dim, config.num_classes
        dims = [NUM_PIXELS, *config.hidden_dims]
        self.encoder_reads_label = config.conditioning != "project-relu"
        self.encoder = nn.Sequential(mlp([NUM_PIXELS + c * self.encoder_reads_label, *dims[1:]]), nn.ReLU())
        self.to_mu = nn.Linear(dims[-1], k)
        self.to_logvar = nn.Linear(dims[-1], k)
        if config.conditioning in ("concat", "prior"):
            self.decoder = mlp([k + c, *dims[::-1]])  # [z; y] (or [u; y]) -> ... -> 784
        else:
            # P: one-hot -> R^k (with a bias before the ReLU in seed 003's design). PyTorch's
            # default init gives |P y| ~ 0.5, drowned in the N(0, I) noise: start larger.
            self.label_projection = nn.Linear(c, k, bias=config.conditioning == "project-relu")
            if config.projection_init_std is not None:
                nn.init.normal_(self.label_projection.weight, std=config.projection_init_std)
            self.decoder = mlp([k, *dims[::-1]])  # z + P y -> ... -> 784
        if config.conditioning == "prior":  # p(u | y) = N(prior_mu[y], diag(exp(prior_logvar[y])))
            self.prior_mu = nn.Parameter(torch.zeros(c, k))
            self.prior_logvar = nn.Parameter(torch.zeros(c, k))

    def one_hot(self, y: torch.Tensor | None, batch_size: int | None = None) -> torch.Tensor:
        """Validated labels as float one-hot vectors on the model's device, (B, 10)."""
        if y is None:
            raise ValueError("a CVAE needs the digit labels y (a tensor of integers 0..9, one per image)")
        y = check_labels(y, batch_size, self.config.num_classes)
        return F.one_hot(y.to(_device(self)), self.config.num_classes).float()

    def prior(self, y: torch.Tensor | None, batch_size: int | None = None) -> Posterior:
        """p(u | y) of each label, its mu and logvar (B, latent_dim) each: N(0, I) unless "prior"."""
        y_onehot = self.one_hot(y, batch_size)
        if self.config.conditioning != "prior":
            return Posterior(*[y_onehot.new_zeros(len(y_onehot), self.config.latent_dim)] * 2)
        return Posterior(y_onehot @ self.prior_mu, y_onehot @ self.prior_logvar)  # row y of each table

    def encode_u(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(u | x, y) in the prior's coordinates (u = z for every variant but "prior")."""
        x = check_images(x)
        inputs = torch.cat([x, self.one_hot(y, x.shape[0])], dim=1) if self.encoder_reads_label else x
        h = self.encoder(inputs)  # (B, 794) or, seed 003's design, (B, 784) -> (B, hidden)
        return Posterior(mu=self.to_mu(h), logvar=self.to_logvar(h))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(z | x, y) as its mean and log-variance, each (B, latent_dim); prior N(0, I)."""
        post = self.encode_u(x, y)
        if self.config.conditioning != "prior":
            return post
        prior = self.prior(y, len(post.mu))  # standardize: z = (u - mu_y) / sigma_y
        return Posterior((post.mu - prior.mu) * torch.exp(-0.5 * prior.logvar), post.logvar - prior.logvar)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return reparameterize(mu, logvar, eps)

    def decoder_input(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """What the decoder's first layer sees: [z; y], z + P y, [mu_y + sigma_y z; y] or z + ReLU(P y + b)."""
        z = check_latent(z, self.config.latent_dim)
        y_onehot = self.one_hot(y, z.shape[0])
        if self.config.conditioning == "concat":
            return torch.cat([z, y_onehot], dim=1)  # (B, k) -> (B, k + 10)
        if self.config.conditioning == "project":
            return z + self.label_projection(y_onehot)  # (B, k)
        if self.config.conditioning == "project-relu":
            return z + F.relu(self.label_projection(y_onehot))  # (B, k)
        prior = self.prior(y, z.shape[0])  # "prior": u = mu_y + sigma_y z, then [u; y]
        return torch.cat([prior.mu + torch.exp(0.5 * prior.logvar) * z, y_onehot], dim=1)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x | z, y), shape (B, 1, 28, 28)."""
        return _unflatten(self.decoder(self.decoder_input(z, y)))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar, eps)
        logits = self.decode(z, y)
        return VAEOutput(mu, logvar, z, logits, torch.sigmoid(logits))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
             eps: torch.Tensor | None = None) -> LossParts:
        """recon + beta * KL(q(u | x, y) || p(u | y)) in nats per image; beta = 1: the negative ELBO."""
        if self.config.conditioning != "prior":
            return _elbo_parts(self(x, y, eps=eps), x, beta)
        post, prior = self.encode_u(x, y), self.prior(y, len(x))
        u = reparameterize(post.mu, post.logvar, eps)
        logits = _unflatten(self.decoder(torch.cat([u, self.one_hot(y, len(u))], dim=1)))
        recon = bernoulli_nll(logits, check_images(x).reshape(-1, *IMAGE_SHAPE)).mean()
        kl = gaussian_kl_between(post.mu, post.logvar, prior.mu, prior.logvar).mean()
        return LossParts(loss=recon + beta * kl, recon=recon, kl=kl)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | list[int], temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One image per label, (N, 1, 28, 28) in [0, 1], from z ~ N(0, T^2 I) (u ~ the label's prior)."""
        check_temperature(temperature)
        y = sample_labels(labels)
        z = temperature * _prior_noise(len(y), self.config.latent_dim, generator, _device(self))
        return torch.sigmoid(self.decode(z, y))


# ----------------------------------------------------------------------------- classifier
# Images per forward pass of the classifier when it reads many: its first convolution and
# pooling hold 1.25 x batch x 32 x 28 x 28 floats (12.5 MB at 100, 125 MB at 1,000); at 100 they stay
# below settings.release_freed_memory's threshold, so glibc reuses them (a hub gives ~1 GB).
CLASSIFIER_BATCH = 100


class DigitClassifier(nn.Module):
    """A small CNN that reads digits (about 99% on the MNIST test set).

    The course uses it as a judge: ``label_accuracy`` asks it which digit a CVAE drew.
    """

    conditional = False
    variational = False
    generative = False

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        # Pooling before the ReLU: max(relu(a), relu(b), ...) = relu(max(a, b, ...)), so the function and
        # its gradients are those of the usual conv-ReLU-pool, with the ReLU on a quarter of the values
        # (a training step 1.24x faster on one CPU thread). The convolutions keep their places (0 and 3),
        # so checkpoints saved in the usual order load unchanged.
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),  # -> (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),  # -> (B, c2, 7, 7)
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c2 * 7 * 7, config.hidden_dim), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.hidden_dim, NUM_CLASSES),
        )
        # Convolution weights stored channels-last (N, H, W, C in memory) make every feature map
        # channels-last too. On a CPU, max pooling over channels-first maps is about twice as slow, and
        # as `train` runs a training step took 1.36x to 1.47x as long channels-first
        # (benchmarks/bench_overheads.py). Same numbers either way; checkpoints load either way.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (B, 10)."""
        x = check_images(x).reshape(-1, *IMAGE_SHAPE)
        return self.head(self.features(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
             eps: torch.Tensor | None = None) -> LossParts:
        """Cross-entropy of the true labels, nats per image (``beta`` and ``eps`` unused)."""
        if y is None:
            raise ValueError("the classifier's loss needs the true digit labels y")
        ce = F.cross_entropy(self(x), check_labels(y, len(x), NUM_CLASSES).to(x.device))
        return LossParts(loss=ce, recon=ce, kl=torch.zeros((), device=ce.device))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch_size: int = CLASSIFIER_BATCH) -> torch.Tensor:
        """softmax of the logits for each image, (B, 10) on the CPU; always with dropout off."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        require_tensor(x, "images", "torch.as_tensor(images)")
        if len(x) == 0:
            self.train(was_training)
            return torch.zeros(0, NUM_CLASSES)
        probs = torch.cat([F.softmax(self(x[i : i + batch_size].to(device)), dim=1).cpu()
                           for i in range(0, len(x), batch_size)])
        self.train(was_training)
        return probs

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = CLASSIFIER_BATCH) -> torch.Tensor:
        """Predicted digit for each image, shape (B,) on x's device; always with dropout off."""
        was_training = self.training
        self.eval()
        require_tensor(x, "images", "torch.as_tensor(images)")
        if len(x) == 0:
            self.train(was_training)
            return torch.zeros(0, dtype=torch.long, device=x.device)
        labels = torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
        self.train(was_training)
        return labels


MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "AutoEncoder": (AutoEncoder, AEConfig),
    "VAE": (VAE, VAEConfig),
    "CVAE": (CVAE, CVAEConfig),
    "DigitClassifier": (DigitClassifier, ClassifierConfig),
}
