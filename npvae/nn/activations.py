"""Elementwise activations. Each backward is ``dx = dy * f'(x)``; the docstrings give f'."""

from .. import kernels
from ..checks import check_array, check_number
from .module import Module


class Activation(Module):
    """An elementwise ``y = f(x)``; ``kind`` names f in the kernels' ACTIVATIONS table."""

    kind = "identity"

    def __init__(self, alpha=0.0):
        super().__init__()
        self.alpha = check_number(alpha, "alpha")  # a finite slope (NaN would pass every check downstream)

    def forward(self, x):
        check_array(x, "x")
        y = kernels.ops.activation_forward(x, self.kind, self.alpha)
        return self.save_for_backward((x, y), y)

    def backward(self, dy, need_dx=True):
        x, y = self.saved_for_backward(dy)
        return kernels.ops.activation_backward(dy, x, y, self.kind, self.alpha) if need_dx else None


class Identity(Activation):
    """``y = x``; backward: ``dx = dy``."""

    kind = "identity"


class ReLU(Activation):
    """``y = max(x, 0)``; backward: ``dx = dy * [x > 0]`` (the subgradient 0 at x = 0)."""

    kind = "relu"

    def __init__(self):
        super().__init__()


class LeakyReLU(Activation):
    """``y = x if x > 0 else a x``; backward: ``dx = dy * (1 if x > 0 else a)``."""

    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__(negative_slope)

    def config(self):
        return {"negative_slope": self.alpha}


class Tanh(Activation):
    """``y = tanh x``; backward: ``dx = dy * (1 - y^2)`` since tanh' = 1 - tanh^2."""

    kind = "tanh"

    def __init__(self):
        super().__init__()


class Sigmoid(Activation):
    """``y = 1 / (1 + e^-x)``; backward: ``dx = dy * y (1 - y)``.

    (d/dx of (1 + e^-x)^-1 = e^-x / (1 + e^-x)^2 = y (1 - y).)
    """

    kind = "sigmoid"

    def __init__(self):
        super().__init__()


class Softplus(Activation):
    """``y = log(1 + e^x)`` (computed as logaddexp(0, x)); backward: ``dx = dy * sigmoid(x)``."""

    kind = "softplus"

    def __init__(self):
        super().__init__()


class ELU(Activation):
    """``y = x if x > 0 else a (e^x - 1)``; backward: ``dx = dy * (1 if x > 0 else y + a)``,
    because for x <= 0, dy/dx = a e^x = y + a."""

    kind = "elu"

    def __init__(self, alpha=1.0):
        super().__init__(alpha)

    def config(self):
        return {"alpha": self.alpha}


# name -> class, for building networks from a config string ("tanh", "relu", ...).
ACTIVATIONS = {
    "identity": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "softplus": Softplus,
    "elu": ELU,
}
