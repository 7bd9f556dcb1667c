"""On a linear-Gaussian model (probabilistic PCA) log p(x) is known in closed form:
x = W^T z + b + noise, z ~ N(0, I), noise ~ N(0, sigma^2 I), so x ~ N(b, W^T W + sigma^2 I)."""

import numpy as np
from scipy.stats import multivariate_normal

from npvae import nn
from npvae.distributions import Gaussian
from npvae.models import VAE

D, d, SIGMA = 5, 2, 0.6


def linear_gaussian_vae(rng):
    decoder = nn.Linear(d, D, dtype=np.float64)
    decoder.params["W"][:] = rng.standard_normal((d, D))
    decoder.params["b"][:] = rng.standard_normal(D)
    W, b = decoder.params["W"], decoder.params["b"]
    # The exact posterior is N(M^-1 W (x - b) / sigma^2, M^-1) with M = I + W W^T / sigma^2;
    # the encoder is a linear map that is close to it but not equal (a diagonal
    # covariance, perturbed weights), so the ELBO is strictly below log p(x).
    M_inv = np.linalg.inv(np.eye(d) + W @ W.T / SIGMA**2)
    A = (M_inv @ W / SIGMA**2).T  # (D, d): mean = (x - b) @ A
    encoder = nn.Linear(D, 2 * d, dtype=np.float64)
    encoder.params["W"][:, :d] = A + 0.1 * rng.standard_normal((D, d))
    encoder.params["W"][:, d:] = 0
    encoder.params["b"][:d] = -b @ A
    encoder.params["b"][d:] = np.log(np.diag(M_inv)) + 0.3
    model = VAE(encoder, decoder, Gaussian(SIGMA), d, (D,))
    exact = multivariate_normal(b, W.T @ W + SIGMA**2 * np.eye(D))
    return model, exact


def test_importance_sampled_log_likelihood_converges_to_exact():
    rng = np.random.default_rng(0)
    model, exact = linear_gaussian_vae(rng)
    x = exact.rvs(20, random_state=1)
    log_px = exact.logpdf(x)
    elbo = model.elbo(x, rng=rng, n_samples=20000)
    errors = {k: np.abs(model.log_likelihood(x, k=k, rng=np.random.default_rng(k)) - log_px).mean()
              for k in (1, 10, 5000)}
    assert np.all(elbo < log_px)  # the bound is below, strictly here
    assert errors[5000] < errors[10] < errors[1]
    assert errors[5000] < 0.05 and errors[5000] < errors[1] / 10, errors
    # the IWAE estimate's expectation sits between the ELBO and log p(x)
    assert np.mean(model.log_likelihood(x, k=50, rng=rng)) > np.mean(elbo)
