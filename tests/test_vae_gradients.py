"""The whole loss of each model against finite differences on every parameter (float64,
eps held fixed): each likelihood, each estimator, beta, free bits, IWAE, weight decay."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from npvae.testing import assert_gradcheck, seeds
from npvae import check_params, nn
from npvae.distributions import Bernoulli
from npvae.models import VAE, Autoencoder, ConditionalVAE

likelihoods = st.sampled_from(["bernoulli", "gaussian", "gaussian_learned_var", "gaussian_decoder_var"])
settings = st.sampled_from([
    dict(estimator="B"), dict(estimator="A"), dict(objective="iwae"),
    dict(estimator="B", beta=0.3, free_bits=0.05), dict(estimator="A", beta=4.0), dict(estimator="B", beta=2.0),
])


def data(rng, likelihood, n, d):
    return rng.random((n, d)) if likelihood == "bernoulli" else rng.standard_normal((n, d))


def assert_loss_gradients(model, **kwargs):
    model.loss_and_grad(**kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(**kwargs)[0], model.params, grads))


@given(likelihoods, settings, st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["tanh", "softplus", "elu"]), st.sampled_from([0.0, 0.1]), seeds)
def test_vae_loss_gradients(likelihood, setting, n, n_samples, latent, activation, wd, seed):
    rng = np.random.default_rng(seed)
    model = VAE.mlp(5, (4,), latent, activation, likelihood, rng=rng, dtype="float64")
    if likelihood == "gaussian_learned_var":
        model.params["likelihood.logvar"][:] = rng.uniform(-1, 1, 5)
    x = data(rng, likelihood, n, 5)
    eps = rng.standard_normal((n, n_samples, latent))
    assert_loss_gradients(model, x=x, eps=eps, n_samples=n_samples, weight_decay_lambda=wd, **setting)


@given(settings, st.integers(1, 4), st.integers(1, 2), seeds)
def test_conditional_vae_loss_gradients(setting, n, n_samples, seed):
    rng = np.random.default_rng(seed)
    model = ConditionalVAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=rng, dtype="float64", n_classes=3)
    x, y = rng.random((n, 6)), rng.integers(0, 3, n)
    eps = rng.standard_normal((n, n_samples, 2))
    assert_loss_gradients(model, x=x, y=y, eps=eps, n_samples=n_samples, **setting)


@given(likelihoods, st.integers(1, 4), seeds)
def test_autoencoder_loss_gradients(likelihood, n, seed):
    rng = np.random.default_rng(seed)
    model = Autoencoder.mlp(5, (4,), 2, "tanh", likelihood, rng=rng, dtype="float64")
    assert_loss_gradients(model, x=data(rng, likelihood, n, 5), weight_decay_lambda=0.05)


@given(settings, seeds)
def test_conv_vae_loss_gradients(setting, seed):
    """Conv encoder and decoder on (1, 6, 6) images."""
    rng = np.random.default_rng(seed)
    encoder = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1, rng=rng), nn.Tanh(), nn.Flatten(),
                            nn.Linear(18, 4, rng=rng))
    decoder = nn.Sequential(nn.Linear(2, 18, rng=rng), nn.Tanh(), nn.Reshape((2, 3, 3)),
                            nn.ConvTranspose2d(2, 1, 4, stride=2, padding=1, rng=rng))
    model = VAE(encoder, decoder, Bernoulli(), 2, (1, 6, 6)).astype(np.float64)
    x = rng.random((2, 1, 6, 6))
    assert_loss_gradients(model, x=x, eps=rng.standard_normal((2, 2, 2)), n_samples=2, **setting)


def test_estimator_a_expectation_equals_estimator_b():
    """Same eps for both: A - B = mean_l [log p(z_l) - log q(z_l|x)] + KL, whose
    expectation is 0; averaged over many draws it vanishes within its standard error."""
    rng = np.random.default_rng(0)
    model = VAE.mlp(6, (5,), 3, "tanh", "bernoulli", rng=rng, dtype="float64")
    x = rng.random((3, 6))
    eps = rng.standard_normal((3, 20000, 3))
    a = model.elbo(x, eps=eps, n_samples=20000, estimator="A")
    b = model.elbo(x, eps=eps, n_samples=20000, estimator="B")
    mean, logvar = model.encode(x)
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    diff = -0.5 * np.sum(z**2, axis=2) + 0.5 * np.sum(logvar[:, None] + eps**2, axis=2)
    se = diff.std(axis=1) / np.sqrt(20000)
    assert np.all(np.abs(a - b) < 4 * se)
    assert np.all(se < 0.05)


@given(likelihoods, st.sampled_from([3, 4]), st.booleans(), seeds)
def test_conv_builder_models_loss_gradients(likelihood, kernel_size, conditional, seed):
    """Builder-made conv models on odd-sized images (the decoder's output_padding), the
    conditional one with its labels as constant input channels."""
    rng = np.random.default_rng(seed)
    cls, extra = (ConditionalVAE, {"n_classes": 2}) if conditional else (VAE, {})
    model = cls.conv((1, 5, 4), (2,), kernel_size, 2, "tanh", likelihood, rng=rng, dtype="float64", **extra)
    x = data(rng, likelihood, 2, 20).reshape(2, 1, 5, 4)
    labels = {"y": rng.integers(0, 2, 2)} if conditional else {}
    assert_loss_gradients(model, x=x, eps=rng.standard_normal((2, 1, 2)), **labels)


@given(st.sampled_from([(1.0, 0.5), (0.0, 2.0), (3.0, 0.0)]), st.booleans(), seeds)
def test_loss_gradients_with_the_mae_regulariser(eta_gamma, conv, seed):
    """MAE on, with beta and free bits, in an MLP VAE and a conv VAE."""
    rng = np.random.default_rng(seed)
    if conv:
        model = VAE.conv((1, 5, 4), (2,), 3, 2, "tanh", "bernoulli", rng=rng, dtype="float64")
        x = rng.random((3, 1, 5, 4))
    else:
        model = VAE.mlp(5, (4,), 3, "tanh", "bernoulli", rng=rng, dtype="float64")
        x = rng.random((4, 5))
    eps = rng.standard_normal((len(x), 1, model.latent_dim))
    assert_loss_gradients(model, x=x, eps=eps, beta=0.7, free_bits=0.01, mae_eta=eta_gamma[0],
                          mae_gamma=eta_gamma[1])
