"""Elementwise activations and their derivatives, the bias rows and column sums of the
dense layers, and the finite check."""

import numpy as np
from numba import njit

from .. import reference, scalar
from ..reference.activations import add_column_sums  # noqa: F401  (one NumPy pass already)
from ..scalar import KINDS
from .arrays import JIT, channels_last, flat, mixed

# The activations' scalar formulas (``kernels/scalar.py``), inlined into the loops below.
_activate = njit(cache=True, inline="always")(scalar.activate)
_derivative = njit(cache=True, inline="always")(scalar.derivative)
_derivative_from_output = njit(cache=True, inline="always")(scalar.derivative_from_output)


@njit(**JIT)
def _add_bias_rows(y, b):
    """In place: y[i, j] += b[j]."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += b[j]


@njit(**JIT)
def _add_bias_relu_rows(y, b):
    """In place: y[i, j] = max(y[i, j] + b[j], 0), in one pass (a NaN stays a NaN): a
    ReLU pass of its own that reads and writes one array does not vectorise
    (``benchmarks/conv_variants.py --kinds relu_pass``)."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + b[j]
            y[i, j] = v if v > 0 else v * 0


@njit(**JIT)
def _activate_flat(x, out, kind, alpha):
    for i in range(x.size):
        out[i] = _activate(x[i], kind, alpha, 1.0)  # float64 constants: these loops' own types decide


@njit(**JIT)
def _backward_flat(dy, x, y, out, kind, alpha):
    # ReLU and tanh get loops of their own: with the per-element branch on ``kind``
    # (and the int/float mix of the general derivative) the loop does not vectorise.
    if kind == 1:
        for i in range(dy.size):
            out[i] = dy[i] if x[i] > 0 else 0
    elif kind == 3:
        for i in range(dy.size):
            out[i] = dy[i] * (1 - y[i] * y[i])
    else:
        for i in range(dy.size):
            out[i] = dy[i] * _derivative(x[i], y[i], kind, alpha, 1.0)


@njit(**JIT)
def _backward_from_output_flat(dy, y, out, kind, alpha):
    if kind == 1:  # ReLU's own loop, as in _backward_flat
        for i in range(dy.size):
            out[i] = dy[i] if y[i] > 0 else 0
    else:
        for i in range(dy.size):
            out[i] = dy[i] * _derivative_from_output(y[i], kind, alpha, 1.0)


@njit(**JIT)
def _column_sums(dy, out):
    """out[j] += sum_i dy[i, j], accumulated in float64 row by row (memory order);
    ``dy`` C-contiguous."""
    if out.shape[0] != dy.shape[1]:  # every caller's bias gradient; the loops below index it unchecked
        raise ValueError("db: expected one entry per column (output channel) of dy")
    if dy.shape[1] == 1:
        # One column (a one-channel conv's bias) as a flat sum, which vectorises: the
        # loop below would make one add per row.
        flat, acc0 = dy.reshape(-1), 0.0
        for i in range(flat.size):
            acc0 += flat[i]
        out[0] += acc0
        return
    acc = np.zeros(dy.shape[1])
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[i, j]
    for j in range(dy.shape[1]):
        out[j] += acc[j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _all_finite(a):
    # v - v is 0 for a finite v and NaN for NaN or inf; reassociation lets the sum
    # vectorise. (Under JIT's full flag set LLVM folded v - v to 0 and missed NaNs.)
    acc = a[0] - a[0]
    for i in range(a.size):
        acc += a[i] - a[i]
    return acc == 0


def all_finite(x):
    """Whether ``x`` holds no NaN or inf: one vectorised pass, run on every layer's input
    and gradient (``benchmarks/kernels.py``, op ``all_finite_20x200``)."""
    if x.size == 0:
        return True
    # Memory order ("K") makes the flat array a view of any array whose memory is
    # contiguous in some axis order, such as this backend's channels-last conv outputs
    # (benchmarks/kernels.py, op all_finite_channels_last_128x32x14x14); a strided one
    # is copied.
    return bool(_all_finite(x.ravel("K")))


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)``, one pass (tanh: NumPy's vectorised ufunc, not libm's scalar call)."""
    if mixed(x):  # not float32/64: NumPy's promotion (an int input's sigmoid is not an int)
        return reference.activation_forward(x, kind, alpha)
    if channels_last(x):  # work on the channels-last view, and keep that layout
        return activation_forward(x.transpose(0, 2, 3, 1), kind, alpha).transpose(0, 3, 1, 2)
    if kind == "tanh":
        return np.tanh(x)
    out = np.empty(x.shape, dtype=x.dtype)
    _activate_flat(flat(x), out.reshape(-1), KINDS[kind], x.dtype.type(alpha))
    return out


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)`` in one pass (the reference makes up to three temporaries)."""
    if mixed(dy, x, y):
        return reference.activation_backward(dy, x, y, kind, alpha)
    if channels_last(x):
        to_last = (0, 2, 3, 1)
        dx = activation_backward(dy.transpose(to_last), x.transpose(to_last), y.transpose(to_last), kind, alpha)
        return dx.transpose(0, 3, 1, 2)
    out = np.empty(dy.shape, dtype=dy.dtype)
    _backward_flat(flat(dy), flat(x), flat(y), out.reshape(-1), KINDS[kind], dy.dtype.type(alpha))
    return out


def activation_backward_from_output(dy, y, kind, alpha=0.0):
    """``dh = dy * f'(h)`` with f' read from the output y alone, in one pass."""
    if mixed(dy, y):
        return reference.activation_backward_from_output(dy, y, kind, alpha)
    if channels_last(y):
        to_last = (0, 2, 3, 1)
        return activation_backward_from_output(dy.transpose(to_last), y.transpose(to_last), kind,
                                               alpha).transpose(0, 3, 1, 2)
    out = np.empty(dy.shape, dtype=dy.dtype)
    _backward_from_output_flat(flat(dy), flat(y), out.reshape(-1), KINDS[kind], dy.dtype.type(alpha))
    return out
