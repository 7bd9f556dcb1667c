"""What the benchmark scripts share: the thread count (set before NumPy loads), the
machine's idle check, alternating A/B timing with medians, and the JSON line.

Import this module before NumPy: ``threads = common.setup_threads()``.
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

ALLOCATOR = "default"  # glibc's malloc settings, as every JSON line reports
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def setup_threads():
    """Read ``--threads N`` (default: all cores) from argv and set every thread pool's
    variable, which only works before NumPy, Numba and PyTorch are imported."""
    n = os.cpu_count()
    if "--threads" in sys.argv:
        n = int(sys.argv[sys.argv.index("--threads") + 1])
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    return n


def tune_allocator():
    """glibc's malloc keeps freed memory instead of returning it to the OS, so a step's
    large temporaries are not page-faulted afresh every step (BENCHMARKING.md: this
    moves results by 10-30%). Process-wide: both sides of a comparison get it."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def busy_cores():
    """(busy, total) CPU jiffies summed over all cores since boot, for :class:`IdleCheck`."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)  # busy, total jiffies


class IdleCheck:
    """CPU used by *other* processes during a timed block, in cores (BENCHMARKING.md asks
    for it: a busy neighbour slows NumPy 4x and PyTorch far more)."""

    def __enter__(self):
        self.t0, self.cpu0, self.stat0 = time.perf_counter(), time.process_time(), busy_cores()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy = (busy_cores()[0] - self.stat0[0]) / os.sysconf("SC_CLK_TCK")
        self.other_cores = max(busy - (time.process_time() - self.cpu0), 0) / max(wall, 1e-9)
        self.seconds = wall


def alternate(sides, repeats, warmup=True):
    """Run each callable in ``sides`` (name -> fn) ``repeats`` times, alternating A B A B,
    after one untimed warm-up each (unless ``warmup`` is False, for runs long enough
    that a first call's costs do not count). Returns name -> list of seconds, and the
    most CPU any other process used during a timed run (cores)."""
    for fn in sides.values() if warmup else ():
        fn()
    times, other = {name: [] for name in sides}, 0.0
    for _ in range(repeats):
        for name, fn in sides.items():
            with IdleCheck() as check:
                fn()
            times[name].append(check.seconds)
            other = max(other, check.other_cores)
    return times, other


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def argument_parser(doc, threads, repeats=3):
    """The options every benchmark takes: ``--threads`` (read earlier by
    :func:`setup_threads`, listed here for ``--help``) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=threads, help="threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--tuned-allocator", action="store_true",
                        help="keep freed memory in the process (mallopt), for both sides; default: glibc's defaults")
    return parser


def parse(parser):
    """The parsed flags, with the allocator tuned first when asked."""
    global ALLOCATOR
    args = parser.parse_args()
    if args.tuned_allocator:
        tune_allocator()
        ALLOCATOR = "tuned"
    return args


def npvae_steps(make_model, x, steps, batch, backend, binarize=False):
    """A timed side: ``steps`` Adam (1e-3) steps of ``make_model()`` on consecutive
    batches of ``x`` on ``backend`` (each batch binarised afresh when ``binarize``)."""
    import numpy as np

    import npvae
    from npvae.optim import Adam

    def run():
        npvae.kernels.use(backend)
        model = make_model()
        opt, rng = Adam(model.params, model.grads, 1e-3), np.random.default_rng(0)
        for s in range(steps):
            xb = x[s * batch : (s + 1) * batch]
            model.loss_and_grad(npvae.kernels.ops.binarize(xb, rng) if binarize else xb, rng=rng)
            opt.step()
        npvae.kernels.use("numpy")
    return run


def torch_vae_step(encoder, decoder, opt, xb, latent):
    """One PyTorch training step of a Bernoulli-logits VAE whose encoder outputs
    [mean, logvar] and whose ``decoder(z)`` gives the logits: the loss npvae trains on
    (minus the ELBO, mean over the batch), returned as a tensor (reading it back is the
    caller's choice)."""
    import torch

    h = encoder(xb)
    mean, logvar = h[:, :latent], h[:, latent:]
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    rec = torch.nn.functional.binary_cross_entropy_with_logits(decoder(z), xb, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp())
    opt.zero_grad()
    loss = (rec + kl) / len(xb)
    loss.backward()
    opt.step()
    return loss


def have_torch():
    """Whether PyTorch (the optional peer) is importable; says so when it is not."""
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed (pip install torch==2.13.0): timing npvae only", flush=True)
        return False
    return True


def emit(benchmark, threads, **fields):
    """Print the one JSON line a benchmark reports."""
    print(json.dumps({"benchmark": benchmark, "threads": threads, "machine": platform.machine(),
                      "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "allocator": ALLOCATOR,
                      **fields}), flush=True)
