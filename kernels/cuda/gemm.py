"""The GPU's matrix product, ``c = op(a) @ op(b) (+ beta c) (+ bias)``, ``y = f(c)``:
a shared-memory tiled kernel written out as Python source for each tile and variant,
then compiled by numba-cuda.

Each block of (BM / TM) x (BN / TN) threads computes a BM x BN tile of ``c``. It walks
the K axis BK at a time: the block's threads copy a BM x BK strip of ``a`` and a
BK x BN strip of ``b`` into shared memory, then each thread keeps a TM x TN sub-tile of
sums in registers and, for every k of the strip, reads TM numbers of the ``a`` strip and
TN of the ``b`` strip and does TM x TN multiply-adds (register tiling: each number read
from shared memory serves TM or TN products). A thread's rows are ``ty + TY i`` and its
columns ``tx + TX j``, so a half warp reads 16 consecutive numbers of the ``b`` strip
and one of the ``a`` strip (a broadcast): no bank conflicts. With PREFETCH the next
strip's loads are issued before the multiply-adds on the current one, so that their
latency overlaps the arithmetic.

Why generated: written as loops over local arrays, the kernel's inner loop compiles to
more integer work (index arithmetic, negative-index wraparound, runtime flags) than
multiply-adds, and is not unrolled. The source written here has every loop over the
tile unrolled, the sums in scalar variables (registers), each thread's strip positions
worked out once (a load's position is a per-thread base plus a constant), the
transposes, the operand read as dy * f'(h) and the ones row fixed at compile time, and
the shared strips 16-byte aligned. Its PTX for compute capability 9.0, read without a
GPU by ``python benchmarks/ptx.py`` (numba-cuda 0.30): one K strip of the 64 x 64 tile
is 390 instructions, its 256 float32 FMAs, 128 shared loads and 6 others (no local
memory, no 64-bit integer multiply, no float64); of the 128 x 128 tile, 725: 512 FMAs,
128 shared loads, 85 others. The shared loads stay scalar: a thread's rows are TY
apart, for conflict-free broadcasts, so they are not adjacent. Each variant's source is
kept on disk (``CACHE``, named by a hash of the source), where numba-cuda's cache keeps
its compiled code beside it.

Variants: ``grad_of`` ("a" or "b") reads that operand as dy * f'(h) for the
activation ``kind_g`` at (h, hy), laid out as it (a dense layer's backward, without a
dh array); ``ones_row`` gives op(a) an extra last row of ones whose product row goes to
``c_row`` (the bias gradient, ``[x, 1]^T dh``); ``split``: each block along z walks its
own run of K strips and leaves its sums in ``partial[z]`` for ``_add_splits`` (split K,
for products whose tiles cannot fill the GPU).
"""

import hashlib
import importlib.util
import os
import tempfile

from numba import config, cuda

from .activations import activate
from .arrays import THREADS, absent, blocks, empty, launch

# BM, BN, BK, TM, TN, PREFETCH
TILES = {"small": (64, 64, 16, 4, 4, False), "large": (128, 128, 8, 8, 8, False),
         "small_prefetch": (64, 64, 16, 4, 4, True), "large_prefetch": (128, 128, 8, 8, 8, True),
         "tiny": (8, 8, 4, 2, 2, True)}
# The simulator runs each of a block's threads as a Python thread: there the tiny tile
# (16 threads) is the default, so that the tests' small shapes span many blocks, tile
# edges and long chains of K strips, as the large tiles do only at full size.
DEFAULT_TILE = "tiny" if config.ENABLE_CUDASIM else "small_prefetch"
CACHE = os.environ.get("NPVAE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "npvae", "gemm"))


@cuda.jit(device=True, inline=True)
def finish(v, r, col, c, beta, bias, y, kind, alpha, one, c_row):
    """Entry (r, col) of c from the product's sum v: plus beta c and the bias, stored,
    and y = f(c) (``one``: 1 in c's type); the row past c's last (the ones row) goes,
    with beta, to c_row."""
    if r < c.shape[0]:
        if beta != 0:
            v += beta * c[r, col]
        if bias.size:
            v += bias[col]
        c[r, col] = v
        if kind != 0:
            y[r, col] = activate(v, kind, alpha, one)
    else:
        if beta != 0:
            v += beta * c_row[col]
        c_row[col] = v


@cuda.jit
def _add_splits(partial, c, beta, bias, y, kind, alpha, one, c_row):
    """One thread per output entry: the split-K partial sums added in order (z = 0, 1,
    ...; the same sum every run), then ``finish``."""
    e = cuda.grid(1)
    rows, n = partial.shape[1], partial.shape[2]
    if e < rows * n:
        r, col = e // n, e % n
        v = partial[0, r, col]
        for z in range(1, partial.shape[0]):
            v += partial[z, r, col]
        finish(v, r, col, c, beta, bias, y, kind, alpha, one, c_row)


# ---------------------------------------------------------------- the source
def _strip(name, src, tile_rows, k_major, r0, r_size, grad, ones, loads, nt, bk, real):
    """Lines that load this thread's ``loads`` numbers of a strip of ``src`` into
    registers ``{name}{l}`` (and, as ``store``, put them in shared memory). Entry e = tid
    + l NT of the strip is (kk, rr) = divmod(e, width) when ``src`` is stored K-major,
    else (e % BK, e // BK); NT a multiple of the width and of BK makes that a
    per-thread base plus a constant."""
    load, store = [], []
    for l in range(loads):
        if k_major:
            kk, rr = f"{name}_kk + {l * (nt // tile_rows)}", f"{name}_rr"
        else:
            kk, rr = f"{name}_kk", f"{name}_rr + {l * (nt // bk)}"
        at = "gk, gr" if k_major else "gr, gk"
        load += [f"gr, gk = {r0} + {rr}, k0 + {kk}",
                 f"{name}{l} = {real}(0)",
                 f"if gr < {r_size} and gk < k_end:",
                 f"    {name}{l} = {src}[{at}]"]
        if grad:
            load += [f"    {name}{l} *= derivative(h[{at}], hy[{at}], kind_g, alpha_g, {real}(1))"]
        if ones:
            load += [f"elif gr == {r_size} and gk < k_end:", f"    {name}{l} = {real}(1)"]
        store += [f"{name}_s[{kk}, {rr}] = {name}{l}"]
    return load, store


def source(name, real, tile, trans_a, trans_b, grad_of, ones_row, split, aligned):
    """The kernel's Python source for one tile and variant (see the module's docstring)."""
    bm, bn, bk, tm, tn, prefetch = TILES[tile]
    ty_n, tx_n = bm // tm, bn // tn
    nt = ty_n * tx_n
    assert nt % bm == nt % bn == nt % bk == 0, "each thread's strip positions must be a base plus constants"
    la, lb = bk * bm // nt, bk * bn // nt
    align = ", alignment=16" if aligned else ""
    head = [
        "m_size, n_size = c.shape[0], c.shape[1]",
        f"k_all = a.shape[{0 if trans_a else 1}]",
        f"a_s = cuda.shared.array(({bk}, {bm}), {real}{align})",
        f"b_s = cuda.shared.array(({bk}, {bn}), {real}{align})",
        "tx, ty = cuda.threadIdx.x, cuda.threadIdx.y",
        f"tid = ty * {tx_n} + tx",
        f"row0, col0 = cuda.blockIdx.y * {bm}, cuda.blockIdx.x * {bn}",
        # thread bases of the two strips' entries
        "a_kk, a_rr = " + (f"tid // {bm}, tid % {bm}" if trans_a else f"tid % {bk}, tid // {bk}"),
        "b_kk, b_rr = " + (f"tid // {bn}, tid % {bn}" if not trans_b else f"tid % {bk}, tid // {bk}"),
        *[f"ty{i} = ty + {i * ty_n}" for i in range(tm)],
        *[f"tx{j} = tx + {j * tx_n}" for j in range(tn)],
    ]
    if split:  # block z's run of strips
        head += [f"per_split = ((k_all + {bk - 1}) // {bk} + partial.shape[0] - 1) // partial.shape[0] * {bk}",
                 "k_begin = cuda.blockIdx.z * per_split", "k_end = min(k_all, k_begin + per_split)"]
    else:
        head += ["k_begin, k_end = 0, k_all"]
    head += [f"acc{i}_{j} = {real}(0)" for i in range(tm) for j in range(tn)]
    load_a, store_a = _strip("a", "a", bm, trans_a, "row0", "m_size", grad_of == "a", ones_row, la, nt, bk, real)
    load_b, store_b = _strip("b", "b", bn, not trans_b, "col0", "n_size", grad_of == "b", False, lb, nt, bk, real)
    loads = ["k0 = k_begin", *load_a, *load_b]
    next_loads = ["k0 += " + str(bk), *load_a, *load_b]
    inner = []
    for kk in range(bk):
        inner += [f"fa{i} = a_s[{kk}, ty{i}]" for i in range(tm)]
        inner += [f"fb{j} = b_s[{kk}, tx{j}]" for j in range(tn)]
        inner += [f"acc{i}_{j} += fa{i} * fb{j}" for i in range(tm) for j in range(tn)]
    loop = [*store_a, *store_b, "cuda.syncthreads()"]
    if prefetch:  # the next strip's loads in flight during the multiply-adds
        loop += [*next_loads, *inner, "cuda.syncthreads()"]
    else:
        loop += [*inner, "cuda.syncthreads()", *next_loads]
    tail = []
    rows = "m_size + 1" if ones_row else "m_size"
    for i in range(tm):
        for j in range(tn):
            store = (f"partial[cuda.blockIdx.z, row0 + ty{i}, col0 + tx{j}] = acc{i}_{j}" if split else
                     f"finish(acc{i}_{j}, row0 + ty{i}, col0 + tx{j}, c, beta, bias, y, kind, alpha, {real}(1), "
                     "c_row)")
            tail += [f"if row0 + ty{i} < {rows} and col0 + tx{j} < n_size:", f"    {store}"]
    lines = ["from numba import cuda, float32, float64  # noqa: F401",
             "from npvae.kernels.cuda.activations import derivative  # noqa: F401",
             "from npvae.kernels.cuda.gemm import finish  # noqa: F401",
             "", "",
             f"@cuda.jit{'' if config.ENABLE_CUDASIM else '(cache=True)'}",
             f"def {name}(a, b, c, beta, bias, y, kind, alpha, h, hy, kind_g, alpha_g, c_row, partial):"]
    lines += ["    " + s for s in head + loads]
    lines += ["    for _ in range(k_begin, k_end, " + str(bk) + "):"]
    lines += ["        " + s for s in loop]
    lines += ["    " + s for s in tail]
    return "\n".join(lines) + "\n"


_KERNELS = {}


def kernel(real, tile, trans_a, trans_b, grad_of, ones_row, split):
    """The compiled kernel of one variant: its source written to ``CACHE`` once (by a
    hash of the source, atomically) and imported from there."""
    key = (real, tile, trans_a, trans_b, grad_of, ones_row, split)
    if key not in _KERNELS:
        name = f"gemm_{real}_{tile}_{'t' if trans_a else 'n'}{'t' if trans_b else 'n'}_{grad_of or 'x'}" \
               f"{'_ones' if ones_row else ''}{'_split' if split else ''}"
        text = source(name, real, tile, trans_a, trans_b, grad_of, ones_row, split, not config.ENABLE_CUDASIM)
        path = os.path.join(CACHE, f"{name}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.py")
        if not os.path.exists(path):
            os.makedirs(CACHE, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=CACHE, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _KERNELS[key] = getattr(module, name)
    return _KERNELS[key]


# ---------------------------------------------------------------- the launch
# Split K when a product's tiles cannot fill the GPU: up to SPLIT_TARGET blocks in
# all, each walking at least MIN_STRIPS strips. On a GPU that takes the conv VAE's
# weight gradients (32 x 25088 x 16: one tile, 1568 strips) and leaves the MLP steps'
# products (K <= 784: 49 strips) whole, each split costing a second launch; the
# simulator's small numbers let the tests' shapes split.
SPLIT_TARGET = 8 if config.ENABLE_CUDASIM else None  # None: twice the multiprocessors, read once
MIN_STRIPS = 2 if config.ENABLE_CUDASIM else 64


def split_count(tiles, k, bk):
    """How many runs of K strips a product of ``tiles`` tiles is split into (1: none)."""
    global SPLIT_TARGET
    if SPLIT_TARGET is None:
        SPLIT_TARGET = 2 * cuda.get_current_device().MULTIPROCESSOR_COUNT
    strips = -(-k // bk)
    return max(1, min(SPLIT_TARGET // tiles, strips // MIN_STRIPS))


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
    operand = {"a": a, "b": b}.get(grad_of, c)
    if op_a != (m, k) or op_b != (k, n) or (bias is not None and bias.shape != (n,)) or (
            y is not None and y.shape != c.shape) or (grad_kind and not h.shape == y_of_h.shape == operand.shape) or (
            ones_row_into is not None and ones_row_into.shape != (n,)):
        raise ValueError(f"a, b, c: expected op(a) (M, K), op(b) (K, N), c (M, N), bias and ones_row_into (N,), "
                         f"y as c, h as the operand grad_of, got {op_a}, {op_b}, {c.shape}, "
                         f"{None if bias is None else bias.shape}, {None if y is None else y.shape}, "
                         f"{None if h is None else h.shape}")
    tile = tile or DEFAULT_TILE
    bm, bn, bk, tm, tn, _ = TILES[tile]
    ones_row = ones_row_into is not None
    grid = (max(1, (n + bn - 1) // bn), max(1, (m + ones_row + bm - 1) // bm))
    splits = splits or split_count(grid[0] * grid[1], k, bk)
    real = "float32" if c.dtype.itemsize == 4 else "float64"
    product = kernel(real, tile, bool(trans_a), bool(trans_b), grad_of if grad_kind else None, ones_row, splits > 1)
    none = absent(c.dtype, 1)
    partial = empty((splits, m + ones_row, n), c.dtype) if splits > 1 else absent(c.dtype, 3)
    beta, alpha = c.dtype.type(beta), c.dtype.type(alpha)
    bias, y, c_row = none if bias is None else bias, c if y is None else y, none if not ones_row else ones_row_into
    h, y_of_h = (h, y_of_h) if grad_kind else (c, c)
    launch(product, (*grid, splits), (bn // tn, bm // tm))(
        a, b, c, beta, bias, y, kind, alpha, h, y_of_h, grad_kind, c.dtype.type(grad_alpha), c_row, partial)
    if splits > 1:
        launch(_add_splits, blocks((m + ones_row) * n), THREADS)(partial, c, beta, bias, y, kind, alpha,
                                                                c.dtype.type(1), c_row)
    return c
