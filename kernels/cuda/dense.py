"""Dense layers on the GPU: the forward is one product with the bias and the
activation in its epilogue (``gemm``).

The backward of a dense layer is two products, and no other pass: the weight
gradient's product loads dy and multiplies each number by f'(h) as it loads it
(dh = dy * f'(h) is never stored), and gives x^T an extra row of ones, so that its
extra output row is the bias gradient, sum_n dh[n] ([dW; db] = [x, 1]^T dh); the
input gradient's product reads dh the same way (dx = dh W^T).
"""

from .. import reference
from .activations import KINDS
from .arrays import empty, is_device, mixed, to_device, to_host, write_back
from .gemm import gemm


def matmul(a, b):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) by the tiled kernel."""
    if mixed(a, b) or a.ndim != 2 or b.ndim != 2 or not a.size or not b.size:
        return reference.matmul(to_host(a), to_host(b))
    host = not is_device(a)
    a, b = to_device(a), to_device(b)
    c = gemm(a, b, empty((a.shape[0], b.shape[1]), a.dtype))
    return to_host(c) if host else c


def linear_forward(x, W, b, kind="identity", alpha=0.0):
    """``h = x @ W + b`` and ``y = f(h)`` in one launch (bias and f in the epilogue).
    Returns ``(h, y)``, one array twice for "identity"."""
    if mixed(x, W, b) or not len(x):
        return reference.linear_forward(to_host(x), to_host(W), to_host(b), kind, alpha)
    reference.check_dense(x, W, b)
    host = not is_device(x)
    x, W, b = to_device(x), to_device(W), to_device(b)
    h = empty((x.shape[0], W.shape[1]), x.dtype)
    code = KINDS[kind]
    y = empty(h.shape, h.dtype) if code else h
    gemm(x, W, h, bias=b, y=y, kind=code, alpha=alpha)
    if host:
        h_host = to_host(h)
        return h_host, (to_host(y) if code else h_host)
    return h, y


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """Two products, each reading dh = dy * f'(h) as it loads dy (no dh array, no
    pass of its own): ``[dW; db] += [x, 1]^T dh`` (db the product's row of ones) and
    ``dx = dh @ W.T``."""
    if mixed(x, W, h, y, dy, dW, db) or not len(x):
        return reference.linear_backward(*map(to_host, (x, W, h, y, dy)), dW, db, kind, alpha, need_dx)
    reference.check_dense(x, W, db, dy, dW, h, y)
    host = not is_device(dy)
    x, W, h, y, dy, dW_d, db_d = map(to_device, (x, W, h, y, dy, dW, db))
    grad = dict(h=h, y_of_h=y, grad_kind=KINDS[kind], grad_alpha=alpha)
    gemm(x, dy, dW_d, trans_a=True, beta=1, grad_of="b", ones_row_into=db_d, **grad)
    write_back(dW_d, dW)
    write_back(db_d, db)
    if not need_dx:
        return None
    dx = gemm(dy, W, empty(x.shape, x.dtype), trans_b=True, grad_of="a", **grad)
    return to_host(dx) if host else dx
