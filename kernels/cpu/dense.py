"""Dense layers: NumPy's own OpenBLAS gemm called from inside the kernels, with the
bias, the activation and its derivative around it."""

import llvmlite.binding
import numpy as np
from numba import njit, types
from numba.extending import overload

from .. import reference
from ..reference.dense import (  # noqa: F401  (BLAS through NumPy already)
    gaussian_weight_kl, local_reparam_backward, local_reparam_forward, matmul,
)
from .activations import KINDS, _activate_flat, _add_bias_rows, _backward_flat, _column_sums, activation_forward
from .arrays import JIT, mixed

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
# A product split over OpenBLAS's threads leaves parts of its output in another core's
# cache, which the next op (Adam reading the gradients) then pays for; on small batches
# that costs more than the second thread gains (``benchmarks/kernels.py``, kind
# ``small_batch_threads``). So the products of a batch of at most SERIAL_ROWS rows run
# on one BLAS thread, set and restored inside the kernel; larger batches keep every thread.
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


# ------------------------------------------------ binary inputs: sums of weight rows
# For a 0/1 input (binarised MNIST: about 13% of the pixels are on), x @ W is the sum
# of W's rows at the ones, and x.T @ dh adds each dh row into those rows of dW: the
# product's numbers (summed in another order), with work in proportion to the ones.
# The sums stream W's active rows once per example where gemm reuses blocks of W
# across the batch, so they win only on small batches, which run gemm on one thread:
# the path is taken for batches of at most SERIAL_ROWS rows with at most
# BINARY_DENSITY ones per entry (the crossover measured by ``benchmarks/kernels.py``,
# kind "binary_rows"; ``benchmarks/README.md`` has the numbers).
BINARY_DENSITY = 0.08


@njit(**JIT)
def _binary_density(x):
    """The fraction of x's entries that are 1, or -1 when one is neither 0 nor 1 (found
    by the end of its row, so a layer of real-valued inputs pays for one row)."""
    ones = 0
    for i in range(x.shape[0]):
        bad = 0
        for j in range(x.shape[1]):  # counts, not branches: the loop vectorises
            ones += x[i, j] == 1
            bad += (x[i, j] != 0) & (x[i, j] != 1)
        if bad:
            return -1.0
    return ones / max(x.size, 1)


@njit(**JIT)
def _binary_rows_product(x, W, h):
    """h = x @ W for a 0/1 x: h[n] = the sum of W[i] over the i where x[n, i] = 1,
    four rows at a time into a row accumulator."""
    d_in, d_out = W.shape
    on = np.empty(d_in, np.int64)
    acc = np.empty(d_out, W.dtype)
    for n in range(x.shape[0]):
        k = 0
        for i in range(d_in):
            if x[n, i] != 0:
                on[k] = i
                k += 1
        acc[:] = 0
        t = 0
        while t + 4 <= k:
            w0, w1, w2, w3 = W[on[t]], W[on[t + 1]], W[on[t + 2]], W[on[t + 3]]
            for j in range(d_out):
                acc[j] += (w0[j] + w1[j]) + (w2[j] + w3[j])
            t += 4
        for t in range(t, k):
            w0 = W[on[t]]
            for j in range(d_out):
                acc[j] += w0[j]
        h[n] = acc


@njit(**JIT)
def _binary_rows_weight_grad(x, dh, dW):
    """dW += x.T @ dh for a 0/1 x: into each row dW[i], the dh[n] of the examples with
    x[n, i] = 1, four at a time."""
    n_rows, d_in = x.shape
    on = np.empty(n_rows, np.int64)
    acc = np.empty(dW.shape[1], dW.dtype)
    for i in range(d_in):
        k = 0
        for n in range(n_rows):
            if x[n, i] != 0:
                on[k] = n
                k += 1
        if k == 0:
            continue
        acc[:] = dW[i]
        t = 0
        while t + 4 <= k:
            d0, d1, d2, d3 = dh[on[t]], dh[on[t + 1]], dh[on[t + 2]], dh[on[t + 3]]
            for j in range(acc.size):
                acc[j] += (d0[j] + d1[j]) + (d2[j] + d3[j])
            t += 4
        for t in range(t, k):
            d0 = dh[on[t]]
            for j in range(acc.size):
                acc[j] += d0[j]
        dW[i] = acc


def binary_input(x):
    """Whether the dense kernels take the binary-rows path for input ``x``."""
    return len(x) <= SERIAL_ROWS and 0 <= _binary_density(x) <= BINARY_DENSITY


# Activations the dense forward kernel applies itself: those without a transcendental
# function (Numba's are scalar libm calls, NumPy's ufuncs are vectorised: see the top).
_IN_KERNEL = (KINDS["relu"], KINDS["leaky_relu"])


@njit(**JIT)
def _linear_forward(x, W, b, h, y, kind, alpha, threads, binary):
    """h = x @ W + b: the product by gemm (or, ``binary``, by sums of W's rows), then a
    pass that adds the bias; and y = f(h) for the activations of ``_IN_KERNEL``. (Two
    passes, because one pass doing both, with the branch on ``kind`` inside, does not
    vectorise.)"""
    if binary:
        _binary_rows_product(x, W, h)
    else:
        before = _blas_threads(threads)
        _gemm(_NO_TRANS, _NO_TRANS, x, W, 0, h)
        _blas_threads(before)
    _add_bias_rows(h, b)
    if kind == 1 or kind == 2:
        _activate_flat(h.reshape(-1), y.reshape(-1), kind, alpha)


@njit(**JIT)
def _linear_backward(x, W, h, y, dy, dW, db, dx, kind, alpha, threads, dx_by_w, binary):
    """dh = dy * f'(h) (dy itself for the identity); dW += x.T @ dh (gemm, beta = 1; or,
    ``binary``, dh's rows added into dW's); dx = dh @ W.T unless dx is empty, as
    (W @ dh.T).T when ``dx_by_w``; db += the column sums of dh, in float64."""
    dh = dy
    if kind != 0:
        dh = np.empty_like(dy)
        _backward_flat(dy.reshape(-1), h.reshape(-1), y.reshape(-1), dh.reshape(-1), kind, alpha)
    before = _blas_threads(threads)
    if binary:
        _binary_rows_weight_grad(x, dh, dW)
    else:
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


def _dense_fallback(*arrays, c_contiguous=()):
    """Whether the dense ops leave these arrays to the reference: no OpenBLAS found,
    dtypes mixed or not float32/64, an empty batch, or an output that must be written
    in place but is strided."""
    return (_OPENBLAS is None or mixed(*arrays) or not len(arrays[0])
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
    x = np.ascontiguousarray(x)
    _linear_forward(x, np.ascontiguousarray(W), b, h, y, code, x.dtype.type(alpha), 1 if len(x) <= SERIAL_ROWS else 0,
                    binary_input(x))
    if code in _IN_KERNEL or kind == "identity":
        return h, y
    return h, activation_forward(h, kind, alpha)


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """The activation's ``dh = dy * f'(h)``, ``dW += x.T @ dh``, ``db += sum_n dh[n]``
    and ``dx = dh @ W.T`` (when needed) in one kernel call (:func:`_linear_backward`).

    (SciPy's ``scipy.linalg.blas.sgemm`` accumulates too, but SciPy bundles a second
    OpenBLAS, whose thread pool would compete with NumPy's.)
    """
    if _dense_fallback(x, W, h, y, dy, dW, db, c_contiguous=(dW,)):
        return reference.linear_backward(x, W, h, y, dy, dW, db, kind, alpha, need_dx)
    reference.check_dense(x, W, db, dy, dW, h, y)
    one_thread = len(x) <= SERIAL_ROWS
    # On one thread OpenBLAS computes dx = dh @ W.T faster as (W @ dh.T).T with a
    # transposing copy when W has at least 100 inputs (``benchmarks/kernels.py``, kind
    # "linear_dx").
    dx = np.empty(x.shape if need_dx else (0, 0), dtype=x.dtype)
    c = np.ascontiguousarray
    x = c(x)
    _linear_backward(x, c(W), c(h), c(y), c(dy), dW, db, dx, KINDS[kind], x.dtype.type(alpha),
                     1 if one_thread else 0, one_thread and W.shape[0] >= 100, binary_input(x))
    return dx if need_dx else None
