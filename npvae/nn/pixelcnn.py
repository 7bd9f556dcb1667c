"""PixelCNN: an autoregressive decoder of binary images, conditioned on a latent code."""

import numpy as np

from .. import kernels
from ..checks import check_array, check_positive_int
from .activations import ACTIVATIONS
from .conv import MaskedConv2d
from .linear import Linear
from .module import Container


class PixelCNN(Container):
    """p(x | z) = prod_i Bernoulli(x_i; sigmoid(logit_i)), logit_i a function of z and of
    the pixels before i in raster order (van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel
    Recurrent Neural Networks", 2016), as a VAE's decoder (Chen et al., "Variational
    Lossy Autoencoder", 2017; Gulrajani et al., "PixelVAE", 2017). Its input is the pair
    ``(z, x)``: trained with x itself fed in (teacher forcing), sampled pixel by pixel.

    With ``n_layers`` = L hidden layers of ``channels`` = C maps::

        a_1 = MaskedConvA(x) + V_1 z + c_1,   h_1 = f(a_1)          (conv0, z0, act0)
        a_l = MaskedConvB(h_{l-1}) + V_l z + c_l,   h_l = f(a_l)   (l = 2..L)
        logits = MaskedConvB_1x1(h_L)                                  (out)

    z enters every layer as a per-channel bias V_l z + c_l spread over the pixels (the
    global conditioning of van den Oord et al., "Conditional Image Generation with
    PixelCNN Decoders", 2016): a path of length one from z to every layer, for d C
    weights a layer, where a map of z per pixel would cost d C H W. The receptive field
    reaches ``first_kernel_size // 2 + (L - 1) (kernel_size // 2)`` rows up; the number of
    layers and the kernel sizes turn the decoder's power (and with it how far it can
    model x without z).

    Backward, from dL/dlogits, for l = L..1, with S the sum over the pixels::

        dL/da_l   = dL/dh_l * f'(a_l)          (the activation's backward)
        dL/dV_l  += z^T S(dL/da_l),   dL/dc_l += sum_n S(dL/da_l)   (the Linear z_l's backward)
        dL/dz    += S(dL/da_l) V_l^T
        dL/dh_l-1 = MaskedConv_l's input gradient of dL/da_l

    and no gradient for x (data). Returns dL/dz. f is ``activation`` (ReLU by default;
    a key of ``nn.activations.ACTIVATIONS``).
    """

    def __init__(self, latent_dim, in_channels=1, channels=32, n_layers=4, kernel_size=5, first_kernel_size=7,
                 activation="relu", rng=None, dtype=np.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.channels = check_positive_int(channels, "channels")
        self.n_layers = check_positive_int(n_layers, "n_layers")
        # ints (MaskedConv2d checks that they are odd): rows_above reads them as one size each
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.first_kernel_size = check_positive_int(first_kernel_size, "first_kernel_size")
        self.activation = activation
        children = []
        for layer in range(self.n_layers):
            k, mask, c_in = (first_kernel_size, "A", in_channels) if layer == 0 else (kernel_size, "B", channels)
            children += [(f"conv{layer}", MaskedConv2d(c_in, channels, k, mask, rng=rng, dtype=dtype)),
                         (f"z{layer}", Linear(latent_dim, channels, rng=rng, dtype=dtype)),
                         (f"act{layer}", ACTIVATIONS[activation]())]
        children.append(("out", MaskedConv2d(channels, in_channels, 1, "B", rng=rng, init="glorot_uniform",
                                             dtype=dtype)))
        super().__init__(children)

    def forward(self, zx):
        """``zx = (z, x)``: z (N, d), x (N, C, H, W). Returns the logits (N, C, H, W)."""
        if not (isinstance(zx, tuple) and len(zx) == 2):
            raise TypeError(f"zx: expected the pair (z, x) of codes and images, got {type(zx).__name__}")
        z, x = zx
        dtype = self.children["out"].params["W"].dtype
        check_array(z, "z", shape=(None, self.latent_dim), dtype=dtype)
        check_array(x, "x", shape=(len(z), self.in_channels, None, None), dtype=dtype)
        h = x
        for layer in range(self.n_layers):
            a = self.children[f"conv{layer}"].forward(h)
            a = kernels.ops.add_channel_bias(a, self.children[f"z{layer}"].forward(z))
            h = self.children[f"act{layer}"].forward(a)
        logits = self.children["out"].forward(h)
        self.out_shape = logits.shape
        return logits

    def backward(self, dlogits, need_dx=True):
        """dL/dz (the pair's x is data: no gradient)."""
        dh = self.children["out"].backward(dlogits)
        dz = None
        for layer in reversed(range(self.n_layers)):
            da = self.children[f"act{layer}"].backward(dh)
            dz_layer = self.children[f"z{layer}"].backward(kernels.ops.channel_sums(da))
            dz = dz_layer if dz is None else kernels.ops.add(dz, dz_layer)
            dh = self.children[f"conv{layer}"].backward(da, need_dx=layer > 0)
        return dz

    def config(self):
        return {"latent_dim": self.latent_dim, "in_channels": self.in_channels, "channels": self.channels,
                "n_layers": self.n_layers, "kernel_size": self.kernel_size,
                "first_kernel_size": self.first_kernel_size, "activation": self.activation}

    def rows_above(self):
        """How many rows above a pixel its logit can read (and how many columns to either
        side): the receptive field's reach."""
        return self.first_kernel_size // 2 + (self.n_layers - 1) * (self.kernel_size // 2)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"PixelCNN({args})"
