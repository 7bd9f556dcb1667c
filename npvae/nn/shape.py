"""Layers that only change an array's shape: Flatten and Reshape."""

import math

from ..checks import check_array, check_positive_int
from .module import Module


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...); backward reshapes dy back: no arithmetic, so
    ``dx = dy.reshape(x.shape)``."""

    def forward(self, x):
        check_array(x, "x")
        if x.ndim < 2:
            raise ValueError(f"x: expected an array with a batch axis and at least one more, got shape {x.shape}")
        y = x.reshape(x.shape[0], -1)
        return self.save_for_backward(x.shape, y)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self.saved_for_backward(dy)) if need_dx else None


class Reshape(Module):
    """(N, prod(shape)) -> (N, *shape); backward: ``dx = dy.reshape(N, prod(shape))``."""

    def __init__(self, shape):
        super().__init__()
        if not isinstance(shape, (tuple, list)) or not shape:
            raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}")
        self.shape = tuple(check_positive_int(s, "shape") for s in shape)
        self.size = math.prod(self.shape)

    def forward(self, x):
        check_array(x, "x", shape=(None, self.size))
        return self.save_for_backward(x.shape, x.reshape(x.shape[0], *self.shape))

    def backward(self, dy, need_dx=True):
        return dy.reshape(self.saved_for_backward(dy)) if need_dx else None

    def config(self):
        return {"shape": list(self.shape)}

    def __repr__(self):
        return f"Reshape({self.shape})"
