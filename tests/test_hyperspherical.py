"""The von Mises-Fisher latent: samples on the sphere with the right mean resultant
length, the KL to the uniform prior against Monte Carlo and its derivative, the
implicit gradient of w against finite differences through the inverse CDF, the
Householder backward, and the hyperspherical VAE's whole gradient with the sampler held
fixed; specs, fit, the CLI."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import check_params, diagnostics, hyperspherical as vmf, io
from npvae.models import HypersphericalVAE
from npvae.spec import build_model, model_spec
from npvae.testing import assert_gradcheck, seeds
from npvae.tour import tour
from npvae.train import fit

dims = st.sampled_from([2, 3, 5, 10, 40, 100])
kappas = st.floats(-1, 3).map(lambda e: 10.0**e)  # 0.1 to 1000


@settings(max_examples=12)
@given(dims, kappas, seeds)
def test_samples_lie_on_the_sphere_with_mean_resultant_length_a_d(d, kappa, seed):
    rng = np.random.default_rng(seed)
    mu = vmf.uniform_sphere(rng, (1,), d).repeat(4000, axis=0)
    z, _ = vmf.sample(mu, np.full(4000, kappa), rng)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-12)
    cosines = z @ mu[0]
    a = vmf.mean_resultant_length(d, kappa)
    assert abs(cosines.mean() - a) < 5 * cosines.std() / np.sqrt(4000) + 1e-9, (cosines.mean(), a)
    # the rest of z is symmetric about mu: its mean is A_d(kappa) mu
    assert np.linalg.norm(z.mean(axis=0) - a * mu[0]) < 6 * np.sqrt(d / 4000)


@pytest.mark.parametrize("d, kappa", [(2, 0.5), (3, 10.0), (10, 50.0), (100, 30.0)])
def test_the_kl_equals_a_monte_carlo_estimate(d, kappa):
    rng = np.random.default_rng(0)
    mu = np.eye(d)[[0] * 20000]
    z, _ = vmf.sample(mu, np.full(20000, kappa), rng)
    log_ratio = vmf.log_prob(z, mu, np.full(20000, kappa)) + vmf.log_sphere_area(d)  # log q - log p
    kl, _ = vmf.kl_to_uniform(d, kappa)
    assert abs(log_ratio.mean() - kl) < 5 * log_ratio.std() / np.sqrt(20000)


@given(dims, kappas)
def test_the_kl_derivative_in_kappa_is_finite_nonnegative_and_matches_differences(d, kappa):
    kl, dkl = vmf.kl_to_uniform(d, kappa)
    h = 1e-3 * kappa
    numeric = (vmf.kl_to_uniform(d, kappa + h)[0] - vmf.kl_to_uniform(d, kappa - h)[0]) / (2 * h)
    assert np.isfinite(kl) and kl >= -1e-12 and dkl >= -1e-12
    # the difference's own rounding: KL is a sum of terms of size ~d that cancel at small kappa
    assert abs(dkl - numeric) <= 1e-5 * abs(numeric) + 1e-14 * (d + kappa) / h
    assert np.isfinite(vmf.kl_to_uniform(d, 1e5)[0])  # large kappa: the scaled Bessel functions


@settings(max_examples=10)
@given(st.sampled_from([2, 3, 5, 20]), st.floats(-0.5, 2).map(lambda e: 10.0**e), seeds)
def test_the_implicit_gradient_of_w_matches_differences_at_a_fixed_cdf_value(d, kappa, seed):
    u = np.random.default_rng(seed).uniform(0.02, 0.98, 3)
    k = np.full(3, kappa)
    w = vmf.w_from_cdf(d, k, u)
    h = 1e-4 * kappa
    numeric = (vmf.w_from_cdf(d, k + h, u) - vmf.w_from_cdf(d, k - h, u)) / (2 * h)
    np.testing.assert_allclose(vmf.dw_dkappa(d, k, w), numeric, rtol=1e-4, atol=1e-10)


@settings(max_examples=4)
@given(st.sampled_from([2, 3, 6]), seeds)
def test_the_sample_backward_matches_differences_with_the_sampler_fixed(d, seed):
    rng = np.random.default_rng(seed)
    mu, kappa = vmf.uniform_sphere(rng, (4,), d), rng.uniform(0.5, 20, 4)
    cdf, v, dz = rng.uniform(0.05, 0.95, 4), vmf.uniform_sphere(rng, (4,), d - 1), rng.standard_normal((4, d))
    z, cache = vmf.sample(mu, kappa, rng, cdf, v)
    dmu, dkappa = vmf.sample_backward(dz, cache)
    loss = lambda: float(np.sum(vmf.sample(mu, kappa, rng, cdf, v)[0] * dz))  # noqa: E731
    assert_gradcheck(check_params(loss, {"mu": mu, "kappa": kappa}, {"mu": dmu, "kappa": dkappa}, rtol=1e-5))


@settings(max_examples=2)
@given(st.sampled_from([2, 3, 5]), st.integers(1, 2), st.sampled_from(["bernoulli", "gaussian"]), seeds)
def test_the_whole_gradient_with_the_sampler_held_fixed(d, n_samples, likelihood, seed):
    rng = np.random.default_rng(seed)
    model = HypersphericalVAE.mlp(6, (5,), d, "tanh", likelihood, rng=rng, dtype="float64")
    x = rng.random((3, 6))
    model.fixed_noise(rng.uniform(0.02, 0.98, 3 * n_samples), vmf.uniform_sphere(rng, (3 * n_samples,), d - 1))
    kwargs = dict(n_samples=n_samples, beta=0.7, weight_decay_lambda=0.05)
    model.loss_and_grad(x, **kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(x, **kwargs)[0], model.params, grads))


def test_the_model_trains_evaluates_saves_and_refuses(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((80, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.float32)
    model = HypersphericalVAE.mlp(6, (8,), 3, rng=0)
    history = fit(model, x, x, epochs=10, batch_size=20, lr=1e-2, log=None)
    assert history["val_elbo"][-1] > history["val_elbo"][0]
    elbo, log_px = model.elbo(x[:10], rng=0), model.log_likelihood(x[:10], k=100, rng=1)
    assert np.all(np.isfinite(log_px)) and log_px.mean() > elbo.mean()
    assert model.sample(4, 0).shape == (4, 6) and diagnostics.active_units(model, x)[0] <= 3
    io.save_checkpoint(tmp_path / "c.npz", model)
    loaded = io.load_model(tmp_path / "c.npz")
    assert isinstance(loaded, HypersphericalVAE) and model_spec(loaded) == model_spec(model)
    assert sorted(build_model(model_spec(model)).params) == sorted(model.params)
    result = tour(model, x[:4])
    assert result["all_passed"] and "encoder_output_split" not in result
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="a HypersphericalVAE trains on the ELBO with its analytic KL"):
        model.loss_and_grad(x, rng=0, objective="iwae", n_samples=2)
    with pytest.raises(ValueError, match="eps: a vMF sample is not a Gaussian's eps"):
        model.loss_and_grad(x, eps=np.zeros((80, 1, 3), np.float32))
    with pytest.raises(ValueError, match="latent_dim: expected an integer >= 2"):
        HypersphericalVAE.mlp(6, (8,), 1)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


def test_the_cli_trains_and_evaluates_a_vmf_vae(tmp_path, capsys):
    from npvae.cli import main

    out = tmp_path / "run"
    assert main(["train", "--latent-distribution", "vmf", "--hidden", "8", "--latent", "3", "--train-size", "200",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert isinstance(io.load_model(out / "checkpoint.npz"), HypersphericalVAE)
    assert main(["eval", str(out / "checkpoint.npz"), "--n", "20", "--k", "3"]) == 0
    assert "active units: z " in capsys.readouterr().out
    assert main(["train", "--latent-distribution", "vmf", "--model", "cvae", "--out", str(tmp_path / "x")]) == 2
    assert "--latent-distribution: vmf is for a one-layer vae" in capsys.readouterr().err


def test_bad_vmf_parameters_are_refused_naming_the_argument():
    rng = np.random.default_rng(0)
    mu = vmf.uniform_sphere(rng, (3,), 4)
    for args, error in (((2 * mu, np.ones(3)), "mu: expected unit vectors"),
                        ((mu[:, :1] / np.abs(mu[:, :1]), np.ones(3)), "mu: expected finite \\(N, d\\) directions"),
                        ((mu, np.array([1.0, -1.0, 1.0])), "kappa: expected 3 finite concentrations >= 0"),
                        ((mu, np.array([1.0, np.nan, 1.0])), "kappa: expected 3 finite"),
                        ((mu, np.ones(2)), "kappa: expected 3")):
        with pytest.raises(ValueError, match=error):
            vmf.sample(*args, rng)
    with pytest.raises(ValueError, match="cdf: expected 3 values in \\(0, 1\\)"):
        vmf.sample(mu, np.ones(3), rng, cdf=np.array([0.5, 1.0, 0.2]), v=vmf.uniform_sphere(rng, (3,), 3))
    with pytest.raises(ValueError, match="v: expected 3 unit vectors of 3 numbers"):
        vmf.sample(mu, np.ones(3), rng, cdf=np.full(3, 0.5), v=np.ones((3, 2)))
    with pytest.raises(ValueError, match="cdf, v: expected"):
        HypersphericalVAE.mlp(6, (4,), 3, rng=0).fixed_noise(np.full(4, 0.5), np.ones((4, 3)))
