"""Adam: every parameter array updated in one pass each, in one kernel call."""

import math

import numpy as np
from numba import njit

from .. import reference
from ..reference.optim import add_scaled, clip_all, scale_all, squared_norm  # noqa: F401  (NumPy passes already)
from .arrays import JIT, REALS

# ----------------------------------------------------------------------- optimiser


@njit(**JIT)
def _adam(ps, gs, ms, vs, beta1, one_minus_beta1, beta2, one_minus_beta2, step, inv_sqrt_correction2, eps):
    # Every constant arrives in the parameters' dtype: a literal such as ``1 - beta1``
    # in here would be int64 - float32, which Numba types as float64, and a float32
    # update would run in float64.
    for k in range(len(ps)):
        p, g, m, v = ps[k], gs[k], ms[k], vs[k]
        for i in range(p.size):
            m_i = beta1 * m[i] + one_minus_beta1 * g[i]
            v_i = beta2 * v[i] + one_minus_beta2 * g[i] * g[i]
            m[i], v[i] = m_i, v_i
            p[i] -= step * m_i / (np.sqrt(v_i) * inv_sqrt_correction2 + eps)


def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t):
    """Adam in one pass over each (p, g, m, v) instead of ten NumPy operators, and one
    call for all the arrays (as PyTorch's multi-tensor Adam): the arrays go in as
    tuples of flat views, so the call's cost is paid once a step rather than once per
    array (``benchmarks/kernels.py``, op ``adam_update_iwae_12_arrays``).
    The bias corrections are folded into two constants:
    lr m_hat / (sqrt(v_hat) + eps) = (lr / c1) m / (sqrt(v) / sqrt(c2) + eps),
    c1 = 1 - b1^t, c2 = 1 - b2^t."""
    # The loop indexes every array by its parameter's size, unchecked: a mismatch must stop here.
    reference.check_adam_arrays(params, grads, ms, vs)
    groups = (params, grads, ms, vs)
    dtype = params[0].dtype if len(params) else None
    if dtype not in REALS or not all(a.flags.c_contiguous and a.dtype == dtype for group in groups for a in group):
        return reference.adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t)  # strided, mixed or float16
    f = dtype.type
    _adam(*(tuple(a.reshape(-1) for a in group) for group in groups), f(beta1), f(1 - beta1), f(beta2),
          f(1 - beta2), f(lr / (1 - beta1**t)), f(1 / math.sqrt(1 - beta2**t)), f(eps))
