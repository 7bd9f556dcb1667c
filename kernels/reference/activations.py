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
