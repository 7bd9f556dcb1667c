"""npvae's CUDA backend against PyTorch CUDA, side by side in one process on one GPU;
one JSON line per measurement.

* ``product``: the backend's tiled matrix product against cuBLAS (``torch.matmul``,
  TF32 off), float32, at the 784-400-20 VAE's shapes and at 4096^3; GFLOP/s.
* ``mlp_epoch``: one epoch over the 60,000 MNIST images of the 784-400-20 VAE (ReLU,
  batch 128) and of the IWAE net (784-200-200-50 tanh, batch 20), Bernoulli logits,
  Adam 1e-3. npvae's side is ``npvae.train.fit`` on ``use("cuda")``, which keeps every
  array on the device (the training set uploaded once, minibatches gathered and noise
  drawn there) and reads the loss back every step, after queueing the update; PyTorch's
  is the same loop with ``common.torch_vae_step``, default and fused Adam, with and
  without reading the loss back each step (``loss.item()``). Also the launches, new
  device arrays and synchronisations of one steady npvae step (``npvae.kernels.COUNTS``),
  and its first loss against the NumPy backend's on the same minibatch and noise.
* ``conv_step``: a training step of ``VAE.conv()`` (conv 1-32-64, kernel 4, batch
  128, the network of ``benchmarks/conv_vae.py``), device-resident, against PyTorch.
* ``eval``: importance-sampled log p(x) at k = 5000 of the 784-400-20 VAE on MNIST's
  10,000 test images, ``VAE.log_likelihood`` on a device-resident model against the
  same estimator written in PyTorch; both first on ``--eval-probe`` images, and on all
  10,000 only when the probe says npvae finishes within ``--eval-limit`` seconds.
* ``overheads``: what a launch and an allocation cost through numba-cuda, through the
  backend's launch (its thin path), with the arguments prepared once (the floor), and
  PyTorch's dispatch of one elementwise op.

    python benchmarks/gpu.py [--repeats 3] [--kinds product,mlp_epoch,conv_step,eval,overheads]
"""

import common

threads = common.setup_threads()

import time  # noqa: E402

import numpy as np  # noqa: E402

import npvae  # noqa: E402
from npvae.datasets import load_mnist  # noqa: E402
from npvae.models import VAE  # noqa: E402
from npvae.optim import Adam  # noqa: E402
from npvae.train import fit  # noqa: E402

NETWORKS = {"pytorch_example": ((400,), 20, "relu", 128), "iwae20": ((200, 200), 50, "tanh", 20)}


def synchronize():
    from numba import cuda

    cuda.synchronize()
    import torch

    torch.cuda.synchronize()


def timed(fn, repeats, warmup=None):
    """Median seconds of ``fn`` over ``repeats`` runs after a warm-up (``warmup``, or
    ``fn`` itself), the GPU drained before and after each."""
    (warmup or fn)()
    times = []
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return common.median(times)
# ----------------------------------------------------------------------------- product


def product(repeats):
    import torch

    from npvae.kernels.cuda import arrays, gemm

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rng = np.random.default_rng(0)
    # (M, K, N, trans_a, trans_b): the VAE's forward, its dW = x.T @ dh and dx = dh @ W.T, and a large square
    shapes = [(128, 784, 400, False, False), (784, 128, 400, True, False), (128, 400, 784, False, True),
              (128, 400, 784, False, False), (4096, 4096, 4096, False, False)]
    for m, k, n, ta, tb in shapes:
        a_np = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b_np = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        a, b, c = arrays.to_device(a_np), arrays.to_device(b_np), arrays.empty((m, n), np.float32)
        ta_t, tb_t = torch.from_numpy(a_np).cuda(), torch.from_numpy(b_np).cuda()
        op_a, op_b = (ta_t.T if ta else ta_t), (tb_t.T if tb else tb_t)
        inner = max(1, int(2e9 / (2 * m * n * k)))  # enough products per timing to dwarf the launch
        sides = {"torch": lambda: [torch.matmul(op_a, op_b) for _ in range(inner)]}
        for tile in gemm.TILES:
            sides[f"npvae_{tile}"] = (lambda tile=tile: [gemm.gemm(a, b, c, ta, tb, tile=tile) for _ in range(inner)])
        seconds = {name: timed(fn, repeats) / inner for name, fn in sides.items()}
        err = float(np.abs(c.copy_to_host() - (op_a @ op_b).cpu().numpy()).max())
        gflops = {f"{side}_gflops": round(2 * m * n * k / s / 1e9, 1) for side, s in seconds.items()}
        best = min(v for side, v in seconds.items() if side.startswith("npvae"))
        common.emit("gpu_product", threads, shape=[m, k, n], trans=[ta, tb], **gflops,
                    **{f"{side}_us": round(s * 1e6, 2) for side, s in seconds.items()},
                    fraction_of_cublas=round(seconds["torch"] / best, 3), max_abs_error=err)


# ------------------------------------------------------------------- training


def step_counts(fn, steps=3):
    """The backend's counts (``npvae.kernels.COUNTS``: launches, new device arrays,
    synchronisations) of one call of ``fn``, after ``steps`` calls that fill its workspaces."""
    for _ in range(steps):
        fn()
    npvae.kernels.zero_counts()
    fn()
    return dict(npvae.kernels.COUNTS)


def torch_mlp(sizes, activation):
    from torch import nn

    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([act()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers).cuda()


def torch_conv(latent):
    from torch import nn

    encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(3136, 2 * latent))
    decoder = nn.Sequential(nn.Linear(latent, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    return encoder.cuda(), decoder.cuda()


def torch_loop(make_nets, data, batch, latent, fused, read_loss, steps=None):
    """Training steps over ``data`` (a CUDA tensor) in shuffled batches, fresh nets each run."""
    import torch

    def run():
        torch.manual_seed(0)
        encoder, decoder = make_nets()
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3, fused=fused)
        for i, idx in enumerate(torch.randperm(len(data), device="cuda").split(batch)):
            if steps is not None and i == steps:
                break
            loss = common.torch_vae_step(encoder, decoder, opt, data[idx], latent)
            if read_loss:
                loss.item()
    return run


def torch_sides(make_nets, data, batch, latent, repeats, steps=None, warmup_steps=None, fused_only=False):
    """PyTorch's seconds for the loop, default and fused Adam, with and without the loss read back."""
    seconds = {}
    for fused in (True,) if fused_only else (False, True):
        for read_loss in (False, True):
            name = f"torch{'_fused' if fused else ''}{'_item' if read_loss else ''}"
            warmup = torch_loop(make_nets, data, batch, latent, fused, read_loss, warmup_steps)
            seconds[name] = timed(torch_loop(make_nets, data, batch, latent, fused, read_loss, steps), repeats, warmup)
    return seconds


def first_step_check(model_args, x, batch):
    """The device-resident step's first loss and the NumPy backend's, on one minibatch and noise."""
    from npvae.kernels import cuda as ops

    latent = model_args[2]
    eps = np.random.default_rng(1).standard_normal((batch, 1, latent)).astype(np.float32)
    npvae.kernels.use("numpy")
    reference, _ = VAE.mlp(*model_args, rng=0).loss_and_grad(x[:batch], eps=eps)
    npvae.kernels.use("cuda")
    model = VAE.mlp(*model_args, rng=0).to_device()
    loss, _ = model.loss_and_grad(ops.to_device(x[:batch]), eps=ops.to_device(eps))
    opt, rng = Adam(model.params, model.grads), np.random.default_rng(0)
    xb = ops.to_device(x[:batch])

    def step():  # as fit's: the update queued before the loss is read
        read = model.loss_and_grad(xb, rng=rng, deferred=True, check_input=False)
        opt.step()
        read()

    return float(loss), float(reference), step_counts(step)


def npvae_variant(variant):
    """Set numba-cuda's pending-free batch and the product's default tile from
    ``"count:tile"`` (``""``: the library's own settings, restored)."""
    from numba import config

    from npvae.kernels.cuda import gemm

    count, tile = variant.split(":") if variant else LIBRARY_DEFAULTS
    config.CUDA_DEALLOCS_COUNT, gemm.DEFAULT_TILE = int(count), tile


def mlp_epoch(x, repeats, networks, variants=("",), fused_only=False):
    import torch

    data = torch.from_numpy(x).cuda()
    for name, (hidden, latent, activation, batch) in networks.items():
        model_args = (784, hidden, latent, activation, "bernoulli")
        loss, reference, counts = first_step_check(model_args, x, batch)

        def npvae_run(n=len(x)):
            npvae.kernels.use("cuda")
            fit(VAE.mlp(*model_args, rng=0), x[:n], epochs=1, batch_size=batch, log=None)

        seconds = {}
        for variant in variants:
            npvae_variant(variant)
            name_ = "npvae" + (f"_{variant.replace(':', '_')}" if variant else "")
            seconds[name_] = timed(npvae_run, repeats, warmup=lambda: npvae_run(50 * batch))
        npvae_variant("")
        seconds.update(torch_sides(lambda: (torch_mlp([784, *hidden, 2 * latent], activation),
                                            torch_mlp([latent, *hidden[::-1], 784], activation)),
                                   data, batch, latent, repeats, warmup_steps=50, fused_only=fused_only))
        seconds["npvae"] = seconds[next(k for k in seconds if k.startswith("npvae"))]
        best = min(v for k, v in seconds.items() if not k.startswith("npvae"))
        best_item = min(v for k, v in seconds.items() if k.endswith("_item"))
        common.emit("gpu_mlp_epoch", threads, network=name, hidden=list(hidden), latent=latent, activation=activation,
                    batch=batch, examples=len(x), repeats=repeats,
                    **{f"{side}_s": round(v, 4) for side, v in seconds.items()},
                    ratio=round(seconds["npvae"] / best, 3), ratio_loss_read_both=round(seconds["npvae"] / best_item, 3),
                    **{f"{k}_per_step": v for k, v in counts.items()}, first_step_loss=loss, first_step_loss_numpy=reference)


def conv_step(x, repeats, steps=40):
    import torch

    from npvae.kernels import cuda as ops

    latent, batch = 20, 128
    images = x.reshape(-1, 1, 28, 28)[: steps * batch]

    def npvae_run():
        npvae.kernels.use("cuda")
        model = VAE.conv((1, 28, 28), (32, 64), 4, latent, "relu", "bernoulli", rng=0).to_device()
        opt, rng, data = Adam(model.params, model.grads), np.random.default_rng(0), ops.to_device(images)
        for s in range(steps):
            model.loss_and_grad(ops.take_rows(data, np.arange(s * batch, (s + 1) * batch)), rng=rng)
            opt.step()

    seconds = {"npvae": timed(npvae_run, repeats)}
    seconds.update(torch_sides(lambda: torch_conv(latent), torch.from_numpy(images).cuda(), batch, latent, repeats))
    best = min(v for k, v in seconds.items() if k != "npvae")
    common.emit("gpu_conv_step", threads, batch=batch, steps=steps, repeats=repeats,
                **{f"{side}_ms": round(v / steps * 1e3, 3) for side, v in seconds.items()},
                ratio=round(seconds["npvae"] / best, 3))


# ------------------------------------------------------------------ evaluation


def torch_log_likelihood(encoder, decoder, x, k, latent, batch_size, chunk):
    """The importance-sampled estimate of ``VAE.log_likelihood`` in PyTorch (float32
    terms, float64 log-mean-exp)."""
    import math

    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size]
            h = encoder(xb)
            mean, logvar = h[:, :latent], h[:, latent:]
            log_w = []
            for c in range(0, k, chunk):
                eps = torch.randn(len(xb), min(chunk, k - c), latent, device=x.device)
                z = mean[:, None] + torch.exp(0.5 * logvar)[:, None] * eps
                logits = decoder(z.reshape(-1, latent)).reshape(len(xb), -1, x.shape[1])
                log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, xb[:, None].expand_as(logits), reduction="none").sum(-1)
                log_w.append((log_px - 0.5 * (z * z - logvar[:, None] - eps * eps).sum(-1)).double())
            log_w = torch.cat(log_w, dim=1)
            out.append(torch.logsumexp(log_w, dim=1) - math.log(k))
    return torch.cat(out).cpu().numpy()


def evaluation(x_test, probe, limit, k=5000, batch_size=100, chunk=500):
    import torch

    hidden, latent, activation, _ = NETWORKS["pytorch_example"]
    npvae.kernels.use("cuda")
    model = VAE.mlp(784, hidden, latent, activation, "bernoulli", rng=0).to_device()
    encoder = torch_mlp([784, *hidden, 2 * latent], activation)
    decoder = torch_mlp([latent, *hidden[::-1], 784], activation)
    data = torch.from_numpy(x_test).cuda()

    def sides(n):
        return {"npvae": lambda: model.log_likelihood(x_test[:n], k=k, batch_size=batch_size, chunk=chunk, rng=0),
                "torch": lambda: torch_log_likelihood(encoder, decoder, data[:n], k, latent, batch_size, chunk)}

    warm = sides(batch_size)
    seconds = {side: timed(fn, 1, warmup=warm[side]) for side, fn in sides(probe).items()}
    common.emit("gpu_eval", threads, images=probe, k=k, batch_size=batch_size, chunk=chunk,
                **{f"{side}_s": round(v, 3) for side, v in seconds.items()}, ratio=round(seconds["npvae"] / seconds["torch"], 3),
                npvae_projected_10000_s=round(seconds["npvae"] * len(x_test) / probe, 1))
    if seconds["npvae"] * len(x_test) / probe <= limit:
        seconds = {side: timed(fn, 1, warmup=lambda: None) for side, fn in sides(len(x_test)).items()}
        common.emit("gpu_eval", threads, images=len(x_test), k=k, batch_size=batch_size, chunk=chunk,
                    **{f"{side}_s": round(v, 3) for side, v in seconds.items()},
                    ratio=round(seconds["npvae"] / seconds["torch"], 3))


def prepared_launch(kernel, args):
    """``kernel[1, 32](*args)`` with its arguments converted once, as a thinner launch path
    would keep them: numba-cuda's own conversion (``_prepare_args``, an internal of the
    pinned numba-cuda) and a straight ``cuda.core.launch``. None where the internals differ."""
    try:
        from cuda.core import LaunchConfig, launch
        from numba.cuda.cudadrv import driver

        compiled = next(iter(kernel.overloads.values()))
        stream, packed = driver._to_core_stream(0), []
        for t, v in zip(compiled.argument_types, args):
            compiled._prepare_args(t, v, stream, [], packed)
        config, cufunc = LaunchConfig(grid=(1, 1, 1), block=(32, 1, 1)), compiled._codelibrary.get_cufunc().kernel
        return lambda: launch(stream, config, cufunc, *packed)
    except Exception as e:  # noqa: BLE001  (a benchmark of internals: report, do not stop)
        print(f"prepared launch unavailable: {type(e).__name__}: {e}", flush=True)
        return None


def overheads(repeats=200):
    """Microseconds of host time per launch of an empty kernel with 1 and with 8 array
    arguments: through numba-cuda, through the backend's own ``arrays.launch`` (the
    thin path of launcher.py where it is on), and with the arguments prepared once (the
    floor of a thinner path); PyTorch's dispatch of an elementwise op for comparison;
    and per ``cuda.device_array`` of a 128 x 400 float32 array (allocation and release)."""
    import torch
    from numba import cuda

    from npvae.kernels.cuda import arrays, launcher

    @cuda.jit
    def one(a):
        pass

    @cuda.jit
    def eight(a, b, c, d, e, f, g, h):
        pass

    a = cuda.device_array((128, 400), np.float32)
    t = torch.zeros((128, 400), device="cuda")
    cases = {"launch_1_array": lambda: one[1, 32](a), "launch_8_arrays": lambda: eight[1, 32](a, a, a, a, a, a, a, a),
             "device_array_128x400": lambda: cuda.device_array((128, 400), np.float32),
             "torch_add_out": lambda: torch.add(t, t, out=t)}
    for arguments, kernel, args in (("1_array", one, (a,)), ("8_arrays", eight, (a,) * 8)):
        kernel[1, 32](*args)  # compiled first
        fn = prepared_launch(kernel, args)
        if fn is not None:
            cases[f"prepared_{arguments}"] = fn
        # The backend's own launch (launcher.py: the thin path where numba-cuda is the pinned version).
        cases[f"npvae_launch_{arguments}"] = lambda kernel=kernel, args=args: arrays.launch(kernel, 1, 32)(*args)
    result = {}
    for name, fn in cases.items():
        fn()
        synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize()
        result[f"{name}_us"] = round((time.perf_counter() - t0) / repeats * 1e6, 2)
    common.emit("gpu_overheads", threads, repeats=repeats, thin_path=launcher.AVAILABLE, **result)


def main():
    global LIBRARY_DEFAULTS
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--kinds", default="product,mlp_epoch,conv_step,eval,overheads")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="mlp_epoch's networks")
    parser.add_argument("--npvae-variants", default="",
                        help="mlp_epoch: npvae's epoch under each 'pending frees:tile', e.g. 10:small,1000:small_prefetch")
    parser.add_argument("--torch-fused-only", action="store_true", help="mlp_epoch: PyTorch's fused Adam only")
    parser.add_argument("--eval-probe", type=int, default=500, help="images timed first (default 500)")
    parser.add_argument("--eval-limit", type=float, default=120.0,
                        help="run all 10,000 test images when the probe projects at most this many seconds")
    args = common.parse(parser)
    if not common.have_torch():
        raise SystemExit("benchmarks/gpu.py needs PyTorch with CUDA as its peer")
    npvae.kernels.use("cuda")  # fails here, with its message, without a GPU
    from numba import config

    from npvae.kernels.cuda import gemm

    LIBRARY_DEFAULTS = (config.CUDA_DEALLOCS_COUNT, gemm.DEFAULT_TILE)
    kinds = args.kinds.split(",")
    if "overheads" in kinds:
        overheads()
    if "product" in kinds:
        product(args.repeats)
    x = load_mnist("train")[0] if {"mlp_epoch", "conv_step"} & set(kinds) else None
    if "conv_step" in kinds:
        conv_step(x, args.repeats)
    if "eval" in kinds:
        evaluation(load_mnist("test")[0], args.eval_probe, args.eval_limit)
    if "mlp_epoch" in kinds:
        mlp_epoch(x, args.repeats, {k: NETWORKS[k] for k in args.networks.split(",")},
                  args.npvae_variants.split(",") if args.npvae_variants else ("",), args.torch_fused_only)


if __name__ == "__main__":
    main()
