"""The dense layer: a product, the bias and the activation, and their gradients."""

import numpy as np

from .activations import activation_backward, activation_forward
from .arrays import refuse_shapes


def check_dense(x, W, b, dy=None, dW=None, h=None, y=None):
    """Raise unless x is (N, in), W (in, out), b (out,), and, when dy is given (the
    backward), dy, h and y (N, out) and dW (in, out). The Numba kernels index every
    array by these sizes unchecked, and NumPy would broadcast a (1,) bias."""
    ok = x.ndim == 2 and W.ndim == 2 and x.shape[1] == W.shape[0] and b.shape == W.shape[1:]
    if dy is None:
        if not ok:
            refuse_shapes("x, W, b", "(N, in), (in, out), (out,)", (x, W, b))
    elif not (ok and dy.shape == h.shape == y.shape == (len(x), W.shape[1]) and dW.shape == W.shape):
        refuse_shapes("x, W, h, y, dy, dW, db", "(N, in), (in, out), (N, out) x3, (in, out), (out,)", (x, W, h, y, dy, dW, b))


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



def check_local_reparam(x, W, b, W_logsigma, b_logsigma, xi, grads=None):
    """Raise unless x is (N, in), W and W_logsigma (in, out), b and b_logsigma (out,),
    xi (N, out), and (the backward's ``grads``) std and dy (N, out), dW and dW_logsigma
    (in, out), db_logsigma (out,)."""
    if not (x.ndim == 2 and W.ndim == 2 and x.shape[1] == W.shape[0] and W_logsigma.shape == W.shape
            and b.shape == b_logsigma.shape == W.shape[1:] and xi.shape == (len(x), W.shape[1])):
        refuse_shapes("x, W, b, W_logsigma, b_logsigma, xi", "(N, in), (in, out), (out,), (in, out), (out,), (N, out)",
                      (x, W, b, W_logsigma, b_logsigma, xi))
    if grads is not None:
        std, dy, dW, dW_logsigma, db_logsigma = grads
        if not (std.shape == dy.shape == xi.shape and dW.shape == dW_logsigma.shape == W.shape
                and db_logsigma.shape == b.shape):
            refuse_shapes("std, dy, dW, dW_logsigma, db_logsigma", "(N, out), (N, out), (in, out) x2, (out,)",
                          (std, dy, dW, dW_logsigma, db_logsigma))


def local_reparam_forward(x, W, b, W_logsigma, b_logsigma, xi):
    """A dense layer with Gaussian weights W_ij ~ N(W_ij, sigma_ij^2), sigma =
    exp(logsigma), drawn by local reparameterisation (Kingma, Salimans & Welling,
    "Variational Dropout and the Local Reparameterization Trick", 2015): given x, each
    output is Gaussian, and drawn as itself with noise ``xi`` (N, out)::

        mean = x W + b,   var = (x * x) sigma_W^2 + sigma_b^2,   y = mean + sqrt(var) xi

    Returns ``(y, std)``, std = sqrt(var) (N, out), which the backward reads."""
    check_local_reparam(x, W, b, W_logsigma, b_logsigma, xi)
    std = np.sqrt((x * x) @ np.exp(2 * W_logsigma) + np.exp(2 * b_logsigma))
    return x @ W + b + std * xi, std


def local_reparam_backward(x, W, W_logsigma, b_logsigma, xi, std, dy, dW, db, dW_logsigma, db_logsigma,
                           need_dx=True):
    """Gradients of :func:`local_reparam_forward`, *added* into the four gradient
    arrays; returns dL/dx (None without ``need_dx``). With dL/dvar = dy xi / (2 std)::

        dL/dW = x^T dy,   dL/db = sum_n dy
        dL/dW_logsigma = 2 sigma_W^2 * ((x * x)^T dL/dvar)     (dvar/dlogsigma = 2 sigma^2 x^2)
        dL/db_logsigma = 2 sigma_b^2 * sum_n dL/dvar
        dL/dx = dy W^T + 2 x * (dL/dvar (sigma_W^2)^T)
    """
    check_local_reparam(x, W, db, W_logsigma, b_logsigma, xi, (std, dy, dW, dW_logsigma, db_logsigma))
    var_W, var_b = np.exp(2 * W_logsigma), np.exp(2 * b_logsigma)
    dvar = dy * xi / (2 * std)
    dW += x.T @ dy
    db += dy.sum(axis=0)
    dW_logsigma += 2 * var_W * ((x * x).T @ dvar)
    db_logsigma += 2 * var_b * dvar.sum(axis=0)
    return dy @ W.T + 2 * x * (dvar @ var_W.T) if need_dx else None


def gaussian_weight_kl(mean, logsigma, prior_std, scale=0.0, dmean=None, dlogsigma=None):
    """KL(N(mean, exp(logsigma)^2) || N(0, prior_std^2)) summed over the entries, a
    float, and (``dmean``, ``dlogsigma`` given) ``scale`` times its gradient added into
    them::

        KL = sum [log(prior_std / sigma) + (sigma^2 + mean^2) / (2 prior_std^2) - 1/2]
        dKL/dmean = mean / prior_std^2,   dKL/dlogsigma = sigma^2 / prior_std^2 - 1
    """
    arrays = (mean, logsigma) if dmean is None else (mean, logsigma, dmean, dlogsigma)
    if any(a.shape != mean.shape for a in arrays):
        refuse_shapes("mean, logsigma, dmean, dlogsigma"[: 15 if dmean is None else None], "equal", arrays)
    s2, var = prior_std**2, np.exp(2 * logsigma.astype(np.float64))
    if dmean is not None:
        dmean += (scale * mean / s2).astype(dmean.dtype)
        dlogsigma += (scale * (var / s2 - 1)).astype(dlogsigma.dtype)
    return float(np.sum(np.log(prior_std) - logsigma + (var + mean.astype(np.float64) ** 2) / (2 * s2) - 0.5))
