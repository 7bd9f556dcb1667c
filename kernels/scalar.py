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


def activate(v, kind, alpha):
    """f(v) for the activation coded ``kind``."""
    if kind == 1:
        return v if v > 0 else v * 0
    if kind == 2:
        return v if v > 0 else alpha * v
    if kind == 3:
        return math.tanh(v)
    if kind == 4:  # 1 / (1 + e^-v), no exp overflowing
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
    if kind == 5:  # log(1 + e^v) = max(v, 0) + log1p(e^-|v|), no overflow
        return max(v, 0) + math.log1p(math.exp(-abs(v)))
    if kind == 6:
        return v if v > 0 else alpha * math.expm1(min(v, 0))
    return v


def derivative(x, y, kind, alpha):
    """f'(x), from the input x or the output y = f(x), whichever is cheaper (as the
    reference): tanh' = 1 - y^2, sigmoid' = y (1 - y), softplus' = sigmoid(x), and for
    x <= 0 the ELU's alpha e^x = y + alpha."""
    if kind == 1:
        return 1.0 if x > 0 else 0.0
    if kind == 2:
        return 1.0 if x > 0 else alpha
    if kind == 3:
        return 1 - y * y
    if kind == 4:
        return y * (1 - y)
    if kind == 5:
        return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
    if kind == 6:
        return 1.0 if x > 0 else y + alpha
    return 1.0
