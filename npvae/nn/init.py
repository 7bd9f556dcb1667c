"""Weight initialisers: Glorot (Xavier) and He (Kaiming), uniform and normal.

Each takes ``(rng, shape, fan_in, fan_out, dtype)``. Glorot keeps the variance of
activations and of gradients roughly constant through tanh/sigmoid layers,
Var(W) = 2 / (fan_in + fan_out); He does so for ReLU layers, Var(W) = 2 / fan_in.
A uniform U(-a, a) has variance a^2 / 3, hence the sqrt(3) below.
"""

import numpy as np


def glorot_uniform(rng, shape, fan_in, fan_out, dtype):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


def glorot_normal(rng, shape, fan_in, fan_out, dtype):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def he_uniform(rng, shape, fan_in, fan_out, dtype):
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)


def he_normal(rng, shape, fan_in, fan_out, dtype):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def torch_default(rng, shape, fan_in, fan_out, dtype):
    """PyTorch's default for Linear and Conv2d weights (kaiming_uniform with a = sqrt 5):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in). The builders give the
    biases the same law when ``init="torch_default"`` (PyTorch's bias init)."""
    a = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)


INITIALIZERS = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, torch_default)}


def initializer(name):
    """The initialiser called ``name`` (a key of ``INITIALIZERS``)."""
    if name not in INITIALIZERS:
        raise ValueError(f"init: expected one of {sorted(INITIALIZERS)}, got {name!r}")
    return INITIALIZERS[name]
