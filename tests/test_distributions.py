"""Distributions: gradients against finite differences, samplers against their densities."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae.testing import assert_gradcheck, seeds
from npvae import check_function, check_params
from npvae import distributions as D
from npvae.models.vae import latent_backward, latent_forward, log_ratio_backward, log_ratio_forward

shapes = st.tuples(st.integers(1, 5), st.integers(1, 4))


def gaussian_params(rng, shape):
    return rng.standard_normal(shape), rng.uniform(-2, 1.5, shape)


@given(shapes, seeds)
def test_reparameterize_backward(shape, seed):
    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    eps, w = rng.standard_normal(shape), rng.standard_normal(shape)
    dmean, dlogvar = D.reparameterize_backward(w, eps, logvar)
    assert_gradcheck(check_function(lambda m: np.sum(w * D.reparameterize(m, logvar, eps)[0]), mean, dmean))
    assert_gradcheck(check_function(lambda lv: np.sum(w * D.reparameterize(mean, lv, eps)[0]), logvar, dlogvar))


@given(shapes, st.integers(1, 3), seeds)
def test_log_ratio_node_and_its_gradient(shape, n_samples, seed):
    """The log-ratio node, log p(z) - log q(z|x) in eps-form, equals the densities'
    difference, and its backward (eps fixed) matches finite differences."""
    from npvae.kernels import reference

    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    eps, w = rng.standard_normal((shape[0], n_samples, shape[1])), rng.standard_normal((shape[0], n_samples))
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    ratio = reference.log_pz_minus_log_qz(z, eps, logvar)
    np.testing.assert_allclose(ratio, D.standard_normal_log_prob(z) - D.gaussian_log_prob(z, mean[:, None],
                                                                                         logvar[:, None]), atol=1e-9)
    loss = lambda: float(np.sum(w * log_ratio_forward(z, eps, logvar)[0]))  # noqa: E731
    dz, dlogvar = log_ratio_backward(w, log_ratio_forward(z, eps, logvar)[1])
    assert_gradcheck(check_params(loss, {"z": z, "logvar": logvar}, {"z": dz, "logvar": dlogvar}))


@given(shapes, st.integers(1, 3), seeds)
def test_log_ratio_with_a_prior_per_sample_and_its_gradient(shape, n_samples, seed):
    """log N(z; mean_p, exp(logvar_p)) - log q(z|x) in eps-form (the two-layer VAE's
    ratio1) equals the densities' difference; its backward (eps fixed) in z, logvar
    and the prior's [mean_p, logvar_p] matches finite differences."""
    from npvae.kernels import reference

    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    eps, w = rng.standard_normal((shape[0], n_samples, shape[1])), rng.standard_normal((shape[0], n_samples))
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    prior = np.concatenate(gaussian_params(rng, (shape[0] * n_samples, shape[1])), axis=1)
    d = shape[1]
    mean_p, logvar_p = prior[:, :d].reshape(z.shape), prior[:, d:].reshape(z.shape)
    np.testing.assert_allclose(reference.log_prior_minus_log_qz(z, eps, logvar, prior),
                               D.gaussian_log_prob(z, mean_p, logvar_p) - D.gaussian_log_prob(z, mean[:, None],
                                                                                              logvar[:, None]),
                               atol=1e-9)
    loss = lambda: float(np.sum(w * reference.log_prior_minus_log_qz(z, eps, logvar, prior)))  # noqa: E731
    dz, dlogvar, dprior = reference.log_prior_minus_log_qz_backward(w, z, prior)
    assert_gradcheck(check_params(loss, {"z": z, "logvar": logvar, "prior": prior},
                                  {"z": dz, "logvar": dlogvar, "prior": dprior}))


@given(shapes, st.integers(1, 3), seeds, st.sampled_from(["numpy", "numba"]))
def test_latent_node_backward(shape, n_samples, seed, backend):
    """The latent node (the fused kernel pair) against finite differences of
    L = sum(wz * z) + sum(wkl * kl)."""
    import npvae

    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    eps = rng.standard_normal((shape[0], n_samples, shape[1]))
    wz, wkl = rng.standard_normal(eps.shape), rng.standard_normal(shape)
    npvae.kernels.use(backend)
    try:
        def loss():
            (z, kl), _ = latent_forward(mean, logvar, eps)
            return float(np.sum(wz * z) + np.sum(wkl * kl))

        dmean, dlogvar = latent_backward(wz, wkl, latent_forward(mean, logvar, eps)[1])
        assert_gradcheck(check_params(loss, {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar}))
    finally:
        npvae.kernels.use("numpy")


@given(shapes, seeds)
def test_gaussian_log_prob_grad(shape, seed):
    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    z = rng.standard_normal(shape)
    dz, dmean, dlogvar = D.gaussian_log_prob_grad(z, mean, logvar)
    arrays = {"z": z, "mean": mean, "logvar": logvar}
    assert_gradcheck(check_params(lambda: D.gaussian_log_prob(z, mean, logvar).sum(), arrays,
                                  {"z": dz, "mean": dmean, "logvar": dlogvar}))
    check = check_function(lambda a: D.standard_normal_log_prob(a).sum(), z, -z)
    assert_gradcheck(check)


@given(shapes, seeds)
def test_kl_grad(shape, seed):
    rng = np.random.default_rng(seed)
    mean, logvar = gaussian_params(rng, shape)
    dmean, dlogvar = D.kl_standard_normal_grad(mean, logvar)
    assert_gradcheck(check_params(lambda: D.kl_standard_normal(mean, logvar).sum(),
                                  {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar}))


def test_reparameterized_samples_have_variance_exp_logvar():
    """exp(logvar) is the variance (not the standard deviation): sample moments agree."""
    rng = np.random.default_rng(0)
    mean, logvar = np.array([0.5, -1.0, 2.0]), np.array([-1.0, 0.0, 1.2])
    n = 200_000
    z, _ = D.reparameterize(np.broadcast_to(mean, (n, 3)), np.broadcast_to(logvar, (n, 3)), rng=rng)
    var = np.exp(logvar)
    assert np.all(np.abs(z.mean(0) - mean) < 5 * np.sqrt(var / n))
    # the sample variance's standard error is about var * sqrt(2 / n)
    assert np.all(np.abs(z.var(0) - var) < 5 * var * np.sqrt(2 / n))


def test_analytic_kl_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mean, logvar = np.array([0.3, -1.5, 0.0, 2.0]), np.array([0.5, -2.0, 0.0, 1.0])
    n = 400_000
    z, _ = D.reparameterize(np.broadcast_to(mean, (n, 4)), np.broadcast_to(logvar, (n, 4)), rng=rng)
    terms = D.gaussian_log_prob(z, mean, logvar) - D.standard_normal_log_prob(z)
    se = terms.std() / np.sqrt(n)
    assert abs(terms.mean() - D.kl_standard_normal(mean, logvar).sum()) < 4 * se


LIKELIHOODS = {
    "bernoulli": lambda d: D.Bernoulli(),
    "gaussian": lambda d: D.Gaussian(sigma=0.7),
    "gaussian_learned_var": lambda d: D.GaussianLearnedVar(d, dtype=np.float64),
    "gaussian_decoder_var": lambda d: D.GaussianDecoderVar(),
    "gaussian_decoder_var_sigmoid_mean": lambda d: D.GaussianDecoderVar(mean_activation="sigmoid"),
}


def draw_case(name, n, d, rng, floor=None):
    lik = LIKELIHOODS[name](d)
    if floor is not None:
        lik.logvar_floor = floor
    if "learned" in name:
        lik.params["logvar"][:] = rng.uniform(-1.5, 1, d)
    x = rng.random((n, d)) if name == "bernoulli" else rng.standard_normal((n, d))
    out = rng.standard_normal((n, lik.out_features(d)))
    return lik, x, out


@given(st.sampled_from(sorted(LIKELIHOODS)), st.integers(1, 5), st.integers(1, 6), seeds,
       st.sampled_from([None, -0.5]))
def test_likelihood_gradients(name, n, d, seed, floor):
    rng = np.random.default_rng(seed)
    lik, x, out = draw_case(name, n, d, rng, floor)
    if floor is not None and "var" in name:  # keep log-variances off the floor's kink
        out[..., d:] += np.where(np.abs(out[..., d:] - floor) < 1e-3, 0.01, 0) if "decoder" in name else 0
    weight = rng.standard_normal(n)
    lik.zero_grad()
    log_p, grad = lik.log_prob_and_grad(x, out)
    np.testing.assert_allclose(log_p, lik.log_prob(x, out), rtol=1e-12)
    dout = lik.backward(grad, weight)
    arrays = {"out": out, **lik.params}
    grads = {"out": dout, **{k: g.copy() for k, g in lik.grads.items()}}
    assert_gradcheck(check_params(lambda: float(weight @ lik.log_prob(x, out)), arrays, grads))


def test_a_sigmoid_mean_lies_in_the_unit_interval():
    lik = D.GaussianDecoderVar(mean_activation="sigmoid")
    out = np.array([[-30.0, 0.0, 30.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(lik.mean(out), [[0.0, 0.5, 1.0]], atol=1e-12)
    assert lik.config() == {"logvar_floor": None, "mean_activation": "sigmoid"}
    with pytest.raises(ValueError, match="mean_activation: expected one of"):
        D.GaussianDecoderVar(mean_activation="tanh")


def test_logvar_floor_bounds_the_likelihood():
    """A point fitted exactly: without a floor the density grows without bound as
    logvar -> -inf (the GMM singularity); with one it stops at the floor."""
    x = np.zeros((1, 3))
    for logvar in (-10.0, -50.0):
        out = np.concatenate([x, np.full((1, 3), logvar)], axis=1)
        assert D.GaussianDecoderVar().log_prob(x, out)[0] > 3 * 0.5 * (-logvar - D.LOG_2PI) - 1e-9
        floored = D.GaussianDecoderVar(logvar_floor=-5.0)
        assert floored.log_prob(x, out)[0] == pytest.approx(-1.5 * (D.LOG_2PI - 5.0))
        assert np.all(floored.log_prob_and_grad(x, out)[1][:, 3:] == 0)


def test_bernoulli_is_stable_at_extreme_logits():
    lik = D.Bernoulli()
    logits = np.array([[1e4, -1e4, 0.0]])
    lp = lik.log_prob(np.array([[1.0, 0.0, 1.0]]), logits)
    assert np.isfinite(lp).all() and lp[0] == pytest.approx(np.log(0.5))
    assert np.isfinite(lik.log_prob(np.array([[0.0, 1.0, 0.0]]), logits)).all()


def test_gaussian_sigma_one_is_half_squared_error_plus_constant():
    rng = np.random.default_rng(0)
    x, mu = rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
    expected = -0.5 * np.sum((x - mu) ** 2, axis=1) - 7 / 2 * np.log(2 * np.pi)
    np.testing.assert_allclose(D.Gaussian(1.0).log_prob(x, mu), expected, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_ancestral_samples_match_the_likelihood(name):
    rng = np.random.default_rng(2)
    lik, _, out = draw_case(name, 1, 4, rng)
    n = 100_000
    samples = lik.sample(np.repeat(out, n, axis=0), rng)
    mean, std = lik.mean(out)[0], lik.std(out)[0]
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * std / np.sqrt(n))
    assert np.all(np.abs(samples.std(0) - std) < 0.02 * std + 1e-3)


def test_bernoulli_refuses_data_outside_unit_interval():
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\] for a Bernoulli likelihood"):
        D.Bernoulli().check_data(np.array([[0.5, 1.5]]))


def test_unknown_likelihood_and_bad_sigma():
    with pytest.raises(ValueError, match="likelihood: expected one of"):
        D.make_likelihood("poisson", 3)
    with pytest.raises(ValueError, match="sigma: expected a positive finite number, got 0"):
        D.Gaussian(0)
