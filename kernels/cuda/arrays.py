"""Moving arrays between the host and the GPU, launch sizes, and the reference's array
ops on the device (packing, minibatch rows, joined columns, weighted rows, noise).

Every op of this backend takes NumPy arrays or device arrays (numba-cuda's
``DeviceNDArray``, made by ``to_device``). Given device arrays it leaves its results on
the device; given NumPy arrays it copies them up, runs its kernels and copies the
results back (and, for the ops that update arrays in place, writes them back into
the caller's arrays), so a model that holds NumPy arrays runs unchanged on this
backend, one transfer per op.
"""

import contextlib

import numpy as np
from numba import config, cuda, uint64

from .. import COUNTS, is_device, reference, to_host  # noqa: F401  (backend-independent, used here too)
from . import launcher
from .counters import binarize_kernel, normal_kernel, draw_seed

# Threads per block of the one-dimensional (elementwise) kernels. numba-cuda's simulator
# runs every thread of a block as a Python thread, so under it (the tests) blocks are
# 32 threads: a tiny array then costs one small block instead of 256 threads, and the
# kernels' grid logic is exercised across several blocks.
THREADS = 32 if config.ENABLE_CUDASIM else 256


def launch(kernel, grid, block=THREADS):
    """``kernel[grid, block]``, counted in ``COUNTS["launches"]``: every launch of this
    backend goes through here (and, on a GPU, through the thin path: launcher.py)."""
    COUNTS["launches"] += 1
    return launcher.configure(kernel, grid, block)


def to_device(a):
    """``a`` on the device: a device array as it is, a NumPy array copied (contiguous;
    a new array and, from pageable memory, a synchronisation: both counted)."""
    if is_device(a):
        return a
    COUNTS["allocations"] += 1
    COUNTS["syncs"] += 1
    return cuda.to_device(np.ascontiguousarray(a))


# ------------------------------------------------------------------- workspaces
class Workspace:
    """Device arrays kept between calls of one entry point (a model's training step, its
    evaluation): since the last ``reset``, the k-th request of a (shape, dtype) returns
    the same array as the k-th request of the previous call did. A steady training
    step asks for the same arrays in the same order each time, so after its first call
    it allocates nothing (a device allocation costs far more than a launch, and a free
    may synchronise). An array from a workspace lives until the next call of its entry
    point: nothing made in one may be kept past it."""

    def __init__(self):
        self.arrays, self.taken = {}, {}

    def reset(self):
        self.taken = {}

    def empty(self, shape, dtype):
        key = (tuple(np.atleast_1d(shape).tolist()), np.dtype(dtype).str)
        k = self.taken.get(key, 0)
        self.taken[key] = k + 1
        kept = self.arrays.setdefault(key, [])
        if k == len(kept):
            kept.append(allocate(shape, dtype))
        return kept[k]


_ACTIVE = []  # the workspaces of the entry points running now, innermost last


@contextlib.contextmanager
def workspace(store, name):
    """Within the block, new device arrays come from the workspace ``store[name]``
    (made on first use; ``store`` is the caller's dict, e.g. a model's), reset on entry."""
    ws = store.setdefault(name, Workspace())
    ws.reset()
    _ACTIVE.append(ws)
    try:
        yield ws
    finally:
        _ACTIVE.pop()


def allocate(shape, dtype):
    """A new device array (counted)."""
    COUNTS["allocations"] += 1
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def empty(shape, dtype):
    """An uninitialised device array: from the active workspace if there is one."""
    return _ACTIVE[-1].empty(shape, dtype) if _ACTIVE else allocate(shape, dtype)


def zeros(shape, dtype):
    """A zeroed device array, filled on the device (no host copy)."""
    return clear(empty(shape, dtype))


def write_back(device, host):
    """After an in-place update on ``device`` (made from ``host`` by ``to_device``),
    copy it into the caller's array ``host``, unless that is on the device already."""
    if not is_device(host):
        host[...] = to_host(device).reshape(host.shape)


def blocks(n, threads=THREADS):
    """Blocks of ``threads`` that cover ``n`` elements (at least one)."""
    return max(1, (n + threads - 1) // threads)


@cuda.jit(device=True, inline=True)
def block_sum(total, partial):
    """The sum over a one-dimensional block of each thread's ``total``, by a fixed-order
    tree in the shared array ``partial`` (one slot a thread, a power of two): the same
    sum every run, where atomics would add in any order. Returned to thread 0."""
    t = cuda.threadIdx.x
    partial[t] = total
    cuda.syncthreads()
    stride = partial.size // 2
    while stride > 0:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2
    return partial[0]


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


# ------------------------------------------------------------ the reference's array ops
# What the models and the fit loop do to arrays besides the layers' ops (picking the
# minibatch, joining columns, weighting rows, drawing noise), each one launch with one
# thread per output element. Each result lives where its main input lives: NumPy
# inputs take the reference's NumPy path.


def clear(a):
    """Zero ``a`` in place (one launch for a contiguous device array); returns it."""
    if not is_device(a):
        a[...] = 0
    elif a.size:
        launch(fill, blocks(a.size), THREADS)(ravel_view(a), 0)
    return a


def pack(arrays):
    """Copies of ``arrays`` (one dtype) on the device as consecutive views of one new
    buffer; each view records ``packed_at = (buffer, offset)``, so that ``clear_all``
    and ``adam_update`` treat a list of them as the one buffer: one launch instead of
    one per array. Arrays of several dtypes are copied up one by one."""
    hosts = [to_host(a) for a in arrays]
    if not hosts or any(a.dtype != hosts[0].dtype for a in hosts):
        return [to_device(a) for a in hosts]
    buffer = to_device(np.concatenate([a.ravel() for a in hosts]))
    views, offset = [], 0
    for a in hosts:
        view = buffer[offset : offset + a.size].reshape(a.shape)
        view.packed_at = (buffer, offset)
        views.append(view)
        offset += a.size
    return views


def packed_buffer(arrays):
    """The buffer that ``arrays`` fill exactly, in order, when ``pack`` made them; else None."""
    buffer, offset = getattr(arrays[0], "packed_at", (None, 0)) if len(arrays) else (None, 0)
    for a in arrays:
        at = getattr(a, "packed_at", None)
        if buffer is None or at is None or at[0] is not buffer or at[1] != offset:
            return None
        offset += a.size
    return buffer if offset == buffer.size else None


def clear_all(arrays):
    """Zero every array: one launch when ``pack`` made them, else one each."""
    buffer = packed_buffer(arrays)
    for a in [buffer] if buffer is not None else arrays:
        clear(a)


@cuda.jit
def _take_rows(x, idx, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        out[r, c] = x[idx[r], c]


def take_rows(x, idx):
    """``x[idx]`` for a device array ``x`` (N, ...) and ints ``idx`` (NumPy or device;
    the caller keeps them in [0, N): checking device ones would copy them back)."""
    if not is_device(x):
        return reference.take_rows(x, to_host(idx))
    idx = to_device(np.asarray(idx, dtype=np.int64)) if not is_device(idx) else idx
    rows = x.reshape(x.shape[0], x.size // max(x.shape[0], 1))
    out = empty((idx.size, rows.shape[1]), x.dtype)
    if out.size:
        launch(_take_rows, blocks(out.size), THREADS)(rows, idx, out)
    return out.reshape((idx.size, *x.shape[1:]))


@cuda.jit
def _repeat_rows(x, times, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        out[r, c] = x[r // times, c]


def repeat_rows(x, times):
    """``reference.repeat_rows`` on the device: row r of the result is x[r // times] (no
    index array to upload)."""
    if not is_device(x):
        return reference.repeat_rows(x, times)
    reference.check_times(times)
    rows = x.reshape(x.shape[0], x.size // max(x.shape[0], 1))
    out = empty((rows.shape[0] * times, rows.shape[1]), x.dtype)
    if out.size:
        launch(_repeat_rows, blocks(out.size), THREADS)(rows, times, out)
    return out.reshape((out.shape[0], *x.shape[1:]))


@cuda.jit
def _add(a, b, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] + b[i]


def add(a, b):
    """``a + b`` on the device (one shape; a NumPy pair takes the reference's)."""
    if not (is_device(a) or is_device(b)):
        return reference.add(a, b)
    if a.shape != b.shape:
        reference.refuse_shapes("a, b", "equal", (a, b))
    a, b = to_device(a), to_device(np.asarray(b, dtype=a.dtype) if not is_device(b) else b)
    out = empty(a.shape, a.dtype)
    if out.size:
        launch(_add, blocks(out.size), THREADS)(flat(a), flat(b), ravel_view(out))
    return out


def reshaped(a, *shape):
    """``a.reshape(*shape)`` for the contiguous device array ``a`` (reshape refuses
    another), kept on ``a`` and handed out again by the next call: a view is a new array
    object, which costs the host more than the rest of the launch it is made for, and
    most arrays here (parameters, gradients, workspace arrays) live across steps."""
    views = a.__dict__.setdefault("reshaped_views", {})
    if shape not in views:
        views[shape] = a.reshape(*shape)
    return views[shape]


def ravel_view(a):
    """A one-dimensional view of the contiguous ``a``: ``a`` itself when it is one."""
    return a if a.ndim == 1 else reshaped(a, a.size)


def flat(a):
    """A one-dimensional view of ``a``, a copy first if it is not contiguous."""
    return ravel_view(a if a.is_c_contiguous() else copy(a))


_ABSENT = {}


def absent(dtype, ndim):
    """An empty device array of ``dtype`` with ``ndim`` dimensions, for an array argument
    a kernel does not read: one per (dtype, ndim), made on first use and kept (not a
    view made per launch)."""
    key = (np.dtype(dtype).str, ndim)
    if key not in _ABSENT:
        _ABSENT[key] = allocate((0,) * ndim, dtype)
    return _ABSENT[key]


@cuda.jit
def _copy2(a, out):
    e = cuda.grid(1)
    if e < out.size:
        out[e // out.shape[1], e % out.shape[1]] = a[e // out.shape[1], e % out.shape[1]]


def copy(a):
    """A contiguous copy of a (strided) device array of up to two axes."""
    rows = a.reshape(1, a.size) if a.ndim < 2 else a
    out = empty(rows.shape, a.dtype)
    if out.size:
        launch(_copy2, blocks(out.size), THREADS)(rows, out)
    return out.reshape(a.shape)


def take_columns(a, start, stop):
    """``reference.take_columns`` on the device: one copy pass."""
    if not is_device(a):
        return reference.take_columns(a, start, stop)
    return copy(a[:, start:stop])


@cuda.jit
def _concat_columns(a, b, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        width = a.shape[1]
        out[r, c] = a[r, c] if c < width else b[r, c - width]


def halves(joined, width):
    """The column blocks ``joined[:, :width]`` and ``joined[:, width:]``, each knowing
    the array it is half of, so that ``concat_columns`` of the two is ``joined`` itself."""
    left, right = joined[:, :width], joined[:, width:]
    left.half_of, right.half_of = (joined, 0), (joined, 1)
    return left, right


def concat_columns(a, b):
    """``[a, b]`` side by side, on the device if either is there: no pass when they
    are the halves of one array (``halves``)."""
    if not (is_device(a) or is_device(b)):
        return reference.concat_columns(a, b)
    left, right = getattr(a, "half_of", None), getattr(b, "half_of", None)
    if left and right and left[0] is right[0] and (left[1], right[1]) == (0, 1):
        return left[0]
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a, b: expected matrices with one number of rows, got {a.shape}, {b.shape}")
    a, b = to_device(a), to_device(np.asarray(b, dtype=a.dtype) if not is_device(b) else b)
    out = empty((a.shape[0], a.shape[1] + b.shape[1]), a.dtype)
    if out.size:
        launch(_concat_columns, blocks(out.size), THREADS)(a, b, out)
    return out


@cuda.jit
def _scale_rows(a, w, out):
    e = cuda.grid(1)
    if e < out.size:
        r, c = e // out.shape[1], e % out.shape[1]
        out[r, c] = w[r] * a[r, c]


def scale_rows(a, w):
    """Row n of ``a`` (N, D) times ``w[n]``: ``w`` (NumPy or device) goes up in a's dtype."""
    if not is_device(a):
        return reference.scale_rows(a, to_host(w))
    reference.check_rows_weights(a, w)  # the kernel reads w[r] for every row r
    w = w if is_device(w) else to_device(np.asarray(w, dtype=a.dtype))
    out = empty(a.shape, a.dtype)
    if out.size:
        launch(_scale_rows, blocks(out.size), THREADS)(a, w, out)
    return out


# Noise on the device (the kernels: counters.py).
def counter_normal(seed, shape, dtype):
    """``reference.counter_normal`` on the device."""
    out = empty(shape, dtype)
    if out.size:
        launch(normal_kernel, blocks(out.size), THREADS)(uint64(seed), ravel_view(out))
    return out


def standard_normal(rng, shape, dtype, like=None):
    """N(0, 1) numbers of ``shape`` in ``dtype``, made where ``like`` lives: for a NumPy
    ``like``, the reference's draw from ``rng``; otherwise (a device array, or None) on
    the device, ``reference.counter_normal`` with a seed taken from ``rng``."""
    if like is not None and not is_device(like):
        return reference.standard_normal(rng, shape, dtype)
    return counter_normal(draw_seed(rng), shape, dtype)


def binarize(x, rng):
    """Dynamic binarisation of a device array by ``reference.counter_uniform`` (seeded
    from ``rng``); a NumPy ``x`` takes the reference's."""
    if not is_device(x):
        return reference.binarize(x, rng)
    out = empty(x.shape, x.dtype)
    if out.size:
        launch(binarize_kernel, blocks(out.size), THREADS)(draw_seed(rng), ravel_view(x), ravel_view(out))
    return out
