"""The ELBO path: reparameterisation with the analytic KL and its backward, the
Bernoulli and Gaussian log-likelihoods with their gradients, the MAE regulariser."""

import math

import llvmlite.ir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .. import reference
from ...constants import LOG_2PI
from ..reference.elbo import (  # noqa: F401  (NumPy passes already)
    batch_means, log_pz_minus_log_qz, log_pz_minus_log_qz_backward, log_prior_minus_log_qz,
    log_prior_minus_log_qz_backward, log_sum_exp_rows,
)
from .arrays import JIT, mixed

# --------------------------------------------------------------------- the ELBO path


@njit(**JIT)
def _reparameterize_kl(mean, logvar, std, eps, z, kl):
    for n in range(eps.shape[0]):
        for s in range(eps.shape[1]):
            for j in range(eps.shape[2]):
                z[n, s, j] = mean[n, j] + std[n, j] * eps[n, s, j]
        for j in range(eps.shape[2]):
            kl[n, j] = 0.5 * (std[n, j] * std[n, j] + mean[n, j] * mean[n, j] - 1 - logvar[n, j])


def reparameterize_kl(mean, logvar, eps):
    """z and the analytic KL in one pass over (mean, logvar, eps); exp(logvar / 2) from NumPy."""
    if mixed(mean, logvar, eps):
        return reference.reparameterize_kl(mean, logvar, eps)
    reference.check_latent(mean, logvar, eps)
    z, kl = np.empty(eps.shape, dtype=eps.dtype), np.empty(mean.shape, dtype=mean.dtype)
    _reparameterize_kl(mean, logvar, np.exp(0.5 * logvar), eps, z, kl)
    return z, kl


@njit(**JIT)
def _reparameterize_kl_backward(dz, eps, mean, std, dkl, dmean, dlogvar):
    for n in range(dz.shape[0]):
        for j in range(dz.shape[2]):
            sum_dz, sum_dz_eps = 0.0, 0.0
            for s in range(dz.shape[1]):
                sum_dz += dz[n, s, j]
                sum_dz_eps += dz[n, s, j] * eps[n, s, j]
            dmean[n, j] = sum_dz + dkl[n, j] * mean[n, j]
            dlogvar[n, j] = 0.5 * std[n, j] * sum_dz_eps + 0.5 * dkl[n, j] * (std[n, j] * std[n, j] - 1)


def reparameterize_kl_backward(dz, eps, mean, logvar, dkl):
    """``(dmean, dlogvar)`` in one pass over (dz, eps, mean, logvar, dkl)."""
    if mixed(dz, eps, mean, logvar):
        return reference.reparameterize_kl_backward(dz, eps, mean, logvar, dkl)
    reference.check_latent(mean, logvar, eps, dz)
    dmean, dlogvar = np.empty_like(mean), np.empty_like(logvar)
    _reparameterize_kl_backward(dz, eps, mean, np.exp(0.5 * logvar), np.broadcast_to(dkl, mean.shape), dmean, dlogvar)
    return dmean, dlogvar


@njit(**JIT)
def _bernoulli_rows(x, logits, e, log1p_e, log_p, grad):
    """With e = exp(-|l|) and log1p(e) from NumPy: softplus(l) = max(l, 0) + log1p(e),
    sigmoid(l) = 1 / (1 + e) for l >= 0 and e / (1 + e) below. ``grad`` must not be
    ``e``: LLVM vectorises this loop behind a runtime check that the arrays do not
    overlap, and writing over ``e`` takes the scalar path."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l, e_nd = logits[n, d], e[n, d]
            acc += x[n, d] * l - (l if l > 0 else 0) - log1p_e[n, d]
            s = 1 / (1 + e_nd)
            grad[n, d] = x[n, d] - (s if l >= 0 else e_nd * s)
        log_p[n] = acc


# float32 only: its exp and log1p written out, so that the whole pass is one loop LLVM
# vectorises. (Written for float64's precision they took as long as NumPy's ufuncs.)
F32 = np.float32


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvmlite.ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always", **JIT)
def _exp_minus_f32(a):
    """exp(-a) for float32 a >= 0, to 2.3e-7 relative. -a = k ln2 + r with k = round(a / ln2),
    |r| <= ln2 / 2 (ln2 split in two parts so that k ln2 is exact); exp(r) by its Taylor
    polynomial to r^6 (the next term is under 3e-8); 2^-k by writing 127 - k into the
    exponent bits. Beyond a = 87 the result (under 1.7e-38) is 0; NaN stays NaN (through r)."""
    # k comes from a clamped to 87, so the int conversion below never sees inf or NaN
    k = np.floor((a if a < F32(87) else F32(87)) * F32(1.442695) + F32(0.5))
    r = k * F32(0.693145751953125) - a + k * F32(1.428606765330187e-06)
    p = F32(1 / 720) * r + F32(1 / 120)
    p = p * r + F32(1 / 24)
    p = p * r + F32(1 / 6)
    p = p * r + F32(0.5)
    p = p * r + F32(1)
    p = p * r + F32(1)
    return p * _float32_from_bits((np.int32(127) - np.int32(k)) << 23) if not a > F32(87) else F32(0)


@njit(inline="always", **JIT)
def _log1p_f32(e):
    """log1p(e) for float32 e in [0, 1]: log1p(e) = 2 atanh(s), s = e / (2 + e) <= 1/3,
    and 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...) to s^14 (the rest is under 2e-8)."""
    s = e / (F32(2) + e)
    s2 = s * s
    q = F32(1 / 15) * s2 + F32(1 / 13)
    q = q * s2 + F32(1 / 11)
    q = q * s2 + F32(1 / 9)
    q = q * s2 + F32(1 / 7)
    q = q * s2 + F32(1 / 5)
    q = q * s2 + F32(1 / 3)
    q = q * s2 + F32(1)
    return F32(2) * s * q


@njit(**JIT)
def _bernoulli_rows_f32(x, logits, log_p, grad):
    """:func:`_bernoulli_rows` with e = exp(-|l|) and log1p(e) computed in the loop;
    each row's sum accumulates in float64 as there."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l = logits[n, d]
            e = _exp_minus_f32(abs(l))
            acc += x[n, d] * l - max(l, F32(0)) - _log1p_f32(e)
            s = F32(1) / (F32(1) + e)
            grad[n, d] = x[n, d] - (s if l >= 0 else e * s)
        log_p[n] = acc


@njit(**JIT)
def _bernoulli_log_p_f32(x, logits, log_p):
    """:func:`_bernoulli_rows_f32` without the gradient."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l = logits[n, d]
            acc += x[n, d] * l - max(l, F32(0)) - _log1p_f32(_exp_minus_f32(abs(l)))
        log_p[n] = acc


def bernoulli_log_prob(x, logits):
    """log p alone, one fused pass for float32 (the reference makes four passes and three
    temporaries of the logits' size: 78% of an importance-sampled evaluation's time)."""
    if mixed(x, logits) or x.dtype != np.float32:
        return reference.bernoulli_log_prob(x, logits)
    reference.check_likelihood(x, logits, names="x, logits")
    log_p = np.empty(len(x), dtype=logits.dtype)
    _bernoulli_log_p_f32(x, logits, log_p)
    return log_p


def bernoulli_log_prob_grad(x, logits, scale=1.0):
    """log p and its gradient in one fused pass: for float32 with exp and log1p in the
    loop (``benchmarks/kernels.py``, kind ``bernoulli_exp_in_loop``, against NumPy's
    ufuncs), for float64 after NumPy's exp and log1p."""
    if mixed(x, logits):
        return reference.bernoulli_log_prob_grad(x, logits, scale)
    reference.check_likelihood(x, logits, names="x, logits")
    log_p, grad = np.empty(len(x), dtype=logits.dtype), np.empty(logits.shape, dtype=logits.dtype)
    if x.dtype == logits.dtype == np.float32:
        _bernoulli_rows_f32(x, logits, log_p, grad)
        return log_p, reference.scaled(grad, scale)
    e = np.exp(-np.abs(logits))
    _bernoulli_rows(x, logits, e, np.log1p(e), log_p, grad)
    return log_p, reference.scaled(grad, scale)


@njit(**JIT)
def _gaussian_rows(x, mu, logvar, inv_var, log_p, dmu, dlogvar):
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            r = x[n, d] - mu[n, d]
            dmu[n, d] = r * inv_var[n, d]
            half_sq = 0.5 * r * dmu[n, d]
            dlogvar[n, d] = half_sq - 0.5
            acc += logvar[n, d] + 2 * half_sq
        log_p[n] = -0.5 * (x.shape[1] * LOG_2PI + acc)


def gaussian_log_prob_grad(x, mu, logvar, scale=1.0):
    """log p, d/dmu and d/dlogvar in one pass; exp(-logvar) from NumPy."""
    if mixed(x, mu, logvar):
        return reference.gaussian_log_prob_grad(x, mu, logvar, scale)
    reference.check_likelihood(x, mu, logvar)
    logvar = np.broadcast_to(logvar, x.shape)
    dmu, dlogvar, log_p = np.empty_like(x), np.empty_like(x), np.empty(len(x), dtype=x.dtype)
    _gaussian_rows(x, mu, logvar, np.exp(-logvar), log_p, dmu, dlogvar)
    return log_p, reference.scaled(dmu, scale), reference.scaled(dlogvar, scale)


# ------------------------------------------------------------- the MAE regulariser


@njit(**JIT)
def _pairwise_kl_sums(mean, logvar, var, inv_var, m, k):
    """m[d] = sum_{i != j} kl[i, j, d] and k[i, j] = sum_d kl[i, j, d], never storing kl."""
    b, d = mean.shape
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            total = 0.0
            for c in range(d):
                diff = mean[i, c] - mean[j, c]
                kl = 0.5 * ((var[i, c] + diff * diff) * inv_var[j, c] - 1 - logvar[i, c] + logvar[j, c])
                m[c] += kl
                total += kl
            k[i, j] = total


@njit(**JIT)
def _mae_backward(mean, var, inv_var, a, c_pair, dmean, dlogvar):
    """Accumulate the gradient for G[i, j, d] = a[d] + c_pair[i, j] (the reference's formulas)."""
    b, d = mean.shape
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            for c in range(d):
                g = a[c] + c_pair[i, j]
                diff = mean[i, c] - mean[j, c]
                t = g * diff * inv_var[j, c]
                ratio = var[i, c] * inv_var[j, c]
                dmean[i, c] += t
                dmean[j, c] -= t
                dlogvar[i, c] += 0.5 * g * (ratio - 1)
                dlogvar[j, c] -= 0.5 * g * (ratio + diff * diff * inv_var[j, c] - 1)


def mae_penalty(mean, logvar, eta, gamma):
    """The reference's regulariser in two passes over the pairs, in float64, without the
    (B, B, d) arrays: the sums first, then the gradient, whose coefficient G[i, j, d]
    splits into a per-dimension part (diversity) and a per-pair part (smoothness)."""
    b = mean.shape[0]
    if b < 2 or mean.ndim != 2 or logvar.shape != mean.shape:
        return reference.mae_penalty(mean, logvar, eta, gamma)  # its checks and messages
    mean64, logvar64 = mean.astype(np.float64), logvar.astype(np.float64)
    var, inv_var = np.exp(logvar64), np.exp(-logvar64)
    pairs = b * (b - 1)
    m, k = np.zeros(mean.shape[1]), np.zeros((b, b))
    _pairwise_kl_sums(mean64, logvar64, var, inv_var, m, k)
    m /= pairs
    dev = (k - k.sum() / pairs) * (1.0 - np.eye(b))
    s = math.sqrt((dev * dev).sum() / (pairs - 1)) if pairs > 1 else 0.0
    value, a = gamma * s, np.zeros_like(m)
    if eta > 0:
        value += eta * float(np.sum(np.logaddexp(0.0, -m / eta)))
        a = -0.5 * (1 - np.tanh(0.5 * m / eta)) / pairs  # -sigmoid(-m / eta) / P
    c_pair = gamma * dev / ((pairs - 1) * s) if gamma and s > 0 else np.zeros((b, b))
    dmean, dlogvar = np.zeros(mean.shape), np.zeros(mean.shape)
    _mae_backward(mean64, var, inv_var, a, c_pair, dmean, dlogvar)
    return float(value), dmean.astype(mean.dtype), dlogvar.astype(mean.dtype), m, s
