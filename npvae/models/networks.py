"""Builders for the networks the models use."""

from .. import nn


def mlp(sizes, activation="tanh", rng=None, init=None):
    """Linear layers of the given sizes, each but the last followed by ``activation``
    (taken into the layer, so that a backend fuses it):
    ``mlp([784, 500, 40])`` is Linear(784, 500, activation="tanh") - Linear(500, 40).

    Default init: Glorot-uniform for tanh/sigmoid, He-normal for the ReLU family.
    """
    if activation not in nn.activations.ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(nn.activations.ACTIVATIONS)}, got {activation!r}")
    if init is None:
        init = "glorot_uniform" if activation in ("tanh", "sigmoid", "identity") else "he_normal"
    last = len(sizes) - 2
    return nn.Sequential(*(nn.Linear(a, b, rng=rng, init=init, activation="identity" if i == last else activation)
                           for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))))
