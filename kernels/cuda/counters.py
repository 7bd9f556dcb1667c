"""Noise on the device: ``reference.counter_normal`` and ``counter_uniform`` as kernels,
one thread per number (SplitMix64 of the seed and the index, then Box-Muller or a
comparison), so that a seed gives the same numbers however the launch is split."""

import math

from numba import cuda, float64, uint64

from ..reference import GOLDEN


@cuda.jit(device=True, inline=True)
def _splitmix64(seed, i):
    x = seed + (uint64(i) + uint64(1)) * uint64(GOLDEN)
    x = (x ^ (x >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> uint64(27))) * uint64(0x94D049BB133111EB)
    return x ^ (x >> uint64(31))


@cuda.jit(device=True, inline=True)
def _unit(half):
    """A 32-bit half of the hash as a float64 in (0, 1)."""
    return (float64(half) + 0.5) * (1.0 / 4294967296.0)


@cuda.jit
def normal_kernel(seed, out):
    i = cuda.grid(1)
    if i < out.size:
        bits = _splitmix64(seed, i)
        u1, u2 = _unit(bits >> uint64(32)), _unit(bits & uint64(0xFFFFFFFF))
        out[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@cuda.jit
def binarize_kernel(seed, x, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = 1.0 if _unit(_splitmix64(seed, i) >> uint64(32)) < x[i] else 0.0


def draw_seed(rng):
    """A 63-bit seed drawn from the caller's generator: each draw advances it once."""
    return uint64(int(rng.integers(2**63)))
