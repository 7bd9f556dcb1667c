"""Adam on the GPU: one thread per parameter entry. A device-resident model's
parameters and gradients, and the optimiser's moments, are views of one buffer each
(``arrays.pack``), so a step is one launch over the four buffers; other arrays take
one launch each.
"""

import math

from numba import cuda

from .. import reference
from .arrays import THREADS, blocks, launch, packed_buffer, to_device, write_back


@cuda.jit
def _adam(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step, inv_sqrt_correction2, eps):
    i = cuda.grid(1)
    if i < p.size:
        m_i = beta1 * m[i] + one_minus_beta1 * g[i]
        v_i = beta2 * v[i] + one_minus_beta2 * g[i] * g[i]
        m[i], v[i] = m_i, v_i
        p[i] -= step * m_i / (math.sqrt(v_i) * inv_sqrt_correction2 + eps)


def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t):
    """The reference's Adam step, with the bias corrections folded into two constants
    (as the Numba backend): lr m_hat / (sqrt(v_hat) + eps) =
    (lr / c1) m / (sqrt(v) / sqrt(c2) + eps), c1 = 1 - b1^t, c2 = 1 - b2^t."""
    reference.check_adam_arrays(params, grads, ms, vs)
    if len(params) and not (params[0].dtype.itemsize in (4, 8)
                            and all(a.dtype == params[0].dtype for group in (params, grads, ms, vs) for a in group)):
        return reference.adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t)  # mixed or float16
    buffers = [packed_buffer(group) for group in (params, grads, ms, vs)]
    if all(b is not None for b in buffers):  # one launch over everything
        params, grads, ms, vs = ([b] for b in buffers)
    for p, g, m, v in zip(params, grads, ms, vs):
        if not p.size:
            continue
        f = p.dtype.type
        pd, gd, md, vd = (to_device(a).reshape(a.size) for a in (p, g, m, v))
        launch(_adam, blocks(p.size), THREADS)(pd, gd, md, vd, f(beta1), f(1 - beta1), f(beta2), f(1 - beta2),
                                       f(lr / (1 - beta1**t)), f(1 / math.sqrt(1 - beta2**t)), f(eps))
        for host, dev in ((p, pd), (m, md), (v, vd)):
            write_back(dev, host)
