"""Plain-NumPy reference of every op the layers call: the readable specification.

Every other backend implements these signatures and is tested against this file.
Arrays keep their dtype (float32 in, float32 out). Images are NCHW.

Convolutions are written with two primitives:

* ``im2col`` gathers every receptive field into a row, so a convolution is one
  matrix product with the flattened weight;
* ``col2im`` is its adjoint: it scatters rows back, *adding* where receptive
  fields overlap.

Conv2d forward is ``im2col`` then a product; its input gradient is a product then
``col2im``. ConvTranspose2d is the adjoint of Conv2d, so the same two primitives
serve it with their roles swapped.
"""

import numpy as np
from scipy.special import expit

# --------------------------------------------------------------------------- dense


def matmul(a, b):
    """``a @ b``."""
    return a @ b


def linear_forward(x, W, b):
    """``y = x @ W + b`` with ``x`` (N, in), ``W`` (in, out), ``b`` (out,)."""
    return x @ W + b


def linear_backward(x, W, dy):
    """Gradients of ``y = x @ W + b``: returns ``(dx, dW, db)``.

    ``dx = dy @ W.T``, ``dW = x.T @ dy``, ``db = sum_n dy[n]``.
    """
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


# --------------------------------------------------------------------- activations
# Each entry: forward f(x, alpha) and derivative written with whatever of x or
# y = f(x) makes it cheapest, as f'(x, y, alpha).


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


ACTIVATIONS = {
    "identity": (lambda x, a: x, lambda x, y, a: np.ones_like(x)),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, a: (x > 0).astype(x.dtype)),
    "leaky_relu": (
        lambda x, a: np.where(x > 0, x, a * x),
        lambda x, y, a: np.where(x > 0, 1, a).astype(x.dtype),
    ),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, a: 1 - y * y),
    "sigmoid": (lambda x, a: expit(x), lambda x, y, a: y * (1 - y)),
    # softplus(x) = log(1 + e^x), computed without overflow; its derivative is sigmoid.
    "softplus": (lambda x, a: np.logaddexp(x.dtype.type(0), x), lambda x, y, a: expit(x)),
    # for x <= 0, y = alpha (e^x - 1) so dy/dx = alpha e^x = y + alpha.
    "elu": (_elu, lambda x, y, a: np.where(x > 0, 1, y + a).astype(x.dtype)),
}


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)`` for the activation named ``kind`` (a key of ``ACTIVATIONS``)."""
    return ACTIVATIONS[kind][0](x, x.dtype.type(alpha))


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)``, given the forward's input ``x`` and output ``y``."""
    return dy * ACTIVATIONS[kind][1](x, y, x.dtype.type(alpha))


# --------------------------------------------------------------------- convolution


def conv_output_size(size, kernel, stride, padding, output_padding=0, transposed=False):
    """Output length along one axis, as PyTorch defines it (dilation 1)."""
    if transposed:
        return (size - 1) * stride - 2 * padding + kernel + output_padding
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kernel, stride, padding):
    """Receptive fields of ``x`` (N, C, H, W) as an array (N, Ho, Wo, C, kh, kw).

    ``cols[n, i, j, c, p, q] = xpad[n, c, i*sh + p, j*sw + q]`` where ``xpad`` is
    ``x`` zero-padded by ``padding`` on each side.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return windows[:, :, ::sh, ::sw].transpose(0, 2, 3, 1, 4, 5)


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: scatter-add ``cols`` (N, Ho, Wo, C, kh, kw) into an
    array of shape ``x_shape`` (N, C, H, W). Overlapping fields add up."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x_shape
    ho, wo = cols.shape[1:3]
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            xp[:, :, p : p + sh * ho : sh, q : q + sw * wo : sw] += cols[..., p, q].transpose(0, 3, 1, 2)
    return xp[:, :, ph : ph + h, pw : pw + w]


def _as_rows(y):
    """(N, C, H, W) -> (N*H*W, C), channels last: the layout a conv product works in."""
    return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])


def _from_rows(rows, n, h, w):
    """Inverse of :func:`_as_rows`."""
    return rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


def conv2d_forward(x, W, b, stride, padding):
    """Cross-correlation ``y[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] xpad[n,c,i*sh+p,j*sw+q]``.

    ``x`` (N, C, H, W), ``W`` (O, C, kh, kw), ``b`` (O,) or None.
    """
    cols = im2col(x, W.shape[2:], stride, padding)
    n, ho, wo = cols.shape[:3]
    y = cols.reshape(n * ho * wo, -1) @ W.reshape(W.shape[0], -1).T
    if b is not None:
        y += b
    return _from_rows(y, n, ho, wo)


def conv2d_backward(x, W, dy, stride, padding):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dW, db)``.

    With ``cols`` the im2col rows of ``x`` and ``Y = cols @ Wf.T`` (``Wf`` = W
    flattened to (O, C*kh*kw)): ``dWf = dY.T @ cols``, ``dcols = dY @ Wf``,
    ``dx = col2im(dcols)``, ``db = sum of dY over rows``.
    """
    kernel = W.shape[2:]
    cols = im2col(x, kernel, stride, padding)
    dY = _as_rows(dy)
    Wf = W.reshape(W.shape[0], -1)
    dW = (dY.T @ cols.reshape(dY.shape[0], -1)).reshape(W.shape)
    dx = col2im((dY @ Wf).reshape(cols.shape), x.shape, kernel, stride, padding)
    return dx, dW, dY.sum(axis=0)


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding):
    """Transposed convolution: the adjoint of Conv2d with the same weight.

    ``x`` (N, Cin, H, W), ``W`` (Cin, Cout, kh, kw) as in PyTorch. Each input pixel
    scatters ``x[n,ci,i,j] * W[ci,:,:,:]`` onto the output at (i*sh - ph, j*sw - pw).
    """
    n, _, h, w = x.shape
    kernel = W.shape[2:]
    ho, wo = (
        conv_output_size(s, k, st, p, op, transposed=True)
        for s, k, st, p, op in zip((h, w), kernel, stride, padding, output_padding)
    )
    rows = _as_rows(x) @ W.reshape(W.shape[0], -1)  # (N*H*W, Cout*kh*kw)
    y = col2im(rows.reshape(n, h, w, W.shape[1], *kernel), (n, W.shape[1], ho, wo), kernel, stride, padding)
    if b is not None:
        y += b[:, None, None]
    return y


def conv_transpose2d_backward(x, W, dy, stride, padding):
    """Gradients of :func:`conv_transpose2d_forward`: returns ``(dx, dW, db)``.

    The forward is ``y = col2im(X @ Wf)`` with ``X`` the rows of ``x``; the adjoint of
    col2im is im2col, so with ``D`` = im2col rows of ``dy``: ``dX = D @ Wf.T``
    (a plain Conv2d of ``dy``), ``dWf = X.T @ D``, ``db = sum of dy over n, h, w``.
    """
    n, _, h, w = x.shape
    D = im2col(dy, W.shape[2:], stride, padding).reshape(n * h * w, -1)
    X = _as_rows(x)
    Wf = W.reshape(W.shape[0], -1)
    dx = _from_rows(D @ Wf.T, n, h, w)
    return dx, (X.T @ D).reshape(W.shape), dy.sum(axis=(0, 2, 3))
