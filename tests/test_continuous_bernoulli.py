"""The continuous Bernoulli likelihood: its log-normaliser, mean and spread against
numerical integration on both sides of the switch to their Taylor series, its gradient
against finite differences, its samples in [0, 1], and a VAE that trains with it."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad

from npvae import check_params
from npvae.distributions import SERIES_BELOW, ContinuousBernoulli, cb_log_normaliser, cb_log_normaliser_grad
from npvae.models import VAE
from npvae.testing import assert_gradients_match, seeds

CB = ContinuousBernoulli()
EDGES = [SERIES_BELOW * (1 - 1e-12), SERIES_BELOW * (1 + 1e-12)]  # just either side of the switch


def integrated(l):
    """(log C, mean, std) by quadrature of lambda^x (1 - lambda)^(1 - x) on [0, 1]."""
    lam = 1 / (1 + np.exp(-l))
    kernel = lambda x, k: x**k * lam**x * (1 - lam) ** (1 - x)  # noqa: E731
    z, m1, m2 = (quad(kernel, 0, 1, args=(k,), epsabs=0, epsrel=1e-13)[0] for k in (0, 1, 2))
    return -np.log(z), m1 / z, np.sqrt(m2 / z - (m1 / z) ** 2)


@pytest.mark.parametrize("l", [-12.0, -3.0, -0.5, -0.1, -EDGES[1], -EDGES[0], -1e-4, 0.0, 1e-7, 0.01, *EDGES, 0.2, 4.0])
def test_normaliser_mean_and_spread_equal_the_integrals(l):
    log_c, mean, std = integrated(l)
    arr = np.array([l])
    assert float(cb_log_normaliser(l)) == pytest.approx(log_c, rel=1e-12, abs=1e-13)
    assert float(CB.mean(arr)[0]) == pytest.approx(mean, rel=1e-11, abs=1e-13)
    assert float(CB.std(arr)[0]) == pytest.approx(std, rel=1e-9)


def test_the_switch_to_the_series_is_continuous():
    for f in (cb_log_normaliser, cb_log_normaliser_grad, CB.mean, CB.std):
        for sign in (1, -1):
            below, above = (float(np.asarray(f(np.array([sign * e])))[0]) for e in EDGES)
            assert below == pytest.approx(above, rel=1e-11, abs=1e-14), f


@given(st.one_of(st.floats(-2 * SERIES_BELOW, 2 * SERIES_BELOW), st.floats(-30, 30)))
def test_the_normalisers_gradient_matches_finite_differences(l):
    assert_gradients_match(lambda v: float(cb_log_normaliser(v).sum()), np.array([l]), grad=cb_log_normaliser_grad(np.array([l])))


@given(seeds, st.sampled_from([0.04, 3.0]))
def test_log_prob_and_grad_match_finite_differences(seed, scale):
    """Logits near 0 (the series) and spread out (the closed form)."""
    rng = np.random.default_rng(seed)
    x, logits = rng.random((3, 5)), scale * rng.standard_normal((3, 5))
    log_p, grad = CB.log_prob_and_grad(x, logits)
    assert_gradients_match(lambda l: float(CB.log_prob(x, l).sum()), logits, grad=grad)
    np.testing.assert_allclose(log_p, CB.log_prob(x, logits))


def test_samples_stay_in_the_unit_interval_with_the_right_moments():
    rng = np.random.default_rng(0)
    for l in (-800.0, -5.0, 0.0, 0.01, 3.0, 800.0):
        s = CB.sample(np.full(100_000, l), rng)
        assert s.min() >= 0 and s.max() <= 1
        assert abs(s.mean() - CB.mean(np.array([l]))[0]) < 5 * CB.std(np.array([l]))[0] / np.sqrt(len(s)) + 1e-6


def test_a_vae_with_it_trains_on_grey_levels_and_its_gradient_is_right():
    x = np.random.default_rng(0).random((6, 5))
    model = VAE.mlp(5, (4,), 2, "tanh", "continuous_bernoulli", rng=0, dtype="float64")
    eps = np.random.default_rng(1).standard_normal((6, 1, 2))
    model.loss_and_grad(x, eps=eps)
    grads = {k: g.copy() for k, g in model.grads.items()}
    result = check_params(lambda: model.loss_and_grad(x, eps=eps)[0], model.params, grads)
    assert result.ok, result
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\] for a continuous Bernoulli likelihood"):
        model.loss_and_grad(x + 1, eps=eps)
