"""One training epoch of MLP VAEs: npvae (NumPy backend), npvae (Numba backend) and
PyTorch CPU, side by side in one process.

Networks: the PyTorch examples VAE (784-400-20 ReLU, decoder 20-400-784, Bernoulli
logits on grey MNIST, Adam 1e-3, batch 128, 60,000 images) and the IWAE paper's
network (784-200-200-50 tanh and back, batch 20 and 128). PyTorch is timed with its
default Adam and with ``fused=True`` and held to the faster. One JSON line per network.

A fourth side, ``blas_products``, runs only the epoch's dense products (each layer's
``x @ W``, ``x.T @ dy`` and, but for the first, ``dy @ W.T``) in NumPy's BLAS, the
library both npvae backends use, on all threads: ``ratio_products``, its time over
PyTorch's, is the floor for any npvae backend that does these products through this
BLAS (the Numba backend gives batches of at most 32 rows one thread, see kernels.py).

With ``--binarize`` every side draws each minibatch's pixels afresh as Bernoulli(grey
level), the recipe of the published MNIST results (``fit(binarize=True)``;
``torch.bernoulli`` for PyTorch), and one more side, ``npvae_numba_dense``, turns off
the Numba backend's sums of weight rows for 0/1 inputs, so that ``binary_rows_gain``
(its time over ``npvae_numba``'s) is what that path does to the epoch.

    python benchmarks/mlp_vae.py [--threads N] [--repeats 3] [--networks pytorch_example,iwae20,iwae128]
                                 [--binarize]
"""

import common

threads = common.setup_threads()


import numpy as np  # noqa: E402

import npvae  # noqa: E402
from npvae.datasets import load_mnist  # noqa: E402
from npvae.models import VAE  # noqa: E402
from npvae.train import fit  # noqa: E402

NETWORKS = {  # name: (hidden sizes, latent, activation, batch size)
    "pytorch_example": ((400,), 20, "relu", 128),
    "iwae20": ((200, 200), 50, "tanh", 20),
    "iwae128": ((200, 200), 50, "tanh", 128),
}


def npvae_epoch(x, hidden, latent, activation, batch, backend, binarize, binary_rows=True):
    def run():
        ops = npvae.kernels.use(backend)
        threshold = ops.dense.BINARY_DENSITY if backend == "numba" else None
        if threshold is not None and not binary_rows:
            ops.dense.BINARY_DENSITY = -1.0  # no input is at most -1 ones per entry: gemm for every layer
        model = VAE.mlp(784, hidden, latent, activation, "bernoulli", rng=0)
        fit(model, x, optimizer="adam", lr=1e-3, epochs=1, batch_size=batch, seed=0, binarize=binarize, log=None)
        if threshold is not None:
            ops.dense.BINARY_DENSITY = threshold
        npvae.kernels.use("numpy")
    return run


def blas_products_epoch(n, hidden, latent, batch):
    """An epoch of only the network's dense products, into preallocated outputs."""
    sizes = [784, *hidden, 2 * latent], [latent, *hidden[::-1], 784]
    shapes = [(i, o) for layer_sizes in sizes for i, o in zip(layer_sizes[:-1], layer_sizes[1:])]
    W = [np.ones(shape, np.float32) for shape in shapes]
    dW = [np.empty(shape, np.float32) for shape in shapes]
    batches = [batch] * (n // batch) + ([n % batch] if n % batch else [])  # as fit's minibatches
    # per batch size, each layer's input x, output y, output gradient dy and input gradient dx
    arrays = {rows: [[np.ones(shape, np.float32) for shape in ((rows, i), (rows, o), (rows, o), (rows, i))]
                     for i, o in shapes] for rows in set(batches)}

    def run():
        for rows in batches:
            for k, (w, dw, (x, y, dy, dx)) in enumerate(zip(W, dW, arrays[rows])):
                np.matmul(x, w, out=y)
                np.matmul(x.T, dy, out=dw)
                if k:  # the encoder's first layer needs no dx: its input is data
                    np.matmul(dy, w.T, out=dx)
    return run


def torch_epoch(x, hidden, latent, activation, batch, fused, binarize):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([act()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    data = torch.from_numpy(x)

    def run():
        torch.manual_seed(0)
        encoder, decoder = mlp([784, *hidden, 2 * latent]), mlp([latent, *hidden[::-1], 784])
        params = list(encoder.parameters()) + list(decoder.parameters())
        opt = torch.optim.Adam(params, lr=1e-3, fused=fused)
        for idx in torch.randperm(len(data)).split(batch):
            xb = torch.bernoulli(data[idx]) if binarize else data[idx]
            common.torch_vae_step(encoder, decoder, opt, xb, latent)
    return run


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--binarize", action="store_true", help="binarise every minibatch afresh, on every side")
    args = common.parse(parser)
    x = load_mnist("train")[0]  # grey levels in [0, 1], as the PyTorch example feeds its BCE
    have_torch = common.have_torch()
    for name in args.networks.split(","):
        hidden, latent, activation, batch = NETWORKS[name]
        sides = {f"npvae_{b}": npvae_epoch(x, hidden, latent, activation, batch, b, args.binarize)
                 for b in ("numpy", "numba")}
        if args.binarize:
            sides["npvae_numba_dense"] = npvae_epoch(x, hidden, latent, activation, batch, "numba", True, False)
        sides["blas_products"] = blas_products_epoch(len(x), hidden, latent, batch)
        if have_torch:
            sides.update({f"torch{'_fused' if f else ''}": torch_epoch(x, hidden, latent, activation, batch, f,
                                                                       args.binarize) for f in (False, True)})
        times, other = common.alternate(sides, args.repeats)
        seconds = {k: common.median(v) for k, v in times.items()}
        fields = {f"{k}_s": v for k, v in seconds.items()}
        if args.binarize:
            fields["binary_rows_gain"] = seconds["npvae_numba_dense"] / seconds["npvae_numba"]
        if have_torch:
            best = min(seconds["torch"], seconds["torch_fused"])
            fields.update(ratio_numpy=seconds["npvae_numpy"] / best, ratio_numba=seconds["npvae_numba"] / best,
                          ratio_products=seconds["blas_products"] / best)
        common.emit("mlp_vae", threads, network=name, hidden=list(hidden), latent=latent, activation=activation,
                    batch=batch, examples=len(x), binarize=args.binarize, repeats=args.repeats, **fields,
                    max_other_cores=round(other, 2))


if __name__ == "__main__":
    main()
