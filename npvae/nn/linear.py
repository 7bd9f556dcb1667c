"""Fully connected layer, with its activation."""

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_positive_int
from .activations import ACTIVATIONS
from .init import initializer
from .module import Module


class Linear(Module):
    """``y = f(x @ W + b)`` with ``W`` (in_features, out_features), ``b``
    (out_features,) and f the activation named ``activation`` (a key of
    ``nn.activations.ACTIVATIONS``, with that class's default slope or alpha; the
    default "identity" is the plain affine map). Taking f into the layer lets a
    backend do the product, the bias and f in one kernel call, and f' with the
    backward's; ``Linear(4, 3, activation="tanh")`` computes what
    ``Sequential(Linear(4, 3), Tanh())`` does.

    Default initialisation: ``W`` Glorot-uniform (suits the tanh/sigmoid MLPs of the
    VAE papers; pass ``init="he_normal"`` etc. for ReLU nets), ``b`` zeros.
    ``rng``: None (fresh entropy), an int seed or a ``np.random.Generator``.
    """

    def __init__(self, in_features, out_features, rng=None, init="glorot_uniform", dtype=np.float32,
                 activation="identity"):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation, self.alpha = activation, ACTIVATIONS[activation]().alpha
        shape = (self.in_features, self.out_features)
        self.add_param("W", initializer(init)(as_rng(rng), shape, shape[0], shape[1], dtype))
        self.add_param("b", np.zeros(self.out_features, dtype=dtype))

    def forward(self, x):
        check_array(x, "x", shape=(None, self.in_features), dtype=self.params["W"].dtype)
        h, y = kernels.ops.linear_forward(x, self.params["W"], self.params["b"], self.activation, self.alpha)
        return self.save_for_backward((x, h, y), y)

    def backward(self, dy, need_dx=True):
        """For ``y = f(h)``, ``h = x W + b`` and a scalar loss L, with ``dy = dL/dy``::

            dL/dh = dy * f'(h)        (N, out)  elementwise (the activation's backward)
            dL/dx = dL/dh W^T         (N, in)   since h_nj = sum_i x_ni W_ij + b_j
            dL/dW = x^T dL/dh         (in, out) summing over the batch n
            dL/db = sum_n dL/dh_n     (out,)

        The kernel adds dL/dW and dL/db into ``grads`` in place; ``need_dx=False``
        skips dL/dx (a first layer's input is data) and returns None.
        """
        x, h, y = self.saved_for_backward(dy)
        return kernels.ops.linear_backward(x, self.params["W"], h, y, dy, self.grads["W"], self.grads["b"],
                                           self.activation, self.alpha, need_dx)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "activation": self.activation}

    def __repr__(self):
        act = "" if self.activation == "identity" else f", activation={self.activation!r}"
        return f"Linear({self.in_features}, {self.out_features}{act})"
