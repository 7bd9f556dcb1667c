"""Builders for the networks the models use: MLPs, and conv encoders with their
mirrored transposed-conv decoders."""

import numpy as np

from .. import kernels, nn
from ..checks import check_positive_int


def _check_activation(activation):
    if activation not in nn.activations.ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(nn.activations.ACTIVATIONS)}, got {activation!r}")


def default_init(activation):
    """Glorot-uniform for tanh/sigmoid/identity nets, He-normal for the ReLU family."""
    return "glorot_uniform" if activation in ("tanh", "sigmoid", "identity") else "he_normal"


def torch_default_biases(network, rng):
    """Biases drawn as PyTorch draws them, U(+/- 1/sqrt(fan_in)), fan_in as the layer's
    weight init takes it (for a ConvTranspose2d, PyTorch takes the output channels)."""
    for layer in network:
        if isinstance(layer, nn.Linear):
            fan_in = layer.in_features
        elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            continue
        b = layer.params["b"]
        b[...] = rng.uniform(-1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in), b.shape)
    return network


def mlp(sizes, activation="tanh", rng=None, init=None):
    """Linear layers of the given sizes, each but the last followed by ``activation``
    (taken into the layer, so that a backend fuses it):
    ``mlp([784, 500, 40])`` is Linear(784, 500, activation="tanh") - Linear(500, 40).
    """
    _check_activation(activation)
    init = init or default_init(activation)
    nn.init.initializer(init)
    last = len(sizes) - 2
    return nn.Sequential(*(nn.Linear(a, b, rng=rng, init=init, activation="identity" if i == last else activation)
                           for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))))


def conv_sizes(image_shape, channels, kernel_size):
    """The per-layer kernel sizes, and the spatial size (H, W) of the image and after
    each stride-2 convolution, or a ValueError when the image is too small for them."""
    if not channels:
        raise ValueError("channels: expected at least one convolution's channels, got none")
    for c in channels:
        check_positive_int(c, "channels")
    kernels_ = [kernel_size] * len(channels) if isinstance(kernel_size, int) else list(kernel_size)
    if len(kernels_) != len(channels):
        raise ValueError(f"kernel_size: expected an int or one per conv layer ({len(channels)}), got {kernel_size!r}")
    kernels_ = [check_positive_int(k, "kernel_size", 2) for k in kernels_]
    sizes = [tuple(check_positive_int(s, "image_shape") for s in image_shape[1:])]
    for k in kernels_:
        sizes.append(tuple(kernels.ops.conv_output_size(s, k, 2, (k - 1) // 2) for s in sizes[-1]))
        if min(sizes[-1]) < 1:
            raise ValueError(f"image_shape: {tuple(image_shape)} is too small for {len(channels)} stride-2 "
                             f"convolutions of kernel sizes {kernels_} (sizes {sizes}); use fewer channels entries")
    return kernels_, sizes


def conv_encoder(image_shape, channels, kernel_size, activation, out_features, rng=None, init=None):
    """Conv2d(c_in -> channels[0], k, stride 2, padding (k-1)//2, with ``activation``) -
    ... - Flatten - Linear(-> out_features). Each convolution halves the size (rounding up
    or down as the kernel makes it); ``image_shape`` is (C, H, W), its C including any
    label channels."""
    _check_activation(activation)
    init = init or default_init(activation)
    nn.init.initializer(init)
    ks, sizes = conv_sizes(image_shape, channels, kernel_size)
    layers, c_in = [], image_shape[0]
    for c, k in zip(channels, ks):
        layers.append(nn.Conv2d(c_in, c, k, 2, (k - 1) // 2, rng=rng, init=init, activation=activation))
        c_in = c
    h, w = sizes[-1]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w, out_features, rng=rng, init=init))


def conv_decoder(in_features, image_shape, channels, kernel_size, activation, out_channels, rng=None, init=None):
    """The mirror of :func:`conv_encoder`: Linear(in_features -> the last conv's
    output, with ``activation``) - Reshape - ConvTranspose2d layers (stride 2) back to
    (out_channels, H, W), each with ``activation`` but the last.

    A stride-2 convolution maps two sizes to one (28 and 27 both to 14 with k4 p1);
    each transposed convolution's ``output_padding`` (0 or 1) picks the size the
    encoder saw, so odd sizes (Frey faces' 28 x 20 -> 14 x 10 -> 7 x 5, or 27) come
    back exactly, with no crop."""
    _check_activation(activation)
    init = init or default_init(activation)
    ks, sizes = conv_sizes(image_shape, channels, kernel_size)
    h, w = sizes[-1]
    layers = [nn.Linear(in_features, channels[-1] * h * w, rng=rng, init=init, activation=activation),
              nn.Reshape((channels[-1], h, w))]
    for i in reversed(range(len(channels))):
        k, p = ks[i], (ks[i] - 1) // 2
        c_out = channels[i - 1] if i else out_channels
        size = [kernels.ops.conv_output_size(s, k, 2, p, 0, transposed=True) for s in sizes[i + 1]]
        output_padding = [target - s for target, s in zip(sizes[i], size)]  # 0 or 1: see the docstring
        layers.append(nn.ConvTranspose2d(channels[i], c_out, k, 2, p, output_padding, rng=rng, init=init,
                                         activation=activation if i else "identity"))
    return nn.Sequential(*layers)
