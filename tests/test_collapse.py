"""Posterior collapse: the MAE regulariser (finite differences, a hand-computed case,
order invariance, both CPU backends, inside whole models) and the diagnostics (known
answers: a linear-Gaussian encoder's closed-form mutual information, an encoder that
ignores x)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae.testing import assert_gradcheck, seeds
from npvae import diagnostics, nn
from npvae.distributions import Gaussian, kl_standard_normal
from npvae.gradcheck import check_function
from npvae.kernels import cpu, reference
from npvae.models import VAE
from npvae.objectives import mae_regularizer
from npvae.train import fit

weights = st.sampled_from([(0.0, 1.0), (1.0, 0.0), (0.5, 0.3), (4.0, 2.0)])


def posteriors(seed, b, d, spread):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, d)) * 2, rng.uniform(-spread, spread, (b, d))


@given(seeds, st.integers(2, 6), st.integers(1, 4), st.sampled_from([1.0, 6.0]), weights)
def test_mae_gradient_matches_finite_differences(seed, b, d, spread, eta_gamma):
    """float64, batch sizes from 2, log-variances up to +/-6 (variance ratios of e^12)."""
    mean, logvar = posteriors(seed, b, d, spread)
    _, dmean, dlogvar, _, _ = reference.mae_penalty(mean, logvar, *eta_gamma)
    assert_gradcheck(check_function(lambda m: reference.mae_penalty(m, logvar, *eta_gamma)[0], mean, dmean,
                                    rtol=1e-5, atol=1e-7))
    assert_gradcheck(check_function(lambda lv: reference.mae_penalty(mean, lv, *eta_gamma)[0], logvar, dlogvar,
                                    rtol=1e-5, atol=1e-7))


def test_mae_two_examples_by_hand():
    """q_1 = N(0, 1), q_2 = N(0, 2): KL(q_1||q_2) = (1/2 - 1 + log 2) / 2, KL(q_2||q_1)
    = (2 - 1 - log 2) / 2; M is their mean, S the std of the two (one degree of freedom)."""
    mean, logvar = np.zeros((2, 1)), np.array([[0.0], [math.log(2)]])
    kl12, kl21 = 0.5 * (0.5 - 1 + math.log(2)), 0.5 * (2 - 1 - math.log(2))
    m = (kl12 + kl21) / 2
    s = math.sqrt(((kl12 - m) ** 2 + (kl21 - m) ** 2) / 1)
    eta, gamma = 0.5, 2.0
    expected = -eta * math.log(1 / (1 + math.exp(-m / eta))) + gamma * s
    for backend in (reference, cpu):
        value, _, _, ms, ss = backend.mae_penalty(mean, logvar, eta, gamma)
        assert value == pytest.approx(expected, rel=1e-12)
        assert ms[0] == pytest.approx(m, rel=1e-12) and ss == pytest.approx(s, rel=1e-12)
    # a batch collapsed onto one posterior: every KL is 0, so R = eta log 2 per dimension and S = 0
    value, dmean, dlogvar, _, s = reference.mae_penalty(np.ones((3, 4)), np.zeros((3, 4)), 1.0, 1.0)
    assert value == pytest.approx(4 * math.log(2)) and s == 0
    assert np.all(dmean == 0)  # the diversity term pushes variances apart, not equal means
    assert np.all(dlogvar == 0)


@given(seeds, st.integers(2, 7), st.integers(1, 3), weights)
def test_mae_is_invariant_to_the_order_of_the_batch(seed, b, d, eta_gamma):
    mean, logvar = posteriors(seed, b, d, 3.0)
    perm = np.random.default_rng(seed).permutation(b)
    v, dm, dl, _, _ = reference.mae_penalty(mean, logvar, *eta_gamma)
    vp, dmp, dlp, _, _ = reference.mae_penalty(mean[perm], logvar[perm], *eta_gamma)
    assert vp == pytest.approx(v, rel=1e-12)
    np.testing.assert_allclose(dmp, dm[perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlp, dl[perm], rtol=1e-10, atol=1e-12)


@given(seeds, st.integers(2, 40), st.integers(1, 20), weights, st.sampled_from([np.float32, np.float64]))
def test_mae_numba_backend_equals_the_reference(seed, b, d, eta_gamma, dtype):
    mean, logvar = (a.astype(dtype) for a in posteriors(seed, b, d, 4.0))
    ref, fast = reference.mae_penalty(mean, logvar, *eta_gamma), cpu.mae_penalty(mean, logvar, *eta_gamma)
    assert fast[0] == pytest.approx(ref[0], rel=1e-10)
    for a, r in zip(fast[1:3], ref[1:3]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-12)
    np.testing.assert_allclose(fast[3], ref[3], rtol=1e-10)


@pytest.mark.parametrize("args, error", [
    ((np.zeros((1, 3)), np.zeros((1, 3)), 1.0, 1.0), r"mean: the MAE regulariser compares pairs .* got 1"),
    ((np.zeros((4, 3)), np.zeros((4, 2)), 1.0, 1.0), r"mean, logvar: expected shapes \(B, d\), \(B, d\)"),
    ((np.zeros((4, 3)), np.zeros((4, 3)), -1.0, 1.0), r"mae_eta: expected a finite number >= 0, got -1.0"),
    ((np.zeros((4, 3)), np.zeros((4, 3)), 1.0, float("nan")), r"mae_gamma: expected a finite number >= 0"),
])
def test_mae_refuses_bad_input(args, error):
    with pytest.raises(ValueError, match=error):
        mae_regularizer(*args)


# ----------------------------------------------------------------------------- diagnostics
def linear_gaussian_vae(a, log_s2):
    """An encoder with mean = A x and a constant log-variance: for x ~ N(0, I) the
    aggregate posterior is N(0, A A^T + S), so I(x; z) = 1/2 log det(A A^T + S) / det S."""
    d, dim = a.shape
    encoder = nn.Linear(dim, 2 * d, rng=0)
    encoder.params["W"][...] = np.concatenate([a.T, np.zeros((dim, d))], axis=1)
    encoder.params["b"][...] = np.concatenate([np.zeros(d), log_s2])
    return VAE(nn.Sequential(encoder), nn.Sequential(nn.Linear(d, dim, rng=0)), Gaussian(), d, (dim,)).astype("float64")


def test_mutual_information_of_a_linear_gaussian_encoder_matches_its_closed_form():
    rng = np.random.default_rng(0)
    a, log_s2 = rng.standard_normal((2, 3)) * 0.8, np.log([0.5, 0.2])
    model, x = linear_gaussian_vae(a, log_s2), rng.standard_normal((4000, 3))
    exact = 0.5 * math.log(np.linalg.det(a @ a.T + np.diag(np.exp(log_s2))) / np.exp(log_s2).prod())
    estimates = [diagnostics.mutual_information(model, x, rng=s, batch_size=700) for s in range(4)]
    assert abs(np.mean(estimates) - exact) < 0.03, (estimates, exact)
    count, variances = diagnostics.active_units(model, x)
    np.testing.assert_allclose(variances, (x @ a.T).var(axis=0))
    assert count == 2


def test_an_encoder_that_ignores_x_has_no_information_and_no_active_units():
    model = linear_gaussian_vae(np.zeros((3, 4)), np.log([0.5, 1.0, 2.0]))
    x = np.random.default_rng(1).standard_normal((500, 4))
    assert diagnostics.mutual_information(model, x, rng=0) == pytest.approx(0.0, abs=1e-12)
    count, variances = diagnostics.active_units(model, x)
    assert count == 0 and np.all(variances == 0)
    expected = kl_standard_normal(np.zeros(3), np.log([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(diagnostics.kl_per_dimension(model, x), expected)


def test_diagnostics_do_not_depend_on_the_batch_size():
    model = VAE.mlp(6, (5,), 3, rng=0, dtype="float64")
    x = np.random.default_rng(2).random((50, 6))
    small, large = (diagnostics.collapse_report(model, x, rng=3, batch_size=b) for b in (7, 500))
    assert small["active_units"] == large["active_units"]
    np.testing.assert_allclose(small["kl_per_dimension"], large["kl_per_dimension"], rtol=1e-12)
    assert small["mutual_information"] == pytest.approx(large["mutual_information"], rel=1e-10)
    assert 0 < large["mutual_information"] <= math.log(50)  # the estimator's cap: log N
    with pytest.raises(ValueError, match="threshold: expected a finite number >= 0, got -1"):
        diagnostics.active_units(model, x, threshold=-1)
    with pytest.raises(ValueError, match=r"x: expected at least one example, got an empty array of shape \(0, 6\)"):
        diagnostics.kl_per_dimension(model, x[:0])


def test_fit_with_mae_and_diagnostics_every():
    model = VAE.mlp(8, (6,), 4, rng=0)
    x = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    history = fit(model, x, x[:30], epochs=3, batch_size=20, mae_eta=1.0, mae_gamma=0.5, diagnostics_every=2,
                  log=None)
    assert history["active_units"][0] is None and history["mutual_information"][0] is None
    assert all(isinstance(history[k][i], (int, float)) for k in ("active_units", "mutual_information") for i in (1, 2))
    with pytest.raises(ValueError, match="diagnostics_every: the diagnostics need a one-layer Gaussian VAE"):
        fit(model, x, epochs=1, diagnostics_every=1, log=None)
    with pytest.raises(ValueError, match=r"mae_gamma: expected a finite number in \[0, inf\), got -0.5"):
        fit(model, x, epochs=1, mae_gamma=-0.5, log=None)
    with pytest.raises(ValueError, match="the IWAE bound takes none of them"):
        model.loss_and_grad(x, rng=0, objective="iwae", n_samples=2, mae_eta=1.0)
