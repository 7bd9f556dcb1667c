"""Initialisers' variances, dtype preservation, parameter naming, the backend switch."""

import numpy as np
import pytest

import npvae
from npvae import nn
from npvae.nn.init import INITIALIZERS


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initialiser_variance(name):
    fan_in, fan_out = 300, 200
    w = INITIALIZERS[name](np.random.default_rng(0), (fan_in, fan_out), fan_in, fan_out, np.float64)
    expected = {"glorot": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in, "torch": 1.0 / (3 * fan_in)}[name.split("_")[0]]
    # 60,000 draws: the sample variance is within 2% of its expectation with overwhelming probability
    assert w.var() == pytest.approx(expected, rel=0.02)
    assert abs(w.mean()) < 0.01


def test_seeded_layers_are_reproducible():
    a, b = nn.Linear(5, 4, rng=3), nn.Linear(5, 4, rng=3)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], nn.Linear(5, 4, rng=4).params["W"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_keeps_its_dtype(dtype):
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.LeakyReLU(), nn.ConvTranspose2d(2, 1, 2, stride=2), nn.Sigmoid(),
        nn.Flatten(), nn.Linear(64, 3), nn.ELU(), nn.Softplus(), nn.Tanh(), nn.Identity(), nn.ReLU(),
    ).astype(dtype)
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(dtype)
    y = net.forward(x)
    assert y.dtype == dtype and y.shape == (2, 3)
    dx = net.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert all(g.dtype == dtype for g in net.grads.values())


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "softplus", "elu"])
def test_linear_with_an_activation_is_linear_then_that_activation(activation):
    """What ``Linear(..., activation=...)`` promises, forward and backward."""
    rng = np.random.default_rng(0)
    fused = nn.Linear(5, 4, rng=1, activation=activation).astype(np.float64)
    apart = nn.Sequential(nn.Linear(5, 4, rng=1), nn.activations.ACTIVATIONS[activation]()).astype(np.float64)
    x, dy = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
    np.testing.assert_allclose(fused.forward(x), apart.forward(x), rtol=1e-12)
    np.testing.assert_allclose(fused.backward(dy), apart.backward(dy), rtol=1e-12)
    for name in ("W", "b"):
        np.testing.assert_allclose(fused.grads[name], apart.grads[f"0.{name}"], rtol=1e-12)


def test_sequential_names_and_zero_grad():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Sequential(nn.Linear(3, 1)))
    assert list(net.params) == ["0.W", "0.b", "2.0.W", "2.0.b"]
    assert all(net.params[k].shape == net.grads[k].shape for k in net.params)
    net.forward(np.ones((4, 2), np.float32))
    net.backward(np.ones((4, 1), np.float32))
    assert any(np.any(g != 0) for g in net.grads.values())
    net.zero_grad()
    assert all(np.all(g == 0) for g in net.grads.values())


def test_backward_accumulates():
    layer = nn.Linear(3, 2, rng=0)
    x, dy = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    layer.forward(x)
    layer.backward(dy)
    once = layer.grads["W"].copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.grads["W"], 2 * once)


def test_backend_switch():
    assert npvae.kernels.backend == "numpy"
    assert npvae.kernels.use("numpy") is npvae.kernels.ops
    with pytest.raises(ValueError, match=r"backend: expected one of \['cuda', 'numba', 'numpy'\], got 'tpu'"):
        npvae.kernels.use("tpu")
    assert npvae.kernels.backend == "numpy"
