"""The ELBO path: the reparameterised sample with its analytic KL, log p(z) - log q(z|x),
the Bernoulli and Gaussian likelihoods with their gradients, and the MAE regulariser."""

import math

import numpy as np
from scipy.special import expit

from ...constants import LOG_2PI
from .arrays import refuse_shapes


def check_latent(mean, logvar, eps, dz=None):
    """Raise unless mean and logvar are (N, d) and eps (and dz, when given) (N, L, d)."""
    if not (mean.ndim == 2 and logvar.shape == mean.shape and eps.ndim == 3
            and (eps.shape[0], eps.shape[2]) == mean.shape and (dz is None or dz.shape == eps.shape)):
        arrays = (mean, logvar, eps) if dz is None else (mean, logvar, eps, dz)
        refuse_shapes("mean, logvar, eps" + (", dz" if dz is not None else ""), "(N, d), (N, d), (N, L, d)", arrays)


def check_likelihood(x, mean, logvar=None, names="x, mu"):
    """Raise unless the likelihood's mean (or logits) has the data's shape (N, D), and
    ``logvar``, when given, is (N, D) or (D,)."""
    if logvar is None:
        if not (x.ndim == 2 and mean.shape == x.shape):
            refuse_shapes(names, "(N, D), (N, D)", (x, mean))
    elif not (x.ndim == 2 and mean.shape == x.shape and logvar.shape in (x.shape, x.shape[1:])):
        refuse_shapes(names + ", logvar", "(N, D), (N, D), (N, D) or (D,)", (x, mean, logvar))


def reparameterize_kl(mean, logvar, eps):
    """The sampling step of the ELBO and its analytic KL, from ``mean``, ``logvar``
    (N, d) and ``eps`` (N, L, d)::

        z[n, l]  = mean[n] + exp(logvar[n] / 2) * eps[n, l]
        kl[n, d] = 1/2 (exp(logvar) + mean^2 - 1 - logvar)[n, d]   = KL(q || N(0, I))

    Returns ``(z, kl)``.
    """
    check_latent(mean, logvar, eps)
    std = np.exp(0.5 * logvar)
    return mean[:, None] + std[:, None] * eps, 0.5 * (std * std + mean * mean - 1 - logvar)


def reparameterize_kl_backward(dz, eps, mean, logvar, dkl):
    """Given ``dz`` = dL/dz (N, L, d) and ``dkl`` = dL/dkl (N, d) for the outputs of
    :func:`reparameterize_kl`, returns ``(dmean, dlogvar)``::

        dmean   = sum_l dz + dkl * mean
        dlogvar = sum_l dz * eps * exp(logvar/2) / 2 + dkl * (exp(logvar) - 1) / 2
    """
    check_latent(mean, logvar, eps, dz)
    std = np.exp(0.5 * logvar)
    dmean = dz.sum(axis=1) + dkl * mean
    dlogvar = 0.5 * std * np.sum(dz * eps, axis=1) + 0.5 * dkl * (std * std - 1)
    return dmean, dlogvar


def log_pz_minus_log_qz(z, eps, logvar):
    """log p(z) - log q(z|x) per sample, (N, L), for the ``z`` that
    :func:`reparameterize_kl` made from ``eps`` (N, L, d) and ``logvar`` (N, d). As
    (z - mean)^2 / var = eps^2, the log 2 pi terms cancel and no division is left::

        log p(z)   = -1/2 sum_j [log 2 pi + z_j^2]
        log q(z|x) = -1/2 sum_j [log 2 pi + logvar_j + eps_j^2]
        difference = -1/2 sum_j [z_j^2 - logvar_j - eps_j^2]

    Its gradient, eps held fixed: -z in z, +1/2 in each logvar_j (per sample).
    """
    check_latent(logvar, logvar, eps, z)
    return -0.5 * np.sum(z * z - logvar[:, None] - eps * eps, axis=-1)


def log_pz_minus_log_qz_backward(dlog_ratio, z):
    """``(dz, dlogvar)`` from d/dlog_ratio (N, L, or one number) for
    :func:`log_pz_minus_log_qz`, eps held fixed: dz = -dlog_ratio z per sample, and
    dlogvar_j = +1/2 sum_l dlog_ratio (N, d)."""
    g = np.broadcast_to(np.asarray(dlog_ratio, dtype=z.dtype), z.shape[:2])[..., None]
    return -g * z, np.broadcast_to(0.5 * g.sum(axis=1), (len(z), z.shape[2])).copy()


def check_prior(z, prior):
    """Raise unless ``prior`` is (N L, 2 d) for ``z`` (N, L, d): one row per sample."""
    if prior.shape != (z.shape[0] * z.shape[1], 2 * z.shape[2]):
        refuse_shapes("z, prior", "(N, L, d), (N L, 2 d)", (z, prior))


def log_prior_minus_log_qz(z, eps, logvar, prior):
    """log p(z) - log q(z|x) per sample, (N, L), for a Gaussian prior of each sample's
    own: ``prior`` (N L, 2 d) = [mean_p, logvar_p], row n L + l for sample l of example
    n (a prior network's output, as the two-layer VAE's p(z1|z2)); ``z`` made from
    ``eps`` (N, L, d) and ``logvar`` (N, d) by :func:`reparameterize_kl`. As in
    :func:`log_pz_minus_log_qz` (its case mean_p = logvar_p = 0), log 2 pi cancels::

        log p(z)   = -1/2 sum_j [log 2 pi + logvar_p_j + (z_j - mean_p_j)^2 exp(-logvar_p_j)]
        log q(z|x) = -1/2 sum_j [log 2 pi + logvar_j + eps_j^2]
        difference = -1/2 sum_j [logvar_p_j + (z_j - mean_p_j)^2 exp(-logvar_p_j) - logvar_j - eps_j^2]
    """
    check_latent(logvar, logvar, eps, z)
    check_prior(z, prior)
    d = z.shape[2]
    mean_p, logvar_p = prior[:, :d].reshape(z.shape), prior[:, d:].reshape(z.shape)
    r = z - mean_p
    return -0.5 * np.sum(logvar_p + r * r * np.exp(-logvar_p) - logvar[:, None] - eps * eps, axis=-1)


def log_prior_minus_log_qz_backward(dlog_ratio, z, prior):
    """``(dz, dlogvar, dprior)`` from g = d/dlog_ratio (N, L, or one number) for
    :func:`log_prior_minus_log_qz`, eps held fixed, with u = (z - mean_p) exp(-logvar_p)::

        dz = -g u,   dmean_p = g u,   dlogvar_p = g (u (z - mean_p) - 1) / 2   (per sample)
        dlogvar_j = 1/2 sum_l g                                              (N, d)

    ``dprior`` (N L, 2 d) = [dmean_p, dlogvar_p], the prior network's output gradient."""
    check_prior(z, prior)
    d = z.shape[2]
    g = np.broadcast_to(np.asarray(dlog_ratio, dtype=z.dtype), z.shape[:2])[..., None]
    r = z - prior[:, :d].reshape(z.shape)
    u = r * np.exp(-prior[:, d:].reshape(z.shape))
    dprior = np.concatenate([(g * u).reshape(-1, d), (0.5 * g * (u * r - 1)).reshape(-1, d)], axis=1)
    return -g * u, np.broadcast_to(0.5 * g.sum(axis=1), (len(z), d)).copy(), dprior


def bernoulli_log_prob_grad(x, logits, scale=1.0):
    """log p(x | logits) summed per row, and its gradient in the logits times ``scale``::

        log p = sum_d x_d l_d - softplus(l_d),    d log p / d l_d = x_d - sigmoid(l_d)

    (log sigmoid(l) = l - softplus(l), log(1 - sigmoid(l)) = -softplus(l)). Returns
    ``(log_p (N,), grad (N, D))``. ``scale``: the weight every row's log p has in a
    loss (a kernel then writes the loss's gradient in the same pass).
    """
    check_likelihood(x, logits, names="x, logits")
    return np.sum(x * logits - np.logaddexp(0, logits), axis=-1), scaled(x - expit(logits), scale)


def scaled(a, scale):
    """``scale * a`` in a's dtype; ``a`` itself for 1."""
    return a if scale == 1 else (a * a.dtype.type(scale))


def bernoulli_log_prob(x, logits):
    """log p(x | logits) summed per row, (N,), without the gradient: what evaluation
    needs (importance sampling at k = 5000 computes it for 5000 decoder outputs per image)."""
    check_likelihood(x, logits, names="x, logits")
    return np.sum(x * logits - np.logaddexp(0, logits), axis=-1)


def gaussian_log_prob_grad(x, mu, logvar, scale=1.0):
    """log N(x; mu, diag(exp(logvar))) summed per row (``logvar`` (N, D) or (D,)), and
    its gradients in ``mu`` and ``logvar``, each (N, D)::

        log p        = -1/2 sum_d [log 2 pi + logvar_d + (x_d - mu_d)^2 exp(-logvar_d)]
        d/d mu_d     = (x_d - mu_d) exp(-logvar_d)
        d/d logvar_d = -1/2 + (x_d - mu_d)^2 exp(-logvar_d) / 2

    Returns ``(log_p, dmu, dlogvar)``, the gradients times ``scale`` (as Bernoulli's).
    """
    check_likelihood(x, mu, logvar)
    inv_var = np.exp(-logvar)
    r = x - mu
    half_sq = 0.5 * r * r * inv_var
    log_p = -0.5 * np.sum(LOG_2PI + logvar + 2 * half_sq, axis=-1)
    return log_p, scaled(r * inv_var, scale), scaled(half_sq - 0.5, scale)


def batch_means(log_px, kl, log_ratio=None):
    """The batch means of an objective's terms, float64 (3,): log p(x|z) over the
    N x L samples (N, L), the KL (N, d) summed over its dimensions over the N
    examples, and log p(z) - log q(z|x) (N, L) over the samples (0 without it). Every
    estimator's objective and a step's statistics follow from them, so that a device
    step reads these three numbers and nothing else."""
    means = (np.sum(log_px, dtype=np.float64) / log_px.size, np.sum(kl, dtype=np.float64) / len(kl),
             0.0 if log_ratio is None else np.sum(log_ratio, dtype=np.float64) / log_ratio.size)
    return np.array(means)


def check_log_weights(log_px, log_ratio, running):
    """Raise unless log_px, log_ratio are (N, L) and ``running`` None or (N, 2)."""
    running_shape = None if running is None else running.shape
    if log_px.ndim != 2 or log_ratio.shape != log_px.shape or running_shape not in (None, (len(log_px), 2)):
        raise ValueError(f"log_px, log_ratio, running: expected (N, L), (N, L) and (N, 2), got shapes {log_px.shape}, "
                         f"{log_ratio.shape}, {running_shape}")


def log_sum_exp_rows(log_px, log_ratio, running=None):
    """A running log-sum-exp, per example, of the log-weights log w = log p(x|z) +
    log p(z) - log q(z|x) (each (N, L)), over chunks of samples: ``running`` (N, 2)
    float64 holds [m, s] with sum_l w_l = s e^m, and each call folds L more samples in
    (m the largest log w seen, so no exp overflows). Returns the new [m, s]; after k
    samples, log mean_l w_l = m + log s - log k (an importance-sampled log p(x), read
    once, whatever the chunks)."""
    check_log_weights(log_px, log_ratio, running)
    log_w = log_px.astype(np.float64) + log_ratio
    m = log_w.max(axis=1)
    if running is not None:
        m = np.maximum(m, running[:, 0])
    s = np.exp(log_w - m[:, None]).sum(axis=1)
    if running is not None:
        s += running[:, 1] * np.exp(running[:, 0] - m)
    return np.stack([m, s], axis=1)


def pairwise_kl(mean, logvar):
    """KL(q_i || q_j) per latent dimension for every pair of the batch's posteriors
    q_i = N(mean_i, diag exp(logvar_i)), as a (B, B, d) array (zero on the diagonal)::

        kl[i, j, d] = 1/2 [v_i / v_j + (mean_i - mean_j)^2 / v_j - 1 - logvar_i + logvar_j]
    """
    if mean.ndim != 2 or logvar.shape != mean.shape:
        refuse_shapes("mean, logvar", "(B, d), (B, d)", (mean, logvar))
    diff = mean[:, None] - mean[None]
    inv_var_j = np.exp(-logvar)[None]
    return 0.5 * (np.exp(logvar)[:, None] * inv_var_j + diff * diff * inv_var_j - 1 - logvar[:, None] + logvar[None])


def mae_penalty(mean, logvar, eta, gamma):
    """The MAE regulariser of a batch (Ma et al. 2019) and its gradient. With
    ``kl = pairwise_kl(mean, logvar)`` over the P = B (B - 1) ordered pairs i != j::

        M_d  = (1/P) sum_{i != j} kl[i, j, d]            (diversity, per dimension)
        K_ij = sum_d kl[i, j, d],  S = std_{i != j} K_ij (smoothness; unbiased: / (P - 1))
        R    = -eta sum_d log sigmoid(M_d / eta) + gamma S     (R = gamma S when eta = 0)

    Backward, with G[i, j, d] = dR / dkl[i, j, d] for i != j::

        G = -sigmoid(-M_d / eta) / P + gamma (K_ij - mean K) / ((P - 1) S)   (0 when S = 0)
        dR/dmean_i   = sum_j G[i, j] (mean_i - mean_j) / v_j - sum_j G[j, i] (mean_j - mean_i) / v_i
        dR/dlogvar_i = sum_j G[i, j] (v_i / v_j - 1) / 2
                     - sum_j G[j, i] (v_j / v_i + (mean_j - mean_i)^2 / v_i - 1) / 2

    (q_i appears in kl[i, j] as the first argument and in kl[j, i] as the second).
    Computed in float64. Returns ``(R, dmean, dlogvar, M (d,), S)``, the gradients in
    the inputs' dtype.
    """
    b = mean.shape[0]
    if b < 2:
        raise ValueError(f"mean: the MAE regulariser compares pairs of examples, expected a batch of >= 2, got {b}")
    mean64, logvar64 = mean.astype(np.float64), logvar.astype(np.float64)
    kl = pairwise_kl(mean64, logvar64)
    off = 1.0 - np.eye(b)[..., None]
    kl *= off
    pairs = b * (b - 1)
    m = kl.sum(axis=(0, 1)) / pairs
    k = kl.sum(axis=2)
    k_mean = k.sum() / pairs
    dev = (k - k_mean) * off[..., 0]
    s = math.sqrt((dev * dev).sum() / (pairs - 1)) if pairs > 1 else 0.0
    value = gamma * s
    g = np.zeros(kl.shape)
    if eta > 0:
        value -= eta * float(np.sum(-np.logaddexp(0.0, -m / eta)))
        g += -expit(-m / eta) / pairs
    if gamma and s > 0:
        g += (gamma * dev / ((pairs - 1) * s))[..., None]
    g *= off
    diff, inv_var = mean64[:, None] - mean64[None], np.exp(-logvar64)
    ratio = np.exp(logvar64)[:, None] * inv_var[None]  # v_i / v_j
    t = g * diff * inv_var[None]
    dmean = t.sum(axis=1) - t.sum(axis=0)
    dlogvar = 0.5 * np.sum(g * (ratio - 1), axis=1) - 0.5 * np.sum(g * (ratio + diff * diff * inv_var[None] - 1), axis=0)
    return float(value), dmean.astype(mean.dtype), dlogvar.astype(mean.dtype), m, s

