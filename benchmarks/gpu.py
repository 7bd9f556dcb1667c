"""npvae's CUDA backend against PyTorch CUDA, side by side in one process on one GPU;
one JSON line per measurement.

* ``product``: the backend's tiled matrix product against cuBLAS (``torch.matmul``,
  TF32 off), float32, at the 784-400-20 VAE's shapes and at 4096^3; GFLOP/s.
* ``mlp_epoch``: one epoch over the 60,000 MNIST images of the 784-400-20 VAE (ReLU,
  batch 128) and of the IWAE net (784-200-200-50 tanh, batch 20), Bernoulli logits,
  Adam 1e-3. npvae's side is a step with every array on the device, composed from the
  CUDA ops (``DeviceVAE`` below: the models do not yet keep their arrays on the
  device), with the minibatch gathered and the noise drawn on the device; PyTorch's is
  ``common.torch_vae_step`` at the faster of its default and fused Adam. Neither side
  brings the loss back during the epoch. Also the kernel launches of one npvae step,
  and the loss of its first step against ``VAE.loss_and_grad`` on the same noise.
* ``model_api_step``: the same 784-400-20 step through ``VAE.loss_and_grad`` and
  ``Adam`` on ``use("cuda")``, as the library runs it today (each op copies its
  arrays up and its results back), against the device-resident step.

    python benchmarks/gpu.py [--repeats 3] [--kinds product,mlp_epoch,model_api_step]
"""

import common

threads = common.setup_threads()

import time  # noqa: E402

import numpy as np  # noqa: E402

import npvae  # noqa: E402
from npvae.datasets import load_mnist  # noqa: E402
from npvae.models import VAE  # noqa: E402
from npvae.optim import Adam  # noqa: E402

NETWORKS = {"pytorch_example": ((400,), 20, "relu", 128), "iwae20": ((200, 200), 50, "tanh", 20)}


def synchronize():
    from numba import cuda

    cuda.synchronize()
    import torch

    torch.cuda.synchronize()


def timed(fn, repeats):
    """Median seconds of ``fn`` over ``repeats`` runs after a warm-up, the GPU drained
    before and after each."""
    fn()
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

    from npvae.kernels.cuda import arrays, dense

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
        for tile in dense.TILES:
            sides[f"npvae_{tile}"] = (lambda tile=tile: [dense.gemm(a, b, c, ta, tb, tile=tile) for _ in range(inner)])
        seconds = {name: timed(fn, repeats) / inner for name, fn in sides.items()}
        err = float(np.abs(c.copy_to_host() - (op_a @ op_b).cpu().numpy()).max())
        gflops = {f"{side}_gflops": round(2 * m * n * k / s / 1e9, 1) for side, s in seconds.items()}
        best = min(seconds["npvae_large"], seconds["npvae_small"])
        common.emit("gpu_product", threads, shape=[m, k, n], trans=[ta, tb], **gflops,
                    **{f"{side}_us": round(s * 1e6, 2) for side, s in seconds.items()},
                    fraction_of_cublas=round(seconds["torch"] / best, 3), max_abs_error=err)


# ------------------------------------------------------------- a device-resident step


class DeviceVAE:
    """An MLP VAE's training step (estimator B, one sample, Bernoulli logits, Adam) with
    every array on the device: ``model``'s parameters are copied up once; ``step(idx)``
    gathers the minibatch from the uploaded training set, draws the noise on the
    device and runs the forward, backward and Adam through the CUDA ops."""

    def __init__(self, model, x, seed=0, lr=1e-3):
        from npvae.kernels import cuda as ops
        from npvae.kernels.cuda import arrays

        self.ops, self.arrays, self.lr, self.t = ops, arrays, lr, 0
        self.latent = model.latent_dim
        self.x = arrays.to_device(x)
        self.noise = arrays.NormalStream(seed)
        layers = list(model.encoder.layers) + list(model.decoder.layers)
        self.n_encoder = len(model.encoder.layers)
        self.layers = [(arrays.to_device(m.params["W"]), arrays.to_device(m.params["b"]), m.activation, m.alpha)
                       for m in layers]
        self.params = [a for W, b, _, _ in self.layers for a in (W, b)]
        self.grads, self.ms, self.vs = ([arrays.zeros(p.shape, p.dtype) for p in self.params] for _ in range(3))
        self.dkl = {}

    def _forward(self, a, layers, cache):
        for W, b, kind, alpha in layers:
            h, y = self.ops.linear_forward(a, W, b, kind, alpha)
            cache.append((a, h, y))
            a = y
        return a

    def _backward(self, dy, layers, cache, grads, first_needs_dx=True):
        for i in reversed(range(len(layers))):
            (W, _, kind, alpha), (a, h, y) = layers[i], cache[i]
            dy = self.ops.linear_backward(a, W, h, y, dy, grads[2 * i], grads[2 * i + 1], kind, alpha,
                                          need_dx=i > 0 or first_needs_dx)
        return dy

    def step(self, idx, eps=None):
        ops, arrays, d = self.ops, self.arrays, self.latent
        xb = arrays.take_rows(self.x, idx)
        n = xb.shape[0]
        enc, dec = self.layers[: self.n_encoder], self.layers[self.n_encoder :]
        enc_cache, dec_cache = [], []
        out = self._forward(xb, enc, enc_cache)
        mean, logvar = out[:, :d], out[:, d:]
        eps = self.noise.draw((n, 1, d), xb.dtype) if eps is None else eps
        z, kl = ops.reparameterize_kl(mean, logvar, eps)
        logits = self._forward(z.reshape(n, d), dec, dec_cache)
        log_px, dlog_px = ops.bernoulli_log_prob_grad(xb, logits)
        for g in self.grads:
            arrays.clear(g)
        k = 2 * self.n_encoder
        dz = self._backward(arrays.scale(dlog_px, -1.0 / n), dec, dec_cache, self.grads[k:])
        if n not in self.dkl:  # d loss / d kl: 1/n everywhere (the batch mean), made once per batch size
            self.dkl[n] = arrays.to_device(np.full(kl.shape, 1.0 / n, dtype=kl.dtype))
        dkl = self.dkl[n]
        dmean, dlogvar = ops.reparameterize_kl_backward(dz.reshape(n, 1, d), eps, mean, logvar, dkl)
        self._backward(arrays.concat_columns(dmean, dlogvar), enc, enc_cache, self.grads[:k], first_needs_dx=False)
        self.t += 1
        ops.adam_update(self.params, self.grads, self.ms, self.vs, self.lr, 0.9, 0.999, 1e-8, self.t)
        return log_px, kl


def count_launches(fn):
    """Kernel launches made by ``fn()``, counted at numba-cuda's launch call."""
    from numba.cuda import dispatcher

    calls, original = [0], dispatcher._LaunchConfiguration.__call__

    def counting(self, *args):
        calls[0] += 1
        return original(self, *args)

    dispatcher._LaunchConfiguration.__call__ = counting
    try:
        fn()
    finally:
        dispatcher._LaunchConfiguration.__call__ = original
    return calls[0]


def torch_epoch(x, hidden, latent, activation, batch, fused):
    import torch
    from torch import nn

    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([act()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers).cuda()

    data = torch.from_numpy(x).cuda()

    def run():
        torch.manual_seed(0)
        encoder, decoder = mlp([784, *hidden, 2 * latent]), mlp([latent, *hidden[::-1], 784])
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3, fused=fused)
        for idx in torch.randperm(len(data), device="cuda").split(batch):
            common.torch_vae_step(encoder, decoder, opt, data[idx], latent)
    return run


def mlp_epoch(x, repeats):
    from npvae.kernels.cuda import arrays

    for name, (hidden, latent, activation, batch) in NETWORKS.items():
        model = VAE.mlp(784, hidden, latent, activation, "bernoulli", rng=0)
        # The first step against the library's own loss on the same minibatch and noise.
        check = DeviceVAE(model, x)
        idx = np.arange(batch)
        eps = np.random.default_rng(1).standard_normal((batch, 1, latent)).astype(np.float32)
        log_px, kl = check.step(arrays.to_device(idx), arrays.to_device(eps))
        device_loss = -float(log_px.copy_to_host().mean() - kl.copy_to_host().sum(axis=1).mean())
        npvae.kernels.use("numpy")
        reference_loss, _ = model.loss_and_grad(x[idx], eps=eps)
        launches = count_launches(lambda: check.step(arrays.to_device(idx)))
        order = np.random.default_rng(0).permutation(len(x))
        batches = [arrays.to_device(order[s : s + batch]) for s in range(0, len(x), batch)]

        def npvae_run():
            device = DeviceVAE(model, x)
            for b in batches:
                device.step(b)

        seconds = {"npvae": timed(npvae_run, repeats)}
        seconds.update({f"torch{'_fused' if f else ''}": timed(torch_epoch(x, hidden, latent, activation, batch, f),
                                                               repeats) for f in (False, True)})
        best = min(seconds["torch"], seconds["torch_fused"])
        common.emit("gpu_mlp_epoch", threads, network=name, hidden=list(hidden), latent=latent, activation=activation,
                    batch=batch, examples=len(x), repeats=repeats,
                    **{f"{side}_s": round(v, 4) for side, v in seconds.items()},
                    ratio=round(seconds["npvae"] / best, 3), launches_per_step=launches,
                    first_step_loss=device_loss, first_step_loss_reference=float(reference_loss))


def model_api_step(x, repeats, steps=20):
    from npvae.kernels.cuda import arrays

    hidden, latent, activation, batch = NETWORKS["pytorch_example"]
    npvae.kernels.use("cuda")
    model = VAE.mlp(784, hidden, latent, activation, "bernoulli", rng=0)
    opt, rng = Adam(model.params, model.grads), np.random.default_rng(0)

    def api_run():
        for s in range(steps):
            model.loss_and_grad(x[s * batch : (s + 1) * batch], rng=rng)
            opt.step()

    device = DeviceVAE(model, x)
    idx = [arrays.to_device(np.arange(s * batch, (s + 1) * batch)) for s in range(steps)]
    seconds = {"model_api": timed(api_run, repeats) / steps, "device_resident": timed(
        lambda: [device.step(i) for i in idx], repeats) / steps}
    npvae.kernels.use("numpy")
    common.emit("gpu_model_api_step", threads, network="pytorch_example", batch=batch, repeats=repeats,
                **{f"{k}_ms": round(v * 1e3, 3) for k, v in seconds.items()},
                ratio=round(seconds["model_api"] / seconds["device_resident"], 2))


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--kinds", default="product,mlp_epoch,model_api_step")
    args = common.parse(parser)
    if not common.have_torch():
        raise SystemExit("benchmarks/gpu.py needs PyTorch with CUDA as its peer")
    npvae.kernels.use("cuda")  # fails here, with its message, without a GPU
    npvae.kernels.use("numpy")
    kinds = args.kinds.split(",")
    if "product" in kinds:
        product(args.repeats)
    x = load_mnist("train")[0] if {"mlp_epoch", "model_api_step"} & set(kinds) else None
    if "mlp_epoch" in kinds:
        mlp_epoch(x, args.repeats)
    if "model_api_step" in kinds:
        model_api_step(x, args.repeats)


if __name__ == "__main__":
    main()
