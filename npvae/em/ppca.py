"""Probabilistic PCA (Tipping & Bishop 1999): the linear-Gaussian latent-variable model

    z ~ N(0, I_q),   x | z ~ N(W z + mu, sigma^2 I_d)   =>   x ~ N(mu, C),   C = W W^T + sigma^2 I,

the VAE with a linear decoder and an exact posterior p(z | x) = N(M^-1 W^T (x - mu), sigma^2 M^-1),
M = W^T W + sigma^2 I (q x q). Two fits of the same maximum-likelihood solution:

closed form: the eigen-decomposition S = U Lambda U^T of the sample covariance (1/N, the
    MLE); sigma^2 = the mean of the d - q discarded eigenvalues, W = U_q (Lambda_q - sigma^2 I)^(1/2).
EM: E step E[z_n] = M^-1 W^T (x_n - mu), E[z_n z_n^T] = sigma^2 M^-1 + E[z_n] E[z_n]^T; M step
    W = [sum_n (x_n - mu) E[z_n]^T] [sum_n E[z_n z_n^T]]^-1,
    sigma^2 = (sum_n ||x_n - mu||^2 - tr(W^T sum_n (x_n - mu) E[z_n]^T)) / (N d).
    With missing values (NaN) the E step conditions on each row's observed entries only and
    the M step regresses each dimension on E[(z, 1)] over the rows that observe it, which
    also re-estimates mu: EM on the likelihood of the observed entries, marginalising the rest.

Log-densities use the Woodbury identity and the determinant lemma, C^-1 = (I - W M^-1 W^T)/sigma^2
and log|C| = (d - q) log sigma^2 + log|M|, so no d x d matrix is inverted.
"""

import warnings

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh
from scipy.linalg.blas import dsyrk

from ..checks import as_rng, check_positive_int
from ..estimator import Estimator, data_matrix
from ..constants import LOG_2PI
from .gmm import ConvergenceWarning

METHODS = ("closed_form", "em")


def gaussian_log_density(Xc, W, sigma2):
    """log N(x_n; mu, W W^T + sigma2 I) for centred rows ``Xc`` = x_n - mu."""
    d, q = W.shape
    M = cho_factor(W.T @ W + sigma2 * np.eye(q), lower=True)
    log_det_C = (d - q) * np.log(sigma2) + 2 * np.log(np.diag(M[0])).sum()
    XW = Xc @ W
    maha = (np.einsum("ij,ij->i", Xc, Xc) - np.einsum("ij,ij->i", XW, cho_solve(M, XW.T).T)) / sigma2
    return -0.5 * (d * LOG_2PI + log_det_C + maha)


def observed_posterior(x0, o, W, mu, sigma2):
    """For rows whose observed entries the mask ``o`` marks (``x0``: 0 where missing),
    with M_n = W_o^T W_o + sigma2 I over the observed dimensions: ``log N(x_o; mu_o,
    W_o W_o^T + sigma2 I)`` per row, the posterior mean ``E[z | x_o] = M_n^-1 W_o^T
    (x_o - mu_o)`` and ``M_n^-1`` (the posterior covariance over sigma2)."""
    d, q = W.shape
    WW = np.einsum("ij,ik->ijk", W, W).reshape(d, q * q)
    xc = o * (x0 - mu)
    M = (o @ WW).reshape(-1, q, q) + sigma2 * np.eye(q)
    M_inv, log_det_M = np.linalg.inv(M), np.linalg.slogdet(M)[1]
    WTx = xc @ W
    Ez = np.einsum("njk,nk->nj", M_inv, WTx)
    d_n = o.sum(axis=1)
    maha = (np.einsum("ij,ij->i", xc, xc) - np.einsum("ij,ij->i", WTx, Ez)) / sigma2
    return -0.5 * (d_n * LOG_2PI + (d_n - q) * np.log(sigma2) + log_det_M + maha), Ez, M_inv


class PPCA(Estimator):
    """Probabilistic PCA with ``n_components`` = q latent dimensions.

    Attributes after ``fit``: ``mean_`` (d,), ``W_`` (d, q) the loadings, ``components_``
    (q, d) an orthonormal basis of their span ordered by variance (scikit-learn's PCA
    attribute), ``explained_variance_`` (q,) the model variance along each,
    ``noise_variance_`` sigma^2, ``log_likelihood_history_`` (mean log-likelihood per
    sample, one per EM iteration; one entry for the closed form), ``n_iter_``,
    ``converged_``, ``n_features_in_``.
    """

    def __init__(self, n_components, *, method="closed_form", max_iter=1000, tol=1e-6, random_state=None,
                 chunk_size=2048):
        self.n_components = n_components
        self.method = method
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.chunk_size = chunk_size

    def fit(self, X, y=None):
        """Fit by ``method``; NaN entries are missing values (``method="em"`` only)."""
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        X = data_matrix(X, self, allow_nan=self.method == "em", min_samples=2)
        n, d = X.shape
        q = check_positive_int(self.n_components, "n_components")
        if q >= d:
            raise ValueError(f"n_components: expected fewer than n_features={d} (sigma^2 needs a discarded "
                             f"direction), got {q}")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.chunk_size, "chunk_size")
        if not self.tol >= 0:
            raise ValueError(f"tol: expected >= 0, got {self.tol}")
        observed = ~np.isnan(X)
        if not observed.any(axis=0).all():
            raise ValueError(f"X: expected every feature observed at least once, got features "
                             f"{np.flatnonzero(~observed.any(axis=0)).tolist()} entirely NaN")
        before = dict(self.__dict__)  # a fit that fails leaves the estimator as it was
        try:
            if self.method == "closed_form":
                self._fit_closed_form(X)
            elif observed.all():
                self._fit_em(X, as_rng(self.random_state))
            else:
                self._fit_em_missing(X, observed, as_rng(self.random_state))
        except (LinAlgError, np.linalg.LinAlgError):
            self.__dict__ = before
            raise ValueError(f"X: EM drove the noise variance sigma^2 to 0 and W^T W + sigma^2 I became singular "
                             f"(the data span at most n_components={q} dimensions): use fewer components") from None
        except BaseException:
            self.__dict__ = before
            raise
        u, s, _ = np.linalg.svd(self.W_, full_matrices=False)
        self.components_, self.explained_variance_ = u.T, s**2 + self.noise_variance_
        self.n_features_in_ = d
        return self

    def _fit_closed_form(self, X):
        n, d = X.shape
        q = self.n_components
        self.mean_ = X.mean(axis=0)
        # S = X^T X / N - mean mean^T: one pass over the data and no centred copy (as
        # scikit-learn's covariance_eigh); the cancellation costs digits only when the
        # mean is many standard deviations from 0. BLAS syrk fills only the lower
        # triangle (half the flops of a GEMM), which is all that eigh reads.
        S = dsyrk(1.0 / n, X.T, trans=0, lower=1) - np.outer(self.mean_, self.mean_)
        eigvals, U = eigh(S, lower=True, subset_by_index=[d - q, d - 1])  # only the q largest are needed ...
        eigvals, U = np.maximum(eigvals[::-1], 0), U[:, ::-1]
        sigma2 = max(np.trace(S) - eigvals.sum(), 0) / (d - q)  # ... sigma^2 is the mean of the rest
        if sigma2 <= 1e-12 * max(eigvals[0], np.finfo(float).tiny):
            raise ValueError(f"X: the data span at most n_components={q} dimensions, so sigma^2 = 0 and the "
                             f"likelihood is unbounded; expected more variance, got discarded eigenvalues {sigma2:.3g}")
        self.W_ = U * np.sqrt(np.maximum(eigvals - sigma2, 0))
        self.noise_variance_ = sigma2
        # at the maximum, tr(C^-1 S) = d, so the mean log-likelihood needs only the spectrum
        # (Tipping & Bishop 1999, eq. 4 with the ML solution):
        log_det_C = np.log(np.maximum(eigvals, sigma2)).sum() + (d - q) * np.log(sigma2)
        self.log_likelihood_history_ = [float(-0.5 * (d * LOG_2PI + log_det_C + d))]
        self.n_iter_, self.converged_ = 1, True  # one solve, as the history's one entry

    def _init_em(self, X, rng):
        d, q = X.shape[1], self.n_components
        total_var = np.nanvar(X, axis=0).sum()
        self.mean_ = np.nanmean(X, axis=0)
        self.W_ = rng.standard_normal((d, q)) * np.sqrt(total_var / d)
        self.noise_variance_ = max(total_var / d, 1e-12)

    def _run_em(self, step):
        """Iterate ``step`` (returns the mean log-likelihood at the parameters it starts
        from, then updates them) until the change is below ``tol``."""
        history, converged = [], False
        for _ in range(self.max_iter):
            history.append(step())
            if len(history) > 1 and abs(history[-1] - history[-2]) < self.tol:
                converged = True
                break
        self.log_likelihood_history_, self.n_iter_, self.converged_ = history, len(history), converged
        if not converged:
            warnings.warn(f"PPCA EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol})",
                          ConvergenceWarning, stacklevel=3)

    def _fit_em(self, X, rng):
        n, d = X.shape
        q = self.n_components
        self._init_em(X, rng)
        Xc = X - self.mean_
        sum_sq = np.einsum("ij,ij->", Xc, Xc)

        def step():
            W, sigma2 = self.W_, self.noise_variance_
            if not sigma2 > 0:  # the data span at most q dimensions: C = W W^T + sigma^2 I is singular
                raise LinAlgError("sigma^2 reached 0")
            log_likelihood = float(gaussian_log_density(Xc, W, sigma2).mean())
            M = cho_factor(W.T @ W + sigma2 * np.eye(q), lower=True)
            Ez = cho_solve(M, (Xc @ W).T).T  # (N, q) posterior means
            sum_Ezz = n * sigma2 * cho_solve(M, np.eye(q)) + Ez.T @ Ez
            XtEz = Xc.T @ Ez
            self.W_ = np.linalg.solve(sum_Ezz, XtEz.T).T  # sum_Ezz is symmetric
            self.noise_variance_ = (sum_sq - np.einsum("ij,ij->", self.W_, XtEz)) / (n * d)
            return log_likelihood

        self._run_em(step)

    def _fit_em_missing(self, X, observed, rng):
        n, d = X.shape
        q = self.n_components
        self._init_em(X, rng)
        O = observed.astype(np.float64)
        X0 = np.where(observed, X, 0.0)
        n_observed = O.sum()
        sum_sq_observed = np.einsum("ij,ij->j", X0, X0)

        def step():
            W, mu, sigma2 = self.W_, self.mean_, self.noise_variance_
            if not sigma2 > 0:
                raise LinAlgError("sigma^2 reached 0")
            A = np.zeros((d, (q + 1) ** 2))  # sum_n o_ni E[z~ z~^T], z~ = (z, 1)
            b = np.zeros((d, q + 1))  # sum_n o_ni x_ni E[z~]
            log_likelihood = 0.0
            for start in range(0, n, self.chunk_size):
                o, x0 = O[start : start + self.chunk_size], X0[start : start + self.chunk_size]
                log_p, Ez, M_inv = observed_posterior(x0, o, W, mu, sigma2)
                log_likelihood += log_p.sum()
                Ez1 = np.column_stack([Ez, np.ones(len(Ez))])
                Ezz1 = Ez1[:, :, None] * Ez1[:, None, :]
                Ezz1[:, :q, :q] += sigma2 * M_inv
                A += o.T @ Ezz1.reshape(len(o), -1)
                b += (o * x0).T @ Ez1
            W_mu = np.linalg.solve(A.reshape(d, q + 1, q + 1), b[:, :, None])[:, :, 0]
            self.W_, self.mean_ = W_mu[:, :q], W_mu[:, q]
            # sum of E[(x_ni - W_i z - mu_i)^2] at the new (W_i, mu_i) = sum o x^2 - (W_i, mu_i) . b_i
            self.noise_variance_ = (sum_sq_observed - np.einsum("ij,ij->i", W_mu, b)).sum() / n_observed
            return log_likelihood / n

        self._run_em(step)

    # --- using a fitted model -------------------------------------------------------
    transformer = True

    @property
    def allow_nan(self):
        """NaN entries are missing values for ``method="em"`` (a scikit-learn tag)."""
        return self.method == "em"

    def _check_fitted(self):
        self._check_is_fitted("W_")

    def _check_X(self, X):
        self._check_fitted()
        return data_matrix(X, self, n_features=self.n_features_in_, allow_nan=self.allow_nan)

    def _observed_posterior(self, X):
        """``observed_posterior`` of rows with missing entries, a chunk at a time."""
        observed = ~np.isnan(X)
        parts = [observed_posterior(np.where(o, x, 0.0), o.astype(np.float64), self.W_, self.mean_,
                                    self.noise_variance_)[:2]
                 for x, o in ((X[s : s + self.chunk_size], observed[s : s + self.chunk_size])
                              for s in range(0, len(X), self.chunk_size))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def score_samples(self, X):
        """log N(x_n; mean_, W W^T + sigma^2 I), exactly; with ``method="em"`` a NaN
        entry is missing and the density is the observed entries' marginal."""
        X = self._check_X(X)
        if np.isnan(X).any():
            return self._observed_posterior(X)[0]
        return gaussian_log_density(X - self.mean_, self.W_, self.noise_variance_)

    def score(self, X, y=None):
        """The mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def transform(self, X):
        """The posterior mean E[z | x] = M^-1 W^T (x - mean_), (N, q); of the observed
        entries alone where a row has missing (NaN) ones, with ``method="em"``."""
        X = self._check_X(X)
        if np.isnan(X).any():
            return self._observed_posterior(X)[1]
        M = self.W_.T @ self.W_ + self.noise_variance_ * np.eye(self.n_components)
        return np.linalg.solve(M, ((X - self.mean_) @ self.W_).T).T

    def fit_transform(self, X, y=None):
        """``fit(X)``, then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z):
        """The decoder mean W z + mean_."""
        self._check_fitted()
        Z = data_matrix(Z, self, n_features=self.n_components, name="Z")
        return Z @ self.W_.T + self.mean_

    def sample(self, n_samples=1):
        """Ancestral samples x = W z + mean_ + sigma eps, from ``random_state``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_fitted()
        rng = as_rng(self.random_state)
        z = rng.standard_normal((n_samples, self.n_components))
        noise = rng.standard_normal((n_samples, len(self.mean_))) * np.sqrt(self.noise_variance_)
        return z @ self.W_.T + self.mean_ + noise
