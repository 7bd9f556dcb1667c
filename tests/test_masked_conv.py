"""MaskedConv2d: the layer contract (finite differences), exact causality of one layer
and of a PixelCNN-style stack on every backend, equality with Conv2d on the masked
weight, specs and checkpoints."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npvae
from npvae import io, nn
from npvae.distributions import Bernoulli
from npvae.models import VAE
from npvae.spec import build_layer, layer_spec
from npvae.testing import assert_layer_contract, seeds

odd = st.sampled_from([1, 3, 5])


@given(seeds, st.integers(1, 3), st.integers(1, 3), odd, odd, st.sampled_from("AB"),
       st.sampled_from(["identity", "tanh", "softplus"]))
def test_masked_conv_keeps_the_layer_contract(seed, c_in, c_out, kh, kw, mask, activation):
    """With a smooth activation joined (the ReLU family's kinks: test_layers_gradcheck)."""
    rng = np.random.default_rng(seed)
    layer = nn.MaskedConv2d(c_in, c_out, (kh, kw), mask, rng=rng, activation=activation)
    assert_layer_contract(layer, rng.standard_normal((2, c_in, 5, 6)))


def later_pixels(h, w, i, j, mask):
    """The pixels that output (i, j) must not read: at or after it ("A"), after it ("B")."""
    first = i * w + j + (mask == "B")
    return [(k // w, k % w) for k in range(first, h * w)]


def assert_causal(backend, seed, kernel, mask, size, one_at_a_time):
    """Perturbing input pixels at or after (i, j) (mask A) or after it (mask B), one at
    a time or all at once, leaves output (i, j) exactly as it was, in every channel."""
    rng = np.random.default_rng(seed)
    layer = nn.MaskedConv2d(2, 3, kernel, mask, rng=rng, dtype=np.float64)
    x = rng.standard_normal((1, 2, size, size))
    i, j = rng.integers(size), rng.integers(size)
    later = later_pixels(size, size, i, j, mask)
    npvae.kernels.use(backend)
    try:
        y = layer.forward(x)
        for group in ([[p] for p in later] if one_at_a_time else [later]):
            x2 = x.copy()
            for a, b in group:
                x2[0, :, a, b] += rng.standard_normal(2) * 10
            assert np.array_equal(layer.forward(x2)[0, :, i, j], y[0, :, i, j]), group
    finally:
        npvae.kernels.use("numpy")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@given(seed=seeds, kernel=odd, mask=st.sampled_from("AB"), size=st.integers(2, 6), one_at_a_time=st.booleans())
def test_an_output_pixel_never_reads_a_later_input_pixel(backend, seed, kernel, mask, size, one_at_a_time):
    assert_causal(backend, seed, kernel, mask, size, one_at_a_time)


def test_causality_on_the_cuda_backend():
    """The simulator runs a kernel thread by thread in Python: one case, all the later
    pixels perturbed at once (the mask is applied to the weight before any backend's
    kernel, so the numpy and numba cases above cover both masks' logic)."""
    assert_causal("cuda", 0, 3, "A", 4, one_at_a_time=False)


def test_a_stack_of_one_mask_a_and_mask_b_layers_stays_causal():
    """The PixelCNN rule: mask A first, then B; the stack's output (i, j) depends on
    exactly the pixels strictly before (i, j) that its receptive field reaches."""
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.MaskedConv2d(1, 4, 3, "A", rng=rng), nn.ReLU(), nn.MaskedConv2d(4, 4, 3, "B", rng=rng),
                        nn.ReLU(), nn.MaskedConv2d(4, 1, 1, "B", rng=rng)).astype(np.float64)
    x = rng.standard_normal((1, 1, 6, 6))
    y = net.forward(x)
    for i, j in ((0, 0), (2, 3), (5, 5)):
        for a, b in later_pixels(6, 6, i, j, "A"):
            x2 = x.copy()
            x2[0, 0, a, b] += 5.0
            assert net.forward(x2)[0, 0, i, j] == y[0, 0, i, j], (i, j, a, b)
    x2 = x.copy()
    x2[0, 0, 2, 2] += 5.0  # before (2, 3) on its row: read
    assert net.forward(x2)[0, 0, 2, 3] != y[0, 0, 2, 3]


@given(seeds, st.sampled_from("AB"), odd)
def test_masked_conv_is_conv2d_on_the_masked_weight(seed, mask, k):
    rng = np.random.default_rng(seed)
    masked = nn.MaskedConv2d(2, 3, k, mask, rng=rng, dtype=np.float64)
    masked.params["W"][:] = rng.standard_normal(masked.params["W"].shape)  # unmasked entries too: the mask must act
    plain = nn.Conv2d(2, 3, k, padding=k // 2, dtype=np.float64)
    plain.params["W"][:] = masked.params["W"] * nn.conv.causal_mask((k, k), mask)
    plain.params["b"][:] = masked.params["b"] = rng.standard_normal(3)
    x, dy = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 3, 5, 4))
    assert np.array_equal(masked.forward(x), plain.forward(x))
    assert np.array_equal(masked.backward(dy), plain.backward(dy))
    assert np.array_equal(masked.grads["W"], plain.grads["W"] * nn.conv.causal_mask((k, k), mask))
    assert np.array_equal(masked.grads["b"], plain.grads["b"])


def test_causal_masks_of_a_3x3_kernel():
    assert nn.conv.causal_mask((3, 3), "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert nn.conv.causal_mask((3, 3), "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize("kwargs, message", [(dict(kernel_size=4), "odd"), (dict(kernel_size=3, mask="C"), "mask")])
def test_masked_conv_refuses_what_it_cannot_mask(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.MaskedConv2d(1, 2, **kwargs)


def test_masked_conv_round_trips_through_specs_and_checkpoints(tmp_path):
    layer = nn.MaskedConv2d(2, 3, (3, 5), "A", rng=0)
    rebuilt = build_layer(layer_spec(layer))
    assert type(rebuilt) is nn.MaskedConv2d and rebuilt.config() == layer.config() and rebuilt.mask_type == "A"
    rng = np.random.default_rng(0)
    decoder = nn.Sequential(nn.Linear(2, 16, rng=rng), nn.Reshape((1, 4, 4)), nn.MaskedConv2d(1, 4, 3, "A", rng=rng),
                            nn.ReLU(), nn.MaskedConv2d(4, 1, 3, "B", rng=rng))
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 4, rng=rng))
    model = VAE(encoder, decoder, Bernoulli(), 2, (1, 4, 4))
    x = (rng.random((3, 1, 4, 4)) < 0.5).astype(np.float32)
    io.save_checkpoint(tmp_path / "m.npz", model)
    loaded = io.load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.elbo(x, rng=1), model.elbo(x, rng=1))
