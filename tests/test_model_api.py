"""The public model API: shapes, sampling modes, reconstruction, labels."""

import numpy as np
import pytest

from npvae.models import VAE, ConditionalVAE


def test_vae_api_shapes_and_sampling_modes():
    rng = np.random.default_rng(0)
    model = VAE.mlp(12, (8,), 3, "relu", "bernoulli", rng=0)
    x = rng.random((5, 12)).astype(np.float32)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, 3) and mean.dtype == np.float32
    assert model.decode(mean).shape == (5, 12)
    assert model.reconstruct(x).shape == x.shape
    ancestral = model.sample(50, rng)
    assert set(np.unique(ancestral)) <= {0.0, 1.0}  # x ~ Bernoulli: binary
    means = model.sample(50, rng, mean=True)
    assert np.all((means > 0) & (means < 1)) and len(np.unique(means)) > 2
    assert model.elbo(x, rng=rng).shape == (5,)
    assert model.log_likelihood(x, k=20, rng=rng).shape == (5,)
    assert set(model.params) == {"encoder.0.W", "encoder.0.b", "encoder.1.W", "encoder.1.b",
                                 "decoder.0.W", "decoder.0.b", "decoder.1.W", "decoder.1.b"}


def test_gaussian_learned_variance_is_a_parameter():
    model = VAE.mlp(4, (3,), 2, "tanh", "gaussian_learned_var", {"logvar_floor": -4.0}, rng=0)
    assert model.params["likelihood.logvar"].shape == (4,)
    samples = model.sample(2000, np.random.default_rng(0))
    assert samples.std() > 0.5  # ancestral samples carry the unit variance of the noise


def test_conditional_vae_samples_per_label():
    model = ConditionalVAE.mlp(6, (5,), 2, "tanh", "bernoulli", rng=0, n_classes=3)
    rng = np.random.default_rng(0)
    a = model.sample(4, np.random.default_rng(1), mean=True, y=0)
    b = model.sample(4, np.random.default_rng(1), mean=True, y=2)
    assert a.shape == (4, 6) and not np.allclose(a, b)  # same z, other label: other output
    x = rng.random((3, 6)).astype(np.float32)
    assert model.log_likelihood(x, y=np.array([0, 1, 2]), k=10, rng=rng).shape == (3,)


def test_vae_refuses_labels_and_bad_arguments():
    model = VAE.mlp(6, (5,), 2, rng=0)
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match="y: this model takes no labels"):
        model.encode(x, y=np.array([0, 1]))
    with pytest.raises(ValueError, match="estimator: expected one of"):
        model.loss_and_grad(x, rng=np.random.default_rng(0), estimator="C")
    with pytest.raises(ValueError, match="beta, free_bits, mae_eta, mae_gamma: the IWAE bound takes none of them"):
        model.loss_and_grad(x, rng=np.random.default_rng(0), objective="iwae", beta=0.5)
    with pytest.raises(ValueError, match=r"eps: expected shape \(N, 1, 2\)|eps: expected shape \(2, 1, 2\)"):
        model.loss_and_grad(x, eps=np.zeros((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match="estimator: expected one of"):
        model.elbo(x, rng=0, estimator="C")
    with pytest.raises(ValueError, match="n_samples: expected an integer >= 1, got 0"):
        model.elbo(x, rng=0, n_samples=0)
    assert model.sample(3, 0).shape == (3, 6)  # an int seed is accepted like everywhere else
    with pytest.raises(ValueError, match="activation: expected one of"):
        VAE.mlp(6, (5,), 2, "swish")


def test_check_input_false_skips_only_the_checks_of_x():
    model = VAE.mlp(6, (5,), 2, rng=0)
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    eps = np.random.default_rng(1).standard_normal((4, 1, 2)).astype(np.float32)
    checked = model.loss_and_grad(x, eps=eps)[0]
    assert model.loss_and_grad(x, eps=eps, check_input=False)[0] == checked
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\]"):
        model.loss_and_grad(x + 1, eps=eps)
    assert np.isfinite(model.loss_and_grad(x + 1, eps=eps, check_input=False)[0])  # the caller vouches for x
    with pytest.raises(ValueError, match="estimator: expected one of"):  # the other arguments are still checked
        model.loss_and_grad(x, eps=eps, estimator="C", check_input=False)
