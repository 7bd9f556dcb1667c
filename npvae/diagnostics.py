"""Posterior-collapse diagnostics of a VAE on a data array: active units, KL per latent
dimension and the mutual information between x and z. Each works through the data in
batches, so memory stays bounded on the whole test set.

A collapsed latent dimension has q(z_u | x) = p(z_u) for every x: its posterior mean
does not move with x (inactive), its KL is 0, and it carries no information about x.
"""

import math

import numpy as np

from .checks import as_rng, check_positive_int
from .hyperspherical import mean_resultant_length
from .models import VAE, HypersphericalVAE, TwoLayerVAE
from .distributions import kl_standard_normal
from .constants import LOG_2PI


def posterior_parameters(model, x, y=None, batch_size=500):
    """``(mean, logvar)`` of q(z|x) for every example, (N, d) each, in float64."""
    if not isinstance(model, VAE):
        raise TypeError(f"model: the diagnostics measure a posterior q(z|x), and {type(model).__name__} has none; "
                        f"expected a VAE")
    batch_size = check_positive_int(batch_size, "batch_size")
    model.check_x(x)  # also refuses an empty x
    labels = lambda s: {} if y is None else {"y": y[s : s + batch_size]}  # noqa: E731
    parts = [model.encode(x[s : s + batch_size], **labels(s)) for s in range(0, len(x), batch_size)]
    return (np.concatenate([p[0] for p in parts]).astype(np.float64),
            np.concatenate([p[1] for p in parts]).astype(np.float64))


def active_units(model, x, y=None, threshold=0.01, batch_size=500):
    """Unit u is active when Var_x(E_q[z_u | x]) > ``threshold`` (Burda, Grosse &
    Salakhutdinov 2015, who use 0.01): the posterior mean moves with the data.
    Returns ``(count, variances (d,))``, the variances over the N examples (/ N)."""
    _check_threshold(threshold)
    mean, spread = posterior_parameters(model, x, y, batch_size)
    if isinstance(model, HypersphericalVAE):  # (mu, kappa): E_q[z] = A_d(kappa) mu
        mean = mean_resultant_length(model.latent_dim, spread)[:, None] * mean
    return _active_units(mean, threshold)


def active_units_per_layer(model, x, threshold=0.01, rng=0, batch_size=500):
    """The active units of each stochastic layer, a list of ``(count, variances)``: one
    for a VAE; for a TwoLayerVAE, Var_x of E_q[z1|x] and of E_q[z2|z1] at one z1 ~
    q(z1|x) per example (``TwoLayerVAE.layer_means``, as Burda et al.'s code measures them)."""
    _check_threshold(threshold)
    if not isinstance(model, TwoLayerVAE):
        return [active_units(model, x, threshold=threshold, batch_size=batch_size)]
    return [_active_units(mean, threshold) for mean in model.layer_means(x, rng, batch_size)]


def _check_threshold(threshold):
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold: expected a finite number >= 0, got {threshold!r}")


def _active_units(mean, threshold):
    variances = mean.var(axis=0)
    return int(np.sum(variances > threshold)), variances


def kl_per_dimension(model, x, y=None, batch_size=500):
    """E_x KL(q(z_u | x) || N(0, 1)) for each latent dimension u, (d,) nats: they sum
    to the ELBO's KL term; a collapsed dimension has 0."""
    mean, logvar = posterior_parameters(model, x, y, batch_size)
    return kl_standard_normal(mean, logvar).mean(axis=0)


def mutual_information(model, x, y=None, rng=None, batch_size=500):
    """I_q(x; z) = E_x KL(q(z|x) || q(z)) under the encoder's joint q(x, z) = p_data(x)
    q(z|x), with q(z) = (1/N) sum_n q(z|x_n) the aggregate posterior of the N given
    examples (Hoffman & Johnson 2016; He et al. 2019 estimate it this way, on a
    minibatch). One z_i ~ q(z|x_i) per example::

        I ~= (1/N) sum_i [log q(z_i | x_i) - log (1/N) sum_j q(z_i | x_j)]

    every density a diagonal Gaussian; sum_j runs over all N examples, ``batch_size``
    rows at a time (O(N^2 d), as products). Bias: the mixture includes the term j = i,
    so the estimate never exceeds log N; it is consistent as N grows, and for a code
    carrying I nats it needs N well above e^I (10,000 test images: at most 9.2 nats).
    An encoder that ignores x gives exactly 0. Returns nats.
    """
    rng = as_rng(rng)
    return _mutual_information(*posterior_parameters(model, x, y, batch_size), rng, batch_size)


def _mutual_information(mean, logvar, rng, batch_size):
    n, d = mean.shape
    z = mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape)
    inv_var = np.exp(-logvar)
    # log q(z_i | x_j) = -1/2 [d log 2pi + sum logvar_j + sum (z_i - mean_j)^2 / var_j], the square expanded
    const = -0.5 * (d * LOG_2PI + logvar.sum(axis=1) + (mean * mean * inv_var).sum(axis=1))  # (N,) over j
    log_q_own = -0.5 * (d * LOG_2PI + logvar.sum(axis=1) + ((z - mean) ** 2 * inv_var).sum(axis=1))
    log_q_aggregate = np.empty(n)
    for s in range(0, n, batch_size):
        zb = z[s : s + batch_size]
        log_q = const - 0.5 * (zb * zb) @ inv_var.T + zb @ (mean * inv_var).T  # (rows, N)
        top = log_q.max(axis=1, keepdims=True)
        log_q_aggregate[s : s + batch_size] = top[:, 0] + np.log(np.exp(log_q - top).sum(axis=1)) - math.log(n)
    return float(np.mean(log_q_own - log_q_aggregate))


def collapse_report(model, x, y=None, rng=None, threshold=0.01, batch_size=500):
    """The three diagnostics as one JSON-able dict: ``active_units``, their
    ``unit_variances``, ``kl_per_dimension`` and ``mutual_information``."""
    _check_threshold(threshold)
    if isinstance(model, (TwoLayerVAE, HypersphericalVAE)):
        raise TypeError(f"model: the report measures a Gaussian q(z|x) against N(0, I), and a {type(model).__name__} "
                        f"has none; use active_units_per_layer (two layers) or active_units (vMF)")
    rng = as_rng(rng)
    mean, logvar = posterior_parameters(model, x, y, batch_size)
    count, variances = _active_units(mean, threshold)
    return {"active_units": count, "unit_variances": variances.tolist(),
            "kl_per_dimension": kl_standard_normal(mean, logvar).mean(axis=0).tolist(),
            "mutual_information": _mutual_information(mean, logvar, rng, batch_size)}
