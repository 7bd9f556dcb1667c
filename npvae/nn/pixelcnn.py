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

    z enters every layer by a path of length one, as a bias V_l z + c_l, in one of two
    shapes (``z_bias``):

    - "channel": one number per channel, spread over the pixels (the global
      conditioning of van den Oord et al., "Conditional Image Generation with PixelCNN
      Decoders", 2016), d C weights a layer. z can say what to draw but not where: in
      a deep stack the masked layers can turn such biases into positions, in a shallow
      one they cannot.
    - "pixel": one number per channel and pixel (V_l z reshaped to (C, H, W); the
      spatial conditioning of that paper, and of PixelVAE's and VLAE's decoders, where
      z is decoded to a feature map), d C H W weights a layer, ``image_size`` = (H, W)
      fixed: z can place strokes itself, so even a decoder that sees only its
      neighbours can use it.

    The receptive field reaches ``first_kernel_size // 2 + (L - 1) (kernel_size // 2)``
    rows up; the number of layers and the kernel sizes turn the decoder's power (and
    with it how far it can model x without z).

    Backward, from dL/dlogits, for l = L..1, with S the sum over the pixels ("channel";
    for "pixel" S is the reshape of (N, C, H, W) to (N, C H W): each pixel its own bias)::

        dL/da_l   = dL/dh_l * f'(a_l)          (the activation's backward)
        dL/dV_l  += z^T S(dL/da_l),   dL/dc_l += sum_n S(dL/da_l)   (the Linear z_l's backward)
        dL/dz    += S(dL/da_l) V_l^T
        dL/dh_l-1 = MaskedConv_l's input gradient of dL/da_l

    and no gradient for x (data). Returns dL/dz. f is ``activation`` (ReLU by default;
    a key of ``nn.activations.ACTIVATIONS``).
    """

    def __init__(self, latent_dim, in_channels=1, channels=32, n_layers=4, kernel_size=5, first_kernel_size=7,
                 activation="relu", rng=None, dtype=np.float32, z_bias="channel", image_size=None):
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
        if z_bias not in ("channel", "pixel"):
            raise ValueError(f"z_bias: expected 'channel' or 'pixel', got {z_bias!r}")
        if z_bias == "pixel" and not (isinstance(image_size, (tuple, list)) and len(image_size) == 2):
            raise ValueError(f"image_size: z_bias='pixel' takes the images' (height, width), got {image_size!r}")
        self.z_bias, self.windowed = z_bias, False  # windowed: the last pass read a window (sampling)
        self.image_size = None if z_bias == "channel" else tuple(
            check_positive_int(n, f"image_size[{i}]") for i, n in enumerate(image_size))
        bias_size = channels * (1 if z_bias == "channel" else self.image_size[0] * self.image_size[1])
        children = []
        for layer in range(self.n_layers):
            k, mask, c_in = (first_kernel_size, "A", in_channels) if layer == 0 else (kernel_size, "B", channels)
            children += [(f"conv{layer}", MaskedConv2d(c_in, channels, k, mask, rng=rng, dtype=dtype)),
                         (f"z{layer}", Linear(latent_dim, bias_size, rng=rng, dtype=dtype)),
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
        check_array(x, "x", shape=(len(z), self.in_channels, *(self.image_size or (None, None))), dtype=dtype)
        self.windowed = False
        return self._logits(x, self.z_biases(z), None)

    def z_biases(self, z):
        """Each layer's bias V_l z + c_l: (N, C) per channel, (N, C, H, W) per pixel."""
        shape = (len(z), self.channels, *(self.image_size or ()))
        return [self.children[f"z{layer}"].forward(z).reshape(shape) for layer in range(self.n_layers)]

    def window_logits(self, biases, x, top, left):
        """Sampling's pass: the logits of ``x`` (N, C, h, w), the window of the images
        whose first pixel is (top, left), given ``biases = z_biases(z)`` (computed once
        for all the passes; per-pixel biases are cut to the window). No backward."""
        dtype = self.children["out"].params["W"].dtype
        check_array(x, "x", shape=(None, self.in_channels, None, None), dtype=dtype)
        shape = (len(x), self.channels, *(self.image_size or ()))
        got = [getattr(b, "shape", None) for b in biases] if isinstance(biases, list) else type(biases).__name__
        if got != [shape] * self.n_layers:
            raise ValueError(f"biases: expected z_biases(z) for these {len(x)} images, {self.n_layers} arrays of shape "
                             f"{shape}, got {got}")
        if self.image_size is not None and not (0 <= top and 0 <= left and top + x.shape[2] <= self.image_size[0]
                                                and left + x.shape[3] <= self.image_size[1]):
            raise ValueError(f"top, left: a window of {x.shape[2:]} at {(top, left)} is not inside the images "
                             f"{self.image_size}")
        self.windowed = True
        return self._logits(x, biases, (slice(top, top + x.shape[2]), slice(left, left + x.shape[3])))

    def _logits(self, x, biases, window):
        h = x
        for layer, bias in enumerate(biases):
            a = self.children[f"conv{layer}"].forward(h)
            if self.z_bias == "channel":
                a = kernels.ops.add_channel_bias(a, bias)
            elif window is None:
                a = kernels.ops.add(a, bias)
            else:
                a = a + bias[:, :, window[0], window[1]]
            h = self.children[f"act{layer}"].forward(a)
        logits = self.children["out"].forward(h)
        self.out_shape = logits.shape
        return logits

    def backward(self, dlogits, need_dx=True):
        """dL/dz (the pair's x is data: no gradient)."""
        if self.windowed:
            raise RuntimeError("backward: the last pass read a window of the images (sampling); run forward on "
                               "whole images (z, x) before backward")
        dh = self.children["out"].backward(dlogits)
        dz = None
        for layer in reversed(range(self.n_layers)):
            da = self.children[f"act{layer}"].backward(dh)
            dbias = kernels.ops.channel_sums(da) if self.z_bias == "channel" else da.reshape(len(da), -1)
            dz_layer = self.children[f"z{layer}"].backward(dbias)
            dz = dz_layer if dz is None else kernels.ops.add(dz, dz_layer)
            dh = self.children[f"conv{layer}"].backward(da, need_dx=layer > 0)
        return dz

    def config(self):
        return {"latent_dim": self.latent_dim, "in_channels": self.in_channels, "channels": self.channels,
                "n_layers": self.n_layers, "kernel_size": self.kernel_size,
                "first_kernel_size": self.first_kernel_size, "activation": self.activation, "z_bias": self.z_bias,
                "image_size": None if self.image_size is None else list(self.image_size)}

    def rows_above(self):
        """How many rows above a pixel its logit can read (and how many columns to either
        side): the receptive field's reach."""
        return self.first_kernel_size // 2 + (self.n_layers - 1) * (self.kernel_size // 2)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"PixelCNN({args})"
