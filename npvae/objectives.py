"""Pieces of the training objectives: the KL penalty with free bits, the importance
weights of the IWAE bound, KL-annealing schedules and L2 weight decay.

The estimators themselves (Kingma & Welling's A and B, and the IWAE bound) are put
together in ``VAE.loss_and_grad``, which says per term where its gradient goes:

* estimator B: ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), the KL analytic;
* estimator A: ELBO = E_q[log p(x|z) + log p(z) - log q(z|x)], all Monte Carlo;
* IWAE (k samples): log (1/k) sum_l p(x, z_l) / q(z_l|x), which tends to log p(x).
"""

import numpy as np


def log_mean_exp(a, axis=-1):
    """log(mean(exp(a))) along ``axis`` without overflow: m + log mean exp(a - m)."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(a - m), axis=axis))


def importance_weights(log_w, axis=-1):
    """d log_mean_exp(log_w) / d log_w: the normalised weights softmax(log_w)."""
    w = np.exp(log_w - np.max(log_w, axis=axis, keepdims=True))
    return w / np.sum(w, axis=axis, keepdims=True)


def kl_penalty(kl, free_bits=0.0):
    """The KL term of the loss for a batch, with free bits (Kingma et al. 2016).

    ``kl`` (N, d) is KL per example and latent dimension. Each dimension pays at
    least ``free_bits`` nats: penalty = sum_d max(free_bits, mean_n kl[n, d]), so a
    dimension under its floor gets no gradient (it is free to carry information).
    Returns ``(penalty, d penalty / d kl)``; with free_bits = 0 the penalty is the
    batch mean of the per-example KL and the gradient is 1/N everywhere.
    """
    if free_bits == 0:  # the common case, without the masks
        return float(kl.sum()) / kl.shape[0], np.full(kl.shape, 1 / kl.shape[0], dtype=kl.dtype)
    per_dim = kl.mean(axis=0)
    active = per_dim > free_bits
    penalty = float(np.sum(np.where(active, per_dim, free_bits)))
    dkl = np.broadcast_to(active / kl.shape[0], kl.shape).astype(kl.dtype)
    return penalty, dkl


def linear_warmup(step, warmup_steps):
    """KL annealing: the KL weight rises linearly from 0 to 1 over ``warmup_steps``."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


def cyclical(step, period, ramp=0.5):
    """Cyclical annealing (Fu et al. 2019): in every ``period`` steps the weight rises
    linearly from 0 to 1 over the first ``ramp`` fraction, then stays at 1."""
    return min(1.0, (step % period) / (ramp * period))


SCHEDULES = {"constant": lambda step: 1.0, "linear": linear_warmup, "cyclical": cyclical}


def weight_decay(params, grads, lam):
    """L2 penalty lam/2 sum ||W||^2 over the weight matrices (names ending in "W";
    biases and likelihood parameters are not decayed). Adds lam * W into ``grads``
    and returns the penalty."""
    if lam == 0:
        return 0.0
    penalty = 0.0
    for name, p in params.items():
        if name.endswith("W"):
            penalty += 0.5 * lam * float(np.sum(p * p))
            grads[name] += lam * p
    return penalty
