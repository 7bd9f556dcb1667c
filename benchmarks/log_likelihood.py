"""Importance-sampled log p(x) at k = 5000, npvae's Numba backend against PyTorch CPU,
side by side in one process: the IWAE net (784-200-200-50 tanh, Bernoulli), the same
weights on both sides, the first ``--images`` statically binarised MNIST test images,
100 images and 500 samples at a time on both sides (the estimator of
``examples/iwae_table.py``). One JSON line: milliseconds per image for each side, their
ratio, both estimates (the same model: they differ by Monte-Carlo noise only), and the
peak of the memory npvae allocated through NumPy during its run (tracemalloc).

    python benchmarks/log_likelihood.py [--images 200] [--repeats 3]
"""

import common

threads = common.setup_threads()

import math  # noqa: E402
import tracemalloc  # noqa: E402


import npvae  # noqa: E402
from npvae.datasets import binarize_static, load_mnist  # noqa: E402
from npvae.models import VAE  # noqa: E402

K, BATCH, CHUNK, LATENT = 5000, 100, 500, 50


def torch_twin(model):
    """The model's encoder and decoder as PyTorch modules holding its weights."""
    import torch
    from torch import nn

    def twin(sequential):
        layers = []
        for layer in sequential.layers:
            linear = nn.Linear(*layer.params["W"].shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.params["b"]))
            layers += [linear] + ([nn.Tanh()] if layer.activation == "tanh" else [])
        return nn.Sequential(*layers)

    return twin(model.encoder), twin(model.decoder)


def torch_log_likelihood(encoder, decoder, x):
    import torch

    out = []
    with torch.no_grad():
        for xb in x.split(BATCH):
            log_w = []
            for c in range(0, K, CHUNK):
                h = encoder(xb)
                mean, logvar = h[:, :LATENT], h[:, LATENT:]
                eps = torch.randn(len(xb), min(CHUNK, K - c), LATENT)
                z = mean[:, None] + torch.exp(0.5 * logvar)[:, None] * eps
                logits = decoder(z)
                log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, xb[:, None].expand_as(logits), reduction="none").sum(-1)
                log_w.append((log_px - 0.5 * (z * z - logvar[:, None] - eps * eps).sum(-1)).double())
            out.append(torch.logsumexp(torch.cat(log_w, 1), 1) - math.log(K))
    return torch.cat(out).numpy()


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--images", type=int, default=200)
    args = common.parse(parser)
    npvae.kernels.use("numba")
    x = binarize_static(load_mnist("test")[0][: args.images], seed=1)
    model = VAE.mlp(784, (200, 200), LATENT, "tanh", "bernoulli", rng=0)
    estimates = {}

    def npvae_run():
        estimates["npvae"] = model.log_likelihood(x, k=K, batch_size=BATCH, chunk=CHUNK, rng=0).mean()

    sides = {"npvae": npvae_run}
    if common.have_torch():
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        encoder, decoder = torch_twin(model)
        data = torch.from_numpy(x)
        sides["torch"] = lambda: estimates.__setitem__("torch", torch_log_likelihood(encoder, decoder, data).mean())
    times, other = common.alternate(sides, args.repeats)
    tracemalloc.start()
    npvae_run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ms = {side: 1e3 * common.median(t) / len(x) for side, t in times.items()}
    common.emit("log_likelihood", threads, images=len(x), k=K, batch=BATCH, chunk=CHUNK, repeats=args.repeats,
                **{f"{side}_ms_per_image": round(v, 2) for side, v in ms.items()},
                **({"ratio": round(ms["npvae"] / ms["torch"], 3)} if "torch" in ms else {}),
                **{f"{side}_log_likelihood": round(float(v), 3) for side, v in estimates.items()},
                npvae_peak_numpy_mb=round(peak / 2**20, 1), max_other_cores=round(other, 2))


if __name__ == "__main__":
    main()
