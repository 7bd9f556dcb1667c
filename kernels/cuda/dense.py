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
broadcast): no bank conflicts. A strip is first read into registers (each thread's
LOADS numbers, all loads issued before any is stored) and then written to shared
memory; with PREFETCH the next strip's loads are issued before the multiply-adds on the
current one, so their latency overlaps the arithmetic.

The default is the 64 x 64 tile (TM = TN = 4) with PREFETCH: at the VAE's shapes
(outputs of 128 x 400 to 784 x 400, a handful of tiles) the time is the latency of
K / BK strips in a row, not the arithmetic, so larger tiles do not pay there. The
measurements against cuBLAS, and the variants tried, are in ``benchmarks/README.md``.

The backward of a dense layer is three launches: ``dh = dy * f'(h)`` with the bias
gradient's column sums (``activations.bias_grad``), ``dW += x.T @ dh`` (this product
with beta = 1, no temporary) and ``dx = dh @ W.T``.
"""

from numba import cuda, float32, float64

from .. import reference
from .activations import KINDS, activate, bias_grad
from .arrays import empty, is_device, mixed, to_device, to_host, write_back

# BM, BN, BK, TM, TN, PREFETCH. With PREFETCH each thread issues its loads of the next
# strip before computing on the current one, so that their latency overlaps the
# multiply-adds instead of following them (at the VAE's shapes a product is a chain of
# K / BK strips, and that chain's latency is its time).
TILES = {"small": (64, 64, 16, 4, 4, False), "large": (128, 128, 8, 8, 8, False),
         "small_prefetch": (64, 64, 16, 4, 4, True), "large_prefetch": (128, 128, 8, 8, 8, True)}
DEFAULT_TILE = "small_prefetch"


def _make_gemm(real, BM, BN, BK, TM, TN, PREFETCH):
    TY, TX = BM // TM, BN // TN
    NT = TY * TX
    LOADS_A, LOADS_B = BK * BM // NT, BK * BN // NT  # numbers of a strip each thread copies

    @cuda.jit(device=True, inline=True)
    def strip_entry(load, tid, width, k_major):
        """(kk, rr): the strip entry that this thread's ``load``-th copy moves, so that
        consecutive threads take consecutive addresses of the operand as it is stored."""
        e = tid + load * NT
        if k_major:
            return e // width, e % width
        return e % BK, e // BK

    @cuda.jit(device=True, inline=True)
    def load_strip(src, regs, width, k_major, r0, k0, r_size, k_size, tid):
        """regs[load] = src's entry (r0 + rr, k0 + kk), 0 outside it, for this thread's
        share of a BK x ``width`` strip. ``src`` is (K, R-side) when ``k_major``, else
        (R-side, K)."""
        for load in range(regs.size):
            kk, rr = strip_entry(load, tid, width, k_major)
            gr, gk = r0 + rr, k0 + kk
            v = real(0)
            if gr < r_size and gk < k_size:
                v = src[gk, gr] if k_major else src[gr, gk]
            regs[load] = v

    @cuda.jit(device=True, inline=True)
    def store_strip(regs, dst, width, k_major, tid):
        """dst[kk, rr] = the numbers that load_strip read, in the same order."""
        for load in range(regs.size):
            kk, rr = strip_entry(load, tid, width, k_major)
            dst[kk, rr] = regs[load]

    @cuda.jit
    def gemm(a, b, c, trans_a, trans_b, beta, bias, y, kind, alpha):
        m_size, n_size = c.shape
        k_size = a.shape[0] if trans_a else a.shape[1]
        a_s = cuda.shared.array((BK, BM), real)
        b_s = cuda.shared.array((BK, BN), real)
        a_reg = cuda.local.array(LOADS_A, real)
        b_reg = cuda.local.array(LOADS_B, real)
        acc = cuda.local.array((TM, TN), real)
        a_frag = cuda.local.array(TM, real)
        b_frag = cuda.local.array(TN, real)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * TX + tx
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0
        load_strip(a, a_reg, BM, trans_a, row0, 0, m_size, k_size, tid)
        load_strip(b, b_reg, BN, not trans_b, col0, 0, n_size, k_size, tid)
        for k0 in range(0, k_size, BK):
            store_strip(a_reg, a_s, BM, trans_a, tid)
            store_strip(b_reg, b_s, BN, not trans_b, tid)
            cuda.syncthreads()
            if PREFETCH:  # the next strip's loads in flight during the multiply-adds
                load_strip(a, a_reg, BM, trans_a, row0, k0 + BK, m_size, k_size, tid)
                load_strip(b, b_reg, BN, not trans_b, col0, k0 + BK, n_size, k_size, tid)
            for kk in range(BK):
                for i in range(TM):
                    a_frag[i] = a_s[kk, ty + i * TY]
                for j in range(TN):
                    b_frag[j] = b_s[kk, tx + j * TX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_frag[i] * b_frag[j]
            cuda.syncthreads()
            if not PREFETCH:
                load_strip(a, a_reg, BM, trans_a, row0, k0 + BK, m_size, k_size, tid)
                load_strip(b, b_reg, BN, not trans_b, col0, k0 + BK, n_size, k_size, tid)
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
         tile=None):
    """On device arrays: ``c = op(a) @ op(b) + beta c (+ bias)`` and, for an activation
    code ``kind`` != 0, ``y = f(c)``. ``tile`` (a key of ``TILES``; default ``DEFAULT_TILE``)
    picks the tile shape.
    Raises unless the shapes agree: the kernel indexes every array by c's and a's sizes."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    op_a, op_b = (a.shape[::-1] if trans_a else a.shape), (b.shape[::-1] if trans_b else b.shape)
    if op_a != (m, k) or op_b != (k, n) or (bias is not None and bias.shape != (n,)) or (
            y is not None and y.shape != c.shape):
        raise ValueError(f"a, b, c: expected op(a) (M, K), op(b) (K, N), c (M, N), bias (N,), y as c, got "
                         f"{op_a}, {op_b}, {c.shape}, {None if bias is None else bias.shape}, "
                         f"{None if y is None else y.shape}")
    tile = tile or DEFAULT_TILE
    key = (c.dtype.str, tile)
    if key not in _GEMMS:
        _GEMMS[key] = _make_gemm(float32 if c.dtype.itemsize == 4 else float64, *TILES[key[1]])
    bm, bn, _, tm, tn, _ = TILES[tile]
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
