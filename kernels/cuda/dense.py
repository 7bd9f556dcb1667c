"""Dense layers on the GPU: a shared-memory tiled matrix product of our own, with the
bias and the activation in its epilogue.

The product ``c = op(a) @ op(b) (+ beta c) (+ bias)``, ``y = f(c)``: each block of
(BM / TM) x (BN / TN) = 16 x 16 threads computes a BM x BN tile of ``c``. It walks
the K axis BK at a time: the block's threads copy a BM x BK strip of ``a`` and a
BK x BN strip of ``b`` into shared memory (4 numbers each), then each thread keeps a
TM x TN sub-tile of sums in registers and, for every k of the strip, reads TM numbers
of the ``a`` strip and TN of the ``b`` strip and does TM x TN multiply-adds (register
tiling: each number read from shared memory serves TM or TN products). A thread's rows
are ``ty + 16 i`` and its columns ``tx + 16 j``, so the 16 threads of a half warp read
16 consecutive numbers of the ``b`` strip and one number of the ``a`` strip (a
broadcast): no bank conflicts. Two tile shapes: 64 x 64 (TM = TN = 4), the default,
and 128 x 128 (TM = TN = 8), which measured slower at every shape tried
(``benchmarks/gpu.py`` on an H100, 4096^3: 8.5 against 7.1 TFLOP/s, cuBLAS 50.5; the
VAE's 128 x 784 x 400: 140 against 387 us, cuBLAS 19 us). Strips padded against bank
conflicts and 32 x 32 tiles measured no faster: at the VAE's shapes the time is the
latency of K / BK strips loaded one after the other (``benchmarks/README.md``).

The backward of a dense layer is three launches: ``dh = dy * f'(h)`` with the bias
gradient's column sums (``activations.bias_grad``), ``dW += x.T @ dh`` (this product
with beta = 1, no temporary) and ``dx = dh @ W.T``.
"""

from numba import cuda, float32, float64

from .. import reference
from .activations import KINDS, activate, bias_grad
from .arrays import empty, is_device, mixed, to_device, to_host, write_back

TILES = {"large": (128, 128, 8, 8, 8), "small": (64, 64, 16, 4, 4)}  # BM, BN, BK, TM, TN


def _make_gemm(real, BM, BN, BK, TM, TN):
    TY, TX = BM // TM, BN // TN
    NT = TY * TX

    @cuda.jit(device=True, inline=True)
    def copy_strip(src, dst, k_major, r0, k0, r_size, k_size, tid):
        """dst[kk, rr] = src's entry (r0 + rr, k0 + kk), 0 outside it, for a ``dst`` of
        BK x R (R = BM or BN). ``src`` is (K, R-side) when ``k_major``, else (R-side, K);
        consecutive threads take consecutive addresses of ``src`` as it is stored."""
        width = dst.shape[1]
        for load in range(BK * width // NT):
            e = tid + load * NT
            if k_major:
                kk, rr = e // width, e % width
            else:
                rr, kk = e // BK, e % BK
            gr, gk = r0 + rr, k0 + kk
            v = real(0)
            if gr < r_size and gk < k_size:
                v = src[gk, gr] if k_major else src[gr, gk]
            dst[kk, rr] = v

    @cuda.jit
    def gemm(a, b, c, trans_a, trans_b, beta, bias, y, kind, alpha):
        m_size, n_size = c.shape
        k_size = a.shape[0] if trans_a else a.shape[1]
        a_s = cuda.shared.array((BK, BM), real)
        b_s = cuda.shared.array((BK, BN), real)
        acc = cuda.local.array((TM, TN), real)
        a_frag = cuda.local.array(TM, real)
        b_frag = cuda.local.array(TN, real)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * TX + tx
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0
        for k0 in range(0, k_size, BK):
            copy_strip(a, a_s, trans_a, row0, k0, m_size, k_size, tid)
            copy_strip(b, b_s, not trans_b, col0, k0, n_size, k_size, tid)
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(TM):
                    a_frag[i] = a_s[kk, ty + i * TY]
                for j in range(TN):
                    b_frag[j] = b_s[kk, tx + j * TX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_frag[i] * b_frag[j]
            cuda.syncthreads()
        # Epilogue: accumulate, add the bias, apply f, store.
        for i in range(TM):
            r = row0 + ty + i * TY
            if r < m_size:
                for j in range(TN):
                    col = col0 + tx + j * TX
                    if col < n_size:
                        v = acc[i, j]
                        if beta != 0:
                            v += beta * c[r, col]
                        if bias.size:
                            v += bias[col]
                        c[r, col] = v
                        if kind != 0:
                            y[r, col] = activate(v, kind, alpha)

    return gemm


_GEMMS = {}


def gemm(a, b, c, trans_a=False, trans_b=False, beta=0, bias=None, y=None, kind=0, alpha=0.0,
         tile="small"):
    """On device arrays: ``c = op(a) @ op(b) + beta c (+ bias)`` and, for an activation
    code ``kind`` != 0, ``y = f(c)``. ``tile`` ("small" or "large") picks the tile shape.
    Raises unless the shapes agree: the kernel indexes every array by c's and a's sizes."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    op_a, op_b = (a.shape[::-1] if trans_a else a.shape), (b.shape[::-1] if trans_b else b.shape)
    if op_a != (m, k) or op_b != (k, n) or (bias is not None and bias.shape != (n,)) or (
            y is not None and y.shape != c.shape):
        raise ValueError(f"a, b, c: expected op(a) (M, K), op(b) (K, N), c (M, N), bias (N,), y as c, got "
                         f"{op_a}, {op_b}, {c.shape}, {None if bias is None else bias.shape}, "
                         f"{None if y is None else y.shape}")
    key = (c.dtype.str, tile)
    if key not in _GEMMS:
        _GEMMS[key] = _make_gemm(float32 if c.dtype.itemsize == 4 else float64, *TILES[key[1]])
    bm, bn, _, tm, tn = TILES[tile]
    grid = (max(1, (n + bn - 1) // bn), max(1, (m + bm - 1) // bm))
    bias = c[:0, 0] if bias is None else bias
    _GEMMS[key][grid, (bn // tn, bm // tm)](a, b, c, trans_a, trans_b, c.dtype.type(beta), bias,
                                          c if y is None else y, kind, c.dtype.type(alpha))
    return c


def matmul(a, b):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) by the tiled kernel."""
    if mixed(a, b) or a.ndim != 2 or b.ndim != 2 or not a.size or not b.size:
        return reference.matmul(to_host(a), to_host(b))
    host = not is_device(a)
    a, b = to_device(a), to_device(b)
    c = gemm(a, b, empty((a.shape[0], b.shape[1]), a.dtype))
    return c.copy_to_host() if host else c


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
        h_host = h.copy_to_host()
        return h_host, (y.copy_to_host() if code else h_host)
    return h, y


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """``dh = dy * f'(h)`` with ``db += sum_n dh[n]`` (one launch, then the partial
    sums' launch), ``dW += x.T @ dh`` and ``dx = dh @ W.T`` (one launch each)."""
    if mixed(x, W, h, y, dy, dW, db) or not len(x):
        return reference.linear_backward(*map(to_host, (x, W, h, y, dy)), dW, db, kind, alpha, need_dx)
    reference.check_dense(x, W, db, dy, dW, h, y)
    host = not is_device(dy)
    x, W, h, y, dy, dW_d, db_d = map(to_device, (x, W, h, y, dy, dW, db))
    dh = bias_grad(dy, db_d, h, y, KINDS[kind], alpha)
    gemm(x, dh, dW_d, trans_a=True, beta=1)
    write_back(dW_d, dW)
    write_back(db_d, db)
    if not need_dx:
        return None
    dx = gemm(dh, W, empty(x.shape, x.dtype), trans_b=True)
    return dx.copy_to_host() if host else dx
