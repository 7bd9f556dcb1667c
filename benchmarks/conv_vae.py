"""Seconds per training step of a convolutional VAE: npvae (NumPy backend), npvae
(Numba backend) and PyTorch CPU, side by side in one process.

The network of ``VAE.conv()``: encoder Conv(1->32, 4, stride 2, pad 1)-ReLU-Conv(32->64,
4, 2, 1)-ReLU-Linear(3136->2x20); decoder Linear(20->3136)-ReLU-ConvT(64->32, 4, 2,
1)-ReLU-ConvT(32->1, 4, 2, 1), Bernoulli logits on grey MNIST, Adam 1e-3, batch 128.
Each timed run is ``--steps`` steps on consecutive batches; PyTorch is held to the
faster of its default and fused Adam. On the Numba backend the network runs twice,
built by ``VAE.conv`` and by hand from layers, which must take the same time.

    python benchmarks/conv_vae.py [--threads N] [--repeats 3] [--steps 20] [--tuned-allocator]
"""

import common

threads = common.setup_threads()

import numpy as np  # noqa: E402

from npvae import nn  # noqa: E402
from npvae.datasets import load_mnist  # noqa: E402
from npvae.distributions import Bernoulli  # noqa: E402
from npvae.models import VAE  # noqa: E402

LATENT, BATCH = 20, 128


def hand_built_model():
    rng = np.random.default_rng(0)
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1, rng=rng, activation="relu"), nn.Conv2d(32, 64, 4, 2, 1, rng=rng, activation="relu"),
        nn.Flatten(), nn.Linear(3136, 2 * LATENT, rng=rng))
    decoder = nn.Sequential(
        nn.Linear(LATENT, 3136, rng=rng, activation="relu"), nn.Reshape((64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, 2, 1, rng=rng, activation="relu"), nn.ConvTranspose2d(32, 1, 4, 2, 1, rng=rng))
    return VAE(encoder, decoder, Bernoulli(), LATENT, (1, 28, 28))


def builder_model():
    return VAE.conv((1, 28, 28), (32, 64), 4, LATENT, "relu", "bernoulli", rng=0)


def torch_steps(x, steps, fused):
    import torch
    from torch import nn as tnn

    torch.set_num_threads(threads)
    data = torch.from_numpy(x)

    def run():
        torch.manual_seed(0)
        encoder = tnn.Sequential(
            tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(), tnn.Conv2d(32, 64, 4, 2, 1), tnn.ReLU(), tnn.Flatten(),
            tnn.Linear(3136, 2 * LATENT))
        decoder = tnn.Sequential(
            tnn.Linear(LATENT, 3136), tnn.ReLU(), tnn.Unflatten(1, (64, 7, 7)), tnn.ConvTranspose2d(64, 32, 4, 2, 1), tnn.ReLU(),
            tnn.ConvTranspose2d(32, 1, 4, 2, 1))
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3, fused=fused)
        for s in range(steps):
            common.torch_vae_step(encoder, decoder, opt, data[s * BATCH : (s + 1) * BATCH], LATENT)
    return run


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--steps", type=int, default=20)
    args = common.parse(parser)
    x = load_mnist("train")[0][: args.steps * BATCH].reshape(-1, 1, 28, 28)
    sides = {"npvae_numpy": common.npvae_steps(builder_model, x, args.steps, BATCH, "numpy"),
             "npvae_numba": common.npvae_steps(builder_model, x, args.steps, BATCH, "numba"),
             "npvae_numba_hand_built": common.npvae_steps(hand_built_model, x, args.steps, BATCH, "numba")}
    if common.have_torch():
        sides.update({f"torch{'_fused' if f else ''}": torch_steps(x, args.steps, f) for f in (False, True)})
    times, other = common.alternate(sides, args.repeats)
    per_step = {k: common.median(v) / args.steps for k, v in times.items()}
    fields = {f"{k}_s_per_step": v for k, v in per_step.items()}
    fields["ratio_builder_to_hand_built"] = per_step["npvae_numba"] / per_step["npvae_numba_hand_built"]
    if "torch" in per_step:
        best = min(per_step["torch"], per_step["torch_fused"])
        fields.update(ratio_numpy=per_step["npvae_numpy"] / best, ratio_numba=per_step["npvae_numba"] / best)
    common.emit("conv_vae", threads, batch=BATCH, steps=args.steps, repeats=args.repeats, **fields,
                max_other_cores=round(other, 2))


if __name__ == "__main__":
    main()
