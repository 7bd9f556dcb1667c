"""The Gaussian mixture model fitted by expectation-maximisation.

    p(x) = sum_k pi_k N(x; mu_k, Sigma_k)

E step (in log space): log r_nk = log pi_k + log N(x_n; mu_k, Sigma_k) - log sum_j (...),
the normaliser being the per-point log-likelihood, whose mean is the lower bound
(it *is* the log-likelihood at the current parameters: the bound is tight after an E step).

M step (closed form, the maximiser of the expected complete-data log-likelihood):
    N_k = sum_n r_nk,   pi_k = N_k / N,   mu_k = sum_n r_nk x_n / N_k,
    Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I.

The densities use the Cholesky factor L_k of the precision (Sigma_k^-1 = L_k L_k^T):
(x - mu)^T Sigma^-1 (x - mu) = ||(x - mu)^T L||^2 and log|Sigma^-1|^(1/2) = sum log diag L,
so no covariance is ever inverted or its determinant formed. The API is scikit-learn's
(``sklearn.mixture.GaussianMixture``): the same arguments, attributes and semantics,
so that one can be swapped for the other.
"""

import math
import warnings

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular

from ..checks import as_rng, check_positive_int
from ..constants import LOG_2PI
from ..estimator import Estimator, data_matrix

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("k-means++", "random", "random_from_data")
EMPTY = 1e-6  # a component with less than a millionth of a point's responsibility is empty


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the lower bound changed by less than ``tol``."""


def kmeans_plusplus(X, n_clusters, rng):
    """Indices of ``n_clusters`` seeds chosen by k-means++ (Arthur & Vassilvitskii 2007):
    each next seed is drawn with probability proportional to its squared distance to the
    nearest seed so far; the greedy variant keeps the best of 2 + log K candidates."""
    n = len(X)
    sq_norms = np.einsum("ij,ij->i", X, X)
    indices = [int(rng.integers(n))]
    closest = np.maximum(sq_norms - 2 * X @ X[indices[0]] + sq_norms[indices[0]], 0)
    n_trials = 2 + int(math.log(n_clusters))
    for _ in range(1, n_clusters):
        cumulative = np.cumsum(closest)
        candidates = np.searchsorted(cumulative, rng.random(n_trials) * cumulative[-1])
        candidates = np.minimum(candidates, n - 1)
        dist = np.maximum(sq_norms[:, None] - 2 * X @ X[candidates].T + sq_norms[candidates], 0)
        dist = np.minimum(closest[:, None], dist)
        best = int(np.argmin(dist.sum(axis=0)))
        indices.append(int(candidates[best]))
        closest = dist[:, best]
    return np.array(indices)


def estimate_parameters(X, resp, reg_covar, covariance_type, X_sq=None):
    """The M step: (N_k, means, covariances) from responsibilities ``resp`` (N, K).
    ``X_sq``: X * X, which the diagonal and spherical cases need, when the caller keeps
    it across iterations."""
    nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps  # the eps keeps an empty component finite
    means = resp.T @ X / nk[:, None]
    if covariance_type == "full":
        covariances = np.empty((len(nk), X.shape[1], X.shape[1]))
        sqrt_resp, y = np.sqrt(resp), np.empty_like(X)
        for k in range(len(nk)):
            np.subtract(X, means[k], out=y)
            y *= sqrt_resp[:, k, None]  # sum_n r_nk d_n d_n^T = Y^T Y with rows sqrt(r_nk) d_n
            covariances[k] = y.T @ y / nk[k]
            covariances[k].flat[:: X.shape[1] + 1] += reg_covar
    elif covariance_type == "tied":
        # sum_nk r_nk x_n x_n^T, weighting each row by its total responsibility (1 after an
        # E step, but 0 for the unseeded rows of a hard k-means++ initialisation)
        covariances = ((X * resp.sum(axis=1, keepdims=True)).T @ X - (nk * means.T) @ means) / nk.sum()
        covariances.flat[:: X.shape[1] + 1] += reg_covar
    else:  # E[x^2] - mu^2 per dimension
        covariances = resp.T @ (X * X if X_sq is None else X_sq) / nk[:, None] - means**2 + reg_covar
        if covariance_type == "spherical":
            covariances = covariances.mean(axis=1)
    return nk, means, covariances


def precision_cholesky(covariances, covariance_type):
    """L with L L^T = Sigma^-1 (full, tied), or 1/sigma (diag, spherical)."""
    if covariance_type in ("diag", "spherical"):
        if np.any(covariances <= 0):
            raise ValueError(f"covariances: expected positive variances, got {np.min(covariances)} (the data are "
                             f"singular for this model): increase reg_covar")
        return 1 / np.sqrt(covariances)
    stack = covariances[None] if covariance_type == "tied" else covariances
    out = np.empty_like(stack)
    for k, cov in enumerate(stack):
        try:
            cov_chol = cholesky(cov, lower=True)
        except LinAlgError as e:
            raise ValueError(f"covariances: expected positive definite, got component {k}'s covariance singular "
                             f"(the data are singular for this model): increase reg_covar") from e
        out[k] = solve_triangular(cov_chol, np.eye(len(cov)), lower=True).T
    return out[0] if covariance_type == "tied" else out


def log_gaussian_prob(X, means, prec_chol, covariance_type, X_sq=None):
    """log N(x_n; mu_k, Sigma_k) for every n and k, (N, K), from the precision factors;
    ``X_sq`` as for :func:`estimate_parameters`."""
    n, d = X.shape
    if covariance_type in ("full", "tied"):
        factors = prec_chol if covariance_type == "full" else np.broadcast_to(prec_chol, (len(means), d, d))
        log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
        maha, y = np.empty((n, len(means))), np.empty_like(X)
        for k, L in enumerate(factors):
            np.matmul(X, L, out=y)
            y -= means[k] @ L  # (x - mu)^T L without forming x - mu
            maha[:, k] = np.einsum("ij,ij->i", y, y)
    elif covariance_type == "diag":
        prec = prec_chol**2
        log_det = np.log(prec_chol).sum(axis=1)
        maha = (X * X if X_sq is None else X_sq) @ prec.T - 2 * X @ (means * prec).T + (means**2 * prec).sum(axis=1)
    else:
        prec = prec_chol**2
        log_det = d * np.log(prec_chol)
        row_sq = np.einsum("ij,ij->i", X, X) if X_sq is None else X_sq.sum(axis=1)
        maha = (row_sq[:, None] - 2 * X @ means.T + (means**2).sum(axis=1)) * prec
    return -0.5 * (d * LOG_2PI + maha) + log_det


class GaussianMixture(Estimator):
    """A mixture of ``n_components`` Gaussians fitted by EM (scikit-learn's API).

    Attributes after ``fit``: ``weights_`` (K,), ``means_`` (K, D), ``covariances_`` and
    ``precisions_cholesky_`` (shapes by ``covariance_type``: full (K, D, D), tied (D, D),
    diag (K, D), spherical (K,)), ``converged_``, ``n_iter_``, ``lower_bound_`` (the mean
    log-likelihood at the last E step), ``lower_bounds_`` (its history, one per
    iteration), ``collapsed_components_`` (components whose covariance shrank to the
    ``reg_covar`` floor: they sit on a point or a subspace), ``n_features_in_``.
    """

    estimator_type = "density_estimator"

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6, max_iter=100,
                 n_init=1, init_params="k-means++", weights_init=None, means_init=None, precisions_init=None,
                 random_state=None, warm_start=False):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start

    # --- fitting -------------------------------------------------------------------
    def fit(self, X, y=None):
        """Run EM ``n_init`` times (or continue from the last fit if ``warm_start``) and
        keep the run with the highest lower bound. Returns ``self``."""
        X = data_matrix(X, self, min_samples=2)
        self._check_params(X)
        rng = as_rng(self.random_state)
        initialise = not (self.warm_start and hasattr(self, "converged_"))
        best = None
        for _ in range(self.n_init if initialise else 1):
            if initialise:
                self._initialize(X, rng)
            lower_bound, history, converged = (-np.inf if initialise else self.lower_bound_), [], False
            X_sq = X * X if self.covariance_type in ("diag", "spherical") else None  # once per fit, not per step
            for n_iter in range(1, self.max_iter + 1):
                previous = lower_bound
                lower_bound, log_resp = self._e_step(X, X_sq)
                history.append(lower_bound)
                self._m_step(X, log_resp, X_sq)
                if abs(lower_bound - previous) < self.tol:
                    converged = True
                    break
            if best is None or lower_bound > best[0]:
                best = (lower_bound, self._get_parameters(), n_iter, converged, history)
        self.lower_bound_, params, self.n_iter_, self.converged_, self.lower_bounds_ = best
        self._set_parameters(params)
        if not self.converged_:
            warnings.warn(f"EM did not converge in max_iter={self.max_iter} iterations (last change of the "
                          f"lower bound above tol={self.tol}); raise max_iter or tol", ConvergenceWarning,
                          stacklevel=2)
        self._report_collapsed()
        return self

    def fit_predict(self, X, y=None):
        """Fit, then the most responsible component of each point (after a final E step,
        so that the labels agree with ``predict``)."""
        return self.fit(X).predict(X)

    def _check_params(self, X):
        K = check_positive_int(self.n_components, "n_components")
        if K > len(X):
            raise ValueError(f"n_components: expected at most n_samples={len(X)}, got {K}")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type: expected one of {COVARIANCE_TYPES}, got {self.covariance_type!r}")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params: expected one of {INIT_PARAMS}, got {self.init_params!r}")
        if not self.tol >= 0 or not self.reg_covar >= 0:
            raise ValueError(f"tol, reg_covar: expected >= 0, got {self.tol} and {self.reg_covar}")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        d = X.shape[1]
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=float)
            if w.shape != (K,) or np.any(w < 0) or not np.isclose(w.sum(), 1):
                raise ValueError(f"weights_init: expected {K} non-negative weights summing to 1, got {w}")
        if self.means_init is not None:
            if np.shape(self.means_init) != (K, d):
                raise ValueError(f"means_init: expected shape {(K, d)}, got {np.shape(self.means_init)}")
            if not np.isfinite(np.asarray(self.means_init, dtype=float)).all():
                raise ValueError("means_init: expected finite values, got NaN or inf")
        if self.precisions_init is not None:
            want = {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[self.covariance_type]
            if np.shape(self.precisions_init) != want:
                raise ValueError(f"precisions_init: expected shape {want} for covariance_type="
                                 f"{self.covariance_type!r}, got {np.shape(self.precisions_init)}")
            if not np.isfinite(np.asarray(self.precisions_init, dtype=float)).all():
                raise ValueError("precisions_init: expected finite values, got NaN or inf")

    def _initialize(self, X, rng):
        """Responsibilities from ``init_params``, parameters from one M step on them, then
        any user-given ``weights_init`` / ``means_init`` / ``precisions_init`` on top."""
        n, K = len(X), self.n_components
        if self.init_params == "random":
            resp = rng.uniform(size=(n, K))
            resp /= resp.sum(axis=1, keepdims=True)
        else:
            seeds = (kmeans_plusplus(X, K, rng) if self.init_params == "k-means++"
                     else rng.choice(n, size=K, replace=False))
            resp = np.zeros((n, K))
            resp[seeds, np.arange(K)] = 1
        nk, self.means_, self.covariances_ = estimate_parameters(X, resp, self.reg_covar, self.covariance_type)
        self.weights_ = nk / nk.sum()
        if self.weights_init is not None:
            self.weights_ = np.array(self.weights_init, dtype=float)
        if self.means_init is not None:
            self.means_ = np.array(self.means_init, dtype=float)
        if self.precisions_init is None:
            self.precisions_cholesky_ = precision_cholesky(self.covariances_, self.covariance_type)
        else:
            prec = np.asarray(self.precisions_init, dtype=float)
            if self.covariance_type in ("diag", "spherical"):
                self.precisions_cholesky_, self.covariances_ = np.sqrt(prec), 1 / prec
            else:
                stack = prec[None] if self.covariance_type == "tied" else prec
                try:
                    chol = np.array([cholesky(p, lower=True) for p in stack])
                except LinAlgError as e:
                    raise ValueError("precisions_init: expected symmetric positive-definite precisions, got one "
                                     "whose Cholesky factorisation fails") from e
                cov = np.linalg.inv(stack)  # once, for the attribute only; EM never uses it
                self.precisions_cholesky_, self.covariances_ = ((chol[0], cov[0]) if self.covariance_type == "tied"
                                                                 else (chol, cov))
        self.n_features_in_ = X.shape[1]

    def _e_step(self, X, X_sq=None):
        log_prob_norm, log_resp = self._log_prob_norm_and_resp(X, X_sq)
        return float(log_prob_norm.mean()), log_resp

    def _m_step(self, X, log_resp, X_sq=None):
        nk, means, covariances = estimate_parameters(X, np.exp(log_resp), self.reg_covar, self.covariance_type, X_sq)
        empty = nk < EMPTY
        if empty.any():  # no data to estimate it from: keep its parameters, let its weight fall
            warnings.warn(f"components {np.flatnonzero(empty).tolist()} received no data; their means and "
                          f"covariances are kept from the previous iteration", RuntimeWarning, stacklevel=3)
            means[empty] = self.means_[empty]
            if self.covariance_type != "tied":
                covariances[empty] = self.covariances_[empty]
        self.weights_ = nk / nk.sum()
        self.means_, self.covariances_ = means, covariances
        self.precisions_cholesky_ = precision_cholesky(covariances, self.covariance_type)

    def _report_collapsed(self):
        """Components with a variance (eigenvalue) within 2x of the ``reg_covar`` floor."""
        cov = self.covariances_
        if self.covariance_type == "full":
            smallest = np.linalg.eigvalsh(cov)[:, 0]
        elif self.covariance_type == "tied":
            smallest = np.full(self.n_components, np.linalg.eigvalsh(cov)[0])
        else:
            smallest = cov.min(axis=1) if self.covariance_type == "diag" else cov
        self.collapsed_components_ = np.flatnonzero(smallest <= 2 * self.reg_covar)
        if len(self.collapsed_components_):
            warnings.warn(f"components {self.collapsed_components_.tolist()} collapsed onto a point or a subspace "
                          f"(a variance at the reg_covar={self.reg_covar} floor, where the likelihood would be "
                          f"unbounded without it)", RuntimeWarning, stacklevel=3)

    def _get_parameters(self):
        return self.weights_, self.means_, self.covariances_, self.precisions_cholesky_

    def _set_parameters(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params

    # --- using a fitted model -------------------------------------------------------
    def _check_fitted(self):
        self._check_is_fitted("means_")

    def _check_X(self, X):
        self._check_fitted()
        return data_matrix(X, self, n_features=self.n_features_in_)

    def _log_prob_norm_and_resp(self, X, X_sq=None):
        weighted = log_gaussian_prob(X, self.means_, self.precisions_cholesky_, self.covariance_type, X_sq)
        weighted += np.log(self.weights_)
        top = weighted.max(axis=1, keepdims=True)  # log-sum-exp, shifted so that exp cannot overflow
        log_prob_norm = np.log(np.exp(weighted - top).sum(axis=1)) + top[:, 0]
        return log_prob_norm, weighted - log_prob_norm[:, None]

    def score_samples(self, X):
        """log p(x_n) for each row."""
        return self._log_prob_norm_and_resp(self._check_X(X))[0]

    def score(self, X, y=None):
        """The mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Responsibilities p(k | x_n), (N, K); each row sums to 1."""
        return np.exp(self._log_prob_norm_and_resp(self._check_X(X))[1])

    def predict(self, X):
        return self._log_prob_norm_and_resp(self._check_X(X))[1].argmax(axis=1)

    def sample(self, n_samples=1):
        """``n_samples`` draws and their component labels, from ``random_state``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_fitted()
        rng = as_rng(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        d = self.means_.shape[1]
        X, y = [], []
        for k, count in enumerate(counts):
            eps = rng.standard_normal((count, d))
            cov = self.covariances_ if self.covariance_type == "tied" else self.covariances_[k]
            if self.covariance_type in ("full", "tied"):
                X.append(self.means_[k] + eps @ np.linalg.cholesky(cov).T)
            else:
                X.append(self.means_[k] + eps * np.sqrt(cov))
            y.append(np.full(count, k))
        return np.concatenate(X), np.concatenate(y)

    def _n_parameters(self):
        K, d = self.means_.shape
        cov = {"full": K * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": K * d, "spherical": K}
        return int(cov[self.covariance_type] + K * d + K - 1)

    def bic(self, X):
        """Bayesian information criterion: -2 log L + (free parameters) log N. Lower is better."""
        X = self._check_X(X)
        return -2 * self.score(X) * len(X) + self._n_parameters() * np.log(len(X))

    def aic(self, X):
        """Akaike information criterion: -2 log L + 2 (free parameters). Lower is better."""
        X = self._check_X(X)
        return -2 * self.score(X) * len(X) + 2 * self._n_parameters()
