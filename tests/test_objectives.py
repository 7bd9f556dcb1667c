"""Schedules, free bits, the IWAE weights and log-mean-exp."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from npvae.testing import assert_gradcheck, seeds
from npvae import check_function
from npvae.objectives import cyclical, importance_weights, kl_penalty, linear_warmup, log_mean_exp, weight_decay


def test_schedules():
    assert [linear_warmup(s, 4) for s in (0, 1, 2, 4, 10)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert linear_warmup(5, 0) == 1.0
    assert [cyclical(s, 8, 0.5) for s in (0, 2, 4, 7, 8, 10)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]


def test_log_mean_exp_is_stable():
    a = np.array([[1000.0, 1000.0], [-1000.0, -1000.0 + np.log(3)]])
    np.testing.assert_allclose(log_mean_exp(a, axis=1), [1000.0, -1000.0 + np.log(2)])


@given(st.integers(1, 4), st.integers(1, 6), seeds)
def test_importance_weights_are_the_gradient_of_log_mean_exp(n, k, seed):
    log_w = 10 * np.random.default_rng(seed).standard_normal((n, k))
    w = importance_weights(log_w, axis=1)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert_gradcheck(check_function(lambda a: log_mean_exp(a, axis=1).sum(), log_w, w))


@given(st.integers(1, 5), st.integers(1, 4), st.sampled_from([0.0, 0.2, 1.0]), seeds)
def test_free_bits_penalty_and_gradient(n, d, free_bits, seed):
    kl = np.random.default_rng(seed).uniform(0, 0.5, (n, d))
    kl[:, np.abs(kl.mean(0) - free_bits) < 1e-3] += 0.01  # away from the kink
    penalty, dkl = kl_penalty(kl, free_bits)
    assert np.isclose(penalty, sum(max(free_bits, m) for m in kl.mean(0)))
    assert_gradcheck(check_function(lambda a: kl_penalty(a, free_bits)[0], kl, dkl))


def test_weight_decay_skips_biases():
    params = {"0.W": np.ones((2, 2)), "0.b": np.ones(2)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    assert weight_decay(params, grads, 0.5) == 0.5 * 0.5 * 4
    np.testing.assert_array_equal(grads["0.W"], 0.5)
    np.testing.assert_array_equal(grads["0.b"], 0)
