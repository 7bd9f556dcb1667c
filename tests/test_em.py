"""EM baselines: monotone likelihood, recovery of known parameters, the closed form, and
agreement with scikit-learn given the same starting point."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from npvae.testing import seeds
from npvae.datasets import gaussian_mixture_sample
from npvae.em import ConvergenceWarning, GaussianMixture, PPCA
from npvae.em.gmm import COVARIANCE_TYPES



def random_mixture(rng, K, d, spread=4.0):
    means = rng.normal(0, spread, (K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    return np.full(K, 1 / K), means, A @ A.transpose(0, 2, 1) + 0.2 * np.eye(d)


def precisions_for(covariance_type, cov):
    return {"full": np.linalg.inv(cov), "tied": np.linalg.inv(cov.mean(0)),
            "diag": 1 / np.diagonal(cov, axis1=1, axis2=2),
            "spherical": 1 / np.diagonal(cov, axis1=1, axis2=2).mean(1)}[covariance_type]


def quiet_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.fit(X)


# --- Gaussian mixture ----------------------------------------------------------------
@given(seed=seeds, K=st.integers(1, 4), d=st.integers(1, 4), n=st.integers(20, 200),
       covariance_type=st.sampled_from(COVARIANCE_TYPES),
       init_params=st.sampled_from(["k-means++", "random", "random_from_data"]))
def test_gmm_log_likelihood_never_decreases_and_responsibilities_sum_to_one(seed, K, d, n, covariance_type,
                                                                            init_params):
    rng = np.random.default_rng(seed)
    X, _ = gaussian_mixture_sample(n, *random_mixture(rng, K, d), seed=seed)
    gmm = quiet_fit(GaussianMixture(K, covariance_type=covariance_type, init_params=init_params, tol=0,
                                    max_iter=30, random_state=seed), X)
    history = np.array(gmm.lower_bounds_)
    assert np.all(np.isfinite(history))
    # EM never decreases the likelihood in exact arithmetic; reg_covar (the M step adds it
    # to the maximiser) and the E[x^2] - mu^2 variances make converged steps wobble by
    # about 1e-10 of the bound, so 1e-8 is the tolerance (a wrong M step moves it by far more)
    assert np.all(np.diff(history) >= -1e-8 * np.abs(history[1:]))
    resp = gmm.predict_proba(X)
    np.testing.assert_allclose(resp.sum(axis=1), 1, atol=1e-12)
    assert np.all(resp >= 0)
    np.testing.assert_array_equal(gmm.predict(X), resp.argmax(1))
    np.testing.assert_allclose(gmm.score(X), gmm.score_samples(X).mean())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gmm_recovers_a_known_mixture(covariance_type):
    weights = np.array([0.2, 0.3, 0.5])
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    cov = {"full": np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.4], [-0.4, 0.5]]]),
           "tied": np.array([[[1.0, 0.3], [0.3, 0.6]]] * 3),
           "diag": np.array([np.diag([1.0, 0.3]), np.diag([0.4, 1.2]), np.diag([0.7, 0.7])]),
           "spherical": np.array([np.eye(2) * v for v in (0.5, 1.0, 1.5)])}[covariance_type]
    X, _ = gaussian_mixture_sample(6000, weights, means, cov, seed=2)
    gmm = GaussianMixture(3, covariance_type=covariance_type, n_init=3, random_state=0).fit(X)
    order = np.argsort(gmm.means_[:, 0] + 2 * gmm.means_[:, 1])  # (0,0), (8,0), (0,8)
    assert gmm.converged_
    np.testing.assert_allclose(gmm.weights_[order], weights, atol=0.02)
    np.testing.assert_allclose(gmm.means_[order], means, atol=0.1)
    fitted = {"full": lambda c: c, "tied": lambda c: np.array([c] * 3),
              "diag": lambda c: np.array([np.diag(v) for v in c]),
              "spherical": lambda c: np.array([np.eye(2) * v for v in c])}[covariance_type](gmm.covariances_)
    np.testing.assert_allclose(fitted if covariance_type == "tied" else fitted[order], cov, atol=0.1)
    # the density is the mixture of the fitted Gaussians, evaluated directly
    direct = np.log(sum(w * multivariate_normal(m, c).pdf(X[:50]) for w, m, c in zip(gmm.weights_, gmm.means_, fitted)))
    np.testing.assert_allclose(gmm.score_samples(X[:50]), direct, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gmm_agrees_with_sklearn_from_the_same_start(covariance_type):
    sk = pytest.importorskip("sklearn.mixture")
    rng = np.random.default_rng(0)
    weights, means, cov = random_mixture(rng, 4, 3)
    X, _ = gaussian_mixture_sample(1500, weights, means, cov, seed=1)
    start = dict(covariance_type=covariance_type, tol=0, max_iter=25, weights_init=weights,
                 means_init=means + rng.normal(0, 1.5, means.shape), precisions_init=precisions_for(covariance_type, cov))
    ours = quiet_fit(GaussianMixture(4, **start), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.GaussianMixture(4, **start).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ == 25
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-6)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(ours.bic(X), theirs.bic(X), rtol=1e-6)
    np.testing.assert_allclose(ours.aic(X), theirs.aic(X), rtol=1e-6)


def test_gmm_warm_start_continues_and_sample_draws_from_the_fit():
    rng = np.random.default_rng(3)
    X, _ = gaussian_mixture_sample(3000, *random_mixture(rng, 3, 2), seed=3)
    once = quiet_fit(GaussianMixture(3, max_iter=5, tol=0, random_state=0, warm_start=True), X)
    first = once.lower_bound_
    quiet_fit(once, X)
    assert once.lower_bound_ >= first and once.n_iter_ == 5
    whole = quiet_fit(GaussianMixture(3, max_iter=10, tol=0, random_state=0), X)
    np.testing.assert_allclose(once.means_, whole.means_, rtol=1e-10)  # 5 + 5 iterations == 10
    samples, labels = whole.sample(20000)
    assert samples.shape == (20000, 2) and np.bincount(labels, minlength=3).sum() == 20000
    assert abs(whole.score(samples) - whole.score(X)) < 0.1


def test_gmm_bic_prefers_the_true_number_of_components():
    rng = np.random.default_rng(4)
    X, _ = gaussian_mixture_sample(2000, *random_mixture(rng, 3, 2, spread=6), seed=4)
    bics = [GaussianMixture(K, n_init=2, random_state=0).fit(X).bic(X) for K in (1, 2, 3, 4, 5)]
    assert int(np.argmin(bics)) + 1 == 3


def test_gmm_collapse_is_prevented_and_reported():
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(size=(200, 2)), np.tile([[5.0, 5.0]], (30, 1))])  # 30 copies of one point
    with pytest.warns(RuntimeWarning, match="collapsed"):
        gmm = GaussianMixture(2, random_state=0, means_init=[[0.0, 0.0], [5.0, 5.0]]).fit(X)
    assert np.isfinite(gmm.lower_bound_) and 1 in gmm.collapsed_components_
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, reg_covar=0, random_state=0, means_init=[[0.0, 0.0], [5.0, 5.0]]).fit(X)


def test_gmm_empty_component_is_kept_finite_and_warned():
    X = np.random.default_rng(6).normal(size=(300, 2))
    far = [[0.0, 0.0], [1e3, 1e3]]  # the second component gets no responsibility at all
    # tol=0 cannot be met in 5 iterations: the non-convergence warning comes too
    with pytest.warns(RuntimeWarning, match="received no data"), pytest.warns(ConvergenceWarning):
        gmm = GaussianMixture(2, means_init=far, precisions_init=np.array([np.eye(2)] * 2), max_iter=5,
                              tol=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(gmm, name))), name
    np.testing.assert_allclose(gmm.means_[1], far[1])
    assert np.isfinite(gmm.score(X))


def test_gmm_bad_input():
    X = np.random.default_rng(7).normal(size=(10, 3))
    with pytest.raises(ValueError, match="X: expected finite"):
        GaussianMixture(2).fit(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="n_components: expected at most n_samples=10"):
        GaussianMixture(11).fit(X)
    with pytest.raises(ValueError, match="n_components: expected an integer >= 1"):
        GaussianMixture(0).fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="banded").fit(X)
    with pytest.raises(ValueError, match="precisions_init: expected symmetric positive-definite"):
        GaussianMixture(2, precisions_init=-np.array([np.eye(3)] * 2)).fit(X)
    with pytest.raises(ValueError, match="means_init: expected shape"):
        GaussianMixture(2, means_init=np.zeros((2, 2))).fit(X)
    with pytest.raises(ValueError, match="means_init: expected finite values"):
        GaussianMixture(2, means_init=np.full((2, 3), np.nan)).fit(X)
    with pytest.raises(ValueError, match="precisions_init: expected finite values"):
        GaussianMixture(2, precisions_init=np.full((2, 3, 3), np.inf)).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixture(2).predict(X)
    # fitted on enough points that no component collapses (two 3-D Gaussians on these 10 did)
    gmm = GaussianMixture(2, random_state=0).fit(np.random.default_rng(8).normal(size=(200, 3)))
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3 features as input"):
        gmm.predict(X[:, :2])
    with pytest.raises(ValueError, match="2-D"):
        gmm.score_samples(X[0])


# --- probabilistic PCA ---------------------------------------------------------------
def ppca_data(seed, n, d, q, noise=1.0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q)) * 1.5
    X = rng.normal(size=(n, q)) @ W.T + rng.normal(size=d) + np.sqrt(noise) * rng.normal(size=(n, d))
    return X, W


@given(seed=seeds, d=st.integers(2, 6), n=st.integers(30, 200), data=st.data())
def test_ppca_em_is_monotone_and_reaches_the_closed_form(seed, d, n, data):
    q = data.draw(st.integers(1, d - 1))
    X, _ = ppca_data(seed, n, d, q)
    closed = PPCA(q).fit(X)
    em = quiet_fit(PPCA(q, method="em", tol=1e-13, max_iter=5000, random_state=seed), X)
    history = np.array(em.log_likelihood_history_)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    assert em.score(X) <= closed.score(X) + 1e-9 * abs(closed.score(X))  # the closed form is the maximum
    if em.converged_:
        np.testing.assert_allclose(em.score(X), closed.score(X), rtol=1e-6)


@pytest.mark.parametrize("q", [1, 3])
def test_ppca_em_and_closed_form_give_the_same_model(q):
    X, _ = ppca_data(0, 400, 7, q)
    closed = PPCA(q).fit(X)
    em = PPCA(q, method="em", tol=1e-12, max_iter=5000, random_state=1).fit(X)
    assert em.converged_
    np.testing.assert_allclose(em.score(X), closed.score(X), rtol=1e-6)
    # W is identifiable only up to a rotation R: W_em = W_cf R, so W W^T must agree
    np.testing.assert_allclose(em.W_ @ em.W_.T, closed.W_ @ closed.W_.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(em.noise_variance_, closed.noise_variance_, rtol=1e-5)
    np.testing.assert_allclose(np.abs(em.components_ @ closed.components_.T), np.eye(q), atol=1e-4)


@given(seed=seeds, q=st.integers(1, 3))
def test_ppca_score_samples_is_the_gaussian_density(seed, q):
    X, _ = ppca_data(seed, 60, 5, q)
    model = PPCA(q).fit(X)
    cov = model.W_ @ model.W_.T + model.noise_variance_ * np.eye(5)
    np.testing.assert_allclose(model.score_samples(X), multivariate_normal(model.mean_, cov).logpdf(X), rtol=1e-10)


def test_ppca_recovers_the_generating_subspace_and_noise():
    X, W = ppca_data(2, 20000, 10, 2, noise=0.5)
    model = PPCA(2, random_state=0).fit(X)
    np.testing.assert_allclose(model.W_ @ model.W_.T, W @ W.T, atol=0.15 * np.abs(W @ W.T).max())
    np.testing.assert_allclose(model.noise_variance_, 0.5, rtol=0.03)
    z = model.transform(X[:5])
    assert z.shape == (5, 2) and model.inverse_transform(z).shape == (5, 10)
    samples = model.sample(20000)
    C = model.W_ @ model.W_.T + model.noise_variance_ * np.eye(10)
    np.testing.assert_allclose(np.cov(samples.T), C, atol=0.05 * np.abs(C).max())  # ~5 standard errors


def test_ppca_score_equals_sklearn_pca_score():
    sk = pytest.importorskip("sklearn.decomposition")
    X, _ = ppca_data(3, 500, 12, 4)
    model = PPCA(4).fit(X)
    # scikit-learn estimates the covariance with 1/(N-1), Tipping & Bishop's MLE uses 1/N:
    # shrinking the data about its mean by sqrt((N-1)/N) gives scikit-learn the same C.
    n = len(X)
    pca = sk.PCA(4, svd_solver="full").fit(model.mean_ + (X - model.mean_) * np.sqrt((n - 1) / n))
    np.testing.assert_allclose(model.score(X), pca.score(X), rtol=1e-10)
    np.testing.assert_allclose(model.score_samples(X), pca.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(np.abs(model.components_ @ pca.components_.T), np.eye(4), atol=1e-8)


def test_ppca_em_with_missing_values():
    X, _ = ppca_data(4, 2000, 8, 2)
    closed = PPCA(2).fit(X)
    missing = np.random.default_rng(0).random(X.shape) < 0.15
    model = quiet_fit(PPCA(2, method="em", tol=1e-9, max_iter=2000, random_state=0), np.where(missing, np.nan, X))
    history = np.array(model.log_likelihood_history_)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    np.testing.assert_allclose(model.mean_, closed.mean_, atol=0.1)
    C_missing = model.W_ @ model.W_.T + model.noise_variance_ * np.eye(8)
    C_full = closed.W_ @ closed.W_.T + closed.noise_variance_ * np.eye(8)
    np.testing.assert_allclose(C_missing, C_full, atol=0.1 * np.abs(C_full).max())
    # with nothing missing, the missing-value EM is plain EM (which also re-estimates the mean)
    full = quiet_fit(PPCA(2, method="em", tol=1e-12, max_iter=3000, random_state=0), X)
    plain = PPCA(2, method="em", tol=1e-12, max_iter=3000, random_state=0)
    plain._init_em(X, np.random.default_rng(0))
    plain._fit_em_missing(X, np.ones_like(X, dtype=bool), np.random.default_rng(0))
    np.testing.assert_allclose(plain.log_likelihood_history_[-1], full.log_likelihood_history_[-1], rtol=1e-8)


def test_ppca_bad_input():
    X, _ = ppca_data(5, 50, 4, 1)
    with pytest.raises(ValueError, match="X: expected finite values, got NaN"):
        PPCA(1).fit(np.where(X > 2, np.nan, X))  # missing values need method="em"
    with pytest.raises(ValueError, match="n_components: expected fewer than n_features=4"):
        PPCA(4).fit(X)
    with pytest.raises(ValueError, match="method"):
        PPCA(1, method="svd").fit(X)
    with pytest.raises(ValueError, match="tol: expected >= 0"):
        PPCA(1, method="em", tol=-1.0).fit(X)
    with pytest.raises(ValueError, match="span at most"):
        PPCA(1).fit(np.outer(np.arange(10.0), [1.0, 2.0, 3.0]))  # rank 1: sigma^2 = 0
    with pytest.raises(ValueError, match="features .* entirely NaN"):
        PPCA(1, method="em").fit(np.column_stack([X[:, :3], np.full(50, np.nan)]))
    model = PPCA(1).fit(X)
    with pytest.raises(ValueError, match="X has .* features, but PPCA is expecting 4 features as input"):
        model.score(X[:, :3])
    with pytest.raises(ValueError, match="not fitted"):
        PPCA(1).transform(X)


def test_ppca_em_on_rank_deficient_data_says_why_and_keeps_the_fitted_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2)) @ rng.standard_normal((2, 6))
    with pytest.warns(ConvergenceWarning):
        good = PPCA(1, method="em", max_iter=5).fit(rng.standard_normal((50, 6)))
    W = good.W_.copy()
    good.n_components, good.max_iter = 4, 1000
    with pytest.raises(ValueError, match=r"X: EM drove the noise variance sigma\^2 to 0 .* n_components=4"):
        good.fit(X)
    np.testing.assert_array_equal(good.W_, W)
