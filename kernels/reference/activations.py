"""Elementwise activations and their derivatives, the finite check, and column sums."""

import numpy as np
from scipy.special import expit

from .arrays import refuse_shapes


def all_finite(x):
    """Whether ``x`` holds no NaN or inf. The sum is finite unless something is NaN
    or inf (or it overflows, in which case the exact test decides): one cheap pass."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow or inf - inf here is the answer
        return bool(np.isfinite(x.sum()) or np.isfinite(x).all())


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


# f'(h) from the output y = f(h) alone (``kernels/scalar.py``'s derivative_from_output
# says why each holds, for alpha >= 0): what a convolution with its activation joined
# keeps, its output only.
OUTPUT_DERIVATIVES = {
    "identity": lambda y, a: np.ones_like(y),
    "relu": lambda y, a: (y > 0).astype(y.dtype),
    "leaky_relu": lambda y, a: np.where(y > 0, 1, a).astype(y.dtype),
    "tanh": lambda y, a: 1 - y * y,
    "sigmoid": lambda y, a: y * (1 - y),
    "softplus": lambda y, a: -np.expm1(-y),
    "elu": lambda y, a: np.where(y > 0, 1, y + a).astype(y.dtype),
}


def check_joined_activation(kind, alpha, dy=None, y=None):
    """Raise unless ``kind`` names an activation and ``alpha`` >= 0 (the derivative
    from the output needs it), and, in a backward (``dy`` given) of any kind but
    "identity", the output ``y`` has dy's shape (the kernels index it by dy's)."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"kind: expected one of {sorted(ACTIVATIONS)}, got {kind!r}")
    if not alpha >= 0:
        raise ValueError(f"alpha: expected a number >= 0 (f' is read from the output), got {alpha!r}")
    if dy is not None and kind != "identity" and getattr(y, "shape", None) != dy.shape:
        raise ValueError(f"y: the backward of a convolution with activation {kind!r} needs its output y, of dy's "
                         f"shape {dy.shape}, got {getattr(y, 'shape', y)}")


def activation_backward_from_output(dy, y, kind, alpha=0.0):
    """``dh = dy * f'(h)`` with f' read from the output ``y`` = f(h) alone."""
    return dy * OUTPUT_DERIVATIVES[kind](y, y.dtype.type(alpha))


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)`` for the activation named ``kind`` (a key of ``ACTIVATIONS``)."""
    return ACTIVATIONS[kind][0](x, x.dtype.type(alpha))


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)``, given the forward's input ``x`` and output ``y``."""
    return dy * ACTIVATIONS[kind][1](x, y, x.dtype.type(alpha))



def add_column_sums(a, out):
    """``out += sum_n a[n]`` for ``a`` (N, D), ``out`` (D,): a shared parameter's gradient."""
    if a.ndim != 2 or out.shape != (a.shape[1],):
        refuse_shapes("a, out", "(N, D), (D,)", (a, out))
    out += a.sum(axis=0)
