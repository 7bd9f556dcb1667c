"""Numba CPU backend: the reference's ops with the same signatures, selected by
``npvae.kernels.use("numba")`` or ``NPVAE_BACKEND=numba``.

Where the time goes and what this backend does about it (figures from
``benchmarks/kernels.py`` and ``benchmarks/mlp_vae.py`` on the README's 2-core machine):

* Convolutions are im2col + one BLAS product, as in the reference, but channels-last
  inside, where a receptive field is kh runs of kw*C consecutive numbers: im2col
  copies runs and col2im adds runs (conv2's 12.8 MB of fields in 0.8 ms, against
  2.4 ms for a gather through index tables), reading and writing the unpadded image.
  Conv outputs keep channels-last memory under their NCHW shape, so the next layer and
  the backward pass read them without a transposing copy (``benchmarks/conv_vae.py``:
  47 -> 33 ms per conv-VAE step).
* Matrix products stay in BLAS. A hand-tiled Numba matmul reaches about a third of
  BLAS on these shapes (shared/BENCHMARKING.md: 48-62 against 139-177 GFLOP/s on
  128x784 @ 784x400). The kernels call NumPy's own OpenBLAS gemm themselves, so a
  dense layer's forward or backward is one call, with its activation (or its
  derivative) inside, except that the forward leaves f of tanh, sigmoid, softplus and
  ELU to a pass of its own (tanh's is NumPy's, see below). Weight gradients accumulate
  with beta = 1, small batches take a faster route to ``dx``, and the first layer
  skips ``dx`` (its input is data). Batches of at most 32 rows run their products on
  one BLAS thread, which keeps a small step's data in one core's cache
  (:data:`SERIAL_ROWS`: an IWAE-net step at batch 20 took 1.06 ms steadily, against
  1.0-2.4 ms on two threads).
* What NumPy cannot do is fuse: ``x @ W + b``, ``dy * (1 - y * y)``, Adam's ten
  operators, the Bernoulli log-likelihood and its gradient each make several passes
  over memory and a temporary per operator. Here each is one loop.
* Numba has no vectorised exp/log/tanh here (no Intel SVML), so a scalar libm call
  costs 5-15 ns per element, where NumPy's SIMD ufuncs take under 1 ns. The
  kernels therefore take ``exp``/``log1p``/``tanh`` from NumPy's ufuncs (into
  preallocated buffers) and fuse everything around them; only the float32 Bernoulli
  kernel, the hottest, computes its own exp and log1p with polynomials that vectorise.
* The loops are serial and compiled with ``error_model="numpy"`` (a division does
  not test for zero, so LLVM can vectorise the loop) and fast-math flags that allow
  reassociation and FMA but keep NaN and inf semantics. With ``parallel=True``
  Numba's worker threads and OpenBLAS's (which spin for a while after each product)
  fought over the 2 cores: an epoch of the 784-400-20 VAE took 10x longer.

Every kernel is compiled with ``cache=True``, so only the first run on a machine pays
the compilation; each is tested against ``reference.py``.
"""

import math
import threading

import llvmlite.binding
import llvmlite.ir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

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
    """out[j] += sum_i dy[i, j], accumulated in float64 row by row (memory order);
    ``dy`` C-contiguous."""
    if out.shape[0] != dy.shape[1]:  # every caller's bias gradient; the loops below index it unchecked
        raise ValueError("db: expected one entry per column (output channel) of dy")
    if dy.shape[1] == 1:
        # One column (a one-channel conv's bias) as a flat sum, which vectorises: the
        # loop below ran one add per row (128x28x28 rows: 0.33 ms -> 0.007 ms).
        flat, acc0 = dy.reshape(-1), 0.0
        for i in range(flat.size):
            acc0 += flat[i]
        out[0] += acc0
        return
    acc = np.zeros(dy.shape[1])
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[i, j]
    for j in range(dy.shape[1]):
        out[j] += acc[j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _all_finite(a):
    # v - v is 0 for a finite v and NaN for NaN or inf; reassociation lets the sum
    # vectorise. (Under JIT's full flag set LLVM folded v - v to 0 and missed NaNs.)
    acc = a[0] - a[0]
    for i in range(a.size):
        acc += a[i] - a[i]
    return acc == 0


def all_finite(x):
    """Whether ``x`` holds no NaN or inf: one vectorised pass, run on every layer's input
    and gradient (``benchmarks/kernels.py``, op ``all_finite_20x200``: about 3x the
    reference's speed)."""
    if x.size == 0:
        return True
    # Memory order ("K") makes the flat array a view of any array whose memory is
    # contiguous in some axis order, such as this backend's channels-last conv outputs
    # (benchmarks/kernels.py, op all_finite_channels_last_128x32x14x14: 35 us against
    # the reference's 128); a strided one is copied.
    return bool(_all_finite(x.ravel("K")))


# --------------------------------------------- dense layers: NumPy's own BLAS from Numba
# The products are BLAS gemm calls made from inside the kernels, so that a dense op is
# one Numba call: C = alpha op(A) op(B) + beta C. With beta = 1 gemm accumulates
# ``dW += x.T @ dy`` in place, where NumPy would write a temporary and add it: two
# more passes over dW-sized memory, which on the IWAE net at batch 20 cost as much as
# the product. The gemm called is NumPy's own OpenBLAS (its PyPI wheels bundle
# scipy-openblas, ILP64 symbols ``scipy_cblas_?gemm64_``), found among the files this
# process has mapped: one thread pool with NumPy's. Where there is no such library
# (another NumPy build), the reference's NumPy ops are used.
#
# This machine's two vCPUs are at times placed far apart on the host (it comes and goes
# over minutes). Then every number one core writes and the other reads crosses the
# host, and a product split over OpenBLAS's two threads leaves half of its output in
# the other core's cache: in an IWAE-net step at batch 20, Adam then took 1.2 ms
# instead of 0.15 ms to read the gradients, and the step 2.4 ms instead of 1.06 ms on
# one thread (``benchmarks/kernels.py``, kind ``small_batch_threads``: 1.21 against
# 2.45 ms a step in such a spell). When the vCPUs sit close, two threads gain about 7%
# on these small products (0.99 against 1.07 ms a step). So the products of a batch
# of at most SERIAL_ROWS rows run on one BLAS thread, set and restored inside the
# kernel; larger batches, where the second thread pays, keep every thread.
SERIAL_ROWS = 32
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _numpy_openblas():
    """The path of the scipy-openblas library NumPy has loaded, or None."""
    try:
        with open("/proc/self/maps") as f:
            # address, perms, offset, device, inode, then the path (which may hold spaces)
            paths = {line.split(maxsplit=5)[-1].strip() for line in f if "libscipy_openblas64_" in line}
    except OSError:
        return None
    return paths.pop() if len(paths) == 1 else None


_OPENBLAS = _numpy_openblas()
if _OPENBLAS is not None:
    llvmlite.binding.load_library_permanently(_OPENBLAS)  # its symbols, for the calls below


def _gemm_symbol(prefix, real):
    i32, i64, address = types.int32, types.int64, types.uintp  # pointers passed as addresses
    return types.ExternalFunction(
        f"scipy_cblas_{prefix}gemm64_",
        types.void(i32, i32, i32, i64, i64, i64, real, address, i64, address, i64, real, address, i64))


_GEMM = {types.float32: _gemm_symbol("s", types.float32), types.float64: _gemm_symbol("d", types.float64)}
_get_blas_threads = types.ExternalFunction("scipy_openblas_get_num_threads64_", types.int32())
_set_blas_threads = types.ExternalFunction("scipy_openblas_set_num_threads64_", types.void(types.int32))


def _gemm(trans_a, trans_b, a, b, beta, c):
    """c = op(a) @ op(b) + beta c, every array C-contiguous, op = transpose where asked."""


@overload(_gemm)
def _gemm_of_dtype(trans_a, trans_b, a, b, beta, c):
    gemm, real = _GEMM[c.dtype], np.dtype(str(c.dtype)).type

    def impl(trans_a, trans_b, a, b, beta, c):
        k = a.shape[0] if trans_a == _TRANS else a.shape[1]
        gemm(_ROW_MAJOR, trans_a, trans_b, c.shape[0], c.shape[1], k, real(1), a.ctypes.data, a.shape[1],
             b.ctypes.data, b.shape[1], real(beta), c.ctypes.data, c.shape[1])
    return impl


@njit(cache=True)
def _blas_threads(threads):
    """Set OpenBLAS's thread count to ``threads`` (0: leave it) and return the count before."""
    before = _get_blas_threads()
    if threads and threads != before:
        _set_blas_threads(threads)
    return before


# Activations the dense forward kernel applies itself: those without a transcendental
# function (Numba's are scalar libm calls, NumPy's ufuncs are vectorised: see the top).
_IN_KERNEL = (KINDS["relu"], KINDS["leaky_relu"])


@njit(**JIT)
def _linear_forward(x, W, b, h, y, kind, alpha, threads):
    """h = x @ W + b: the product by gemm, then a pass that adds the bias; and y = f(h)
    for the activations of ``_IN_KERNEL``. (One pass doing both, with the branch on
    ``kind`` inside, did not vectorise: a forward with 128x400 ReLU outputs took
    0.06-0.2 ms longer than with the two passes.)"""
    before = _blas_threads(threads)
    _gemm(_NO_TRANS, _NO_TRANS, x, W, 0, h)
    _blas_threads(before)
    _add_bias_rows(h, b)
    if kind == 1 or kind == 2:
        _activate_flat(h.reshape(-1), y.reshape(-1), kind, alpha)


@njit(**JIT)
def _linear_backward(x, W, h, y, dy, dW, db, dx, kind, alpha, threads, dx_by_w):
    """dh = dy * f'(h) (dy itself for the identity); dW += x.T @ dh (gemm, beta = 1);
    dx = dh @ W.T unless dx is empty, as (W @ dh.T).T when ``dx_by_w``; db += the
    column sums of dh, in float64."""
    dh = dy
    if kind != 0:
        dh = np.empty_like(dy)
        _backward_flat(dy.reshape(-1), h.reshape(-1), y.reshape(-1), dh.reshape(-1), kind, alpha)
    before = _blas_threads(threads)
    _gemm(_TRANS, _NO_TRANS, x, dh, 1, dW)
    if dx.size and dx_by_w:
        dx_t = np.empty((dx.shape[1], dx.shape[0]), dtype=dx.dtype)
        _gemm(_NO_TRANS, _TRANS, W, dh, 0, dx_t)
        for i in range(dx.shape[0]):
            for j in range(dx.shape[1]):
                dx[i, j] = dx_t[j, i]
    elif dx.size:
        _gemm(_NO_TRANS, _TRANS, dh, W, 0, dx)
    _blas_threads(before)
    _column_sums(dh, db)


_REALS = (np.dtype(np.float32), np.dtype(np.float64))


def _mixed(*arrays):
    """Whether the arrays' dtypes differ or are not float32/64: such calls go to the
    reference, whose NumPy promotes them (these kernels' outputs take one input's dtype)."""
    return arrays[0].dtype not in _REALS or any(a.dtype != arrays[0].dtype for a in arrays)


def _dense_fallback(*arrays, c_contiguous=()):
    """Whether the dense ops leave these arrays to the reference: no OpenBLAS found,
    dtypes mixed or not float32/64, an empty batch, or an output that must be written
    in place but is strided."""
    return (_OPENBLAS is None or _mixed(*arrays) or not len(arrays[0])
            or not all(a.flags.c_contiguous for a in c_contiguous))


def linear_forward(x, W, b, kind="identity", alpha=0.0):
    """``h = x @ W + b`` and ``y = f(h)``, returned as ``(h, y)``, in one kernel call
    (:func:`_linear_forward`) plus, for tanh, sigmoid, softplus and ELU, the activation's
    own pass; strided inputs are copied to rows first."""
    if _dense_fallback(x, W, b):
        return reference.linear_forward(x, W, b, kind, alpha)
    reference.check_dense(x, W, b)
    h = np.empty((len(x), W.shape[1]), dtype=x.dtype)
    code = KINDS[kind]
    y = np.empty_like(h) if code in _IN_KERNEL else h
    _linear_forward(np.ascontiguousarray(x), np.ascontiguousarray(W), b, h, y, code, x.dtype.type(alpha),
                    1 if len(x) <= SERIAL_ROWS else 0)
    if code in _IN_KERNEL or kind == "identity":
        return h, y
    return h, activation_forward(h, kind, alpha)


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """The activation's ``dh = dy * f'(h)``, ``dW += x.T @ dh``, ``db += sum_n dh[n]``
    and ``dx = dh @ W.T`` (when needed) in one kernel call (:func:`_linear_backward`).

    (SciPy's ``scipy.linalg.blas.sgemm`` accumulates too, but SciPy bundles a second
    OpenBLAS whose threads and NumPy's fought over the 2 cores: an epoch took 5x longer.)
    """
    if _dense_fallback(x, W, h, y, dy, dW, db, c_contiguous=(dW,)):
        return reference.linear_backward(x, W, h, y, dy, dW, db, kind, alpha, need_dx)
    reference.check_dense(x, W, db, dy, dW, h, y)
    one_thread = len(x) <= SERIAL_ROWS
    # On one thread OpenBLAS computes dx = dh @ W.T faster as (W @ dh.T).T with a
    # transposing copy, when W has at least 100 inputs (``benchmarks/kernels.py``, kind
    # "linear_dx", the whole backward: 0.64-0.88 of the time from 8 to 32 rows with 200
    # inputs; at batch 1 or under 100 inputs, as fast or slower).
    dx = np.empty(x.shape if need_dx else (0, 0), dtype=x.dtype)
    c = np.ascontiguousarray
    _linear_backward(c(x), c(W), c(h), c(y), c(dy), dW, db, dx, KINDS[kind], x.dtype.type(alpha),
                     1 if one_thread else 0, one_thread and W.shape[0] >= 100)
    return dx if need_dx else None


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def _channels_last(a):
    """Whether ``a`` is an image batch laid out channels-last, as this backend's conv outputs are."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def activation_forward(x, kind, alpha=0.0):
    """``y = f(x)``, one pass (tanh: NumPy's vectorised ufunc, 20x faster than libm's)."""
    if _mixed(x):  # not float32/64: NumPy's promotion (an int input's sigmoid is not an int)
        return reference.activation_forward(x, kind, alpha)
    if _channels_last(x):  # work on the channels-last view, and keep that layout
        return activation_forward(x.transpose(0, 2, 3, 1), kind, alpha).transpose(0, 3, 1, 2)
    if kind == "tanh":
        return np.tanh(x)
    out = np.empty(x.shape, dtype=x.dtype)
    _activate_flat(_flat(x), out.reshape(-1), KINDS[kind], x.dtype.type(alpha))
    return out


def activation_backward(dy, x, y, kind, alpha=0.0):
    """``dx = dy * f'(x)`` in one pass (the reference makes up to three temporaries)."""
    if _mixed(dy, x, y):
        return reference.activation_backward(dy, x, y, kind, alpha)
    if _channels_last(x):
        to_last = (0, 2, 3, 1)
        dx = activation_backward(dy.transpose(to_last), x.transpose(to_last), y.transpose(to_last), kind, alpha)
        return dx.transpose(0, 3, 1, 2)
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
    if _mixed(mean, logvar, eps):
        return reference.reparameterize_kl(mean, logvar, eps)
    reference.check_latent(mean, logvar, eps)
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
    if _mixed(dz, eps, mean, logvar):
        return reference.reparameterize_kl_backward(dz, eps, mean, logvar, dkl)
    reference.check_latent(mean, logvar, eps, dz)
    dmean, dlogvar = np.empty_like(mean), np.empty_like(logvar)
    _reparameterize_kl_backward(dz, eps, mean, np.exp(0.5 * logvar), np.broadcast_to(dkl, mean.shape), dmean, dlogvar)
    return dmean, dlogvar


@njit(**JIT)
def _bernoulli_rows(x, logits, e, log1p_e, log_p, grad):
    """With e = exp(-|l|) and log1p(e) from NumPy: softplus(l) = max(l, 0) + log1p(e),
    sigmoid(l) = 1 / (1 + e) for l >= 0 and e / (1 + e) below. ``grad`` must not be
    ``e``: LLVM vectorises this loop behind a runtime check that the arrays do not
    overlap, and writing over ``e`` took the scalar path (20 x 784: 37 us against 8)."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l, e_nd = logits[n, d], e[n, d]
            acc += x[n, d] * l - (l if l > 0 else 0) - log1p_e[n, d]
            s = 1 / (1 + e_nd)
            grad[n, d] = x[n, d] - (s if l >= 0 else e_nd * s)
        log_p[n] = acc


# float32 only: its exp and log1p written out, so that the whole pass is one loop LLVM
# vectorises. (Written for float64's precision they took as long as NumPy's ufuncs.)
F32 = np.float32


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvmlite.ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always", **JIT)
def _exp_minus_f32(a):
    """exp(-a) for float32 a >= 0, to 2.3e-7 relative. -a = k ln2 + r with k = round(a / ln2),
    |r| <= ln2 / 2 (ln2 split in two parts so that k ln2 is exact); exp(r) by its Taylor
    polynomial to r^6 (the next term is under 3e-8); 2^-k by writing 127 - k into the
    exponent bits. Beyond a = 87 the result (under 1.7e-38) is 0; NaN stays NaN (through r)."""
    # k comes from a clamped to 87, so the int conversion below never sees inf or NaN
    k = np.floor((a if a < F32(87) else F32(87)) * F32(1.442695) + F32(0.5))
    r = k * F32(0.693145751953125) - a + k * F32(1.428606765330187e-06)
    p = F32(1 / 720) * r + F32(1 / 120)
    p = p * r + F32(1 / 24)
    p = p * r + F32(1 / 6)
    p = p * r + F32(0.5)
    p = p * r + F32(1)
    p = p * r + F32(1)
    return p * _float32_from_bits((np.int32(127) - np.int32(k)) << 23) if not a > F32(87) else F32(0)


@njit(inline="always", **JIT)
def _log1p_f32(e):
    """log1p(e) for float32 e in [0, 1]: log1p(e) = 2 atanh(s), s = e / (2 + e) <= 1/3,
    and 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...) to s^14 (the rest is under 2e-8)."""
    s = e / (F32(2) + e)
    s2 = s * s
    q = F32(1 / 15) * s2 + F32(1 / 13)
    q = q * s2 + F32(1 / 11)
    q = q * s2 + F32(1 / 9)
    q = q * s2 + F32(1 / 7)
    q = q * s2 + F32(1 / 5)
    q = q * s2 + F32(1 / 3)
    q = q * s2 + F32(1)
    return F32(2) * s * q


@njit(**JIT)
def _bernoulli_rows_f32(x, logits, log_p, grad):
    """:func:`_bernoulli_rows` with e = exp(-|l|) and log1p(e) computed in the loop;
    each row's sum accumulates in float64 as there."""
    for n in range(x.shape[0]):
        acc = 0.0
        for d in range(x.shape[1]):
            l = logits[n, d]
            e = _exp_minus_f32(abs(l))
            acc += x[n, d] * l - max(l, F32(0)) - _log1p_f32(e)
            s = F32(1) / (F32(1) + e)
            grad[n, d] = x[n, d] - (s if l >= 0 else e * s)
        log_p[n] = acc


def bernoulli_log_prob_grad(x, logits):
    """log p and its gradient in one fused pass: for float32 with exp and log1p in the
    loop (``benchmarks/kernels.py``, kind ``bernoulli_exp_in_loop`` at 128 x 784:
    100-104 against 163 us with NumPy's ufuncs), for float64 after NumPy's exp and log1p."""
    if _mixed(x, logits):
        return reference.bernoulli_log_prob_grad(x, logits)
    reference.check_likelihood(x, logits, names="x, logits")
    log_p, grad = np.empty(len(x), dtype=logits.dtype), np.empty(logits.shape, dtype=logits.dtype)
    if x.dtype == logits.dtype == np.float32:
        _bernoulli_rows_f32(x, logits, log_p, grad)
        return log_p, grad
    e = np.exp(-np.abs(logits))
    _bernoulli_rows(x, logits, e, np.log1p(e), log_p, grad)
    return log_p, grad


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
    if _mixed(x, mu, logvar):
        return reference.gaussian_log_prob_grad(x, mu, logvar)
    reference.check_likelihood(x, mu, logvar)
    logvar = np.broadcast_to(logvar, x.shape)
    dmu, dlogvar, log_p = np.empty_like(x), np.empty_like(x), np.empty(len(x), dtype=x.dtype)
    _gaussian_rows(x, mu, logvar, np.exp(-logvar), log_p, dmu, dlogvar)
    return log_p, dmu, dlogvar


# ------------------------------------------------------------- the MAE regulariser


@njit(**JIT)
def _pairwise_kl_sums(mean, logvar, var, inv_var, m, k):
    """m[d] = sum_{i != j} kl[i, j, d] and k[i, j] = sum_d kl[i, j, d], never storing kl."""
    b, d = mean.shape
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            total = 0.0
            for c in range(d):
                diff = mean[i, c] - mean[j, c]
                kl = 0.5 * ((var[i, c] + diff * diff) * inv_var[j, c] - 1 - logvar[i, c] + logvar[j, c])
                m[c] += kl
                total += kl
            k[i, j] = total


@njit(**JIT)
def _mae_backward(mean, var, inv_var, a, c_pair, dmean, dlogvar):
    """Accumulate the gradient for G[i, j, d] = a[d] + c_pair[i, j] (the reference's formulas)."""
    b, d = mean.shape
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            for c in range(d):
                g = a[c] + c_pair[i, j]
                diff = mean[i, c] - mean[j, c]
                t = g * diff * inv_var[j, c]
                ratio = var[i, c] * inv_var[j, c]
                dmean[i, c] += t
                dmean[j, c] -= t
                dlogvar[i, c] += 0.5 * g * (ratio - 1)
                dlogvar[j, c] -= 0.5 * g * (ratio + diff * diff * inv_var[j, c] - 1)


def mae_penalty(mean, logvar, eta, gamma):
    """The reference's regulariser in two passes over the pairs, in float64, without the
    (B, B, d) arrays: the sums first, then the gradient, whose coefficient G[i, j, d]
    splits into a per-dimension part (diversity) and a per-pair part (smoothness)."""
    b = mean.shape[0]
    if b < 2 or mean.ndim != 2 or logvar.shape != mean.shape:
        return reference.mae_penalty(mean, logvar, eta, gamma)  # its checks and messages
    mean64, logvar64 = mean.astype(np.float64), logvar.astype(np.float64)
    var, inv_var = np.exp(logvar64), np.exp(-logvar64)
    pairs = b * (b - 1)
    m, k = np.zeros(mean.shape[1]), np.zeros((b, b))
    _pairwise_kl_sums(mean64, logvar64, var, inv_var, m, k)
    m /= pairs
    dev = (k - k.sum() / pairs) * (1.0 - np.eye(b))
    s = math.sqrt((dev * dev).sum() / (pairs - 1)) if pairs > 1 else 0.0
    value, a = gamma * s, np.zeros_like(m)
    if eta > 0:
        value += eta * float(np.sum(np.logaddexp(0.0, -m / eta)))
        a = -0.5 * (1 - np.tanh(0.5 * m / eta)) / pairs  # -sigmoid(-m / eta) / P
    c_pair = gamma * dev / ((pairs - 1) * s) if gamma and s > 0 else np.zeros((b, b))
    dmean, dlogvar = np.zeros(mean.shape), np.zeros(mean.shape)
    _mae_backward(mean64, var, inv_var, a, c_pair, dmean, dlogvar)
    return float(value), dmean.astype(mean.dtype), dlogvar.astype(mean.dtype), m, s


# ----------------------------------------------------------------------- optimiser


@njit(**JIT)
def _adam(ps, gs, ms, vs, beta1, one_minus_beta1, beta2, one_minus_beta2, step, inv_sqrt_correction2, eps):
    # Every constant arrives in the parameters' dtype: a literal such as ``1 - beta1``
    # in here would be int64 - float32, which Numba types as float64, and a float32
    # update then ran in float64 at half the speed (156,800 floats: 86 -> 46 us).
    for k in range(len(ps)):
        p, g, m, v = ps[k], gs[k], ms[k], vs[k]
        for i in range(p.size):
            m_i = beta1 * m[i] + one_minus_beta1 * g[i]
            v_i = beta2 * v[i] + one_minus_beta2 * g[i] * g[i]
            m[i], v[i] = m_i, v_i
            p[i] -= step * m_i / (np.sqrt(v_i) * inv_sqrt_correction2 + eps)


def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t):
    """Adam in one pass over each (p, g, m, v) instead of ten NumPy operators, and one
    call for all the arrays (as PyTorch's multi-tensor Adam): the arrays go in as
    tuples of flat views, so the call's cost, about 3 us, is paid once a step rather
    than once per array (``benchmarks/kernels.py``, op ``adam_update_iwae_12_arrays``).
    The bias corrections are folded into two constants:
    lr m_hat / (sqrt(v_hat) + eps) = (lr / c1) m / (sqrt(v) / sqrt(c2) + eps),
    c1 = 1 - b1^t, c2 = 1 - b2^t."""
    # The loop indexes every array by its parameter's size, unchecked: a mismatch must stop here.
    reference.check_adam_arrays(params, grads, ms, vs)
    groups = (params, grads, ms, vs)
    dtype = params[0].dtype if len(params) else None
    if dtype not in _REALS or not all(a.flags.c_contiguous and a.dtype == dtype for group in groups for a in group):
        return reference.adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, t)  # strided, mixed or float16
    f = dtype.type
    _adam(*(tuple(a.reshape(-1) for a in group) for group in groups), f(beta1), f(1 - beta1), f(beta2),
          f(1 - beta2), f(lr / (1 - beta1**t)), f(1 / math.sqrt(1 - beta2**t)), f(eps))


# --------------------------------------------------------------------- convolution
# Inside this backend images are channels-last. A receptive field of the image x
# (N, H, W, C) is then kh runs of kw*C consecutive numbers,
#   cols[(n, i, j), (p, q, c)] = x[n, i sh + p - ph, j sw + q - pw, c]   (0 outside x),
# so im2col copies runs and col2im adds runs, loops that vectorise; in NCHW order the
# runs are kw (4) numbers long. The padding is never materialised: a run that crosses
# the border is copied (or added) number by number, and one wholly outside is zeros
# (or skipped). The fields' columns come in (p, q, c) order, so the weight is
# permuted to match (a copy of a few thousand numbers per call).


@njit(**JIT)
def _im2col_runs(x, channels, kh, kw, sh, sw, ph, pw, ho, wo, cols):
    """cols[(n, i, j), (p, q, c)] = x[n, i sh + p - ph, (j sw + q - pw) C + c], zero
    outside the image; x is (N, H, W*C)."""
    h, w, run = x.shape[1], x.shape[2] // channels, kw * channels
    r = 0
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                left = j * sw - pw
                for p in range(kh):
                    dst = cols[r, p * run : (p + 1) * run]
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
def _col2im_runs(cols, channels, kh, kw, sh, sw, ph, pw, ho, wo, out):
    """The adjoint of :func:`_im2col_runs`: each run of ``cols`` added back into ``out``
    (N, H, W*C), the parts that fall in the padding dropped."""
    h, w, run = out.shape[1], out.shape[2] // channels, kw * channels
    r = 0
    for n in range(out.shape[0]):
        for i in range(ho):
            for j in range(wo):
                left = j * sw - pw
                for p in range(kh):
                    src = cols[r, p * run : (p + 1) * run]
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


def _fields(x, kernel, stride, padding, out_hw, cols=None):
    """im2col: the receptive fields of ``x`` (N, C, H, W) as rows (N*Ho*Wo, kh*kw*C),
    into ``cols`` if given, else into scratch (for the op's own use only)."""
    shape = (len(x) * out_hw[0] * out_hw[1], kernel[0] * kernel[1] * x.shape[1])
    cols = _buffer("fields", shape, x.dtype) if cols is None else cols
    _im2col_runs(_channels_last_rows(x), x.shape[1], *kernel, *stride, *padding, *out_hw, cols)
    return cols


def _add_fields(cols, kernel, stride, padding, out_hw, out):
    """col2im, the adjoint: ``out`` (N, H, W, C) += each row of ``cols`` where
    :func:`_fields` took it from; returns ``out`` as an (N, C, H, W) view."""
    n, h, w, c = out.shape
    _col2im_runs(cols, c, *kernel, *stride, *padding, *out_hw, out.reshape(n, h, w * c))
    return out.transpose(0, 3, 1, 2)


def im2col(x, kernel, stride, padding):
    """The receptive fields of ``x`` (N, C, H, W) as rows, (N*Ho*Wo, kh*kw*C): the
    reference's fields with the channel axis last (columns in (p, q, c) order)."""
    out_hw = _out_size(x.shape[2:], kernel, stride, padding)
    cols = np.empty((x.shape[0] * out_hw[0] * out_hw[1], kernel[0] * kernel[1] * x.shape[1]), dtype=x.dtype)
    return _fields(x, kernel, stride, padding, out_hw, cols)


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: the rows added back into a new (N, C, H, W) array."""
    (n, c, h, w), out_hw = x_shape, _out_size(x_shape[2:], kernel, stride, padding)
    return _add_fields(np.ascontiguousarray(cols), kernel, stride, padding, out_hw, np.zeros((n, h, w, c), cols.dtype))


def _weight_rows(W):
    """W (A, B, kh, kw) as the (A, kh*kw*B) matrix whose columns match im2col's (p, q, c)."""
    return W.transpose(0, 2, 3, 1).reshape(W.shape[0], -1)


def _add_weight_grad(dW, dW_rows):
    """dW += dW_rows, the gradient of :func:`_weight_rows` (W) taken back to W's layout."""
    dW += dW_rows.reshape(dW.shape[0], *dW.shape[2:], dW.shape[1]).transpose(0, 3, 1, 2)


def _to_rows(image):
    """(N, C, H, W) -> (N*H*W, C), contiguous (free when ``image`` is channels-last)."""
    return np.ascontiguousarray(image.transpose(0, 2, 3, 1)).reshape(-1, image.shape[1])


def conv2d_forward(x, W, b, stride, padding):
    """im2col by runs, then one product (BLAS) straight into the output's rows; the
    bias added in place. (Going a few images at a time, for the fields to stay in
    cache, measured no faster.)"""
    if _mixed(x, W):  # the scratch and outputs take x's dtype: mixed dtypes to NumPy's promotion
        return reference.conv2d_forward(x, W, b, stride, padding)
    kernel, n = W.shape[2:], x.shape[0]
    ho, wo = _out_size(x.shape[2:], kernel, stride, padding)
    Wr = _weight_rows(W)
    cols = _fields(x, kernel, stride, padding, (ho, wo))
    y = np.matmul(cols, Wr.T).reshape(n, ho, wo, -1)
    if b is not None:
        _add_bias_rows(y.reshape(-1, W.shape[0]), b)
    return y.transpose(0, 3, 1, 2)


def conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """im2col by runs, ``dWf += dY.T @ cols``, ``db += sum dY`` in one pass, and
    ``dx = col2im(dY @ Wf)`` by runs (``dY @ Wf`` written over the fields)."""
    if _mixed(x, W, dy):
        return reference.conv2d_backward(x, W, dy, dW, db, stride, padding, need_dx)
    kernel = W.shape[2:]
    ho, wo = _out_size(x.shape[2:], kernel, stride, padding)
    Wr, dY = _weight_rows(W), _to_rows(dy)
    cols = _fields(x, kernel, stride, padding, (ho, wo))
    _add_weight_grad(dW, dY.T @ cols)
    _column_sums(dY, db)
    if not need_dx:
        return None
    (n, c, h, w) = x.shape
    return _add_fields(np.matmul(dY, Wr, out=cols), kernel, stride, padding, (ho, wo), np.zeros((n, h, w, c), x.dtype))


def conv_transpose2d_forward(x, W, b, stride, padding, output_padding):
    """The rows of x @ Wf (BLAS), added by col2im by runs into an output that starts
    as the bias."""
    if _mixed(x, W):
        return reference.conv_transpose2d_forward(x, W, b, stride, padding, output_padding)
    kernel, (n, _, h, w) = W.shape[2:], x.shape
    ho, wo = (
        conv_output_size(s, k, st, p, op, transposed=True)
        for s, k, st, p, op in zip((h, w), kernel, stride, padding, output_padding)
    )
    X, Wr = _to_rows(x), _weight_rows(W)
    rows = np.matmul(X, Wr, out=_buffer("fields", (len(X), Wr.shape[1]), x.dtype))
    y = np.empty((n, ho, wo, W.shape[1]), x.dtype)
    y[...] = 0 if b is None else b  # the bias first, then every field added onto it
    return _add_fields(rows, kernel, stride, padding, (h, w), y)


def conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx=True):
    """``D`` = im2col(dy) by runs: ``dWf += X.T @ D``, ``dX = D @ Wf.T``; ``db`` in one pass."""
    if _mixed(x, W, dy):
        return reference.conv_transpose2d_backward(x, W, dy, dW, db, stride, padding, need_dx)
    kernel, (n, _, h, w) = W.shape[2:], x.shape
    X, Wr = _to_rows(x), _weight_rows(W)
    D = _fields(dy, kernel, stride, padding, (h, w))
    _add_weight_grad(dW, X.T @ D)
    _column_sums(_to_rows(dy), db)
    return (D @ Wr.T).reshape(n, h, w, -1).transpose(0, 3, 1, 2) if need_dx else None
