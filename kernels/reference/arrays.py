"""Arrays: uploads (none here), zeroing, packing, rows, noise and binarisation (the
counter-based draws that the CUDA backend reproduces), and the shape refusal every op uses."""

import contextlib
import math

import numpy as np


def refuse_shapes(names, expected, arrays):
    """A ValueError naming the arrays, the shapes expected and the shapes got."""
    shapes = ", ".join(str(a.shape) for a in arrays)
    raise ValueError(f"{names}: expected shapes {expected}, got {shapes}")


# What the models and the fit loop do to arrays besides the layers' ops: on this
# backend plain NumPy; the CUDA backend does each on the device, so that a training
# step's arrays stay there.
def to_device(a):
    """``a`` where this backend computes (here: the array as it is). The way back, on
    every backend, is ``npvae.kernels.to_host``."""
    return a


def workspace(store, name):
    """A block in which the device arrays an entry point makes are kept for its next
    call (the CUDA backend's ``arrays.Workspace``). NumPy arrays are made afresh and
    freed by the garbage collector: here it does nothing."""
    return contextlib.nullcontext()


def clear(a):
    """Zero ``a`` in place; returns it."""
    a[...] = 0
    return a


def clear_all(arrays):
    """Zero every array of the list in place."""
    for a in arrays:
        clear(a)


def pack(arrays):
    """The arrays placed where this backend computes, as a list. A backend with a
    device copies them into one buffer, each array a view of it, so that an op over
    all of them (``clear_all``, ``adam_update``) is one launch. Here: the arrays."""
    return list(arrays)


def take_rows(x, idx):
    """``x[idx]``: the rows ``idx`` (ints in [0, len(x))) of ``x``, a minibatch."""
    return x[idx]


def repeat_rows(x, times):
    """Each row of ``x`` (N, ...) ``times`` times in a row: (N times, ...), row n t + l
    being x[n] (the examples once per sample, in (n, l) order)."""
    check_times(times)
    return np.repeat(x, times, axis=0)


def check_times(times):
    if isinstance(times, bool) or not isinstance(times, (int, np.integer)) or times < 1:
        raise ValueError(f"times: expected an integer >= 1, got {times!r}")


def add(a, b):
    """``a + b`` for two arrays of one shape (two gradients of one node's input)."""
    if a.shape != b.shape:
        refuse_shapes("a, b", "equal", (a, b))
    return a + b


def take_columns(a, start, stop):
    """``a[:, start:stop]`` of a matrix, as a contiguous array of its own."""
    return np.ascontiguousarray(a[:, start:stop])


def concat_columns(a, b):
    """``[a, b]`` side by side: (N, A) and (N, B) -> (N, A + B)."""
    return np.concatenate([a, b], axis=1)


def check_rows_weights(a, w):
    """Raise unless ``a`` is (N, D) and ``w`` (N,): NumPy would broadcast a single weight."""
    if a.ndim != 2 or w.shape != (a.shape[0],):
        refuse_shapes("a, w", "(N, D), (N,)", (a, w))


def scale_rows(a, w):
    """Row n of ``a`` (N, D) times ``w[n]`` ((N,), any float dtype), in ``a``'s dtype."""
    w = np.asarray(w)
    check_rows_weights(a, w)
    return (w[:, None] * a).astype(a.dtype, copy=False)


def standard_normal(rng, shape, dtype, like=None):
    """N(0, 1) draws of ``shape`` from the generator ``rng``, in ``dtype``, made where
    ``like`` lives (a backend with a device uses it; here everything is NumPy)."""
    return rng.standard_normal(shape).astype(dtype)


def binarize(x, rng):
    """Dynamic binarisation: each entry 1 with probability ``x`` (in [0, 1]), else 0."""
    return (rng.random(x.shape) < x).astype(x.dtype)


# A generator that a GPU can run with one thread per number and no state: number i of
# the draw with seed s is a hash of (s, i), SplitMix64's output function (Steele, Lea
# & Flood 2014). The CUDA backend's standard_normal and binarize take s from the
# caller's generator, so a seed still reproduces a run; these are their specification.
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(seed, index):
    """The 64-bit hash of ``seed + (index + 1) * GOLDEN`` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * np.uint64(GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _unit_halves(seed, shape):
    """The high and low 32 bits of each number's hash as floats in (0, 1):
    (half + 1/2) / 2^32, so neither is ever 0 or 1."""
    bits = splitmix64(seed, np.arange(math.prod(shape)))
    high, low = bits >> np.uint64(32), bits & np.uint64(0xFFFFFFFF)
    return ((h.astype(np.float64) + 0.5) / 2.0**32 for h in (high, low))


def counter_uniform(seed, shape):
    """Uniform numbers in (0, 1), float64: the hashes' high halves."""
    return next(_unit_halves(seed, shape)).reshape(shape)


def counter_normal(seed, shape, dtype):
    """N(0, 1) numbers by Box-Muller from both halves: sqrt(-2 log u1) cos(2 pi u2)."""
    u1, u2 = _unit_halves(seed, shape)
    return (np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(dtype).reshape(shape)

