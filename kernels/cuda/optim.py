"""Adam on the GPU: one thread per parameter entry. A device-resident model's
parameters and gradients, and the optimiser's moments, are views of one buffer each
(``arrays.pack``), so a step is one launch over the four buffers; other arrays take
one launch each.
"""

import math

import numpy as np
from numba import cuda, float64

from .. import reference
from .arrays import (
    THREADS, block_sum, blocks, empty, flat, is_device, launch, packed_buffer, to_device, to_host, write_back,
)


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
        pd, gd, md, vd = (flat(to_device(a)) for a in (p, g, m, v))
        launch(_adam, blocks(p.size), THREADS)(pd, gd, md, vd, f(beta1), f(1 - beta1), f(beta2), f(1 - beta2),
                                       f(lr / (1 - beta1**t)), f(1 / math.sqrt(1 - beta2**t)), f(eps))
        for host, dev in ((p, pd), (m, md), (v, vd)):
            write_back(dev, host)


# ------------------------------------------------- every gradient at once (clipping)
@cuda.jit
def _clip(a, c):
    i = cuda.grid(1)
    if i < a.size:
        a[i] = min(max(a[i], -c), c)


@cuda.jit
def _scale(a, factor):
    i = cuda.grid(1)
    if i < a.size:
        a[i] *= factor


@cuda.jit
def _partial_squares(a, partial):
    """partial[block] = the sum of squares of the block's THREADS entries, in float64,
    by a fixed-order tree."""
    partial_of_block = cuda.shared.array(THREADS, float64)
    i = cuda.grid(1)
    total = block_sum(float64(a[i]) * float64(a[i]) if i < a.size else 0.0, partial_of_block)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


def _each(arrays):
    """The flat device arrays to go over: the one buffer when ``pack`` made them."""
    buffer = packed_buffer(arrays)
    return [buffer] if buffer is not None else [a.reshape(a.size) for a in arrays if a.size]


@cuda.jit
def _add_scaled(out, a, factor):
    i = cuda.grid(1)
    if i < out.size:
        out[i] += factor * a[i]


def add_scaled(out, a, factor):
    """The reference's ``out += factor * a`` on the device, one launch."""
    if not is_device(out):
        return reference.add_scaled(out, to_host(a), factor)
    if out.shape != a.shape:
        raise ValueError(f"out, a: expected one shape, got {out.shape}, {a.shape}")
    if out.size:
        launch(_add_scaled, blocks(out.size), THREADS)(out.reshape(out.size), to_device(a).reshape(a.size),
                                                       out.dtype.type(factor))


def clip_all(arrays, clip_value):
    """The reference's clamp, in place: one launch over a packed list."""
    if not arrays or not is_device(arrays[0]):
        return reference.clip_all(arrays, clip_value)
    for a in _each(arrays):
        launch(_clip, blocks(a.size), THREADS)(a, a.dtype.type(clip_value))


def scale_all(arrays, factor):
    """The reference's scaling, in place: one launch over a packed list."""
    if not arrays or not is_device(arrays[0]):
        return reference.scale_all(arrays, factor)
    for a in _each(arrays):
        launch(_scale, blocks(a.size), THREADS)(a, a.dtype.type(factor))


def squared_norm(arrays):
    """The reference's float: per-block sums on the device, read once, added in order."""
    if not arrays or not is_device(arrays[0]):
        return reference.squared_norm([to_host(a) for a in arrays])
    total = 0.0
    for a in _each(arrays):
        partial = empty(blocks(a.size), np.float64)
        launch(_partial_squares, blocks(a.size), THREADS)(a, partial)
        total += float(np.sum(to_host(partial)))
    return total
