"""Convolutions, written with two primitives:

* ``im2col`` gathers every receptive field into a row, so a convolution is one
  matrix product with the flattened weight;
* ``col2im`` is its adjoint: it scatters rows back, *adding* where receptive
  fields overlap.

Conv2d forward is ``im2col`` then a product; its input gradient is a product then
``col2im``. ConvTranspose2d is the adjoint of Conv2d, so the same two primitives
serve it with their roles swapped. Images are NCHW.

Each convolution takes its activation too, ``y = f(conv(x) + b)`` (``kind`` names f,
as for the dense layer), and its backward reads f' from the output y alone
(``OUTPUT_DERIVATIVES``), so that a conv layer keeps only y: ``dh = dy * f'(y)``
first, then the gradients of the plain convolution with dh."""

import numpy as np

from .activations import activation_backward_from_output, activation_forward, check_joined_activation


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


def conv2d_forward(x, W, b, stride, padding, kind="identity", alpha=0.0):
    """Cross-correlation ``h[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] xpad[n,c,i*sh+p,j*sw+q]``,
    then ``y = f(h)`` for the activation ``kind``.

    ``x`` (N, C, H, W), ``W`` (O, C, kh, kw), ``b`` (O,) or None.
    """
    check_joined_activation(kind, alpha)
    cols = im2col(x, W.shape[2:], stride, padding)
    n, ho, wo = cols.shape[:3]
    y = cols.reshape(n * ho * wo, -1) @ W.reshape(W.shape[0], -1).T
    if b is not None:
        y += b
    return activation_forward(_from_rows(y, n, ho, wo), kind, alpha)


def conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True, kind="identity", alpha=0.0, y=None):
    """Gradients of :func:`conv2d_forward`: *adds* dL/dW into ``dW`` and dL/db into
    ``db``, and returns dL/dx (None unless ``need_dx``). ``y``: the forward's output
    (needed unless ``kind`` is "identity"); ``dy`` below stands for dh = dy * f'(y).

    With ``cols`` the im2col rows of ``x`` and ``Y = cols @ Wf.T`` (``Wf`` = W
    flattened to (O, C*kh*kw)): ``dWf = dY.T @ cols``, ``dcols = dY @ Wf``,
    ``dx = col2im(dcols)``, ``db = sum of dY over rows``.
    """
    check_joined_activation(kind, alpha, dy, y)
    if kind != "identity":
        dy = activation_backward_from_output(dy, y, kind, alpha)
    kernel = W.shape[2:]
    cols = im2col(x, kernel, stride, padding)
    dY = _as_rows(dy)
    dW += (dY.T @ cols.reshape(dY.shape[0], -1)).reshape(W.shape)
    db += dY.sum(axis=0)
    if not need_dx:
        return None
    return col2im((dY @ W.reshape(W.shape[0], -1)).reshape(cols.shape), x.shape, kernel, stride, padding)


def check_mask(W, mask):
    """Raise unless ``mask`` is (kh, kw) of W's kernel, odd sizes (a centre pixel): the
    kernels read one mask entry per kernel position."""
    kernel = W.shape[2:]
    if W.ndim != 4 or np.shape(mask) != kernel or any(k % 2 == 0 for k in kernel):
        raise ValueError(f"W, mask: expected a weight (O, C, kh, kw) of odd kh, kw and a mask (kh, kw), got shapes "
                         f"{W.shape}, {np.shape(mask)}")


def masked_conv2d_forward(x, W, b, mask, kind="identity", alpha=0.0):
    """A PixelCNN layer: the stride-1, same-size convolution (padding k // 2) with the
    weight multiplied by ``mask`` (kh, kw) first, ``conv2d_forward(x, W * mask, b)``."""
    check_mask(W, mask)
    kernel = W.shape[2:]
    return conv2d_forward(x, W * mask, b, (1, 1), (kernel[0] // 2, kernel[1] // 2), kind, alpha)


def masked_conv2d_backward(x, W, dy, dW, db, mask, need_dx=True, kind="identity", alpha=0.0, y=None):
    """Gradients of :func:`masked_conv2d_forward`, with V = W * mask: *adds* mask * dL/dV
    into ``dW`` (a masked-out weight meets no output: gradient 0) and dL/db into ``db``;
    returns conv2d's input gradient with V (the mask is in the weight x met already)."""
    check_mask(W, mask)
    kernel = W.shape[2:]
    dV = np.zeros_like(W)
    dx = conv2d_backward(x, W * mask, dy, dV, db, (1, 1), (kernel[0] // 2, kernel[1] // 2), need_dx, kind, alpha, y)
    dW += dV * mask
    return dx


def add_channel_bias(a, bias):
    """``a`` (N, C, H, W) plus ``bias`` (N, C) on every pixel of channel c of example n
    (a per-example bias map: the PixelCNN's linear map of z)."""
    if a.ndim != 4 or bias.shape != a.shape[:2]:
        raise ValueError(f"a, bias: expected (N, C, H, W) and (N, C), got shapes {a.shape}, {bias.shape}")
    return a + bias[:, :, None, None]


def append_channels(x, values):
    """``x`` (N, C, H, W) with K more channels, channel C + k of example n constant at
    ``values[n, k]`` ((N, K): a one-hot label as constant planes)."""
    if x.ndim != 4 or values.ndim != 2 or len(values) != len(x):
        raise ValueError(f"x, values: expected (N, C, H, W) and (N, K), got shapes {x.shape}, {values.shape}")
    planes = np.broadcast_to(values[:, :, None, None].astype(x.dtype), (len(x), values.shape[1], *x.shape[2:]))
    return np.concatenate([x, planes], axis=1)


def channel_sums(a):
    """The adjoint of :func:`add_channel_bias` in its bias: ``a`` (N, C, H, W) summed over
    each channel's pixels, (N, C)."""
    return a.sum(axis=(2, 3))


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding, kind="identity", alpha=0.0):
    """Transposed convolution: the adjoint of Conv2d with the same weight, then ``y = f(h)``.

    ``x`` (N, Cin, H, W), ``W`` (Cin, Cout, kh, kw) as in PyTorch. Each input pixel
    scatters ``x[n,ci,i,j] * W[ci,:,:,:]`` onto the output h at (i*sh - ph, j*sw - pw).
    """
    check_joined_activation(kind, alpha)
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
    return activation_forward(y, kind, alpha)


def conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True, kind="identity", alpha=0.0, y=None):
    """Gradients of :func:`conv_transpose2d_forward`: *adds* dL/dW and dL/db into
    ``dW`` and ``db``, and returns dL/dx (None unless ``need_dx``). ``y``: as for
    :func:`conv2d_backward`, and ``dy`` below stands for dh = dy * f'(y).

    The forward is ``y = col2im(X @ Wf)`` with ``X`` the rows of ``x``; the adjoint of
    col2im is im2col, so with ``D`` = im2col rows of ``dy``: ``dX = D @ Wf.T``
    (a plain Conv2d of ``dy``), ``dWf = X.T @ D``, ``db = sum of dy over n, h, w``.
    """
    check_joined_activation(kind, alpha, dy, y)
    if kind != "identity":
        dy = activation_backward_from_output(dy, y, kind, alpha)
    n, _, h, w = x.shape
    D = im2col(dy, W.shape[2:], stride, padding).reshape(n * h * w, -1)
    dW += (_as_rows(x).T @ D).reshape(W.shape)
    db += dy.sum(axis=(0, 2, 3))
    return _from_rows(D @ W.reshape(W.shape[0], -1).T, n, h, w) if need_dx else None

