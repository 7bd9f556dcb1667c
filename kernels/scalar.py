"""The activations' scalar formulas, written once for both Numba backends.

Plain Python on one number: ``cpu/activations.py`` compiles them with ``numba.njit``
(inlined into its loops), ``cuda/activations.py`` with ``numba.cuda.jit(device=True)``
(inlined into its kernels' epilogues). The reference (``reference/activations.py``) is
the NumPy specification they are held to. An activation is named by its integer code
in :data:`KINDS`, on which the kernels branch (the branch is the same for every
element, so it costs nothing measurable on either target).
"""

import math

KINDS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "softplus": 5, "elu": 6}


def activate(v, kind, alpha, one):
    """f(v) for the activation coded ``kind``. ``one`` is 1 in v's type: every constant
    is made from it, so that float32 stays float32 (a literal 1.0 is a float64, and would
    turn the arithmetic around it into float64)."""
    zero = one - one
    if kind == 1:
        return v if v > zero else v * zero  # v * 0 keeps a NaN a NaN
    if kind == 2:
        return v if v > zero else alpha * v
    if kind == 3:
        return math.tanh(v)
    if kind == 4:  # 1 / (1 + e^-v), no exp overflowing
        return one / (one + math.exp(-v)) if v >= zero else math.exp(v) / (one + math.exp(v))
    if kind == 5:  # log(1 + e^v) = max(v, 0) + log1p(e^-|v|), no overflow
        return max(v, zero) + math.log1p(math.exp(-abs(v)))
    if kind == 6:
        return v if v > zero else alpha * math.expm1(min(v, zero))
    return v


def derivative(x, y, kind, alpha, one):
    """f'(x), from the input x or the output y = f(x), whichever is cheaper (as the
    reference): tanh' = 1 - y^2, sigmoid' = y (1 - y), softplus' = sigmoid(x), and for
    x <= 0 the ELU's alpha e^x = y + alpha. ``one``: as for :func:`activate`."""
    zero = one - one
    if kind == 1:
        return one if x > zero else zero
    if kind == 2:
        return one if x > zero else alpha
    if kind == 3:
        return one - y * y
    if kind == 4:
        return y * (one - y)
    if kind == 5:
        return one / (one + math.exp(-x)) if x >= zero else math.exp(x) / (one + math.exp(x))
    if kind == 6:
        return one if x > zero else y + alpha
    return one


def derivative_from_output(y, kind, alpha, one):
    """f'(h) from the output y = f(h) alone, for a layer that keeps only y (a
    convolution with its activation joined). For alpha >= 0 every activation here is
    nondecreasing with y > 0 exactly where h > 0, so the ReLU family's branches read
    y's sign; tanh' = 1 - y^2, sigmoid' = y (1 - y), and softplus' = sigmoid(h) =
    1 - e^-y (as e^y = 1 + e^h). ``one``: as for :func:`activate`."""
    zero = one - one
    if kind == 1:
        return one if y > zero else zero
    if kind == 2:
        return one if y > zero else alpha
    if kind == 3:
        return one - y * y
    if kind == 4:
        return y * (one - y)
    if kind == 5:
        return -math.expm1(-y)
    if kind == 6:
        return one if y > zero else y + alpha
    return one
