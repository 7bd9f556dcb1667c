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

The backward of a dense layer is two products, and no other pass: the weight
gradient's product loads dy and multiplies each number by f'(h) as it loads it
(dh = dy * f'(h) is never stored), and gives x^T an extra row of ones, so that its
extra output row is the bias gradient, sum_n dh[n] ([dW; db] = [x, 1]^T dh); the
input gradient's product reads dh the same way (dx = dh W^T).
"""

from numba import config, cuda, float32, float64

from .. import reference
from .activations import KINDS, activate, derivative
from .arrays import THREADS, blocks, empty, is_device, launch, mixed, to_device, to_host, write_back

# BM, BN, BK, TM, TN, PREFETCH. With PREFETCH each thread issues its loads of the next
# strip before computing on the current one, so that their latency overlaps the
# multiply-adds instead of following them (at the VAE's shapes a product is a chain of
# K / BK strips, and that chain's latency is its time).
TILES = {"small": (64, 64, 16, 4, 4, False), "large": (128, 128, 8, 8, 8, False),
         "small_prefetch": (64, 64, 16, 4, 4, True), "large_prefetch": (128, 128, 8, 8, 8, True),
         "tiny": (8, 8, 4, 2, 2, True)}
# The simulator runs each of a block's threads as a Python thread: there the tiny tile
# (16 threads) is the default, so that the tests' small shapes span many blocks, tile
# edges and long chains of K strips, as the large tiles do only at full size.
DEFAULT_TILE = "tiny" if config.ENABLE_CUDASIM else "small_prefetch"


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
    def load_strip(src, regs, width, k_major, r0, k0, r_size, k_size, tid, ones_row, h, y, kind, alpha):
        """regs[load] = src's entry (r0 + rr, k0 + kk), 0 outside it, for this thread's
        share of a BK x ``width`` strip. ``src`` is (K, R-side) when ``k_major``, else
        (R-side, K). Row ``r_size`` of the R side is ones when ``ones_row``; with an
        activation code ``kind`` != 0, each entry is taken times f'(h) at its place
        (``src`` a dy, ``h``, ``y`` laid out as it)."""
        for load in range(regs.size):
            kk, rr = strip_entry(load, tid, width, k_major)
            gr, gk = r0 + rr, k0 + kk
            v = real(0)
            if gr < r_size and gk < k_size:
                if k_major:
                    v = src[gk, gr]
                    if kind != 0:
                        v *= derivative(h[gk, gr], y[gk, gr], kind, alpha)
                else:
                    v = src[gr, gk]
                    if kind != 0:
                        v *= derivative(h[gr, gk], y[gr, gk], kind, alpha)
            elif ones_row and gr == r_size and gk < k_size:
                v = real(1)
            regs[load] = v

    @cuda.jit(device=True, inline=True)
    def store_strip(regs, dst, width, k_major, tid):
        """dst[kk, rr] = the numbers that load_strip read, in the same order."""
        for load in range(regs.size):
            kk, rr = strip_entry(load, tid, width, k_major)
            dst[kk, rr] = regs[load]

    @cuda.jit
    def gemm(a, b, c, trans_a, trans_b, beta, bias, y, kind, alpha, grad_of, h_g, y_g, kind_g, alpha_g, c_row,
             partial):
        m_size, n_size = c.shape
        k_all = a.shape[0] if trans_a else a.shape[1]
        ones_row = c_row.size > 0
        # Split K: block z walks its own run of strips and leaves its sums in partial[z].
        splits = partial.shape[0] if partial.size else 1
        per_split = ((k_all + BK - 1) // BK + splits - 1) // splits * BK
        k_begin = cuda.blockIdx.z * per_split
        k_size = min(k_all, k_begin + per_split)
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
        kind_a, kind_b = (kind_g if grad_of == 1 else 0), (kind_g if grad_of == 2 else 0)
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0
        load_strip(a, a_reg, BM, trans_a, row0, k_begin, m_size, k_size, tid, ones_row, h_g, y_g, kind_a, alpha_g)
        load_strip(b, b_reg, BN, not trans_b, col0, k_begin, n_size, k_size, tid, False, h_g, y_g, kind_b, alpha_g)
        for k0 in range(k_begin, k_size, BK):
            store_strip(a_reg, a_s, BM, trans_a, tid)
            store_strip(b_reg, b_s, BN, not trans_b, tid)
            cuda.syncthreads()
            if PREFETCH:  # the next strip's loads in flight during the multiply-adds
                load_strip(a, a_reg, BM, trans_a, row0, k0 + BK, m_size, k_size, tid, ones_row, h_g, y_g, kind_a,
                           alpha_g)
                load_strip(b, b_reg, BN, not trans_b, col0, k0 + BK, n_size, k_size, tid, False, h_g, y_g, kind_b,
                           alpha_g)
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
                load_strip(a, a_reg, BM, trans_a, row0, k0 + BK, m_size, k_size, tid, ones_row, h_g, y_g, kind_a,
                           alpha_g)
                load_strip(b, b_reg, BN, not trans_b, col0, k0 + BK, n_size, k_size, tid, False, h_g, y_g, kind_b,
                           alpha_g)
        # Epilogue: store (``finish``), or leave the sums for ``_add_splits``.
        for i in range(TM):
            r = row0 + ty + i * TY
            if r < m_size + ones_row:
                for j in range(TN):
                    col = col0 + tx + j * TX
                    if col < n_size:
                        if partial.size:
                            partial[cuda.blockIdx.z, r, col] = acc[i, j]
                        else:
                            finish(acc[i, j], r, col, c, beta, bias, y, kind, alpha, c_row)

    return gemm


@cuda.jit(device=True, inline=True)
def finish(v, r, col, c, beta, bias, y, kind, alpha, c_row):
    """Entry (r, col) of c from the product's sum v: plus beta c and the bias, stored,
    and y = f(c); the row past c's last (the ones row) goes, with beta, to c_row."""
    if r < c.shape[0]:
        if beta != 0:
            v += beta * c[r, col]
        if bias.size:
            v += bias[col]
        c[r, col] = v
        if kind != 0:
            y[r, col] = activate(v, kind, alpha)
    else:
        if beta != 0:
            v += beta * c_row[col]
        c_row[col] = v


@cuda.jit
def _add_splits(partial, c, beta, bias, y, kind, alpha, c_row):
    """One thread per output entry: the split-K partial sums added in order (z = 0, 1,
    ...; the same sum every run), then ``finish``."""
    e = cuda.grid(1)
    rows, n = partial.shape[1], partial.shape[2]
    if e < rows * n:
        r, col = e // n, e % n
        v = partial[0, r, col]
        for z in range(1, partial.shape[0]):
            v += partial[z, r, col]
        finish(v, r, col, c, beta, bias, y, kind, alpha, c_row)


# Split K when a product's tiles cannot fill the GPU: up to SPLIT_TARGET blocks in
# all, each walking at least MIN_STRIPS strips (the simulator's small numbers let the
# tests' shapes split).
SPLIT_TARGET = 8 if config.ENABLE_CUDASIM else None  # None: twice the multiprocessors, read once
MIN_STRIPS = 2 if config.ENABLE_CUDASIM else 8


def split_count(tiles, k, bk):
    """How many runs of K strips a product of ``tiles`` tiles is split into (1: none)."""
    global SPLIT_TARGET
    if SPLIT_TARGET is None:
        SPLIT_TARGET = 2 * cuda.get_current_device().MULTIPROCESSOR_COUNT
    strips = -(-k // bk)
    return max(1, min(SPLIT_TARGET // tiles, strips // MIN_STRIPS))


_GEMMS = {}


GRAD_OF = {None: 0, "a": 1, "b": 2}


def gemm(a, b, c, trans_a=False, trans_b=False, beta=0, bias=None, y=None, kind=0, alpha=0.0, tile=None,
         grad_of=None, h=None, y_of_h=None, grad_kind=0, grad_alpha=0.0, ones_row_into=None, splits=None):
    """On device arrays: ``c = op(a) @ op(b) + beta c (+ bias)`` and, for an activation
    code ``kind`` != 0, ``y = f(c)``. ``tile`` (a key of ``TILES``; default ``DEFAULT_TILE``)
    picks the tile shape. For a backward product: ``grad_of`` ("a" or "b") names the
    operand that is a dy, read as dh = dy * f'(h) for the activation ``grad_kind`` at
    ``h``, ``y_of_h`` (laid out as that operand); ``ones_row_into`` (N,) gives op(a) an
    extra last row of ones, whose product row (a column sum of op(b)) goes, with beta,
    into it: ``[x, 1]^T dh`` makes dW and db in one product. ``splits``: K cut into
    that many runs of strips, each a block of its own, their sums added in a fixed order
    by a second launch (default ``split_count``: only a product with few tiles and a long K).
    Raises unless the shapes agree: the kernel indexes every array by c's and a's sizes."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    op_a, op_b = (a.shape[::-1] if trans_a else a.shape), (b.shape[::-1] if trans_b else b.shape)
    grad_operand = {"a": a, "b": b}.get(grad_of, c)
    if op_a != (m, k) or op_b != (k, n) or (bias is not None and bias.shape != (n,)) or (
            y is not None and y.shape != c.shape) or (grad_kind and not (h.shape == y_of_h.shape == grad_operand.shape)) or (
            ones_row_into is not None and ones_row_into.shape != (n,)):
        raise ValueError(f"a, b, c: expected op(a) (M, K), op(b) (K, N), c (M, N), bias and ones_row_into (N,), y as c, "
                         f"h as the operand grad_of, got {op_a}, {op_b}, {c.shape}, "
                         f"{None if bias is None else bias.shape}, {None if y is None else y.shape}, "
                         f"{None if h is None else h.shape}")
    tile = tile or DEFAULT_TILE
    key = (c.dtype.str, tile)
    if key not in _GEMMS:
        _GEMMS[key] = _make_gemm(float32 if c.dtype.itemsize == 4 else float64, *TILES[key[1]])
    bm, bn, _, tm, tn, _ = TILES[tile]
    rows = m + (ones_row_into is not None)
    grid = (max(1, (n + bn - 1) // bn), max(1, (rows + bm - 1) // bm))
    splits = splits or split_count(grid[0] * grid[1], k, TILES[tile][2])
    none = c[:0, 0]  # an absent array argument
    partial = empty((splits, rows, n), c.dtype) if splits > 1 else c[:0, :0].reshape(0, 0, 0)
    beta, alpha, bias, y = c.dtype.type(beta), c.dtype.type(alpha), none if bias is None else bias, c if y is None else y
    c_row = none if ones_row_into is None else ones_row_into
    h_g, y_g = (h, y_of_h) if grad_kind else (c, c)
    launch(_GEMMS[key], (*grid, splits), (bn // tn, bm // tm))(
        a, b, c, trans_a, trans_b, beta, bias, y, kind, alpha, GRAD_OF[grad_of], h_g, y_g, grad_kind,
        c.dtype.type(grad_alpha), c_row, partial)
    if splits > 1:
        launch(_add_splits, blocks(rows * n), THREADS)(partial, c, beta, bias, y, kind, alpha, c_row)
    return c


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
