"""Numba CPU backend: the reference's ops with the same signatures, selected by
``npvae.kernels.use("numba")`` or ``NPVAE_BACKEND=numba``.

Where the time goes and what this backend does about it (figures from
``benchmarks/kernels.py`` and ``benchmarks/mlp_vae.py`` on the 2-core AVX2 machine):

* Convolutions are im2col + one BLAS product, as in the reference, but im2col is one
  Numba gather and col2im one scatter-add through precomputed index tables, where
  the reference copies strided views and loops over the kernel's taps in Python.
  The NCHW <-> rows transposes stay NumPy's strided copies (faster than a Numba loop).
* Matrix products stay in BLAS. A hand-tiled Numba matmul reaches about a third of
  BLAS on these shapes (shared/BENCHMARKING.md: 48-62 against 139-177 GFLOP/s on
  128x784 @ 784x400). The first layer skips ``dx`` (its input is data).
* What NumPy cannot do is fuse: ``x @ W + b``, ``dy * (1 - y * y)``, Adam's ten
  operators, the Bernoulli log-likelihood and its gradient each make several passes
  over memory and a temporary per operator. Here each is one loop.
* Numba has no vectorised exp/log/tanh here (no Intel SVML), so a scalar libm call
  costs 5-15 ns per element, where NumPy's AVX2 ufuncs take under 1 ns. The
  kernels therefore take ``exp``/``log1p``/``tanh`` from NumPy's ufuncs (into
  preallocated buffers) and fuse everything around them.
* The loops are serial and compiled with ``error_model="numpy"`` (a division does
  not test for zero, so LLVM can vectorise the loop) and fast-math flags that allow
  reassociation and FMA but keep NaN and inf semantics. With ``parallel=True``
  Numba's worker threads and OpenBLAS's (which spin for a while after each product)
  fought over the 2 cores: an epoch of the 784-400-20 VAE took 10x longer.

Every kernel is compiled with ``cache=True``, so only the first run on a machine pays
the compilation; each is tested against ``reference.py``.
"""

import threading

import numpy as np
from numba import njit

from . import reference
from .reference import LOG_2PI, conv_output_size, matmul  # noqa: F401  (ops taken as they are)

# Compile options of every loop: no ZeroDivisionError checks (they stop
# vectorisation) and the fast-math flags that keep NaN/inf semantics.
JIT = dict(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "reassoc"})

# Activation names as the integer codes the kernels branch on (a branch per element
# that is the same for every element costs nothing measurable).
KINDS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "softplus": 5, "elu": 6}


@njit(cache=True, inline="always")
def _sigmoid(v):
    if v >= 0:
        return 1 / (1 + np.exp(-v))
    e = np.exp(v)
    return e / (1 + e)


@njit(cache=True, inline="always")
def _activate(v, kind, alpha):
    if kind == 1:
        return v if v > 0 else v * 0
    if kind == 2:
        return v if v > 0 else alpha * v
    if kind == 3:
        return np.tanh(v)
    if kind == 4:
        return _sigmoid(v)
    if kind == 5:  # log(1 + e^v) = max(v, 0) + log1p(e^-|v|), no overflow
        return max(v, 0) + np.log1p(np.exp(-abs(v)))
    if kind == 6:
        return v if v > 0 else alpha * np.expm1(v)
    return v


@njit(cache=True, inline="always")
def _derivative(x, y, kind, alpha):
    """f'(x), from x or y = f(x), whichever is cheaper (as the reference)."""
    if kind == 1:
        return 1 if x > 0 else 0
    if kind == 2:
        return 1 if x > 0 else alpha
    if kind == 3:
        return 1 - y * y
    if kind == 4:
        return y * (1 - y)
    if kind == 5:
        return _sigmoid(x)
    if kind == 6:
        return 1 if x > 0 else y + alpha
    return 1


@njit(**JIT)
def _add_bias_rows(y, b):
    """In place: y[i, j] += b[j]."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += b[j]


@njit(**JIT)
def _activate_flat(x, out, kind, alpha):
    for i in range(x.size):
        out[i] = _activate(x[i], kind, alpha)


@njit(**JIT)
def _backward_flat(dy, x, y, out, kind, alpha):
    # ReLU and tanh get loops of their own: with the per-element branch on ``kind``
    # (and the int/float mix of the general derivative) the loop ran 8x slower.
    if kind == 1:
        for i in range(dy.size):
            out[i] = dy[i] if x[i] > 0 else 0
    elif kind == 3:
        for i in range(dy.size):
            out[i] = dy[i] * (1 - y[i] * y[i])
    else:
        for i in range(dy.size):
            out[i] = dy[i] * _derivative(x[i], y[i], kind, alpha)


@njit(**JIT)
def _column_sums(dy, out):
    """out[j] += sum_i dy[i, j], accumulated in float64 row by row (memory order)."""
    acc = np.zeros(dy.shape[1])
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[i, j]
    for j in range(dy.shape[1]):
        out[j] += acc[j]


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def linear_forward(x, W, b):
    """``y = x @ W + b``: the product in BLAS, the bias added in the same buffer."""
    y = x @ W
    _add_bias_rows(y, b)
    return y


def linear_backward(x, W, dy, dW, db, need_dx=True):
    """``dW += x.T @ dy`` and ``dx = dy @ W.T`` (when needed) in NumPy's BLAS,
    ``db += sum_n dy[n]`` in one pass over ``dy``.

    Accumulating by gemm with beta = 1 (``scipy.linalg.blas.sgemm``) would save the
    temporary, but SciPy bundles a second OpenBLAS whose threads and NumPy's then
    fought over the 2 cores: an epoch took 5x longer.
    """
    dW += x.T @ dy
    _column_sums(dy, db)
    return dy @ W.T if need_dx else None


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)``, one pass (tanh: NumPy's vectorised ufunc, 20x faster than libm's)."""
    if kind == "tanh":
        return np.tanh(x)
    out = np.empty(x.shape, dtype=x.dtype)
    _activate_flat(_flat(x), out.reshape(-1), KINDS[kind], x.dtype.type(alpha))
    return out


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)`` in one pass (the reference makes up to three temporaries)."""
    out = np.empty(dy.shape, dtype=dy.dtype)
    _backward_flat(_flat(dy), _flat(x), _flat(y), out.reshape(-1), KINDS[kind], dy.dtype.type(alpha))
    return out


# --------------------------------------------------------------------- the ELBO path


@njit(**JIT)
def _reparameterize_kl(mean, logvar, std, eps, z, kl):
    for n in range(eps.shape[0]):
        for s in range(eps.shape[1]):
            for j in range(eps.shape[2]):
                z[n, s, j] = mean[n, j] + std[n, j] * eps[n, s, j]
        for j in range(eps.shape[2]):
            kl[n, j] = 0.5 * (std[n, j] * std[n, j] + mean[n, j] * mean[n, j] - 1 - logvar[n, j])


def reparameterize_kl(mean, logvar, eps):
    """z and the analytic KL in one pass over (mean, logvar, eps); exp(logvar / 2) from NumPy."""
    z, kl = np.empty(eps.shape, dtype=eps.dtype), np.empty(mean.shape, dtype=mean.dtype)
    _reparameterize_kl(mean, logvar, np.exp(0.5 * logvar), eps, z, kl)
    return z, kl


@njit(**JIT)
def _reparameterize_kl_backward(dz, eps, mean, std, dkl, dmean, dlogvar):
    for n in range(dz.shape[0]):
        for j in range(dz.shape[2]):
            sum_dz, sum_dz_eps = 0.0, 0.0
            for s in range(dz.shape[1]):
                sum_dz += dz[n, s, j]
                sum_dz_eps += dz[n, s, j] * eps[n, s, j]
            dmean[n, j] = sum_dz + dkl[n, j] * mean[n, j]
            dlogvar[n, j] = 0.5 * std[n, j] * sum_dz_eps + 0.5 * dkl[n, j] * (std[n, j] * std[n, j] - 1)


def reparameterize_kl_backward(dz, eps, mean, logvar, dkl):
    """``(dmean, dlogvar)`` in one pass over (dz, eps, mean, logvar, dkl)."""
    dmean, dlogvar = np.empty_like(mean), np.empty_like(logvar)
    _reparameterize_kl_backward(dz, eps, mean, np.exp(0.5 * logvar), np.broadcast_to(dkl, mean.shape), dmean, dlogvar)
    return dmean, dlogvar


@njit(**JIT)
def _bernoulli_rows(x, logits, e, log1p_e, log_p, grad):
    """With e = exp(-|l|) and log1p(e) from NumPy: softplus(l) = max(l, 0) + log1p(e),
    sigmoid(l) = 1 / (1 + e) for l >= 0 and e / (1 + e) below. ``grad`` may be ``e``."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l, e_nd = logits[n, d], e[n, d]
            acc += x[n, d] * l - (l if l > 0 else 0) - log1p_e[n, d]
            s = 1 / (1 + e_nd)
            grad[n, d] = x[n, d] - (s if l >= 0 else e_nd * s)
        log_p[n] = acc


def bernoulli_log_prob_grad(x, logits):
    """log p and its gradient in one fused pass after NumPy's exp and log1p."""
    e = np.exp(-np.abs(logits))
    log1p_e = np.log1p(e)
    log_p = np.empty(len(x), dtype=logits.dtype)
    _bernoulli_rows(x, logits, e, log1p_e, log_p, e)
    return log_p, e


@njit(**JIT)
def _gaussian_rows(x, mu, logvar, inv_var, log_p, dmu, dlogvar):
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            r = x[n, d] - mu[n, d]
            dmu[n, d] = r * inv_var[n, d]
            half_sq = 0.5 * r * dmu[n, d]
            dlogvar[n, d] = half_sq - 0.5
            acc += logvar[n, d] + 2 * half_sq
        log_p[n] = -0.5 * (x.shape[1] * LOG_2PI + acc)


def gaussian_log_prob_grad(x, mu, logvar):
    """log p, d/dmu and d/dlogvar in one pass; exp(-logvar) from NumPy."""
    logvar = np.broadcast_to(logvar, x.shape)
    dmu, dlogvar, log_p = np.empty_like(x), np.empty_like(x), np.empty(len(x), dtype=x.dtype)
    _gaussian_rows(x, mu, logvar, np.exp(-logvar), log_p, dmu, dlogvar)
    return log_p, dmu, dlogvar


# ----------------------------------------------------------------------- optimiser


@njit(**JIT)
def _adam(p, g, m, v, lr, beta1, beta2, eps, correction1, correction2):
    for i in range(p.size):
        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
        p[i] -= lr * (m[i] / correction1) / (np.sqrt(v[i] / correction2) + eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """Adam in one pass over (p, g, m, v) instead of ten NumPy operators."""
    if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        return reference.adam_update(p, g, m, v, lr, beta1, beta2, eps, t)
    f = p.dtype.type
    _adam(p.reshape(-1), _flat(g), m.reshape(-1), v.reshape(-1), f(lr), f(beta1), f(beta2), f(eps),
          f(1 - beta1**t), f(1 - beta2**t))


# --------------------------------------------------------------------- convolution
# A receptive field of the zero-padded image xp (N, C, Hp, Wp), flattened, is the set
# of flat indices row_start(n, i, j) + offset(c, p, q) with
#   row_start = ((n C) Hp + i sh) Wp + j sw,   offset = (c Hp + p) Wp + q,
# so im2col is one gather and col2im one scatter-add through these two index tables,
# each inner loop C*kh*kw long (a 4x4 kernel's loops alone are too short to run fast).


@njit(**JIT)
def _gather(xp, row_starts, offsets, cols):
    for r in range(cols.shape[0]):
        base = row_starts[r]
        for k in range(cols.shape[1]):
            cols[r, k] = xp[base + offsets[k]]


@njit(**JIT)
def _scatter_add(cols, row_starts, offsets, out):
    for r in range(cols.shape[0]):
        base = row_starts[r]
        for k in range(cols.shape[1]):
            out[base + offsets[k]] += cols[r, k]


_scratch = threading.local()  # per thread: tag -> a reused buffer


def _buffer(tag, shape, dtype):
    """A scratch array kept between calls for an op's internal temporary (never for a
    result): the conv VAE's 13 MB im2col matrices, allocated afresh, came back from
    the OS as new pages every step and doubled a backward pass's time."""
    buf = getattr(_scratch, tag, None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        setattr(_scratch, tag, buf)
    return buf


def _field_indices(x_shape, kernel, stride, padding):
    """(row_starts, offsets, (Ho, Wo), padded shape) for the receptive fields of x."""
    (n, c, h, w), (kh, kw), (sh, sw), (ph, pw) = x_shape, kernel, stride, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    row_starts = (np.arange(n)[:, None, None] * (c * hp * wp) + np.arange(ho)[:, None] * (sh * wp)
                  + np.arange(wo) * sw).ravel()
    offsets = (np.arange(c)[:, None, None] * (hp * wp) + np.arange(kh)[:, None] * wp + np.arange(kw)).ravel()
    return row_starts, offsets, (ho, wo), (n, c, hp, wp)


def im2col(x, kernel, stride, padding, tag=None):
    """The reference's receptive fields (N, Ho, Wo, C, kh, kw), contiguous, by one gather
    (into the scratch buffer ``tag`` when the caller only needs it for a while)."""
    row_starts, offsets, (ho, wo), _ = _field_indices(x.shape, kernel, stride, padding)
    (ph, pw) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else np.ascontiguousarray(x)
    shape = (x.shape[0], ho, wo, x.shape[1], *kernel)
    cols = np.empty(shape, dtype=x.dtype) if tag is None else _buffer(tag, shape, x.dtype)
    _gather(xp.reshape(-1), row_starts, offsets, cols.reshape(len(row_starts), len(offsets)))
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: one scatter-add into the padded image, then the crop."""
    row_starts, offsets, _, padded = _field_indices(x_shape, kernel, stride, padding)
    out = np.zeros(padded, dtype=cols.dtype)
    _scatter_add(np.ascontiguousarray(cols).reshape(len(row_starts), len(offsets)), row_starts, offsets,
                 out.reshape(-1))
    (ph, pw), (h, w) = padding, x_shape[2:]
    return out[:, :, ph : ph + h, pw : pw + w]


def _to_rows(image):
    """(N, C, H, W) -> (N*H*W, C), contiguous (NumPy's strided copy is the fast one here)."""
    return np.ascontiguousarray(image.transpose(0, 2, 3, 1)).reshape(-1, image.shape[1])


def _to_image(rows, n, h, w, b=None):
    """(N*H*W, C) -> (N, C, H, W), contiguous, plus the bias ``b`` in the same pass."""
    view = rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(view) if b is None else np.add(view, b[:, None, None])


def conv2d_forward(x, W, b, stride, padding):
    """im2col by one gather, one product (BLAS), rows -> NCHW with the bias in one pass."""
    cols = im2col(x, W.shape[2:], stride, padding, tag="cols")
    n, ho, wo = cols.shape[:3]
    rows = np.matmul(cols.reshape(n * ho * wo, -1), W.reshape(W.shape[0], -1).T,
                     out=_buffer("rows", (n * ho * wo, W.shape[0]), x.dtype))
    return _to_image(rows, n, ho, wo, b)


def conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """``dWf += dY.T @ cols``, ``db += sum dY``, ``dx = col2im(dY @ Wf)`` by one scatter."""
    cols = im2col(x, W.shape[2:], stride, padding, tag="cols")
    dY = _to_rows(dy)
    dW += (dY.T @ cols.reshape(dY.shape[0], -1)).reshape(W.shape)
    db += dy.sum(axis=(0, 2, 3))
    if not need_dx:
        return None
    dcols = np.matmul(dY, W.reshape(W.shape[0], -1), out=_buffer("dcols", (dY.shape[0], cols[0, 0, 0].size), dy.dtype))
    return col2im(dcols.reshape(cols.shape), x.shape, W.shape[2:], stride, padding)


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding):
    """rows of x @ Wf (BLAS), scattered by col2im, the bias added with the crop's copy."""
    n, _, h, w = x.shape
    kernel = W.shape[2:]
    ho, wo = (
        conv_output_size(s, k, st, p, op, transposed=True)
        for s, k, st, p, op in zip((h, w), kernel, stride, padding, output_padding)
    )
    X = _to_rows(x)
    rows = np.matmul(X, W.reshape(W.shape[0], -1), out=_buffer("rows", (X.shape[0], W[0].size), x.dtype))
    y = col2im(rows.reshape(n, h, w, W.shape[1], *kernel), (n, W.shape[1], ho, wo), kernel, stride, padding)
    return np.ascontiguousarray(y) if b is None else np.add(y, b[:, None, None])


def conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """``D`` = im2col(dy) by one gather: ``dWf += X.T @ D``, ``dx = D @ Wf.T`` back to NCHW."""
    n, _, h, w = x.shape
    D = im2col(dy, W.shape[2:], stride, padding, tag="cols").reshape(n * h * w, -1)
    dW += (_to_rows(x).T @ D).reshape(W.shape)
    db += dy.sum(axis=(0, 2, 3))
    return _to_image(D @ W.reshape(W.shape[0], -1).T, n, h, w) if need_dx else None
