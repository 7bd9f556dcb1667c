"""Convolutions as im2col + one BLAS product, channels-last inside."""

import math
import threading
import weakref

import numpy as np
from numba import njit

from .. import reference
from ..reference.conv import (  # noqa: F401  (NumPy already)
    add_channel_bias, append_channels, channel_sums, conv_output_size,
)
from .arrays import JIT, mixed
from .activations import (
    KINDS, _activate_flat, _add_bias_relu_rows, _add_bias_rows, _column_sums, activation_backward_from_output,
)

# --------------------------------------------------------------------- convolution
# Inside this backend images are channels-last. A receptive field of the image x
# (N, H, W, C) is then kh runs of kw*C consecutive numbers,
#   cols[(n, i, j), (p, q, c)] = x[n, i sh + p - ph, j sw + q - pw, c]   (0 outside x),
# so im2col copies runs and col2im adds runs, loops that vectorise; in NCHW order the
# runs are kw (4) numbers long. The padding is never materialised: a run that crosses
# the border is copied (or added) number by number, and one wholly outside is zeros
# (or skipped). The fields' columns come in (p, q, c) order, so the weight is
# permuted to match (a copy of a few thousand numbers per call).
#
# The activation runs on the output after the bias (ReLU in the bias's pass); a backward
# starts from dh = dy * f'(y), one pass.


def _bias_and_activation(y, b, kind, alpha):
    """f(y + b) for y a conv's output buffer (channels-last, C-contiguous) and b None or
    its bias: in place for ReLU (one pass with the bias), tanh and the identity, into a
    new buffer for the others (their loop vectorises from one array into another)."""
    rows = y.reshape(-1, y.shape[-1])
    if kind == "relu":
        _add_bias_relu_rows(rows, np.zeros(rows.shape[1], rows.dtype) if b is None else b)
        return y
    if b is not None:
        _add_bias_rows(rows, b)
    if kind == "tanh":  # NumPy's vectorised tanh, as activation_forward
        np.tanh(y, out=y)
    elif kind != "identity":
        out = np.empty_like(y)
        _activate_flat(y.reshape(-1), out.reshape(-1), KINDS[kind], y.dtype.type(alpha))
        return out
    return y


def _dh(dy, y, kind, alpha):
    reference.check_joined_activation(kind, alpha, dy, y)
    return dy if kind == "identity" else activation_backward_from_output(dy, y, kind, alpha)


@njit(**JIT)
def _im2col_runs(x, channels, widths, sh, sw, ph, pw, ho, wo, cols):
    """cols[(n, i, j), (p, q, c)] = x[n, i sh + p - ph, (j sw + q - pw) C + c], zero
    outside the image, for kernel rows p and, in row p, its first ``widths[p]`` columns
    q (all kw of them for a convolution; a causal mask's kept prefix for a masked one);
    x is (N, H, W*C)."""
    h, w = x.shape[1], x.shape[2] // channels
    r = 0
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                left, start = j * sw - pw, 0
                for p in range(widths.size):
                    kw = widths[p]
                    run = kw * channels
                    dst = cols[r, start : start + run]
                    start += run
                    row = i * sh + p - ph
                    if row < 0 or row >= h:
                        dst[:] = 0
                    elif left >= 0 and left + kw <= w:
                        src = x[n, row, left * channels : left * channels + run]
                        for k in range(run):
                            dst[k] = src[k]
                    else:
                        for q in range(kw):
                            inside = 0 <= left + q < w
                            for c in range(channels):
                                dst[q * channels + c] = x[n, row, (left + q) * channels + c] if inside else 0
                r += 1


@njit(**JIT)
def _col2im_runs(cols, channels, widths, sh, sw, ph, pw, ho, wo, out):
    """The adjoint of :func:`_im2col_runs`: each run of ``cols`` added back into ``out``
    (N, H, W*C), the parts that fall in the padding dropped."""
    h, w = out.shape[1], out.shape[2] // channels
    r = 0
    for n in range(out.shape[0]):
        for i in range(ho):
            for j in range(wo):
                left, start = j * sw - pw, 0
                for p in range(widths.size):
                    kw = widths[p]
                    run = kw * channels
                    src = cols[r, start : start + run]
                    start += run
                    row = i * sh + p - ph
                    if row < 0 or row >= h:
                        continue
                    if left >= 0 and left + kw <= w:
                        dst = out[n, row, left * channels : left * channels + run]
                        for k in range(run):
                            dst[k] += src[k]
                    else:
                        for q in range(kw):
                            if 0 <= left + q < w:
                                for c in range(channels):
                                    out[n, row, (left + q) * channels + c] += src[q * channels + c]
                r += 1


_scratch = threading.local()  # per thread: tag -> a reused buffer


def _buffer(tag, shape, dtype):
    """A scratch array kept between calls for an op's internal temporary (never for a
    result): the conv VAE's 13 MB im2col matrices, allocated afresh, came back from
    the OS as new pages every step and doubled a backward pass's time. One buffer per
    tag, grown to the largest size asked for, so layers of different shapes share it."""
    size = math.prod(shape)
    buf = getattr(_scratch, tag, None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(size, dtype=dtype)
        setattr(_scratch, tag, buf)
    return buf[:size].reshape(shape)


def _out_size(hw, kernel, stride, padding):
    return tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(hw, kernel, stride, padding))


def _channels_last_rows(x):
    """``x`` (N, C, H, W) as a contiguous (N, H, W*C) array: a view of this backend's
    channels-last conv outputs (and of one-channel images), a copy of other NCHW data."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n, h, w * c)


def _widths(kernel, mask=None):
    """Per kernel row, how many of its leading columns the fields take: all kw, or a
    causal mask's kept prefix (each of its rows is ones then zeros)."""
    return np.full(kernel[0], kernel[1], np.int64) if mask is None else mask.sum(axis=1).astype(np.int64)


def _fields(x, kernel, stride, padding, out_hw, cols=None, widths=None):
    """im2col: the receptive fields of ``x`` (N, C, H, W) as rows (N*Ho*Wo, kh*kw*C; or
    over the kept positions ``widths``), into ``cols`` if given, else into scratch (for
    the op's own use only)."""
    widths = _widths(kernel) if widths is None else widths
    shape = (len(x) * out_hw[0] * out_hw[1], int(widths.sum()) * x.shape[1])
    cols = _buffer("fields", shape, x.dtype) if cols is None else cols
    _im2col_runs(_channels_last_rows(x), x.shape[1], widths, *stride, *padding, *out_hw, cols)
    return cols


def _add_fields(cols, kernel, stride, padding, out_hw, out, widths=None):
    """col2im, the adjoint: ``out`` (N, H, W, C) += each row of ``cols`` where
    :func:`_fields` took it from; returns ``out`` as an (N, C, H, W) view."""
    n, h, w, c = out.shape
    widths = _widths(kernel) if widths is None else widths
    _col2im_runs(cols, c, widths, *stride, *padding, *out_hw, out.reshape(n, h, w * c))
    return out.transpose(0, 3, 1, 2)


def _kept_fields(x, kernel, stride, padding, out_hw, widths=None):
    """:func:`_fields` into a buffer kept for this geometry, remembered as ``x``'s, so
    that conv2d's backward, given the same ``x`` object, reads them instead of making
    them again (:func:`_fields_for_backward`)."""
    widths = _widths(kernel) if widths is None else widths
    key = ("kept_fields", x.shape, x.dtype.str, kernel, stride, padding, tuple(widths.tolist()))
    shape = (len(x) * out_hw[0] * out_hw[1], int(widths.sum()) * x.shape[1])
    cols = _fields(x, kernel, stride, padding, out_hw, _buffer(repr(key), shape, x.dtype), widths)
    _scratch.kept = {**getattr(_scratch, "kept", {}), key: weakref.ref(x)}
    return cols


def _fields_for_backward(x, kernel, stride, padding, out_hw, widths=None):
    """The fields the forward kept for this ``x`` (then forgotten: the backward writes
    over them), or made again."""
    widths = _widths(kernel) if widths is None else widths
    key = ("kept_fields", x.shape, x.dtype.str, kernel, stride, padding, tuple(widths.tolist()))
    kept = getattr(_scratch, "kept", {})
    if key in kept and kept[key]() is x:
        del kept[key]
        shape = (len(x) * out_hw[0] * out_hw[1], int(widths.sum()) * x.shape[1])
        return _buffer(repr(key), shape, x.dtype)
    return _fields(x, kernel, stride, padding, out_hw, widths=widths)


def im2col(x, kernel, stride, padding):
    """The reference's op: the receptive fields of ``x`` (N, C, H, W) as (N, Ho, Wo, C,
    kh, kw), a view of this backend's channels-last rows (columns in (p, q, c) order)."""
    n, c = x.shape[:2]
    ho, wo = out_hw = _out_size(x.shape[2:], kernel, stride, padding)
    cols = np.empty((n * ho * wo, kernel[0] * kernel[1] * c), dtype=x.dtype)
    rows = _fields(x, kernel, stride, padding, out_hw, cols)
    return rows.reshape(n, ho, wo, *kernel, c).transpose(0, 1, 2, 5, 3, 4)


def col2im(cols, x_shape, kernel, stride, padding):
    """The reference's op, the adjoint of :func:`im2col`: ``cols`` (N, Ho, Wo, C, kh, kw)
    added back into a new (N, C, H, W) array, through this backend's channels-last rows."""
    (n, c, h, w), out_hw = x_shape, _out_size(x_shape[2:], kernel, stride, padding)
    rows = np.ascontiguousarray(cols.transpose(0, 1, 2, 4, 5, 3)).reshape(n * out_hw[0] * out_hw[1], -1)
    return _add_fields(rows, kernel, stride, padding, out_hw, np.zeros((n, h, w, c), cols.dtype))


def _weight_rows(W):
    """W (A, B, kh, kw) as the (A, kh*kw*B) matrix whose columns match im2col's (p, q, c)."""
    return W.transpose(0, 2, 3, 1).reshape(W.shape[0], -1)


def _add_weight_grad(dW, dW_rows):
    """dW += dW_rows, the gradient of :func:`_weight_rows` (W) taken back to W's layout."""
    dW += dW_rows.reshape(dW.shape[0], *dW.shape[2:], dW.shape[1]).transpose(0, 3, 1, 2)


def _to_rows(image):
    """(N, C, H, W) -> (N*H*W, C), contiguous (free when ``image`` is channels-last)."""
    return np.ascontiguousarray(image.transpose(0, 2, 3, 1)).reshape(-1, image.shape[1])


def conv2d_forward(x, W, b, stride, padding, kind="identity", alpha=0.0):
    """im2col by runs, then one product (BLAS) straight into the output's rows; the
    bias and the activation applied in place. (Going a few images at a time, for the
    fields to stay in cache, does not pay: ``benchmarks/README.md``.)"""
    reference.check_joined_activation(kind, alpha)
    if mixed(x, W):  # the scratch and outputs take x's dtype: mixed dtypes to NumPy's promotion
        return reference.conv2d_forward(x, W, b, stride, padding, kind, alpha)
    kernel, n = W.shape[2:], x.shape[0]
    ho, wo = _out_size(x.shape[2:], kernel, stride, padding)
    Wr = _weight_rows(W)
    cols = _kept_fields(x, kernel, stride, padding, (ho, wo))
    y = np.matmul(cols, Wr.T).reshape(n, ho, wo, -1)
    return _bias_and_activation(y, b, kind, alpha).transpose(0, 3, 1, 2)


def conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True, kind="identity", alpha=0.0, y=None):
    """dh = dy * f'(y); the forward's fields of this x (or im2col by runs again), ``dWf += dY.T @ cols``,
    ``db += sum dY`` in one pass, and ``dx = col2im(dY @ Wf)`` by runs (``dY @ Wf`` written over the fields),
    dY being dh as rows."""
    if mixed(x, W, dy):
        return reference.conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx, kind, alpha, y)
    dy = _dh(dy, y, kind, alpha)
    kernel = W.shape[2:]
    ho, wo = _out_size(x.shape[2:], kernel, stride, padding)
    Wr, dY = _weight_rows(W), _to_rows(dy)
    cols = _fields_for_backward(x, kernel, stride, padding, (ho, wo))
    _add_weight_grad(dW, dY.T @ cols)
    _column_sums(dY, db)
    if not need_dx:
        return None
    (n, c, h, w) = x.shape
    return _add_fields(np.matmul(dY, Wr, out=cols), kernel, stride, padding, (ho, wo), np.zeros((n, h, w, c), x.dtype))


def _prefix_rows(mask):
    """Whether each row of ``mask`` is ones then zeros (a causal mask is), so that its
    kept positions are each kernel row's first ``widths[p]`` columns, and some are kept."""
    widths = _widths(mask.shape, mask)
    return bool(widths.any() and np.all(mask == (np.arange(mask.shape[1]) < widths[:, None])))


def _masked_weight_rows(W, widths):
    """The columns of :func:`_weight_rows` (W) at the kept positions: (O, sum(widths) C)."""
    return np.concatenate([W[:, :, p, :k].transpose(0, 2, 1).reshape(W.shape[0], -1)
                           for p, k in enumerate(widths) if k], axis=1)


def masked_conv2d_forward(x, W, b, mask, kind="identity", alpha=0.0):
    """The fields over the mask's kept positions only (about half of a causal kernel's),
    so that no column meets a masked-out weight; then the product, the bias and the
    activation as conv2d's. Other masks: the reference's."""
    reference.check_mask(W, mask)
    reference.check_joined_activation(kind, alpha)
    if mixed(x, W) or not _prefix_rows(mask):
        return reference.masked_conv2d_forward(x, W, b, mask, kind, alpha)
    kernel, n = W.shape[2:], x.shape[0]
    padding, widths = (kernel[0] // 2, kernel[1] // 2), _widths(kernel, mask)
    cols = _kept_fields(x, kernel, (1, 1), padding, x.shape[2:], widths)
    y = np.matmul(cols, _masked_weight_rows(W, widths).T).reshape(n, *x.shape[2:], -1)
    return _bias_and_activation(y, b, kind, alpha).transpose(0, 3, 1, 2)


def masked_conv2d_backward(x, W, dy, dW, db, mask, need_dx=True, kind="identity", alpha=0.0, y=None):
    """dh = dy * f'(y), then conv2d's backward over the kept positions' fields: their
    weight gradient added into dW at those positions only (the masked ones get 0, as
    the reference's mask * dL/dV), db in one pass, dx by col2im over the same positions."""
    reference.check_mask(W, mask)
    if mixed(x, W, dy) or not _prefix_rows(mask):
        return reference.masked_conv2d_backward(x, W, dy, dW, db, mask, need_dx, kind, alpha, y)
    dy = _dh(dy, y, kind, alpha)
    kernel, (n, c, h, w) = W.shape[2:], x.shape
    padding, widths = (kernel[0] // 2, kernel[1] // 2), _widths(kernel, mask)
    dY = _to_rows(dy)
    cols = _fields_for_backward(x, kernel, (1, 1), padding, (h, w), widths)
    dW_rows, start = dY.T @ cols, 0
    for p, k in enumerate(widths):
        dW[:, :, p, :k] += dW_rows[:, start : start + k * c].reshape(W.shape[0], k, c).transpose(0, 2, 1)
        start += k * c
    _column_sums(dY, db)
    if not need_dx:
        return None
    dcols = np.matmul(dY, _masked_weight_rows(W, widths), out=cols)
    return _add_fields(dcols, kernel, (1, 1), padding, (h, w), np.zeros((n, h, w, c), x.dtype), widths)


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding, kind="identity", alpha=0.0):
    """The rows of x @ Wf (BLAS), added by col2im by runs into an output that starts
    as the bias; then the activation in place."""
    reference.check_joined_activation(kind, alpha)
    if mixed(x, W):
        return reference.conv_transpose2d_forward(x, W, b, stride, padding, output_padding, kind, alpha)
    kernel, (n, _, h, w) = W.shape[2:], x.shape
    ho, wo = (
        conv_output_size(s, k, st, p, op, transposed=True)
        for s, k, st, p, op in zip((h, w), kernel, stride, padding, output_padding)
    )
    X, Wr = _to_rows(x), _weight_rows(W)
    rows = np.matmul(X, Wr, out=_buffer("fields", (len(X), Wr.shape[1]), x.dtype))
    y = np.empty((n, ho, wo, W.shape[1]), x.dtype)
    y[...] = 0 if b is None else b  # the bias first, then every field added onto it
    _add_fields(rows, kernel, stride, padding, (h, w), y)
    return _bias_and_activation(y, None, kind, alpha).transpose(0, 3, 1, 2)


def conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True, kind="identity", alpha=0.0, y=None):
    """dh = dy * f'(y); ``D`` = im2col(dh) by runs: ``dWf += X.T @ D``, ``dX = D @ Wf.T``;
    ``db`` in one pass."""
    if mixed(x, W, dy):
        return reference.conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx, kind, alpha, y)
    dy = _dh(dy, y, kind, alpha)
    kernel, (n, _, h, w) = W.shape[2:], x.shape
    X, Wr = _to_rows(x), _weight_rows(W)
    D = _fields(dy, kernel, stride, padding, (h, w))
    _add_weight_grad(dW, X.T @ D)
    _column_sums(_to_rows(dy), db)
    return (D @ Wr.T).reshape(n, h, w, -1).transpose(0, 3, 1, 2) if need_dx else None
