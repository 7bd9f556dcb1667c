"""Pieces of the training objectives: the KL penalty with free bits, the importance
weights of the IWAE bound, KL-annealing schedules and L2 weight decay.

The estimators themselves (Kingma & Welling's A and B, and the IWAE bound) are put
together in ``VAE.loss_and_grad``, which says per term where its gradient goes:

* estimator B: ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), the KL analytic;
* estimator A: ELBO = E_q[log p(x|z) + log p(z) - log q(z|x)], all Monte Carlo;
* IWAE (k samples): log (1/k) sum_l p(x, z_l) / q(z_l|x), which tends to log p(x).
"""

import numpy as np

from . import kernels
from .checks import check_array


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


def mae_regularizer(mean, logvar, eta, gamma):
    """The MAE regulariser (Ma, Zhou & Hovy, "MAE: Mutual Posterior-Divergence
    Regularization for Variational AutoEncoders", ICLR 2019) on a batch's posteriors
    q_i = N(mean_i, diag exp(logvar_i)), added to the loss (a minimised quantity)::

        R = -eta sum_d log sigmoid(M_d / eta) + gamma S

    M_d is the mean over the batch's ordered pairs i != j of KL(q_i || q_j) in latent
    dimension d: the *diversity* of the posteriors, rewarded, through a log-sigmoid
    that saturates (the paper's L_diversity, weight eta); S is the standard deviation
    over pairs of the whole KL(q_i || q_j): its *smoothness* term, penalised (weight
    gamma). This is the form of the authors' code (XuezheMax/mae: the posterior-KL
    statistics of its Gaussian encoder and the loss ``recon + beta KL - eta *
    logsigmoid(M / eta).sum() + gamma * S``): the mean over pairs is taken with
    B (B - 1) pairs and S is the unbiased standard deviation over them; eta = 0 turns
    the diversity term off. A posterior collapsed onto the prior has every KL(q_i ||
    q_j) = 0, so M_d = 0 and the term pays eta log 2 per dimension.

    The gradient, derived in ``kernels.reference.mae_penalty``, is O(B^2 d): B = 100
    is 10^4 pairs. Returns ``(R, dR/dmean, dR/dlogvar, M, S)``.
    """
    check_mae_weights(eta, gamma)
    check_array(mean, "mean")  # arrays of floats, finite; their shapes are the kernel's to check
    check_array(logvar, "logvar")
    return kernels.ops.mae_penalty(mean, logvar, float(eta), float(gamma))


def check_mae_weights(eta, gamma):
    for name, v in (("mae_eta", eta), ("mae_gamma", gamma)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v >= 0 \
                or not np.isfinite(v):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")


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
    names = [name for name in params if name.endswith("W")]
    for name in names:
        kernels.ops.add_scaled(grads[name], params[name], lam)
    return 0.5 * lam * kernels.ops.squared_norm([params[name] for name in names])
