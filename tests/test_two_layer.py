"""The VAE with two stochastic layers: its whole gradient against finite differences
(ELBO with estimators B and A, IWAE with k > 1), log p(x) exact on a linear-Gaussian
two-layer model, the active units per layer, specs, checkpoints, fit, the CLI."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from npvae import check_params, diagnostics, io, nn
from npvae.distributions import Gaussian
from npvae.models import TwoLayerVAE
from npvae.spec import build_model, model_spec
from npvae.testing import assert_gradcheck, seeds
from npvae.train import fit
from npvae.tour import tour

SETTINGS = [dict(estimator="B"), dict(estimator="A"), dict(objective="iwae"),
            dict(estimator="B", beta=0.5, free_bits=0.05), dict(estimator="A", beta=2.0, weight_decay_lambda=0.1)]


def small(seed=0, likelihood="bernoulli", dtype="float64"):
    return TwoLayerVAE.mlp(6, (5,), 3, (4,), 2, "tanh", likelihood, rng=seed, dtype=dtype)


@settings(max_examples=4)
@given(st.sampled_from(SETTINGS), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["bernoulli", "gaussian"]),
       seeds)
def test_the_whole_gradient_matches_finite_differences(setting, n, n_samples, likelihood, seed):
    rng = np.random.default_rng(seed)
    model = small(rng, likelihood)
    x = rng.random((n, 6))
    kwargs = dict(x=x, eps=rng.standard_normal((n, n_samples, 3 + 2)), n_samples=n_samples, **setting)
    model.loss_and_grad(**kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert set(grads) >= {"encoder2.0.W", "prior.1.b"}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(**kwargs)[0], model.params, grads))


def test_the_estimators_agree_in_expectation_and_iwae_is_above():
    rng = np.random.default_rng(0)
    model, x = small(0), (rng.random((3, 6)) < 0.5).astype(float)
    b = model.elbo(x, rng=1, n_samples=20000)
    a = model.elbo(x, rng=2, n_samples=20000, estimator="A")
    np.testing.assert_allclose(a, b, atol=0.05)  # the same ELBO; B's analytic KL only lowers the variance
    assert np.all(model.log_likelihood(x, k=200, rng=3) > b)


def linear_gaussian(rng, D=3, exact_q=True):
    """z2 ~ N(0, I), z1 | z2 ~ N(diag(a) z2 + c, diag(v)), x | z1 ~ N(W^T z1 + b, s^2 I), W's
    rows orthogonal: then p(z1 | x) and p(z2 | z1) are diagonal Gaussians with means linear
    in x and z1, which linear networks give exactly, and every importance weight is p(x)."""
    d, s = 2, 0.7
    a, c, v = np.array([1.5, -0.8]), np.array([0.3, -0.5]), np.array([0.4, 0.9])
    W = np.linalg.qr(rng.standard_normal((D, d)))[0].T * np.array([[2.0], [0.5]])  # (d, D), rows orthogonal
    b = rng.standard_normal(D)
    prior_var = a**2 + v  # z1's marginal variance
    p1 = 1 / prior_var + np.diag(W @ W.T) / s**2  # p(z1|x)'s precision
    p2 = 1 + a**2 / v  # p(z2|z1)'s precision

    def linear(n_in, n_out, W_mean, b_mean, logvar):
        layer = nn.Linear(n_in, 2 * n_out, dtype=np.float64)
        layer.params["W"][:] = 0
        layer.params["W"][:, :n_out], layer.params["b"][:n_out], layer.params["b"][n_out:] = W_mean, b_mean, logvar
        return layer

    encoder = linear(D, d, W.T / s**2 / p1, (c / prior_var - W @ b / s**2) / p1, -np.log(p1))
    encoder2 = linear(d, d, np.diag(a / v / p2), -c * a / v / p2, -np.log(p2))
    prior = linear(d, d, np.diag(a), c, np.log(v))
    if not exact_q:
        encoder.params["b"][:] += 0.3
    decoder = nn.Linear(d, D, dtype=np.float64)
    decoder.params["W"][:], decoder.params["b"][:] = W, b
    model = TwoLayerVAE(encoder, decoder, Gaussian(s), d, (D,), encoder2, prior, d)
    return model, multivariate_normal(c @ W + b, W.T @ np.diag(prior_var) @ W + s**2 * np.eye(D))


def test_log_likelihood_is_exact_on_a_linear_gaussian_two_layer_model():
    rng = np.random.default_rng(0)
    model, exact = linear_gaussian(rng)
    x = exact.rvs(8, random_state=1)
    log_px = exact.logpdf(x)
    for k in (1, 7):  # the joint proposal is the true posterior: every log-weight is log p(x)
        np.testing.assert_allclose(model.log_likelihood(x, k=k, rng=k), log_px, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.elbo(x, rng=0, estimator="A"), log_px, rtol=0, atol=1e-10)
    # estimator B samples ratio1 at one z2 and takes ratio2's expectation: exact on average only
    np.testing.assert_allclose(model.elbo(x, rng=0, n_samples=20000), log_px, rtol=0, atol=0.03)
    # a proposal off the posterior: the ELBO falls below, and importance sampling climbs back
    model, _ = linear_gaussian(np.random.default_rng(0), exact_q=False)
    elbo, iw = model.elbo(x, rng=0, n_samples=4000), model.log_likelihood(x, k=4000, rng=1)
    assert np.all(elbo < log_px - 0.05)
    assert np.abs(iw - log_px).mean() < 0.1 * np.abs(elbo - log_px).mean(), (iw - log_px, elbo - log_px)


def test_active_units_per_layer_follow_each_layers_encoder():
    rng = np.random.default_rng(0)
    model, x = small(0), rng.random((50, 6))
    (n1, v1), (n2, v2) = diagnostics.active_units_per_layer(model, x, threshold=0.0)
    assert (n1, n2, v1.shape, v2.shape) == (3, 2, (3,), (2,))
    model.encoder2[-1].params["W"][:, :2] = 0  # E_q[z2 | z1] no longer moves: layer 2 is dead, layer 1 is not
    (n1, _), (n2, v2) = diagnostics.active_units_per_layer(model, x, threshold=1e-12)
    assert n1 == 3 and n2 == 0 and np.all(v2 < 1e-20)


def test_spec_checkpoint_and_refusals(tmp_path):
    model = small(0, dtype="float32")
    spec = model_spec(model)
    assert spec["latent2_dim"] == 2 and spec["prior"]["layer"] == "Sequential"
    assert sorted(build_model(spec).params) == sorted(model.params)
    io.save_checkpoint(tmp_path / "c.npz", model)
    loaded = io.load_model(tmp_path / "c.npz")
    assert all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())
    with pytest.raises(ValueError, match="missing \\['prior'\\]"):
        build_model({k: v for k, v in spec.items() if k != "prior"})
    with pytest.raises(ValueError, match="spec: prior does not fit"):
        build_model({**spec, "prior": spec["encoder2"]})
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="mae_eta, mae_gamma: the MAE regulariser acts on a one-layer"):
        model.loss_and_grad(x, rng=0, mae_eta=1.0)
    with pytest.raises(ValueError, match="diagnostics_every: the diagnostics need a one-layer Gaussian VAE"):
        fit(model, x, x, epochs=1, diagnostics_every=1, log=None)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
    assert "encoder2=Sequential" in repr(model) and "prior=Sequential" in repr(model)


def test_fit_sample_and_tour():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.float32)
    model = small(0, dtype="float32")
    history = fit(model, x, x, epochs=8, batch_size=16, lr=1e-2, objective="iwae", n_samples=3, log=None)
    assert history["val_elbo"][-1] > history["val_elbo"][0]
    assert model.sample(5, 0).shape == (5, 6) and set(np.unique(model.sample(5, 0))) <= {0.0, 1.0}
    z2 = np.zeros((4, 2), np.float32)  # one z2 for all: the rows differ only by z1 ~ p(z1 | z2)
    assert model.sample(4, 1, mean=True, z2=z2).shape == (4, 6)
    result = tour(model, x[:4])
    assert result["all_passed"] and "encoder_output_split" not in result
    assert [e["layer"].split(".")[0] for e in result["layers"]][::2] == ["decoder", "prior", "encoder2", "encoder"]


def test_the_cli_trains_evaluates_and_samples_a_two_layer_vae(tmp_path, capsys):
    from npvae.cli import main

    out = tmp_path / "run"
    assert main(["train", "--stochastic-layers", "2", "--hidden", "8", "--latent", "3", "--hidden2", "6",
                 "--latent2", "2", "--train-size", "100", "--epochs", "1", "--out", str(out)]) == 0
    assert isinstance(io.load_model(out / "checkpoint.npz"), TwoLayerVAE)
    assert main(["eval", str(out / "checkpoint.npz"), "--n", "20", "--k", "3"]) == 0
    assert "active units: z1" in capsys.readouterr().out
    assert main(["sample", str(out / "checkpoint.npz"), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["train", "--stochastic-layers", "3", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--stochastic-layers", "2", "--arch", "conv", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "stochastic-layers: expected an integer >= 1 and <= 2, got '3'" in err
    assert "--stochastic-layers: 2 builds Burda et al.'s MLP VAE" in err and not (tmp_path / "y").exists()


@pytest.mark.parametrize("backend", ["numba"])
def test_every_backend_gives_the_numpy_loss_and_gradients(backend):
    """The model has no kernels of its own: its nodes call the backend's ops, which
    test_backends.py holds to the reference on every backend (its device-resident steps
    on the CUDA backend: tests/test_device_training.py)."""
    import npvae

    rng = np.random.default_rng(0)
    model, x = small(0), rng.random((2, 6))
    kwargs = dict(eps=rng.standard_normal((2, 2, 5)), n_samples=2, objective="iwae")
    loss, _ = model.loss_and_grad(x, **kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    npvae.kernels.use(backend)
    try:
        other, _ = model.loss_and_grad(x, **kwargs)
    finally:
        npvae.kernels.use("numpy")
    np.testing.assert_allclose(other, loss, rtol=1e-10)
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, grads[k], rtol=1e-8, atol=1e-12, err_msg=k)
