"""Fully connected layer."""

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_positive_int
from .init import initializer
from .module import Module


class Linear(Module):
    """``y = x @ W + b`` with ``W`` (in_features, out_features) and ``b`` (out_features,).

    Default initialisation: ``W`` Glorot-uniform (suits the tanh/sigmoid MLPs of the
    VAE papers; pass ``init="he_normal"`` etc. for ReLU nets), ``b`` zeros.
    ``rng``: None (fresh entropy), an int seed or a ``np.random.Generator``.
    """

    def __init__(self, in_features, out_features, rng=None, init="glorot_uniform", dtype=np.float32):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        shape = (self.in_features, self.out_features)
        self._add_param("W", initializer(init)(as_rng(rng), shape, shape[0], shape[1], dtype))
        self._add_param("b", np.zeros(self.out_features, dtype=dtype))

    def forward(self, x):
        check_array(x, "x", shape=(None, self.in_features), dtype=self.params["W"].dtype)
        return self._save(x, kernels.ops.linear_forward(x, self.params["W"], self.params["b"]))

    def backward(self, dy, need_dx=True):
        """For ``y = x W + b`` and a scalar loss L, with ``dy = dL/dy``::

            dL/dx = dy W^T            (N, in)   since y_nj = sum_i x_ni W_ij + b_j
            dL/dW = x^T dy            (in, out) summing over the batch n
            dL/db = sum_n dy_n        (out,)

        The kernel adds dL/dW and dL/db into ``grads`` in place; ``need_dx=False``
        skips dL/dx (a first layer's input is data) and returns None.
        """
        x = self._check_backward(dy)
        return kernels.ops.linear_backward(x, self.params["W"], dy, self.grads["W"], self.grads["b"], need_dx)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"
