"""Numba CPU backend: the reference's ops with the same signatures, selected by
``npvae.kernels.use("numba")`` or ``NPVAE_BACKEND=numba``.

Where the time goes and what this backend does about it:

* Matrix products stay in BLAS (the same OpenBLAS NumPy uses). A hand-tiled Numba
  matmul reaches about a third of BLAS on these shapes (shared/BENCHMARKING.md:
  48-62 against 139-177 GFLOP/s on 128x784 @ 784x400), so nothing is gained by
  rewriting them.
* What NumPy cannot do is fuse: ``np.tanh(x @ W + b)`` and ``dy * (1 - y * y)`` each
  make a pass over memory and a temporary per operator. Here the bias add, the
  activation and the activation's derivative are single passes, in place where the
  reference allocates.
* The kernels are serial on purpose. With ``parallel=True`` Numba's worker threads and
  OpenBLAS's (which spin for a while after each product) fought over the 2 cores: an
  epoch of the 784-400-20 VAE took 10x longer, and PyTorch timed in the same process
  afterwards 4x longer. These passes are memory-bound and small (128 x 400 floats).
* The convolutions are the reference's (im2col + BLAS) for now.

Every kernel is compiled with ``cache=True``, so only the first run on a machine pays
the compilation; each is tested against ``reference.py``.
"""

import numpy as np
from numba import njit

from .reference import (  # noqa: F401  (the ops this backend takes as they are)
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv_output_size,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    im2col,
    matmul,
)

# Activation names as the integer codes the kernels branch on (a branch per element
# that is the same for every element costs nothing measurable).
KINDS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "softplus": 5, "elu": 6}


@njit(cache=True, inline="always")
def _sigmoid(v):
    if v >= 0:
        return 1 / (1 + np.exp(-v))
    e = np.exp(v)
    return e / (1 + e)


@njit(cache=True, inline="always")
def _activate(v, kind, alpha):
    if kind == 1:
        return v if v > 0 else v * 0
    if kind == 2:
        return v if v > 0 else alpha * v
    if kind == 3:
        return np.tanh(v)
    if kind == 4:
        return _sigmoid(v)
    if kind == 5:  # log(1 + e^v) = max(v, 0) + log1p(e^-|v|), no overflow
        return max(v, 0) + np.log1p(np.exp(-abs(v)))
    if kind == 6:
        return v if v > 0 else alpha * np.expm1(v)
    return v


@njit(cache=True, inline="always")
def _derivative(x, y, kind, alpha):
    """f'(x), from x or y = f(x), whichever is cheaper (as the reference)."""
    if kind == 1:
        return 1 if x > 0 else 0
    if kind == 2:
        return 1 if x > 0 else alpha
    if kind == 3:
        return 1 - y * y
    if kind == 4:
        return y * (1 - y)
    if kind == 5:
        return _sigmoid(x)
    if kind == 6:
        return 1 if x > 0 else y + alpha
    return 1


@njit(cache=True)
def _bias_activate_rows(y, b, kind, alpha):
    """In place: y[i, j] = f(y[i, j] + b[j])."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = _activate(y[i, j] + b[j], kind, alpha)


@njit(cache=True)
def _activate_flat(x, out, kind, alpha):
    for i in range(x.size):
        out[i] = _activate(x[i], kind, alpha)


@njit(cache=True)
def _backward_flat(dy, x, y, out, kind, alpha):
    for i in range(dy.size):
        out[i] = dy[i] * _derivative(x[i], y[i], kind, alpha)


@njit(cache=True)
def _column_sums(dy, out):
    """out[j] = sum_i dy[i, j], accumulated in float64 row by row (memory order)."""
    acc = np.zeros(dy.shape[1])
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[i, j]
    for j in range(dy.shape[1]):
        out[j] = acc[j]


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def linear_forward(x, W, b):
    """``y = x @ W + b``: the product in BLAS, the bias added in the same buffer."""
    y = x @ W
    _bias_activate_rows(y, b, 0, y.dtype.type(0))
    return y


def linear_backward(x, W, dy):
    """``(dy @ W.T, x.T @ dy, sum_n dy[n])``: the products in BLAS, the bias gradient
    as one pass over ``dy``."""
    db = np.empty(dy.shape[1], dtype=dy.dtype)
    _column_sums(dy, db)
    return dy @ W.T, x.T @ dy, db


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)``, one pass."""
    out = np.empty(x.shape, dtype=x.dtype)
    _activate_flat(_flat(x), out.reshape(-1), KINDS[kind], x.dtype.type(alpha))
    return out


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)`` in one pass (the reference makes up to three temporaries)."""
    out = np.empty(dy.shape, dtype=dy.dtype)
    _backward_flat(_flat(dy), _flat(x), _flat(y), out.reshape(-1), KINDS[kind], dy.dtype.type(alpha))
    return out
