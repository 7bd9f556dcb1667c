"""Convolutions against their definitions: a nested-loop Conv2d, the adjoint identity
for ConvTranspose2d, and PyTorch's output-size formulas."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from npvae import nn
from npvae.testing import conv_geometries, conv_layer, seeds


def conv2d_loops(x, W, b, stride, padding):
    """The definition, one output at a time."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + w] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, ho, wo))
    for ni in range(n):
        for oi in range(o):
            for i in range(ho):
                for j in range(wo):
                    y[ni, oi, i, j] = b[oi] + np.sum(W[oi] * xp[ni, :, i * sh : i * sh + kh, j * sw : j * sw + kw])
    return y


@given(conv_geometries(max_size=6), seeds)
def test_conv2d_forward_matches_nested_loops(geometry, seed):
    rng = np.random.default_rng(seed)
    kwargs, x_shape = geometry
    layer = conv_layer(kwargs, rng)
    x = rng.standard_normal(x_shape)
    expected = conv2d_loops(x, layer.params["W"], layer.params["b"], kwargs["stride"], kwargs["padding"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@given(conv_geometries(max_size=6, transposed=True), seeds)
def test_conv_transpose_is_adjoint_of_conv(geometry, seed):
    """<conv(y), x> = <y, convT(x)> for a shared weight and no bias."""
    rng = np.random.default_rng(seed)
    kwargs, x_shape = geometry
    convT = conv_layer(kwargs, rng)
    convT.params["b"][:] = 0
    # The Conv2d that maps convT's output back to its input size shares W (Cin, Cout, kh, kw)
    # as its (out, in, kh, kw) weight.
    conv = nn.Conv2d(kwargs["out_channels"], kwargs["in_channels"], kwargs["kernel_size"], kwargs["stride"],
                     kwargs["padding"]).astype(np.float64)
    conv.params["W"][:] = convT.params["W"]
    x = rng.standard_normal(x_shape)
    y = rng.standard_normal((x_shape[0], kwargs["out_channels"], *convT.output_shape(x_shape[2:])))
    conv_y = conv.forward(y)
    assert conv_y.shape == x.shape
    np.testing.assert_allclose(np.sum(conv_y * x), np.sum(y * convT.forward(x)), rtol=1e-10)


@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2))
def test_output_sizes_follow_pytorch(size, k, s, p, op):
    """PyTorch: Conv2d H_out = floor((H + 2p - k) / s) + 1 (dilation 1);
    ConvTranspose2d H_out = (H - 1) s - 2p + k + output_padding."""
    x = np.zeros((1, 1, size, size + 1))
    if size + 2 * p >= k:
        y = nn.Conv2d(1, 1, k, s, p).astype(np.float64).forward(x)
        assert y.shape[2:] == ((size + 2 * p - k) // s + 1, (size + 1 + 2 * p - k) // s + 1)
    op = op % s
    out = (size - 1) * s - 2 * p + k + op
    if out >= 1:
        y = nn.ConvTranspose2d(1, 1, k, s, p, op).astype(np.float64).forward(x)
        assert y.shape[2:] == (out, out + s)


def test_known_pytorch_shapes():
    """The conv VAE of the benchmarks: 28 -> 14 -> 7 -> 14 -> 28."""
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    h = nn.Conv2d(1, 32, 4, stride=2, padding=1).forward(x)
    h = nn.Conv2d(32, 64, 4, stride=2, padding=1).forward(h)
    assert h.shape == (2, 64, 7, 7)
    h = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1).forward(h)
    h = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1).forward(h)
    assert h.shape == (2, 1, 28, 28) and h.dtype == np.float32


def test_conv_with_non_square_kernel_stride_padding():
    layer = nn.Conv2d(2, 3, (3, 1), stride=(2, 1), padding=(1, 0), rng=0).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 5))
    expected = conv2d_loops(x, layer.params["W"], layer.params["b"], (2, 1), (1, 0))
    assert expected.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
