"""Elementwise ops on the GPU: the activations and their derivatives, the finite
check, and column sums (bias gradients).

Layout: one thread per element, ``THREADS`` (256 on a GPU) to a block, over the flattened
array; consecutive threads touch consecutive elements, so loads coalesce. The
activation is a device function that the dense kernels call in their epilogue too.
"""

import math

import numpy as np
from numba import config, cuda

from .. import reference, scalar
from ..scalar import KINDS
from .arrays import THREADS, blocks, empty, is_device, launch, mixed, ravel_view, to_device, to_host, zeros

# The activations' scalar formulas (``kernels/scalar.py``) as device functions, which the
# dense kernels call in their epilogue too.
activate = cuda.jit(device=True, inline=True)(scalar.activate)
derivative = cuda.jit(device=True, inline=True)(scalar.derivative)
derivative_from_output = cuda.jit(device=True, inline=True)(scalar.derivative_from_output)


@cuda.jit
def _activation_forward(x, y, kind, alpha, one):
    i = cuda.grid(1)
    if i < x.size:
        y[i] = activate(x[i], kind, alpha, one)


@cuda.jit
def _activation_backward(dy, x, y, dx, kind, alpha, one):
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] = dy[i] * derivative(x[i], y[i], kind, alpha, one)


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)``, one thread per element."""
    if mixed(x) or not x.size:
        return reference.activation_forward(to_host(x), kind, alpha)
    host, x = not is_device(x), to_device(x)
    y = empty(x.shape, x.dtype)
    launch(_activation_forward, blocks(x.size), THREADS)(ravel_view(x), ravel_view(y), KINDS[kind], x.dtype.type(alpha),
                                                         x.dtype.type(1))
    return to_host(y) if host else y


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)``, one thread per element."""
    if mixed(dy, x, y) or not dy.size:
        return reference.activation_backward(to_host(dy), to_host(x), to_host(y), kind, alpha)
    if not dy.shape == x.shape == y.shape:  # the kernel indexes x and y by dy's size
        raise ValueError(f"dy, x, y: expected one shape, got {dy.shape}, {x.shape}, {y.shape}")
    host = not is_device(dy)
    dy, x, y = to_device(dy), to_device(x), to_device(y)
    dx = empty(dy.shape, dy.dtype)
    launch(_activation_backward, blocks(dx.size), THREADS)(*map(ravel_view, (dy, x, y, dx)), KINDS[kind],
                                                           dy.dtype.type(alpha), dy.dtype.type(1))
    return to_host(dx) if host else dx


# --------------------------------------------------------------------------- finite


@cuda.jit
def _any_not_finite(x, flag):
    """flag[0] = 1 if some element is NaN or inf. Threads that find one all write the
    same 1, so the race is harmless."""
    i = cuda.grid(1)
    if i < x.size and not math.isfinite(x[i]):
        flag[0] = 1


def all_finite(x):
    """Whether ``x`` holds no NaN or inf. A NumPy array is checked where it is, by the
    reference (a copy to the device reads every number too, and then sends it); a device
    array by a kernel, and only the one flag comes back."""
    if not is_device(x):
        return reference.all_finite(x)
    if x.size == 0:
        return True
    flag = zeros(1, np.int32)
    launch(_any_not_finite, blocks(x.size), THREADS)(ravel_view(x), flag)
    return not to_host(flag)[0]


# ---------------------------------------------------------------------- column sums
# A bias gradient is the sum of dh over its rows. Each block sums a tile of
# COLS columns by ROWS row-threads, each thread a strip of ROWS_PER_THREAD rows, into one
# partial sum per (row block, column); a second kernel adds the partials in order (a
# batch within one row block's ROWS x ROWS_PER_THREAD rows takes the first pass only).
# Two deterministic passes instead of atomics: a seed reproduces a run bit for bit.
# Under the simulator a block covers 16 rows, so that the tests' small batches take both paths.
COLS, ROWS, ROWS_PER_THREAD = 32, 8, (2 if config.ENABLE_CUDASIM else 32)


@cuda.jit
def _partial_column_sums(dy, h, y, dh, kind, alpha, one, partial, db):
    """partial[block row, j] = sum of dh[i, j] over the block's rows, where
    dh = dy * f'(h) is written out too unless ``kind`` is 0 (then dh is dy). With one
    row block (``partial`` empty), db[j] += the sum at once: one pass, no second launch."""
    acc = cuda.shared.array((ROWS, COLS), np.float64)
    j = cuda.blockIdx.x * COLS + cuda.threadIdx.x
    r = cuda.threadIdx.y
    total = 0.0
    if j < dy.shape[1]:
        start = cuda.blockIdx.y * ROWS * ROWS_PER_THREAD
        for k in range(ROWS_PER_THREAD):
            i = start + r + k * ROWS
            if i < dy.shape[0]:
                g = dy[i, j]
                if kind != 0:
                    g = g * derivative(h[i, j], y[i, j], kind, alpha, one)
                    dh[i, j] = g
                total += g
    acc[r, cuda.threadIdx.x] = total
    cuda.syncthreads()
    if r == 0 and j < dy.shape[1]:
        for k in range(1, ROWS):
            total += acc[k, cuda.threadIdx.x]
        if partial.size:
            partial[cuda.blockIdx.y, j] = total
        else:
            db[j] += total


@cuda.jit
def _add_partials(partial, out):
    """out[j] += sum_b partial[b, j], one thread per column, in order."""
    j = cuda.grid(1)
    if j < out.size:
        total = 0.0
        for b in range(partial.shape[0]):
            total += partial[b, j]
        out[j] += total


def bias_grad(dy, db, h=None, y=None, kind=0, alpha=0.0):
    """On device arrays: ``db += sum_i dh[i]`` with ``dh = dy * f'(h)`` for the
    activation coded ``kind`` (0: dh = dy). Returns dh (dy itself for kind 0)."""
    n, m = dy.shape
    if db.shape != (m,):  # _add_partials indexes the partial sums by db's size
        raise ValueError(f"db: expected one entry per column of dy, shape {(m,)}, got {db.shape}")
    dh = dy if kind == 0 else empty(dy.shape, dy.dtype)
    row_blocks = max(1, (n + ROWS * ROWS_PER_THREAD - 1) // (ROWS * ROWS_PER_THREAD))
    partial = empty((row_blocks if row_blocks > 1 else 0, m), np.float64)
    h, y = (dy, dy) if kind == 0 else (h, y)
    launch(_partial_column_sums, (blocks(m, COLS), row_blocks), (COLS, ROWS))(
        dy, h, y, dh, kind, dy.dtype.type(alpha), dy.dtype.type(1), partial, db)
    if row_blocks > 1:
        launch(_add_partials, blocks(m), THREADS)(partial, db)
    return dh


def add_column_sums(a, out):
    """``out += sum_n a[n]`` (a shared parameter's gradient): :func:`bias_grad`'s passes."""
    if not is_device(out):
        return reference.add_column_sums(to_host(a), out)
    if a.ndim != 2 or out.shape != (a.shape[1],):
        reference.refuse_shapes("a, out", "(N, D), (D,)", (a, out))
    bias_grad(to_device(a), out)
