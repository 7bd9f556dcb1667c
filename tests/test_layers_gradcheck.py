"""Every layer's backward against central finite differences in float64."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from npvae.testing import assert_gradcheck, away_from_kinks, conv_geometries, conv_layer, seeds
from npvae import check_module, nn
from npvae.kernels import reference, scalar

batch = st.integers(1, 4)


@given(batch, st.integers(1, 6), st.integers(1, 6), st.sampled_from(sorted(nn.activations.ACTIVATIONS)), seeds)
def test_linear(n, d_in, d_out, activation, seed):
    """With each activation taken into the layer."""
    rng = np.random.default_rng(seed)
    layer = nn.Linear(d_in, d_out, rng=rng, activation=activation).astype(np.float64)
    layer.params["b"][:] = rng.standard_normal(d_out)  # exercise a non-zero bias too
    x = rng.standard_normal((n, d_in))
    assume(np.abs(x @ layer.params["W"] + layer.params["b"]).min() > 1e-3)  # off ReLU-like kinks
    assert_gradcheck(check_module(layer, x, rng=seed))


ACTIVATIONS = [
    nn.Identity(), nn.ReLU(), nn.LeakyReLU(), nn.LeakyReLU(0.3), nn.Tanh(), nn.Sigmoid(),
    nn.Softplus(), nn.ELU(), nn.ELU(0.5),
]


@given(st.sampled_from(ACTIVATIONS), st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds,
       st.sampled_from([0.1, 1.0, 10.0]))
def test_activations(layer, shape, seed, scale):
    rng = np.random.default_rng(seed)
    x = away_from_kinks(scale * rng.standard_normal((1 + shape[0], *shape[1:])))
    assert_gradcheck(check_module(layer, x, rng=seed))


@given(st.sampled_from(sorted(scalar.KINDS)), st.floats(0.0, 2.0), seeds)
def test_the_derivative_read_from_the_output_is_the_derivative(kind, alpha, seed):
    """A conv with its activation joined keeps y = f(h) alone: f'(h) read from y (the
    reference's table, and the scalar formula both Numba backends compile) is f'(h)."""
    h = away_from_kinks(np.random.default_rng(seed).normal(scale=4, size=40))
    y = reference.activation_forward(h, kind, alpha)
    expected = reference.ACTIVATIONS[kind][1](h, y, alpha)
    np.testing.assert_allclose(reference.OUTPUT_DERIVATIVES[kind](y, alpha), expected, rtol=1e-9, atol=1e-15)
    compiled_formula = [scalar.derivative_from_output(v, scalar.KINDS[kind], alpha, 1.0) for v in y]
    np.testing.assert_allclose(compiled_formula, expected, rtol=1e-9, atol=1e-15)


@given(batch, st.lists(st.integers(1, 4), min_size=1, max_size=3), seeds)
def test_flatten_and_reshape(n, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape))
    assert_gradcheck(check_module(nn.Flatten(), x, rng=seed))
    assert_gradcheck(check_module(nn.Reshape(shape), x.reshape(n, -1), rng=seed))


def assert_conv_gradcheck(geometry, activation, seed):
    """With the activation joined to the convolution (its f' read from the output)."""
    rng = np.random.default_rng(seed)
    kwargs, x_shape = geometry
    layer, x = conv_layer(kwargs, rng, activation), rng.standard_normal(x_shape)
    plain = conv_layer(kwargs, np.random.default_rng(0))
    plain.params.update(W=layer.params["W"], b=layer.params["b"])
    assume(np.abs(plain.forward(x)).min() > 1e-3)  # off ReLU-like kinks
    assert_gradcheck(check_module(layer, x, rng=seed))


@given(conv_geometries(max_size=6), st.sampled_from(sorted(nn.activations.ACTIVATIONS)), seeds)
def test_conv2d(geometry, activation, seed):
    assert_conv_gradcheck(geometry, activation, seed)


@given(conv_geometries(max_size=6, transposed=True), st.sampled_from(sorted(nn.activations.ACTIVATIONS)), seeds)
def test_conv_transpose2d(geometry, activation, seed):
    assert_conv_gradcheck(geometry, activation, seed)


@given(seeds)
def test_sequential_conv_net(seed):
    """A small conv encoder-decoder: gradients flow through every kind of layer."""
    rng = np.random.default_rng(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1, rng=rng), nn.ELU(),
        nn.Flatten(), nn.Linear(2 * 3 * 3, 5, rng=rng), nn.Tanh(),
        nn.Linear(5, 2 * 3 * 3, rng=rng), nn.Reshape((2, 3, 3)), nn.Softplus(),
        nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1, output_padding=1, rng=rng),
    ).astype(np.float64)
    x = rng.standard_normal((2, 1, 6, 6))
    assert net.forward(x).shape == (2, 1, 6, 6)
    result = check_module(net, x, rng=seed)
    assert set(result.arrays) == {"x", "0.W", "0.b", "3.W", "3.b", "5.W", "5.b", "8.W", "8.b"}
    assert_gradcheck(result)


@given(seed=seeds, first=st.sampled_from(["linear", "conv", "conv_transpose"]))
def test_need_dx_false_skips_only_the_input_gradient(seed, first):
    """``backward(dy, need_dx=False)`` returns None and leaves every parameter gradient
    as the full backward does."""
    rng = np.random.default_rng(seed)
    head = {"linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(18, 4, rng=0)),
            "conv": lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0),
            "conv_transpose": lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, rng=0)}[first]
    net = nn.Sequential(head(), nn.Tanh(), nn.Flatten()).astype(np.float64)
    x = rng.standard_normal((2, 2, 3, 3))
    dy = rng.standard_normal(net.forward(x).shape)
    grads = []
    for need_dx in (True, False):
        net.zero_grad()
        dx = net.backward(dy, need_dx=need_dx)
        assert (dx is None) == (not need_dx)
        grads.append({k: g.copy() for k, g in net.grads.items()})
    for k in grads[0]:
        np.testing.assert_array_equal(grads[0][k], grads[1][k], err_msg=k)
