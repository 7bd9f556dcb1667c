"""Throughput of each Numba kernel against NumPy's BLAS (or the NumPy reference) on the
shapes of the benchmark networks, so we know how far from the machine's limit each runs;
and the Numba backend's compilation cost (cold cache, then warm).

One JSON line per measurement:

* ``dense``: one training step's dense layers (forward with bias and activation,
  backward with its derivative and the weight and bias gradients, no dx for the first
  layer) through the Numba ops, against the bare BLAS products of the same shapes on
  all threads: GFLOP/s for both and their ratio (the Numba ops give batches of at
  most ``cpu.dense.SERIAL_ROWS`` one thread);
* ``blas_threads``: the bare products of one 784-400-20 step on one BLAS thread
  against all threads: ms for each and the speed-up;
* ``small_batch_threads``: IWAE-net training steps at batch 20 with the Numba
  backend's products on one BLAS thread against all threads (its small-batch rule);
* ``linear_dx``: a dense layer's backward kernel with its input gradient as
  ``dy @ W.T`` against ``W @ dy.T`` copied back to rows, over batch sizes, for the
  Numba backend's rule for batches on one BLAS thread;
* ``conv``: each convolution op of the conv VAE against one BLAS product of its im2col
  shape (what a perfect im2col would cost): GFLOP/s, ratio;
* ``linear_activation``: a dense layer with its activation inside
  (``Linear(..., activation=...)``) against the same layer followed by the activation
  module, forward and backward, on the Numba backend: us for each;
* ``elementwise``: the fused ELBO-path and Adam kernels, and the finite check, against
  the NumPy reference, in GB/s of the arrays they must read and write, and the speed-up;
* ``bernoulli_exp_in_loop``: the float32 Bernoulli kernel with its own exp and log1p
  against the same loop fed by NumPy's exp and log1p ufuncs: us for each;
* ``binary_rows``: a first layer's forward and weight gradient (784 inputs, no dx) on
  a 0/1 input of a given density, as sums of weight rows against the gemm, both inside
  the Numba kernel: us for each and their ratio, for the crossover
  ``cpu.dense.BINARY_DENSITY``; and the density check's own cost;
* ``compile``: seconds to import the backend and call every kernel once, in a fresh
  process with an empty cache and again with the cache filled.

    python benchmarks/kernels.py [--threads N] [--repeats 5] [--kinds dense,binary_rows,...]
"""

import os
import subprocess
import sys
import tempfile

import common

threads = common.setup_threads()

import numpy as np  # noqa: E402

from npvae.kernels import cpu, reference  # noqa: E402

F32 = np.float32


def best_time(fn, repeats, inner):
    """Median over ``repeats`` of the mean time of ``inner`` back-to-back calls."""
    fn()
    times = []
    for _ in range(repeats):
        with common.IdleCheck() as check:
            for _ in range(inner):
                fn()
        times.append(check.seconds / inner)
    return common.median(times)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


def products(layers):
    """The bare BLAS products of a training step's dense layers: x @ W, x.T @ dy, and
    dy @ W.T except for the first layer."""
    for k, (x, W, b, dy) in enumerate(layers):
        x @ W
        x.T @ dy
        if k != 0:
            dy @ W.T


def dense(repeats):
    """The dense layers of one training step with their activations, Numba ops vs bare
    BLAS products."""
    rng = np.random.default_rng(0)
    relu, tanh = ("relu", "identity", "relu", "identity"), ("tanh", "tanh", "identity") * 2
    for name, sizes, kinds, batch in (
            ("pytorch_example", [(784, 400), (400, 40), (20, 400), (400, 784)], relu, 128),
            ("iwae", [(784, 200), (200, 200), (200, 100), (50, 200), (200, 200), (200, 784)], tanh, 20)):
        layers = [(rand(rng, batch, i), rand(rng, i, o), rand(rng, o), rand(rng, batch, o)) for i, o in sizes]
        grads = [(np.zeros_like(W), np.zeros_like(b)) for _, W, b, _ in layers]

        def ops():  # layer 0 is the encoder's first: it skips dx
            for k, ((x, W, b, dy), (dW, db), kind) in enumerate(zip(layers, grads, kinds)):
                h, y = cpu.linear_forward(x, W, b, kind)
                cpu.linear_backward(x, W, h, y, dy, dW, db, kind, need_dx=k != 0)

        flops = sum(2 * batch * i * o * (3 if k != 0 else 2) for k, (i, o) in enumerate(sizes))
        t_ops, t_blas = best_time(ops, repeats, 20), best_time(lambda: products(layers), repeats, 20)
        common.emit("kernels", threads, kind="dense", network=name, batch=batch, gflop=flops / 1e9,
                    numba_gflops=flops / t_ops / 1e9, blas_gflops=flops / t_blas / 1e9,
                    fraction_of_blas=t_blas / t_ops)


def blas_threads(repeats):
    """The bare products of one 784-400-20 training step (batch 128) on one BLAS thread
    against ``--threads``, alternated: how much of the second core BLAS already uses
    (a speed-up near the thread count leaves no idle core to give them)."""
    if cpu.dense._OPENBLAS is None:  # the thread count is set through NumPy's scipy-openblas
        print("blas_threads: skipped, NumPy's scipy-openblas was not found", file=sys.stderr)
        return
    rng = np.random.default_rng(0)
    sizes = [(784, 400), (400, 40), (20, 400), (400, 784)]
    layers = [(rand(rng, 128, i), rand(rng, i, o), None, rand(rng, 128, o)) for i, o in sizes]

    def on(n):
        def run():
            before = cpu.dense._blas_threads(n)
            for _ in range(20):
                products(layers)
            cpu.dense._blas_threads(before)
        return run

    times, other = common.alternate({"one": on(1), "all": on(threads)}, repeats)
    ms = {k: common.median(v) / 20 * 1e3 for k, v in times.items()}
    common.emit("kernels", threads, kind="blas_threads", network="pytorch_example", batch=128,
                one_thread_ms=ms["one"], all_threads_ms=ms["all"], speedup=ms["one"] / ms["all"],
                max_other_cores=round(other, 2))


def linear_dx(repeats):
    """A dense layer's backward kernel (dW, db and dx) with dx as dy @ W.T and as
    (W @ dy.T).T copied to rows, on the BLAS threads the backend gives the batch."""
    rng = np.random.default_rng(0)
    for d_in, d_out in ((200, 784), (200, 200), (200, 100), (400, 40), (50, 200), (20, 400)):
        W, dW, db = rand(rng, d_in, d_out), np.zeros((d_in, d_out), F32), np.zeros(d_out, F32)
        for batch in (1, 8, 20, 32, 64, 128):
            x, dy, dx = rand(rng, batch, d_in), rand(rng, batch, d_out), np.empty((batch, d_in), F32)
            blas_threads = 1 if batch <= cpu.dense.SERIAL_ROWS else 0
            t = {by_w: best_time(lambda: cpu.dense._linear_backward(x, W, dy, dy, dy, dW, db, dx, 0, F32(0), blas_threads,
                                                              by_w), repeats, 50)
                 for by_w in (False, True)}
            common.emit("kernels", threads, kind="linear_dx", d_in=d_in, d_out=d_out, batch=batch,
                        dy_WT_us=t[False] * 1e6, W_dyT_copied_us=t[True] * 1e6, ratio=t[True] / t[False])


def linear_activation(repeats):
    """Forward plus backward of ``Linear(d_in, d_out, activation=kind)`` against
    ``Sequential(Linear(d_in, d_out), <activation>)``, Numba backend, us per pair."""
    import npvae
    from npvae import nn

    rng = np.random.default_rng(0)
    npvae.kernels.use("numba")
    for batch, d_in, d_out, kind in ((20, 200, 200, "tanh"), (128, 784, 400, "relu"), (128, 20, 400, "relu")):
        x, dy = rand(rng, batch, d_in), rand(rng, batch, d_out)
        layers = {"fused": nn.Linear(d_in, d_out, rng=0, activation=kind),
                  "apart": nn.Sequential(nn.Linear(d_in, d_out, rng=0), nn.activations.ACTIVATIONS[kind]())}
        t = {name: best_time(lambda: (layer.forward(x), layer.backward(dy)), repeats, 50)
             for name, layer in layers.items()}
        common.emit("kernels", threads, kind="linear_activation", activation=kind, batch=batch, d_in=d_in,
                    d_out=d_out, fused_us=t["fused"] * 1e6, apart_us=t["apart"] * 1e6, ratio=t["fused"] / t["apart"])
    npvae.kernels.use("numpy")


def conv(repeats):
    """The conv VAE's convolutions (batch 128), Numba ops vs one product of their im2col shape."""
    rng = np.random.default_rng(0)
    s, p = (2, 2), (1, 1)
    for name, c_in, c_out, hw, transposed in (("conv1", 1, 32, 28, False), ("conv2", 32, 64, 14, False),
                                              ("convT1", 64, 32, 7, True), ("convT2", 32, 1, 14, True)):
        x = rand(rng, 128, c_in, hw, hw)
        W = rand(rng, *((c_in, c_out) if transposed else (c_out, c_in)), 4, 4)
        b, dW, db = rand(rng, c_out), np.zeros_like(W), np.zeros(c_out, F32)
        if transposed:
            y = cpu.conv_transpose2d_forward(x, W, b, s, p, (0, 0))
            fwd = lambda: cpu.conv_transpose2d_forward(x, W, b, s, p, (0, 0))  # noqa: E731
            bwd = lambda: cpu.conv_transpose2d_backward(x, W, y, dW, db, s, p)  # noqa: E731
            m, k, n = 128 * hw * hw, c_in, c_out * 16  # rows of x @ Wf
        else:
            y = cpu.conv2d_forward(x, W, b, s, p)
            fwd = lambda: cpu.conv2d_forward(x, W, b, s, p)  # noqa: E731
            bwd = lambda: cpu.conv2d_backward(x, W, y, dW, db, s, p)  # noqa: E731
            m, k, n = y.shape[0] * y.shape[2] * y.shape[3], c_in * 16, c_out  # cols @ Wf.T
        a_, b_ = rand(rng, m, k), rand(rng, k, n)
        g_ = rand(rng, m, n)
        flops = 2 * m * k * n
        t_blas = best_time(lambda: a_ @ b_, repeats, 5)
        t_blas_bwd = best_time(lambda: (a_.T @ g_, g_ @ b_.T), repeats, 5)
        for direction, fn, f, tb in (("forward", fwd, flops, t_blas), ("backward", bwd, 2 * flops, t_blas_bwd)):
            t = best_time(fn, repeats, 5)
            common.emit("kernels", threads, kind="conv", layer=name, direction=direction, gflop=f / 1e9,
                        numba_gflops=f / t / 1e9, blas_gflops=f / tb / 1e9, fraction_of_blas=tb / t)


def small_batch_threads(repeats):
    """IWAE-net training steps at batch 20 on the Numba backend, its products on one
    BLAS thread (the backend's rule for batches of at most ``cpu.dense.SERIAL_ROWS`` rows)
    against all threads, alternated: ms per step for each."""
    import npvae
    from npvae.datasets import load_mnist
    from npvae.models import VAE
    from npvae.train import fit

    x = load_mnist("train")[0][:6000]
    rule = cpu.dense.SERIAL_ROWS

    def steps(serial_rows):
        def run():
            cpu.dense.SERIAL_ROWS = serial_rows
            model = VAE.mlp(784, (200, 200), 50, "tanh", "bernoulli", rng=0)
            fit(model, x, epochs=1, batch_size=20, seed=0, log=None)
        return run

    npvae.kernels.use("numba")
    times, other = common.alternate({"one_thread": steps(rule), "all_threads": steps(0)}, repeats)
    cpu.dense.SERIAL_ROWS = rule
    npvae.kernels.use("numpy")
    ms = {k: common.median(v) / (len(x) // 20) * 1e3 for k, v in times.items()}
    common.emit("kernels", threads, kind="small_batch_threads", network="iwae", batch=20,
                one_thread_ms_per_step=ms["one_thread"], all_threads_ms_per_step=ms["all_threads"],
                ratio=ms["one_thread"] / ms["all_threads"], max_other_cores=round(other, 2))


def elementwise(repeats):
    """The fused kernels against the NumPy reference, in GB/s of what each must touch."""
    rng = np.random.default_rng(0)
    n_params = 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784
    p, g, m, v = (rand(rng, n_params) for _ in range(4))
    v = np.abs(v)
    x, logits = rng.random((128, 784)).astype(F32), rand(rng, 128, 784)
    hidden = rand(rng, 20, 200)  # a hidden layer's activations at batch 20, as check_array sees them
    conv_out = rand(rng, 128, 14, 14, 32).transpose(0, 3, 1, 2)  # a conv activation, channels-last memory
    iwae = [(784, 200), (200,), (200, 200), (200,), (200, 100), (100,),  # the IWAE net's 12 parameter arrays
            (50, 200), (200,), (200, 200), (200,), (200, 784), (784,)]
    ps, gs, ms, vs = ([rand(rng, *shape) for shape in iwae] for _ in range(4))
    vs = [np.abs(a) for a in vs]
    n_iwae = sum(a.size for a in ps)
    mean, logvar, eps, dz = rand(rng, 128, 20), rand(rng, 128, 20), rand(rng, 128, 1, 20), rand(rng, 128, 1, 20)
    cases = {  # name: (call on a backend, bytes read + written)
        "adam_update": (lambda k: k.adam_update([p], [g], [m], [v], 1e-3, 0.9, 0.999, 1e-8, 10), 7 * 4 * n_params),
        "bernoulli_log_prob_grad": (lambda k: k.bernoulli_log_prob_grad(x, logits), 3 * 4 * x.size),
        "reparameterize_kl": (lambda k: k.reparameterize_kl(mean, logvar, eps), 5 * 4 * mean.size),
        "reparameterize_kl_backward": (lambda k: k.reparameterize_kl_backward(dz, eps, mean, logvar, 0.5),
                                       6 * 4 * mean.size),
        "relu_backward": (lambda k: k.activation_backward(logits, logits, logits, "relu"), 3 * 4 * x.size),
        "tanh_backward": (lambda k: k.activation_backward(logits, logits, logits, "tanh"), 3 * 4 * x.size),
        "adam_update_iwae_12_arrays": (lambda k: k.adam_update(ps, gs, ms, vs, 1e-3, 0.9, 0.999, 1e-8, 10),
                                       7 * 4 * n_iwae),
        "all_finite_20x200": (lambda k: k.all_finite(hidden), 4 * hidden.size),
        "all_finite_channels_last_128x32x14x14": (lambda k: k.all_finite(conv_out), 4 * conv_out.size),
    }
    for name, (call, nbytes) in cases.items():
        t_numba, t_ref = best_time(lambda: call(cpu), repeats, 50), best_time(lambda: call(reference), repeats, 50)
        common.emit("kernels", threads, kind="elementwise", op=name, numba_us=t_numba * 1e6,
                    reference_us=t_ref * 1e6, speedup=t_ref / t_numba, numba_gbs=nbytes / t_numba / 1e9,
                    reference_gbs=nbytes / t_ref / 1e9)

    # The float32 Bernoulli kernel's own exp and log1p against NumPy's ufuncs feeding the
    # same fused loop (the float64 route), at 128 x 784.
    log_p, grad = np.empty(len(x), F32), np.empty_like(logits)

    def with_numpy_exp():
        e = np.exp(-np.abs(logits))
        cpu.elbo._bernoulli_rows(x, logits, e, np.log1p(e), log_p, grad)

    t_own, t_ufuncs = (best_time(fn, repeats, 50) for fn in (lambda: cpu.bernoulli_log_prob_grad(x, logits),
                                                               with_numpy_exp))
    common.emit("kernels", threads, kind="bernoulli_exp_in_loop", shape=list(logits.shape), own_exp_us=t_own * 1e6,
                numpy_exp_us=t_ufuncs * 1e6, ratio=t_own / t_ufuncs)


WARM_ALL = """
import time
t0 = time.perf_counter()
import numpy as np
from npvae.kernels import cpu
t1 = time.perf_counter()
r = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    a = lambda *s: r.standard_normal(s).astype(dt)
    x, W, b, dy = a(3, 4), a(4, 5), a(5), a(3, 5)
    cpu.all_finite(x)
    for kind in cpu.KINDS:
        h, y = cpu.linear_forward(x, W, b, kind, 0.1)
        cpu.linear_backward(x, W, h, y, dy, W * 0, b * 0, kind, 0.1)
        cpu.activation_backward(dy, h, cpu.activation_forward(h, kind, 0.1), kind, 0.1)
    m, lv, e = a(3, 2), a(3, 2), a(3, 1, 2)
    cpu.reparameterize_kl_backward(e, e, m, lv, m)
    cpu.reparameterize_kl(m, lv, e)
    cpu.bernoulli_log_prob_grad(np.abs(x) / 9, x)
    cpu.gaussian_log_prob_grad(x, x, x[0])
    cpu.adam_update([W, b], [W, b], [W * 0, b * 0], [W * 0, b * 0], 1e-3, 0.9, 0.999, 1e-8, 1)
    im, K = a(2, 2, 5, 5), a(3, 2, 3, 3)
    out = cpu.conv2d_forward(im, K, a(3), (2, 2), (1, 1))
    cpu.conv2d_backward(im, K, out, K * 0, a(3) * 0, (2, 2), (1, 1))
print(t1 - t0, time.perf_counter() - t1)
"""


def binary_rows(repeats):
    rng = np.random.default_rng(0)
    alpha = F32(0)
    for batch, d_out in ((20, 200), (128, 400), (500, 400)):
        W, b, dy = rand(rng, 784, d_out), rand(rng, d_out), rand(rng, batch, d_out)
        h, dW, db, no_dx = np.empty((batch, d_out), F32), np.zeros((784, d_out), F32), np.zeros(d_out, F32), \
            np.empty((0, 0), F32)
        threads_arg = 1 if batch <= cpu.dense.SERIAL_ROWS else 0
        for density in (0.05, 0.1, 0.19, 0.3, 0.4, 0.6):
            x = (rng.random((batch, 784)) < density).astype(F32)
            t = {binary: best_time(lambda: (
                cpu.dense._linear_forward(x, W, b, h, h, 0, alpha, threads_arg, binary),
                cpu.dense._linear_backward(x, W, h, h, dy, dW, db, no_dx, 0, alpha, threads_arg, False, binary)),
                repeats, 20) for binary in (False, True)}
            check = best_time(lambda: cpu.dense._binary_density(x), repeats, 20)
            common.emit("kernels", threads, kind="binary_rows", batch=batch, d_out=d_out, density=density,
                        gemm_us=t[False] * 1e6, rows_us=t[True] * 1e6, ratio=t[True] / t[False],
                        density_check_us=check * 1e6)


def compile_cost():
    """Import and first call of every kernel (both dtypes) in fresh processes."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for state in ("cold", "warm"):
            out = subprocess.run([sys.executable, "-c", WARM_ALL], env=env, capture_output=True, text=True, check=True)
            import_s, first_calls_s = (float(v) for v in out.stdout.split())
            common.emit("kernels", threads, kind="compile", cache=state, import_s=import_s,
                        first_calls_s=first_calls_s, total_s=import_s + first_calls_s)


def main():
    parser = common.argument_parser(__doc__, threads, repeats=5)
    kinds = {"dense": dense, "blas_threads": blas_threads, "linear_dx": linear_dx,
             "linear_activation": linear_activation, "small_batch_threads": small_batch_threads, "conv": conv,
             "elementwise": elementwise, "binary_rows": binary_rows, "compile": lambda repeats: compile_cost()}
    parser.add_argument("--kinds", default=",".join(kinds), help="the measurements to make, comma-separated")
    args = common.parse(parser)
    for kind in args.kinds.split(","):
        kinds[kind](args.repeats)


if __name__ == "__main__":
    main()
