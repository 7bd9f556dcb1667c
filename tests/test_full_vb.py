"""Full variational Bayes: the Bayesian linear layer (both noise modes) and its weight KL
against finite differences with the noise fixed, the local reparameterisation's
distribution, and the VAE with a Bayesian decoder: its whole gradient, specs, fit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import check_params, io, nn
from npvae.models import BayesianDecoderVAE
from npvae.spec import build_model, model_spec
from npvae.testing import assert_gradcheck, assert_layer_contract, seeds
from npvae.tour import tour
from npvae.train import fit


def layer(local, seed=0, logsigma=-1.0):
    return nn.BayesianLinear(4, 3, prior_std=0.8, init_logsigma=logsigma, local_reparam=local, rng=seed,
                             dtype=np.float64)


def fix_noise(bayesian, rows, rng):
    bayesian.noise = (rng.standard_normal((rows, bayesian.out_features)) if bayesian.local_reparam else
                      (rng.standard_normal(bayesian.params["W"].shape), rng.standard_normal(bayesian.out_features)))


@settings(max_examples=10)
@given(st.booleans(), st.integers(1, 5), seeds)
def test_the_layer_keeps_the_contract_with_its_noise_fixed(local, n, seed):
    rng = np.random.default_rng(seed)
    bayesian = layer(local, rng)
    bayesian.params["W_logsigma"][:] = rng.uniform(-2, 0, (4, 3))
    fix_noise(bayesian, n, rng)
    assert_layer_contract(bayesian, rng.standard_normal((n, 4)))


@settings(max_examples=10)
@given(seeds)
def test_the_weight_kl_and_its_gradient(seed):
    rng = np.random.default_rng(seed)
    bayesian = layer(True, rng)
    for name, p in bayesian.params.items():
        p[:] = rng.uniform(-1.5, 0.5, p.shape)
    m, s, prior = bayesian.params["W"], np.exp(bayesian.params["W_logsigma"]), 0.8
    # one entry's KL(N(m, s^2) || N(0, prior^2)), by the textbook formula
    w_kl = np.log(prior / s) + (s**2 + m**2) / (2 * prior**2) - 0.5
    b, sb = bayesian.params["b"], np.exp(bayesian.params["b_logsigma"])
    expected = w_kl.sum() + (np.log(prior / sb) + (sb**2 + b**2) / (2 * prior**2) - 0.5).sum()
    assert bayesian.kl() == pytest.approx(expected, rel=1e-12)
    bayesian.zero_grad()
    assert bayesian.kl(1.0) == pytest.approx(expected, rel=1e-12)  # the KL and, in the same pass, its gradient
    grads = {k: g.copy() for k, g in bayesian.grads.items()}
    assert_gradcheck(check_params(bayesian.kl, bayesian.params, grads))
    bayesian.params["W"][:], bayesian.params["W_logsigma"][:] = 0, np.log(prior)  # q = p: KL 0
    bayesian.params["b"][:], bayesian.params["b_logsigma"][:] = 0, np.log(prior)
    assert abs(bayesian.kl()) < 1e-12


def test_local_noise_gives_each_output_the_distribution_of_one_weight_draw():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4))
    outputs = {}
    for local in (True, False):
        bayesian = layer(local, seed=1, logsigma=-0.5)
        bayesian.rng = np.random.default_rng(2)
        outputs[local] = np.concatenate([bayesian.forward(x) for _ in range(8000)])
    p = bayesian.params
    mean = x @ p["W"] + p["b"]
    var = (x * x) @ np.exp(2 * p["W_logsigma"]) + np.exp(2 * p["b_logsigma"])
    for y in outputs.values():
        assert np.all(np.abs(y.mean(axis=0) - mean[0]) < 4 * np.sqrt(var[0] / 8000))
        np.testing.assert_allclose(y.var(axis=0), var[0], rtol=0.08)


@settings(max_examples=6)
@given(st.sampled_from([dict(), dict(objective="iwae"), dict(estimator="A", reduction="sum")]), st.booleans(),
       st.integers(1, 3), seeds)
def test_the_whole_gradient_with_the_weight_kl(setting, local, n_samples, seed):
    rng = np.random.default_rng(seed)
    model = BayesianDecoderVAE.mlp(5, (4,), 2, n_train=50, prior_std=0.9, init_logsigma=-1.0, local_reparam=local,
                                   rng=rng, dtype="float64")
    model.weight_kl_weight = 0.7
    x = rng.random((3, 5))
    for bayesian in model.decoder:
        if isinstance(bayesian, nn.BayesianLinear):
            fix_noise(bayesian, 3 * n_samples, rng)
    kwargs = dict(eps=rng.standard_normal((3, n_samples, 2)), n_samples=n_samples, **setting)
    loss, stats = model.loss_and_grad(x, **kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert stats["bound"] == pytest.approx(stats["elbo"] - model.weight_kl() / 50)
    assert_gradcheck(check_params(lambda: model.loss_and_grad(x, **kwargs)[0], model.params, grads))


def test_spec_checkpoint_fit_and_weight_draws(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((60, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.float32)
    model = BayesianDecoderVAE.mlp(6, (5,), 2, n_train=60, rng=0)
    spec = model_spec(model)
    assert spec["n_train"] == 60 and spec["decoder"]["layers"][0]["layer"] == "BayesianLinear"
    assert sorted(build_model(spec).params) == sorted(model.params)
    history = fit(model, x, x, epochs=10, batch_size=20, lr=1e-2, log=None)
    assert history["val_elbo"][-1] > history["val_elbo"][0]
    io.save_checkpoint(tmp_path / "c.npz", model)
    loaded = io.load_model(tmp_path / "c.npz")
    assert isinstance(loaded, BayesianDecoderVAE) and loaded.n_train == 60
    assert all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())
    z = np.zeros((2, 2), np.float32)
    draws = model.decode_with_weights(z, 3, rng=1)
    assert draws.shape == (3, 2, 6) and not np.allclose(draws[0], draws[1])
    assert np.allclose(draws[:, 0], draws[:, 1])  # one weight draw decodes both z (equal here) alike
    assert np.array_equal(model.sample(3, 5), model.sample(3, 5))  # the weight noise comes from rng too
    result = tour(model, x[:4])
    assert result["all_passed"] and {e["type"] for e in result["layers"]} >= {"BayesianLinear"}
    with pytest.raises(ValueError, match="decoder: expected a Sequential with BayesianLinear layers"):
        BayesianDecoderVAE(model.encoder, nn.Sequential(nn.Linear(2, 6)), model.likelihood, 2, (6,), 60)
