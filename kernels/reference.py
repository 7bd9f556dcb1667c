"""Plain-NumPy reference of every op the layers call: the readable specification.

Every other backend implements these signatures and is tested against this file.
Arrays keep their dtype (float32 in, float32 out). Images are NCHW.

Convolutions are written with two primitives:

* ``im2col`` gathers every receptive field into a row, so a convolution is one
  matrix product with the flattened weight;
* ``col2im`` is its adjoint: it scatters rows back, *adding* where receptive
  fields overlap.

Conv2d forward is ``im2col`` then a product; its input gradient is a product then
``col2im``. ConvTranspose2d is the adjoint of Conv2d, so the same two primitives
serve it with their roles swapped.
"""

import math

import numpy as np
from scipy.special import expit

from ..constants import LOG_2PI

# --------------------------------------------------------------------------- checks


def all_finite(x):
    """Whether ``x`` holds no NaN or inf. The sum is finite unless something is NaN
    or inf (or it overflows, in which case the exact test decides): one cheap pass."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow or inf - inf here is the answer
        return bool(np.isfinite(x.sum()) or np.isfinite(x).all())


def _refuse(names, expected, arrays):
    shapes = ", ".join(str(a.shape) for a in arrays)
    raise ValueError(f"{names}: expected shapes {expected}, got {shapes}")


def check_dense(x, W, b, dy=None, dW=None, h=None, y=None):
    """Raise unless x is (N, in), W (in, out), b (out,), and, when dy is given (the
    backward), dy, h and y (N, out) and dW (in, out). The Numba kernels index every
    array by these sizes unchecked, and NumPy would broadcast a (1,) bias."""
    ok = x.ndim == 2 and W.ndim == 2 and x.shape[1] == W.shape[0] and b.shape == W.shape[1:]
    if dy is None:
        if not ok:
            _refuse("x, W, b", "(N, in), (in, out), (out,)", (x, W, b))
    elif not (ok and dy.shape == h.shape == y.shape == (len(x), W.shape[1]) and dW.shape == W.shape):
        _refuse("x, W, h, y, dy, dW, db", "(N, in), (in, out), (N, out) x3, (in, out), (out,)", (x, W, h, y, dy, dW, b))


def check_latent(mean, logvar, eps, dz=None):
    """Raise unless mean and logvar are (N, d) and eps (and dz, when given) (N, L, d)."""
    if not (mean.ndim == 2 and logvar.shape == mean.shape and eps.ndim == 3
            and (eps.shape[0], eps.shape[2]) == mean.shape and (dz is None or dz.shape == eps.shape)):
        arrays = (mean, logvar, eps) if dz is None else (mean, logvar, eps, dz)
        _refuse("mean, logvar, eps" + (", dz" if dz is not None else ""), "(N, d), (N, d), (N, L, d)", arrays)


def check_likelihood(x, mean, logvar=None, names="x, mu"):
    """Raise unless the likelihood's mean (or logits) has the data's shape (N, D), and
    ``logvar``, when given, is (N, D) or (D,)."""
    if logvar is None:
        if not (x.ndim == 2 and mean.shape == x.shape):
            _refuse(names, "(N, D), (N, D)", (x, mean))
    elif not (x.ndim == 2 and mean.shape == x.shape and logvar.shape in (x.shape, x.shape[1:])):
        _refuse(names + ", logvar", "(N, D), (N, D), (N, D) or (D,)", (x, mean, logvar))


# --------------------------------------------------------------------------- dense


def matmul(a, b):
    """``a @ b``."""
    return a @ b


def linear_forward(x, W, b, kind="identity", alpha=0.0):
    """A dense layer and its activation: ``h = x @ W + b`` and ``y = f(h)``, f the
    activation named ``kind``, with ``x`` (N, in), ``W`` (in, out), ``b`` (out,).
    Returns ``(h, y)``, one array twice for "identity"; the backward needs both."""
    check_dense(x, W, b)
    h = x @ W + b
    return h, activation_forward(h, kind, alpha)


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """Gradients of ``y = f(h)``, ``h = x @ W + b``: with the activation's
    ``dh = dy * f'(h)``, *adds* ``x.T @ dh`` into ``dW`` and ``sum_n dh[n]`` into
    ``db`` (in place), and returns ``dx = dh @ W.T``, or None when ``need_dx`` is
    False (the first layer: nothing needs the data's gradient).
    """
    check_dense(x, W, db, dy, dW, h, y)
    dh = dy if kind == "identity" else activation_backward(dy, h, y, kind, alpha)
    dW += x.T @ dh
    db += dh.sum(axis=0)
    return dh @ W.T if need_dx else None


# --------------------------------------------------------------------- activations
# Each entry: forward f(x, alpha) and derivative written with whatever of x or
# y = f(x) makes it cheapest, as f'(x, y, alpha).


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


ACTIVATIONS = {
    "identity": (lambda x, a: x, lambda x, y, a: np.ones_like(x)),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, a: (x > 0).astype(x.dtype)),
    "leaky_relu": (
        lambda x, a: np.where(x > 0, x, a * x),
        lambda x, y, a: np.where(x > 0, 1, a).astype(x.dtype),
    ),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, a: 1 - y * y),
    "sigmoid": (lambda x, a: expit(x), lambda x, y, a: y * (1 - y)),
    # softplus(x) = log(1 + e^x), computed without overflow; its derivative is sigmoid.
    "softplus": (lambda x, a: np.logaddexp(x.dtype.type(0), x), lambda x, y, a: expit(x)),
    # for x <= 0, y = alpha (e^x - 1) so dy/dx = alpha e^x = y + alpha.
    "elu": (_elu, lambda x, y, a: np.where(x > 0, 1, y + a).astype(x.dtype)),
}


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)`` for the activation named ``kind`` (a key of ``ACTIVATIONS``)."""
    return ACTIVATIONS[kind][0](x, x.dtype.type(alpha))


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)``, given the forward's input ``x`` and output ``y``."""
    return dy * ACTIVATIONS[kind][1](x, y, x.dtype.type(alpha))


# --------------------------------------------------------------------- convolution


def conv_output_size(size, kernel, stride, padding, output_padding=0, transposed=False):
    """Output length along one axis, as PyTorch defines it (dilation 1)."""
    if transposed:
        return (size - 1) * stride - 2 * padding + kernel + output_padding
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kernel, stride, padding):
    """Receptive fields of ``x`` (N, C, H, W) as an array (N, Ho, Wo, C, kh, kw).

    ``cols[n, i, j, c, p, q] = xpad[n, c, i*sh + p, j*sw + q]`` where ``xpad`` is
    ``x`` zero-padded by ``padding`` on each side.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return windows[:, :, ::sh, ::sw].transpose(0, 2, 3, 1, 4, 5)


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: scatter-add ``cols`` (N, Ho, Wo, C, kh, kw) into an
    array of shape ``x_shape`` (N, C, H, W). Overlapping fields add up."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x_shape
    ho, wo = cols.shape[1:3]
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xp[:, :, p : p + sh * ho : sh, q : q + sw * wo : sw] += cols[..., p, q].transpose(0, 3, 1, 2)
    return xp[:, :, ph : ph + h, pw : pw + w]


def _as_rows(y):
    """(N, C, H, W) -> (N*H*W, C), channels last: the layout a conv product works in."""
    return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])


def _from_rows(rows, n, h, w):
    """Inverse of :func:`_as_rows`."""
    return rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


def conv2d_forward(x, W, b, stride, padding):
    """Cross-correlation ``y[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] xpad[n,c,i*sh+p,j*sw+q]``.

    ``x`` (N, C, H, W), ``W`` (O, C, kh, kw), ``b`` (O,) or None.
    """
    cols = im2col(x, W.shape[2:], stride, padding)
    n, ho, wo = cols.shape[:3]
    y = cols.reshape(n * ho * wo, -1) @ W.reshape(W.shape[0], -1).T
    if b is not None:
        y += b
    return _from_rows(y, n, ho, wo)


def conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """Gradients of :func:`conv2d_forward`: *adds* dL/dW into ``dW`` and dL/db into
    ``db``, and returns dL/dx (None unless ``need_dx``).

    With ``cols`` the im2col rows of ``x`` and ``Y = cols @ Wf.T`` (``Wf`` = W
    flattened to (O, C*kh*kw)): ``dWf = dY.T @ cols``, ``dcols = dY @ Wf``,
    ``dx = col2im(dcols)``, ``db = sum of dY over rows``.
    """
    kernel = W.shape[2:]
    cols = im2col(x, kernel, stride, padding)
    dY = _as_rows(dy)
    dW += (dY.T @ cols.reshape(dY.shape[0], -1)).reshape(W.shape)
    db += dY.sum(axis=0)
    if not need_dx:
        return None
    return col2im((dY @ W.reshape(W.shape[0], -1)).reshape(cols.shape), x.shape, kernel, stride, padding)


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding):
    """Transposed convolution: the adjoint of Conv2d with the same weight.

    ``x`` (N, Cin, H, W), ``W`` (Cin, Cout, kh, kw) as in PyTorch. Each input pixel
    scatters ``x[n,ci,i,j] * W[ci,:,:,:]`` onto the output at (i*sh - ph, j*sw - pw).
    """
    n, _, h, w = x.shape
    kernel = W.shape[2:]
    ho, wo = (
        conv_output_size(s, k, st, p, op, transposed=True)
        for s, k, st, p, op in zip((h, w), kernel, stride, padding, output_padding)
    )
    rows = _as_rows(x) @ W.reshape(W.shape[0], -1)  # (N*H*W, Cout*kh*kw)
    y = col2im(rows.reshape(n, h, w, W.shape[1], *kernel), (n, W.shape[1], ho, wo), kernel, stride, padding)
    if b is not None:
        y += b[:, None, None]
    return y


def conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """Gradients of :func:`conv_transpose2d_forward`: *adds* dL/dW and dL/db into
    ``dW`` and ``db``, and returns dL/dx (None unless ``need_dx``).

    The forward is ``y = col2im(X @ Wf)`` with ``X`` the rows of ``x``; the adjoint of
    col2im is im2col, so with ``D`` = im2col rows of ``dy``: ``dX = D @ Wf.T``
    (a plain Conv2d of ``dy``), ``dWf = X.T @ D``, ``db = sum of dy over n, h, w``.
    """
    n, _, h, w = x.shape
    D = im2col(dy, W.shape[2:], stride, padding).reshape(n * h * w, -1)
    dW += (_as_rows(x).T @ D).reshape(W.shape)
    db += dy.sum(axis=(0, 2, 3))
    return _from_rows(D @ W.reshape(W.shape[0], -1).T, n, h, w) if need_dx else None


# --------------------------------------------------------------------- the ELBO path


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


def bernoulli_log_prob_grad(x, logits):
    """log p(x | logits) summed per row, and its gradient in the logits::

        log p = sum_d x_d l_d - softplus(l_d),    d log p / d l_d = x_d - sigmoid(l_d)

    (log sigmoid(l) = l - softplus(l), log(1 - sigmoid(l)) = -softplus(l)). Returns
    ``(log_p (N,), grad (N, D))``.
    """
    check_likelihood(x, logits, names="x, logits")
    return np.sum(x * logits - np.logaddexp(0, logits), axis=-1), x - expit(logits)


def bernoulli_log_prob(x, logits):
    """log p(x | logits) summed per row, (N,), without the gradient: what evaluation
    needs (importance sampling at k = 5000 computes it for 5000 decoder outputs per image)."""
    check_likelihood(x, logits, names="x, logits")
    return np.sum(x * logits - np.logaddexp(0, logits), axis=-1)


def gaussian_log_prob_grad(x, mu, logvar):
    """log N(x; mu, diag(exp(logvar))) summed per row (``logvar`` (N, D) or (D,)), and
    its gradients in ``mu`` and ``logvar``, each (N, D)::

        log p        = -1/2 sum_d [log 2 pi + logvar_d + (x_d - mu_d)^2 exp(-logvar_d)]
        d/d mu_d     = (x_d - mu_d) exp(-logvar_d)
        d/d logvar_d = -1/2 + (x_d - mu_d)^2 exp(-logvar_d) / 2

    Returns ``(log_p, dmu, dlogvar)``.
    """
    check_likelihood(x, mu, logvar)
    inv_var = np.exp(-logvar)
    r = x - mu
    half_sq = 0.5 * r * r * inv_var
    log_p = -0.5 * np.sum(LOG_2PI + logvar + 2 * half_sq, axis=-1)
    return log_p, r * inv_var, half_sq - 0.5


# ------------------------------------------------------------- the MAE regulariser


def pairwise_kl(mean, logvar):
    """KL(q_i || q_j) per latent dimension for every pair of the batch's posteriors
    q_i = N(mean_i, diag exp(logvar_i)), as a (B, B, d) array (zero on the diagonal)::

        kl[i, j, d] = 1/2 [v_i / v_j + (mean_i - mean_j)^2 / v_j - 1 - logvar_i + logvar_j]
    """
    if mean.ndim != 2 or logvar.shape != mean.shape:
        _refuse("mean, logvar", "(B, d), (B, d)", (mean, logvar))
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


# ----------------------------------------------------------------------- optimiser


def check_adam_arrays(params, grads, ms, vs):
    """Raise unless the four lists have one length and matching shapes position by
    position (``zip`` would drop the extra arrays, and NumPy would broadcast a (1,)
    gradient over its parameter), and every array is floating-point (an integer
    parameter cannot take a step of lr)."""
    groups = (params, grads, ms, vs)
    not_float = sorted({str(a.dtype) for group in groups for a in group if a.dtype.kind != "f"})  # run every step
    if not_float:
        raise TypeError(f"params, grads, ms, vs: expected floating-point arrays, got dtype {', '.join(not_float)}")
    if not len(params) == len(grads) == len(ms) == len(vs) or any(
            not p.shape == g.shape == m.shape == v.shape for p, g, m, v in zip(*groups)):
        raise ValueError(f"params, grads, ms, vs: expected lists of matching length and shapes, got lengths "
                         f"{[len(group) for group in groups]} and shapes {[[a.shape for a in group] for group in groups]}")


def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t):
    """One Adam step of step number ``t`` (from 1) on every array of ``params``, in
    place on each p and its moments m, v (the four lists matched by position)::

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
        p <- p - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    """
    check_adam_arrays(params, grads, ms, vs)
    for p, g, m, v in zip(params, grads, ms, vs):
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        p -= lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)


# --------------------------------------------------------------------------- arrays
# What the models and the fit loop do to arrays besides the layers' ops: on this
# backend plain NumPy; the CUDA backend does each on the device, so that a training
# step's arrays stay there.


def to_device(a):
    """``a`` where this backend computes (here: the array as it is). The way back, on
    every backend, is ``npvae.kernels.to_host``."""
    return a


def clear(a):
    """Zero ``a`` in place; returns it."""
    a[...] = 0
    return a


def clear_all(arrays):
    """Zero every array of the list in place."""
    for a in arrays:
        clear(a)


def pack(arrays):
    """The arrays placed where this backend computes, as a list. A backend with a
    device copies them into one buffer, each array a view of it, so that an op over
    all of them (``clear_all``, ``adam_update``) is one launch. Here: the arrays."""
    return list(arrays)


def take_rows(x, idx):
    """``x[idx]``: the rows ``idx`` (ints in [0, len(x))) of ``x``, a minibatch."""
    return x[idx]


def concat_columns(a, b):
    """``[a, b]`` side by side: (N, A) and (N, B) -> (N, A + B)."""
    return np.concatenate([a, b], axis=1)


def check_rows_weights(a, w):
    """Raise unless ``a`` is (N, D) and ``w`` (N,): NumPy would broadcast a single weight."""
    if a.ndim != 2 or w.shape != (a.shape[0],):
        _refuse("a, w", "(N, D), (N,)", (a, w))


def scale_rows(a, w):
    """Row n of ``a`` (N, D) times ``w[n]`` ((N,), any float dtype), in ``a``'s dtype."""
    w = np.asarray(w)
    check_rows_weights(a, w)
    return (w[:, None] * a).astype(a.dtype, copy=False)


def standard_normal(rng, shape, dtype, like=None):
    """N(0, 1) draws of ``shape`` from the generator ``rng``, in ``dtype``, made where
    ``like`` lives (a backend with a device uses it; here everything is NumPy)."""
    return rng.standard_normal(shape).astype(dtype)


def binarize(x, rng):
    """Dynamic binarisation: each entry 1 with probability ``x`` (in [0, 1]), else 0."""
    return (rng.random(x.shape) < x).astype(x.dtype)


# A generator that a GPU can run with one thread per number and no state: number i of
# the draw with seed s is a hash of (s, i), SplitMix64's output function (Steele, Lea
# & Flood 2014). The CUDA backend's standard_normal and binarize take s from the
# caller's generator, so a seed still reproduces a run; these are their specification.
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(seed, index):
    """The 64-bit hash of ``seed + (index + 1) * GOLDEN`` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * np.uint64(GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _unit_halves(seed, shape):
    """The high and low 32 bits of each number's hash as floats in (0, 1):
    (half + 1/2) / 2^32, so neither is ever 0 or 1."""
    bits = splitmix64(seed, np.arange(math.prod(shape)))
    high, low = bits >> np.uint64(32), bits & np.uint64(0xFFFFFFFF)
    return ((h.astype(np.float64) + 0.5) / 2.0**32 for h in (high, low))


def counter_uniform(seed, shape):
    """Uniform numbers in (0, 1), float64: the hashes' high halves."""
    return next(_unit_halves(seed, shape)).reshape(shape)


def counter_normal(seed, shape, dtype):
    """N(0, 1) numbers by Box-Muller from both halves: sqrt(-2 log u1) cos(2 pi u2)."""
    u1, u2 = _unit_halves(seed, shape)
    return (np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(dtype).reshape(shape)
