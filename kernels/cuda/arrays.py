"""Moving arrays between the host and the GPU, and launch sizes.

Every op of this backend takes NumPy arrays or device arrays (numba-cuda's
``DeviceNDArray``, made by ``to_device``). Given device arrays it leaves its results on
the device; given NumPy arrays it copies them up, runs its kernels and copies the
results back (and, for the ops that update arrays in place, writes them back into
the caller's arrays), so a model that holds NumPy arrays runs unchanged on this
backend, one transfer per op.
"""

import numpy as np
from numba import cuda
from numba.cuda.random import create_xoroshiro128p_states, xoroshiro128p_normal_float64

THREADS = 256  # threads per block of the one-dimensional (elementwise) kernels


def is_device(a):
    """Whether ``a`` is a device array (the simulator's fake arrays count)."""
    return hasattr(a, "copy_to_host")


def to_device(a):
    """``a`` on the device: a device array as it is, a NumPy array copied (contiguous)."""
    return a if is_device(a) else cuda.to_device(np.ascontiguousarray(a))


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape, dtype):
    """A zeroed device array, filled on the device (no host copy)."""
    return clear(empty(shape, dtype))


def clear(a):
    """Zero the contiguous device array ``a`` in place, one launch; returns it."""
    if a.size:
        fill[blocks(a.size), THREADS](a.reshape(a.size), 0)
    return a


def to_host(a):
    """``a`` as a NumPy array (a copy from the device)."""
    return a.copy_to_host() if is_device(a) else a


def write_back(device, host):
    """After an in-place update on ``device`` (made from ``host`` by ``to_device``),
    copy it into the caller's array ``host``, unless that is on the device already."""
    if not is_device(host):
        host[...] = device.copy_to_host().reshape(host.shape)


def blocks(n, threads=THREADS):
    """Blocks of ``threads`` that cover ``n`` elements (at least one)."""
    return max(1, (n + threads - 1) // threads)


@cuda.jit
def fill(out, value):
    """One thread per element: out[i] = value."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = value


_REALS = (np.dtype(np.float32), np.dtype(np.float64))


def mixed(*arrays):
    """Whether the arrays' dtypes differ or are not float32/64: such calls (NumPy
    arrays only) go to the reference, whose NumPy promotes them."""
    return arrays[0].dtype not in _REALS or any(a.dtype != arrays[0].dtype for a in arrays)


# ------------------------------------------------ device-array glue for a whole step
# What a training step does to arrays besides the op table (picking the minibatch,
# scaling a gradient, joining dmean and dlogvar, drawing the noise), for arrays that
# stay on the device. Each is one launch, one thread per output element.


@cuda.jit
def _take_rows(x, idx, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        out[r, c] = x[idx[r], c]


def take_rows(x, idx):
    """``x[idx]`` for a device matrix ``x`` (N, D) and a device int array ``idx`` whose
    entries the caller keeps in [0, N) (checking them would copy them back)."""
    out = empty((idx.size, x.shape[1]), x.dtype)
    _take_rows[blocks(out.size), THREADS](x, idx, out)
    return out


@cuda.jit
def _scale(a, s, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = s * a[i]


def scale(a, s):
    """``s * a`` for a contiguous device array ``a``, as a new array."""
    out = empty(a.shape, a.dtype)
    _scale[blocks(a.size), THREADS](a.reshape(a.size), a.dtype.type(s), out.reshape(out.size))
    return out


@cuda.jit
def _concat_columns(a, b, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        width = a.shape[1]
        out[r, c] = a[r, c] if c < width else b[r, c - width]


def concat_columns(a, b):
    """``np.concatenate([a, b], axis=1)`` for device matrices."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a, b: expected matrices with one number of rows, got {a.shape}, {b.shape}")
    out = empty((a.shape[0], a.shape[1] + b.shape[1]), a.dtype)
    _concat_columns[blocks(out.size), THREADS](a, b, out)
    return out


@cuda.jit
def _standard_normal(states, out):
    """Thread t draws out[t], out[t + T], ... from its own xoroshiro128+ stream."""
    t = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(t, out.size, stride):
        out[i] = xoroshiro128p_normal_float64(states, t)


class NormalStream:
    """Standard normal draws made on the device: ``draw(shape, dtype)``. ``threads``
    independent xoroshiro128+ streams from ``seed`` (their states are made once on the
    host and uploaded); a draw is one launch."""

    def __init__(self, seed, threads=4096):
        self.states, self.threads = create_xoroshiro128p_states(threads, seed=seed), threads

    def draw(self, shape, dtype):
        out = empty(shape, dtype)
        _standard_normal[self.threads // THREADS, THREADS](self.states, out.reshape(out.size))
        return out
