"""Adam, one update over lists of arrays."""

import numpy as np


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



# What clipping and a summed reduction do to every gradient at once: in place over a
# list of arrays (one launch on a packed list, on the CUDA backend).
def clip_all(arrays, clip_value):
    """Clamp every entry to [-clip_value, clip_value], in place."""
    for a in arrays:
        np.clip(a, -clip_value, clip_value, out=a)


def squared_norm(arrays):
    """sum over every array of sum(a^2), as a float: the squared global norm."""
    return float(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays))


def add_scaled(out, a, factor):
    """``out += factor * a``, in place (weight decay's lam * W into W's gradient)."""
    if out.shape != a.shape:
        raise ValueError(f"out, a: expected one shape, got {out.shape}, {a.shape}")
    out += a.dtype.type(factor) * a


def scale_all(arrays, factor):
    """Every array times ``factor``, in place."""
    for a in arrays:
        a *= a.dtype.type(factor)
