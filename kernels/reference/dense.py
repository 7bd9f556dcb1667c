"""The dense layer: a product, the bias and the activation, and their gradients."""

from .activations import activation_backward, activation_forward
from .arrays import refuse_shapes


def check_dense(x, W, b, dy=None, dW=None, h=None, y=None):
    """Raise unless x is (N, in), W (in, out), b (out,), and, when dy is given (the
    backward), dy, h and y (N, out) and dW (in, out). The Numba kernels index every
    array by these sizes unchecked, and NumPy would broadcast a (1,) bias."""
    ok = x.ndim == 2 and W.ndim == 2 and x.shape[1] == W.shape[0] and b.shape == W.shape[1:]
    if dy is None:
        if not ok:
            refuse_shapes("x, W, b", "(N, in), (in, out), (out,)", (x, W, b))
    elif not (ok and dy.shape == h.shape == y.shape == (len(x), W.shape[1]) and dW.shape == W.shape):
        refuse_shapes("x, W, h, y, dy, dW, db", "(N, in), (in, out), (N, out) x3, (in, out), (out,)", (x, W, h, y, dy, dW, b))


def matmul(a, b):
    """``a @ b``."""
    return a @ b


def linear_forward(x, W, b, kind="identity", alpha=0.0):
    """A dense layer and its activation: ``h = x @ W + b`` and ``y = f(h)``, f the
    activation named ``kind``, with ``x`` (N, in), ``W`` (in, out), ``b`` (out,).
    Returns ``(h, y)``, one array twice for "identity"; the backward needs both."""
    check_dense(x, W, b)
    h = x @ W + b
    return h, activation_forward(h, kind, alpha)


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """Gradients of ``y = f(h)``, ``h = x @ W + b``: with the activation's
    ``dh = dy * f'(h)``, *adds* ``x.T @ dh`` into ``dW`` and ``sum_n dh[n]`` into
    ``db`` (in place), and returns ``dx = dh @ W.T``, or None when ``need_dx`` is
    False (the first layer: nothing needs the data's gradient).
    """
    check_dense(x, W, db, dy, dW, h, y)
    dh = dy if kind == "identity" else activation_backward(dy, h, y, kind, alpha)
    dW += x.T @ dh
    db += dh.sum(axis=0)
    return dh @ W.T if need_dx else None

