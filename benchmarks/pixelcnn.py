"""Seconds per training step of the PixelCNN VAE: npvae (Numba backend) and PyTorch CPU,
side by side in one process.

The network of ``PixelCNNVAE.build((1, 28, 28), 32, channels=16, n_layers=4,
kernel_size=3, first_kernel_size=5)`` (the full run of ``examples/pixelcnn_collapse.py``):
encoder Conv(1->32, 4, 2, 1)-ReLU-Conv(32->64, 4, 2, 1)-ReLU-Linear(3136->2x32); decoder
four masked convolutions (5x5 mask A, then 3x3 mask B, 16 maps) each plus a linear map
of z as a per-channel bias and a ReLU, then a 1x1 masked convolution to the logits;
dynamically binarised MNIST, Adam 1e-3, batch 100. PyTorch builds the same network, its
masked convolutions as ``conv2d(x, weight * mask)`` (the mask applied once per step, as
npvae does), and is held to the faster of its default and fused Adam.

    python benchmarks/pixelcnn.py [--threads N] [--repeats 3] [--steps 10]
"""

import common

threads = common.setup_threads()

import numpy as np  # noqa: E402

from npvae.datasets import load_mnist  # noqa: E402
from npvae.models import PixelCNNVAE  # noqa: E402
from npvae.nn.conv import causal_mask  # noqa: E402

LATENT, BATCH, CHANNELS, LAYERS = 32, 100, 16, 4
KERNELS = [5] + [3] * (LAYERS - 1)


def pixelcnn_model():
    return PixelCNNVAE.build((1, 28, 28), LATENT, channels=CHANNELS, n_layers=LAYERS, kernel_size=3,
                             first_kernel_size=5, rng=0)


def torch_steps(x, steps, fused):
    import torch
    from torch import nn as tnn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    data = torch.from_numpy(x)

    class MaskedConv(tnn.Conv2d):
        def __init__(self, c_in, c_out, k, mask):
            super().__init__(c_in, c_out, k, padding=k // 2)
            self.register_buffer("mask", torch.from_numpy(causal_mask((k, k), mask).astype(np.float32)))

        def forward(self, h):
            return F.conv2d(h, self.weight * self.mask, self.bias, padding=self.padding)

    class Decoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.convs = tnn.ModuleList(MaskedConv(1 if i == 0 else CHANNELS, CHANNELS, k, "A" if i == 0 else "B")
                                        for i, k in enumerate(KERNELS))
            self.z_maps = tnn.ModuleList(tnn.Linear(LATENT, CHANNELS) for _ in KERNELS)
            self.out = MaskedConv(CHANNELS, 1, 1, "B")

        def forward(self, z, xb):
            h = xb
            for conv, z_map in zip(self.convs, self.z_maps):
                h = F.relu(conv(h) + z_map(z)[:, :, None, None])
            return self.out(h)

    def run():
        torch.manual_seed(0)
        encoder = tnn.Sequential(tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(), tnn.Conv2d(32, 64, 4, 2, 1), tnn.ReLU(),
                                 tnn.Flatten(), tnn.Linear(3136, 2 * LATENT))
        decoder = Decoder()
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3, fused=fused)
        for s in range(steps):
            xb = torch.bernoulli(data[s * BATCH : (s + 1) * BATCH])
            common.torch_vae_step(encoder, lambda z: decoder(z, xb), opt, xb, LATENT)
    return run


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--steps", type=int, default=10)
    args = common.parse(parser)
    x = load_mnist("train", flatten=False)[0][: args.steps * BATCH]
    sides = {"npvae_numba": common.npvae_steps(pixelcnn_model, x, args.steps, BATCH, "numba", binarize=True)}
    if common.have_torch():
        sides.update({f"torch{'_fused' if f else ''}": torch_steps(x, args.steps, f) for f in (False, True)})
    times, other = common.alternate(sides, args.repeats)
    per_step = {k: common.median(v) / args.steps for k, v in times.items()}
    fields = {f"{k}_s_per_step": v for k, v in per_step.items()}
    if "torch" in per_step:
        fields["ratio_numba"] = per_step["npvae_numba"] / min(per_step["torch"], per_step["torch_fused"])
    common.emit("pixelcnn", threads, batch=BATCH, channels=CHANNELS, layers=LAYERS, steps=args.steps,
                repeats=args.repeats, **fields, max_other_cores=round(other, 2))


if __name__ == "__main__":
    main()
