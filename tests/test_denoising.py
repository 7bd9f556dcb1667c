"""Denoising: the corruption of the encoder's input, its gradients (finite differences
with the corrupted input held fixed), its schedule and its checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae import check_params
from npvae.datasets import corrupt
from npvae.models import VAE, Autoencoder
from npvae.testing import assert_gradcheck, seeds
from npvae.train import corruption_level, fit


@given(st.sampled_from([np.float32, np.float64]), st.floats(0, 1), seeds)
def test_masking_zeroes_a_fraction_and_keeps_the_rest(dtype, level, seed):
    x = np.random.default_rng(seed).uniform(0.1, 1, (50, 40)).astype(dtype)
    x_corrupted = corrupt(x, "mask", level, np.random.default_rng(seed + 1))
    kept = x_corrupted != 0
    assert x_corrupted.dtype == dtype and np.array_equal(x_corrupted[kept], x[kept])
    assert abs((1 - kept.mean()) - level) < 0.05  # 2,000 entries: 5 standard errors at worst


def test_gaussian_noise_has_the_level_as_its_sigma_and_level_zero_changes_nothing():
    x = np.zeros((200, 100))
    noise = corrupt(x, "gaussian", 0.3, np.random.default_rng(0))
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01
    assert np.array_equal(corrupt(x + 0.5, "mask", 0.0, np.random.default_rng(0)), x + 0.5)
    assert corrupt(x, "none", 0.7, np.random.default_rng(0)) is x


@pytest.mark.parametrize("kind, level", [("blur", 0.1), ("mask", 1.5), ("gaussian", -0.1), ("mask", float("nan"))])
def test_corrupt_refuses_what_it_cannot_do(kind, level):
    with pytest.raises(ValueError, match="kind|level"):
        corrupt(np.zeros(3), kind, level, np.random.default_rng(0))
    with pytest.raises(ValueError, match="x: "):
        corrupt(np.array([0.5, np.nan]), "mask", 0.5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="x: "):
        corrupt([0.5, 1.0], "mask", 0.5, np.random.default_rng(0))


@given(st.sampled_from(["bernoulli", "gaussian"]), st.sampled_from([dict(estimator="B"), dict(objective="iwae")]),
       st.integers(1, 3), seeds)
def test_denoising_vae_gradients(likelihood, setting, n, seed):
    """The encoder reads x_corrupted, the likelihood scores x: finite differences of
    the whole loss with both inputs and eps held fixed."""
    rng = np.random.default_rng(seed)
    model = VAE.mlp(5, (4,), 2, "tanh", likelihood, rng=rng, dtype="float64")
    x = rng.random((n, 5))
    kwargs = dict(x=x, x_corrupted=corrupt(x, "mask", 0.5, rng), eps=rng.standard_normal((n, 2, 2)), n_samples=2,
                  **setting)
    model.loss_and_grad(**kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(**kwargs)[0], model.params, grads))


@given(st.integers(1, 3), seeds)
def test_denoising_autoencoder_gradients(n, seed):
    rng = np.random.default_rng(seed)
    model = Autoencoder.mlp(5, (4,), 2, "tanh", "bernoulli", rng=rng, dtype="float64")
    x = rng.random((n, 5))
    kwargs = dict(x=x, x_corrupted=corrupt(x, "gaussian", 0.3, rng))
    model.loss_and_grad(**kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(**kwargs)[0], model.params, grads))


def test_the_corrupted_input_reaches_the_encoder_and_only_it():
    rng = np.random.default_rng(0)
    model = VAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=rng, dtype="float64")
    x, eps = rng.random((4, 6)), rng.standard_normal((4, 1, 2))
    clean = model.loss_and_grad(x, eps=eps)[0]
    assert model.loss_and_grad(x, eps=eps, x_corrupted=x.copy())[0] == clean
    masked = model.loss_and_grad(x, eps=eps, x_corrupted=np.zeros_like(x))
    mean, logvar = model.encode(np.zeros_like(x))
    z = mean + np.exp(0.5 * logvar) * eps[:, 0]
    log_px = model.likelihood.log_prob(x, model.decode(z))  # the clean x scored at codes of the masked one
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1 - logvar).sum(axis=1)
    assert masked[0] == pytest.approx(-(log_px - kl).mean(), rel=1e-12)


def test_the_scheduled_level_moves_linearly_from_start_to_final():
    s = {"corruption_level": 0.8, "corruption_final": 0.2}
    assert [corruption_level(s, t, 100) for t in (0, 50, 100, 150)] == pytest.approx([0.8, 0.5, 0.2, 0.2])
    assert corruption_level({"corruption_level": 0.3, "corruption_final": None}, 40, 100) == 0.3


@pytest.mark.parametrize("settings, message", [
    (dict(corruption_level=0.5), "go with a corruption"),
    (dict(corruption_final=0.1), "go with a corruption"),
    (dict(corruption="mask", corruption_final=1.2), "at most 1"),
    (dict(corruption="gaussian", corruption_level=-1.0), "corruption_level"),
])
def test_fit_refuses_bad_corruption_settings_before_any_work(settings, message):
    model = VAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=message):
        fit(model, np.full((10, 6), 0.5, dtype=np.float32), epochs=1, log=None, **settings)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


def test_a_denoising_run_trains_and_resumes_bit_for_bit(tmp_path):
    x = np.random.default_rng(0).random((60, 6)).astype(np.float32)
    settings = dict(epochs=2, batch_size=20, corruption="mask", corruption_level=0.6, corruption_final=0.1,
                    binarize=True, log=None)
    whole = VAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=0)
    fit(whole, x, **settings)
    first = VAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=0)
    fit(first, x, checkpoint_dir=tmp_path, callbacks=(lambda epoch, history: epoch == 1,), **settings)
    resumed = VAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=0)
    fit(resumed, x, resume=tmp_path / "checkpoint.npz", **settings)
    assert all(np.array_equal(whole.params[k], resumed.params[k]) for k in whole.params)
