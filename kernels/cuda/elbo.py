"""The ELBO path on the GPU: reparameterisation with the analytic KL and its
backward, and the Bernoulli and Gaussian log-likelihoods with their gradients.

Layouts: the latent ops are one thread per element of their largest output (z: one
per (n, l, j); the backward: one per (n, j), summing over the L samples in order).
The likelihoods need a sum per row: one block of ROW_THREADS threads per example,
each thread striding over the row's D values (coalesced) and writing the gradient,
then a fixed-order tree sum in shared memory, in float64 (deterministic, and as
accurate as the reference's pairwise sum).
"""

import math

import numpy as np
from numba import config, cuda, float64

from .. import reference
from ...constants import LOG_2PI
from .arrays import (
    THREADS, absent, block_sum, blocks, empty, flat, halves, is_device, launch, mixed, to_device, to_host,
)

ROW_THREADS = 16 if config.ENABLE_CUDASIM else 128  # a power of two, for the tree sum (small in the simulator, as THREADS)


@cuda.jit
def _reparameterize_kl(mean, logvar, eps, z, kl):
    """z[n, l, j] = mean[n, j] + exp(logvar[n, j] / 2) eps[n, l, j]; the thread of
    l = 0 also writes kl[n, j] = (exp(logvar) + mean^2 - 1 - logvar) / 2."""
    i = cuda.grid(1)
    n_samples, d = eps.shape[1], eps.shape[2]
    if i < eps.size:
        n, rest = i // (n_samples * d), i % (n_samples * d)
        s, j = rest // d, rest % d
        lv, mu = logvar[n, j], mean[n, j]
        std = math.exp(0.5 * lv)
        z[n, s, j] = mu + std * eps[n, s, j]
        if s == 0:
            kl[n, j] = 0.5 * (std * std + mu * mu - 1 - lv)


@cuda.jit
def _reparameterize_kl_backward(dz, eps, mean, logvar, dkl, dkl_value, dmean, dlogvar):
    i = cuda.grid(1)
    d = mean.shape[1]
    if i < mean.size:
        n, j = i // d, i % d
        sum_dz, sum_dz_eps = 0.0, 0.0
        for s in range(dz.shape[1]):
            sum_dz += dz[n, s, j]
            sum_dz_eps += dz[n, s, j] * eps[n, s, j]
        std = math.exp(0.5 * logvar[n, j])
        g = dkl[n, j] if dkl.size else dkl_value  # dkl one number: passed as one
        dmean[n, j] = sum_dz + g * mean[n, j]
        dlogvar[n, j] = 0.5 * std * sum_dz_eps + 0.5 * g * (std * std - 1)


def reparameterize_kl(mean, logvar, eps):
    """``(z, kl)`` as the reference's, in one launch."""
    if mixed(mean, logvar, eps) or not eps.size:
        return reference.reparameterize_kl(to_host(mean), to_host(logvar), to_host(eps))
    reference.check_latent(mean, logvar, eps)
    host = not is_device(eps)
    mean, logvar, eps = to_device(mean), to_device(logvar), to_device(eps)
    z, kl = empty(eps.shape, eps.dtype), empty(mean.shape, mean.dtype)
    launch(_reparameterize_kl, blocks(eps.size), THREADS)(mean, logvar, eps, z, kl)
    return (to_host(z), to_host(kl)) if host else (z, kl)


def reparameterize_kl_backward(dz, eps, mean, logvar, dkl):
    """``(dmean, dlogvar)`` as the reference's, in one launch; ``dkl`` (N, d) or a
    number (passed to the kernel as a number). On the device the two are the halves of
    one (N, 2 d) array, which ``arrays.concat_columns`` returns as it is: the encoder's
    output gradient [dmean, dlogvar] costs no pass of its own."""
    if mixed(dz, eps, mean, logvar) or not dz.size:
        return reference.reparameterize_kl_backward(*map(to_host, (dz, eps, mean, logvar, dkl)))
    reference.check_latent(mean, logvar, eps, dz)
    host = not is_device(dz)
    if is_device(dkl) and dkl.shape != mean.shape:  # the kernel indexes dkl as mean
        raise ValueError(f"dkl: expected shape {mean.shape} (or a number), got {dkl.shape}")
    number = np.ndim(dkl) == 0
    if not number:
        dkl = to_device(np.broadcast_to(np.asarray(dkl, dtype=mean.dtype), mean.shape) if not is_device(dkl) else dkl)
    dz, eps, mean, logvar = map(to_device, (dz, eps, mean, logvar))
    n, d = mean.shape
    joined = empty((n, 2 * d), mean.dtype)
    dmean, dlogvar = halves(joined, d)
    launch(_reparameterize_kl_backward, blocks(mean.size), THREADS)(
        dz, eps, mean, logvar, absent(mean.dtype, 1) if number else dkl, mean.dtype.type(dkl if number else 0),
        dmean, dlogvar)
    return (to_host(dmean), to_host(dlogvar)) if host else (dmean, dlogvar)


@cuda.jit
def _log_pz_minus_log_qz(z, eps, logvar, out):
    """One thread per sample (n, l), summing its d terms in order, in float64."""
    i = cuda.grid(1)
    n_samples, d = z.shape[1], z.shape[2]
    if i < out.size:
        n, s = i // n_samples, i % n_samples
        total = 0.0
        for j in range(d):
            total += z[n, s, j] * z[n, s, j] - logvar[n, j] - eps[n, s, j] * eps[n, s, j]
        out[n, s] = -0.5 * total


def log_pz_minus_log_qz(z, eps, logvar):
    """``(N, L)`` as the reference's, one launch."""
    if mixed(z, eps, logvar) or not z.size:
        return reference.log_pz_minus_log_qz(to_host(z), to_host(eps), to_host(logvar))
    reference.check_latent(logvar, logvar, eps, z)
    host = not is_device(z)
    z, eps, logvar = to_device(z), to_device(eps), to_device(logvar)
    out = empty(z.shape[:2], z.dtype)
    launch(_log_pz_minus_log_qz, blocks(out.size), THREADS)(z, eps, logvar, out)
    return to_host(out) if host else out


@cuda.jit
def _log_pz_minus_log_qz_backward(g, g_value, z, dz, dlogvar):
    """One thread per (n, l, j): dz = -g[n, l] z; the thread of l = 0 also sums
    dlogvar[n, j] = 1/2 sum_l g[n, l] (g one number: passed as one)."""
    i = cuda.grid(1)
    n_samples, d = z.shape[1], z.shape[2]
    if i < z.size:
        n, rest = i // (n_samples * d), i % (n_samples * d)
        s, j = rest // d, rest % d
        dz[n, s, j] = -(g[n, s] if g.size else g_value) * z[n, s, j]
        if s == 0:
            total = 0.0
            for t in range(n_samples):
                total += g[n, t] if g.size else g_value
            dlogvar[n, j] = 0.5 * total


def _sample_weights(dlog_ratio, z):
    """The kernels' pair (g, g_value) for d/dlog_ratio: (N, L) on the device and 0, or an
    empty array and the number."""
    if np.ndim(dlog_ratio) == 0:
        return absent(z.dtype, 2), z.dtype.type(dlog_ratio)
    g = dlog_ratio if is_device(dlog_ratio) else to_device(np.asarray(dlog_ratio, dtype=z.dtype))
    if g.shape != z.shape[:2]:  # the kernels index it by z's first two axes
        raise ValueError(f"dlog_ratio: expected shape {z.shape[:2]} (or a number), got {g.shape}")
    return g, z.dtype.type(0)


def log_pz_minus_log_qz_backward(dlog_ratio, z):
    """``(dz, dlogvar)`` as the reference's, one launch; ``dlog_ratio`` (N, L) or a number."""
    if not is_device(z) or not z.size:
        return reference.log_pz_minus_log_qz_backward(to_host(dlog_ratio), to_host(z))
    dz, dlogvar = empty(z.shape, z.dtype), empty((z.shape[0], z.shape[2]), z.dtype)
    launch(_log_pz_minus_log_qz_backward, blocks(z.size), THREADS)(*_sample_weights(dlog_ratio, z), z, dz, dlogvar)
    return dz, dlogvar


@cuda.jit
def _log_prior_minus_log_qz(z, eps, logvar, prior, out):
    """One thread per sample (n, l), its prior in row n L + l, summing in order in float64."""
    i = cuda.grid(1)
    n_samples, d = z.shape[1], z.shape[2]
    if i < out.size:
        n, s = i // n_samples, i % n_samples
        total = 0.0
        for j in range(d):
            r = z[n, s, j] - prior[i, j]
            total += prior[i, d + j] + r * r * math.exp(-prior[i, d + j]) - logvar[n, j] - eps[n, s, j] * eps[n, s, j]
        out[n, s] = -0.5 * total


def log_prior_minus_log_qz(z, eps, logvar, prior):
    """``(N, L)`` as the reference's, one launch."""
    if mixed(z, eps, logvar, prior) or not z.size:
        return reference.log_prior_minus_log_qz(to_host(z), to_host(eps), to_host(logvar), to_host(prior))
    reference.check_latent(logvar, logvar, eps, z)
    reference.check_prior(z, prior)
    host = not is_device(z)
    z, eps, logvar, prior = to_device(z), to_device(eps), to_device(logvar), to_device(prior)
    out = empty(z.shape[:2], z.dtype)
    launch(_log_prior_minus_log_qz, blocks(out.size), THREADS)(z, eps, logvar, prior, out)
    return to_host(out) if host else out


@cuda.jit
def _log_prior_minus_log_qz_backward(g, g_value, z, prior, dz, dlogvar, dprior):
    """One thread per (n, l, j): dz, and the prior's two gradients in row n L + l; the
    thread of l = 0 also sums dlogvar[n, j] = 1/2 sum_l g[n, l] (g one number: passed as one)."""
    i = cuda.grid(1)
    n_samples, d = z.shape[1], z.shape[2]
    if i < z.size:
        n, rest = i // (n_samples * d), i % (n_samples * d)
        s, j = rest // d, rest % d
        row, gs = n * n_samples + s, g[n, s] if g.size else g_value
        r = z[n, s, j] - prior[row, j]
        u = r * math.exp(-prior[row, d + j])
        dz[n, s, j] = -gs * u
        dprior[row, j] = gs * u
        dprior[row, d + j] = gs * (u * r - 1) / 2
        if s == 0:
            total = 0.0
            for t in range(n_samples):
                total += g[n, t] if g.size else g_value
            dlogvar[n, j] = 0.5 * total


def log_prior_minus_log_qz_backward(dlog_ratio, z, prior):
    """``(dz, dlogvar, dprior)`` as the reference's, one launch; ``dlog_ratio`` (N, L) or a number."""
    if not is_device(z) or not z.size:
        return reference.log_prior_minus_log_qz_backward(to_host(dlog_ratio), to_host(z), to_host(prior))
    reference.check_prior(z, prior)
    prior = to_device(prior)
    dz, dlogvar, dprior = (empty(z.shape, z.dtype), empty((z.shape[0], z.shape[2]), z.dtype),
                           empty(prior.shape, z.dtype))
    launch(_log_prior_minus_log_qz_backward, blocks(z.size), THREADS)(*_sample_weights(dlog_ratio, z), z, prior, dz,
                                                                       dlogvar, dprior)
    return dz, dlogvar, dprior


@cuda.jit
def _bernoulli(x, logits, log_p, grad, scale):
    """Row n = blockIdx.x: log p = sum_d x l - softplus(l), grad = scale (x - sigmoid(l)),
    with e = exp(-|l|): softplus(l) = max(l, 0) + log1p(e), sigmoid(l) = 1 / (1 + e)
    for l >= 0 and e / (1 + e) below."""
    partial = cuda.shared.array(ROW_THREADS, np.float64)
    n = cuda.blockIdx.x
    total = 0.0
    for d in range(cuda.threadIdx.x, x.shape[1], ROW_THREADS):
        l, xv = logits[n, d], x[n, d]
        e = math.exp(-abs(l))
        total += xv * l - max(l, 0) - math.log1p(e)
        if grad.size:  # log p alone (evaluation) writes no gradient
            s = 1 / (1 + e)
            grad[n, d] = scale * (xv - (s if l >= 0 else e * s))
    total = block_sum(total, partial)
    if cuda.threadIdx.x == 0:
        log_p[n] = total


@cuda.jit
def _gaussian(x, mu, logvar, log_p, dmu, dlogvar, scale):
    """Row n = blockIdx.x, ``logvar`` (N, D) or (1, D) (shared by every row); the
    gradients times ``scale``."""
    partial = cuda.shared.array(ROW_THREADS, np.float64)
    n = cuda.blockIdx.x
    row = n if logvar.shape[0] > 1 else 0
    total = 0.0
    for d in range(cuda.threadIdx.x, x.shape[1], ROW_THREADS):
        lv = logvar[row, d]
        r = x[n, d] - mu[n, d]
        g = r * math.exp(-lv)
        half_sq = 0.5 * r * g
        dmu[n, d] = scale * g
        dlogvar[n, d] = scale * (half_sq - 0.5)
        total += lv + 2 * half_sq
    total = block_sum(total, partial)
    if cuda.threadIdx.x == 0:
        log_p[n] = -0.5 * (x.shape[1] * LOG_2PI + total)


def bernoulli_log_prob_grad(x, logits, scale=1.0):
    """``(log_p (N,), grad (N, D))`` as the reference's, one block per row, the
    gradient scaled as it is written."""
    if mixed(x, logits) or not x.size:
        return reference.bernoulli_log_prob_grad(to_host(x), to_host(logits), scale)
    reference.check_likelihood(x, logits, names="x, logits")
    host = not is_device(logits)
    x, logits = to_device(x), to_device(logits)
    log_p, grad = empty(len(x), x.dtype), empty(x.shape, x.dtype)
    launch(_bernoulli, len(x), ROW_THREADS)(x, logits, log_p, grad, x.dtype.type(scale))
    return (to_host(log_p), to_host(grad)) if host else (log_p, grad)


def bernoulli_log_prob(x, logits):
    """log p alone: :func:`bernoulli_log_prob_grad`'s kernel with no gradient to write."""
    if mixed(x, logits) or not x.size or not is_device(logits):
        return bernoulli_log_prob_grad(x, logits)[0]
    reference.check_likelihood(x, logits, names="x, logits")
    x, log_p = to_device(x), empty(len(logits), logits.dtype)
    launch(_bernoulli, len(x), ROW_THREADS)(x, logits, log_p, absent(logits.dtype, 2), logits.dtype.type(1))
    return log_p


def gaussian_log_prob_grad(x, mu, logvar, scale=1.0):
    """``(log_p, dmu, dlogvar)`` as the reference's, one block per row; ``logvar``
    (N, D) or (D,)."""
    if mixed(x, mu, logvar) or not x.size:
        return reference.gaussian_log_prob_grad(to_host(x), to_host(mu), to_host(logvar), scale)
    reference.check_likelihood(x, mu, logvar)
    host = not is_device(mu)
    x, mu, logvar = to_device(x), to_device(mu), to_device(logvar)
    if logvar.ndim == 1:  # one row shared by every example
        logvar = logvar.reshape(1, x.shape[1])
    log_p, dmu, dlogvar = empty(len(x), x.dtype), empty(x.shape, x.dtype), empty(x.shape, x.dtype)
    launch(_gaussian, len(x), ROW_THREADS)(x, mu, logvar, log_p, dmu, dlogvar, x.dtype.type(scale))
    out = (log_p, dmu, dlogvar)
    return tuple(to_host(a) for a in out) if host else out


@cuda.jit
def _batch_means(log_px, kl, log_ratio, n, means):
    """One block: each thread sums its stride of each array in float64, then the
    fixed-order tree (``arrays.block_sum``); thread 0 writes the three means."""
    partial = cuda.shared.array(ROW_THREADS, np.float64)
    t = cuda.threadIdx.x
    for which in range(3):
        a = log_px if which == 0 else (kl if which == 1 else log_ratio)
        total = 0.0
        for i in range(t, a.size, ROW_THREADS):
            total += float64(a[i])  # float64 in the simulator too (NumPy keeps float32 + 0.0 in float32)
        total = block_sum(total, partial)
        if t == 0:
            means[which] = total / (n if which == 1 else max(a.size, 1))
        cuda.syncthreads()


def batch_means(log_px, kl, log_ratio=None):
    """The reference's (3,) means in one block: on the device, for device terms."""
    if not is_device(log_px):
        return reference.batch_means(log_px, to_host(kl), None if log_ratio is None else to_host(log_ratio))
    means = empty(3, np.float64)
    launch(_batch_means, 1, ROW_THREADS)(flat(log_px), flat(kl),
                                         absent(log_px.dtype, 1) if log_ratio is None else flat(log_ratio), len(kl),
                                         means)
    return means


@cuda.jit
def _log_sum_exp_rows(log_px, log_ratio, running, fresh):
    """One thread per example: its L log-weights folded into running[n] = [m, s] in order."""
    n = cuda.grid(1)
    if n < running.shape[0]:
        m = running[n, 0]
        for s in range(log_px.shape[1]):
            lw = float64(log_px[n, s]) + float64(log_ratio[n, s])
            if fresh and s == 0:
                m = lw
            m = max(m, lw)
        total = 0.0 if fresh else running[n, 1] * math.exp(running[n, 0] - m)
        for s in range(log_px.shape[1]):
            total += math.exp(float64(log_px[n, s]) + float64(log_ratio[n, s]) - m)
        running[n, 0], running[n, 1] = m, total


def log_sum_exp_rows(log_px, log_ratio, running=None):
    """The reference's running [m, s] on the device, updated in place (made by the
    first call): an evaluation reads it once per batch."""
    if not is_device(log_px):
        return reference.log_sum_exp_rows(log_px, to_host(log_ratio), None if running is None else to_host(running))
    reference.check_log_weights(log_px, log_ratio, running)  # the kernel indexes all three by log_px's shape
    fresh = running is None
    running = empty((len(log_px), 2), np.float64) if fresh else running
    launch(_log_sum_exp_rows, blocks(len(log_px)), THREADS)(log_px, log_ratio, running, fresh)
    return running


def mae_penalty(mean, logvar, eta, gamma):
    """The reference's, on the host: O(B^2 d) numbers for one batch, small beside a
    step's products; device gradients for device inputs."""
    value, dmean, dlogvar, m, s = reference.mae_penalty(to_host(mean), to_host(logvar), eta, gamma)
    if is_device(mean):
        dmean, dlogvar = to_device(dmean), to_device(dlogvar)
    return value, dmean, dlogvar, m, s
