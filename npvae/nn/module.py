"""The layer contract and the container that composes layers (``docs/design.md``
states the contract and why).

A layer is a ``Module`` with

* ``params`` and ``grads``: dicts of arrays with the same keys and shapes, each
  parameter declared once with :meth:`Module.add_param` (which makes its zero gradient);
* ``forward(x)``: returns y, handing what backward needs to
  :meth:`Module.save_for_backward` (which also records y's shape as ``out_shape``);
* ``backward(dy, need_dx=True)``: takes the cache back with
  :meth:`Module.saved_for_backward` (which checks that forward ran and that dy is
  shaped like y), *adds* dL/dparam into ``grads`` (never assigns: a model sums several
  backward passes), returns dL/dx (None when ``need_dx`` is False: a first layer's
  input is data), and changes neither x nor dy; arrays keep the parameters' dtype;
* ``config()``: the constructor arguments, for checkpoints (``npvae.spec``).

Optimisers update ``params`` in place, so the dicts can be taken once.
``npvae.testing.assert_layer_contract`` checks a layer against all of it.
"""

import numpy as np

from .. import kernels
from ..checks import check_array


class Module:
    out_shape = None  # the last forward's output shape (save_for_backward records it)
    on_device = True  # forward and backward take GPU arrays (False: the layer computes on NumPy arrays itself)

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.cache = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def config(self):
        """The constructor arguments that rebuild this module's architecture (not its
        weights), as JSON values: what a checkpoint stores (see ``npvae.spec``)."""
        return {}

    def zero_grad(self):
        kernels.ops.clear_all(list(self.grads.values()))  # on the GPU, one launch for a packed model

    def to_device(self):
        """Move every parameter and gradient to where the active backend computes (the
        GPU for "cuda", where the parameters become views of one buffer and the
        gradients of another, so that zeroing them or an Adam step is one launch; on
        the CPU backends nothing moves); returns self. Optimisers hold the arrays, so
        make them after this call (``fit`` does all of it)."""
        for which in ("params", "grads"):
            slots = self._slots(which)
            for (d, k), a in zip(slots, kernels.ops.pack([d[k] for d, k in slots])):
                d[k] = a
        return self

    def to_host(self):
        """Bring every parameter and gradient back as NumPy arrays; returns self."""
        for which in ("params", "grads"):
            for d, k in self._slots(which):
                d[k] = kernels.to_host(d[k])
        return self

    def _slots(self, which):
        """(dict, key) of each array of ``which`` ("params" or "grads"), where it is stored."""
        d = getattr(self, which)
        return [(d, k) for k in d]

    def astype(self, dtype):
        """Cast every parameter (and reset its gradient) to ``dtype``; returns self."""
        for k in self.params:
            self.params[k] = self.params[k].astype(dtype)
            self.grads[k] = np.zeros_like(self.params[k])
        return self

    def add_param(self, name, value):
        """Declare a parameter ``name`` with initial ``value`` (an array), and its zero
        gradient; returns the array."""
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name}: expected a NumPy array as a parameter's value, got {type(value).__name__}")
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def save_for_backward(self, cache, y):
        """Keep ``cache`` (anything) for backward and record y's shape (``out_shape``,
        against which backward checks ``dy``); returns y, so forward can end with
        ``return self.save_for_backward((x, s), y)``."""
        self.cache, self.out_shape = cache, y.shape
        return y

    def saved_for_backward(self, dy):
        """The cache forward saved; raises if forward has not run or ``dy`` is not
        shaped like forward's output."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        check_array(dy, "dy", shape=self.out_shape)
        return self.cache

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Container(Module):
    """A module made of named child modules (``self.children``); their arrays are
    exposed under dotted names, ``"encoder.0.W"``, as one flat dict."""

    def __init__(self, children):
        self.children = dict(children)
        self.cache = None

    @property
    def params(self):
        return {f"{c}.{k}": v for c, m in self.children.items() for k, v in m.params.items()}

    @property
    def grads(self):
        return {f"{c}.{k}": v for c, m in self.children.items() for k, v in m.grads.items()}

    def _slots(self, which):
        return [slot for m in self.children.values() for slot in m._slots(which)]

    def astype(self, dtype):
        for m in self.children.values():
            m.astype(dtype)
        return self
