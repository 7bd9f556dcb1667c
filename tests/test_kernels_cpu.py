"""The Numba backend against the NumPy reference: every op, hypothesis-drawn shapes,
batch 1, odd sizes, non-contiguous and transposed inputs; and one whole VAE training
step giving the same loss and gradients on both backends."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npvae
from helpers import away_from_kinks, seeds
from npvae.kernels import cpu, reference
from npvae.models import VAE

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-6, atol=2e-6)}
dtypes = st.sampled_from([np.float64, np.float32])
layouts = st.sampled_from(["contiguous", "transposed", "strided"])


def draw(rng, shape, dtype, layout="contiguous"):
    """An array of ``shape`` whose memory is laid out as asked."""
    if layout == "transposed":
        return np.asarray(rng.normal(size=shape[::-1]), dtype=dtype).T
    if layout == "strided":
        return np.asarray(rng.normal(size=(shape[0], 2 * shape[1])), dtype=dtype)[:, ::2]
    return np.asarray(rng.normal(size=shape), dtype=dtype)


def close(a, b, dtype):
    assert a.dtype == b.dtype == dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, **TOL[dtype])


@given(seed=seeds, n=st.integers(1, 37), d_in=st.integers(1, 40), d_out=st.integers(1, 40), dtype=dtypes,
       layout=layouts)
def test_linear_forward_and_backward_equal_the_reference(seed, n, d_in, d_out, dtype, layout):
    rng = np.random.default_rng(seed)
    x, W = draw(rng, (n, d_in), dtype, layout), draw(rng, (d_in, d_out), dtype, layout)
    b, dy = draw(rng, (1, d_out), dtype)[0], draw(rng, (n, d_out), dtype, layout)
    close(cpu.linear_forward(x, W, b), reference.linear_forward(x, W, b), dtype)
    for ours, ref in zip(cpu.linear_backward(x, W, dy), reference.linear_backward(x, W, dy)):
        close(ours, ref, dtype)


@given(seed=seeds, shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), kind=st.sampled_from(sorted(cpu.KINDS)),
       alpha=st.floats(0.01, 1.0), dtype=dtypes, big=st.booleans())
def test_activations_equal_the_reference(seed, shape, kind, alpha, dtype, big):
    rng = np.random.default_rng(seed)
    x = away_from_kinks(np.asarray(rng.normal(size=shape) * (30 if big else 2), dtype=dtype))  # big: saturation
    dy = np.asarray(rng.normal(size=shape), dtype=dtype)
    y = cpu.activation_forward(x, kind, alpha)
    close(y, reference.activation_forward(x, kind, alpha), dtype)
    close(cpu.activation_backward(dy, x, y, kind, alpha), reference.activation_backward(dy, x, y, kind, alpha), dtype)


def test_activations_on_non_contiguous_input():
    x = np.random.default_rng(0).normal(size=(6, 8))[:, ::3].T
    for kind in cpu.KINDS:
        np.testing.assert_allclose(cpu.activation_forward(x, kind, 0.1), reference.activation_forward(x, kind, 0.1),
                                   rtol=1e-12)


@pytest.fixture
def numba_backend():
    npvae.kernels.use("numba")
    yield
    npvae.kernels.use("numpy")


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_vae_training_step_is_the_same_on_both_backends(activation, dtype, request):
    x = (np.random.default_rng(1).random((33, 20)) < 0.3).astype(dtype)
    eps = np.random.default_rng(2).standard_normal((33, 1, 3)).astype(dtype)
    results = {}
    for backend in ("numpy", "numba"):
        npvae.kernels.use(backend)
        try:
            model = VAE.mlp(20, (17, 9), 3, activation, "bernoulli", rng=3, dtype=dtype)
            loss, _ = model.loss_and_grad(x, eps=eps)
            results[backend] = (loss, {k: g.copy() for k, g in model.grads.items()})
        finally:
            npvae.kernels.use("numpy")
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(results["numba"][0], results["numpy"][0], **tol)
    for name, g in results["numpy"][1].items():
        np.testing.assert_allclose(results["numba"][1][name], g, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10,
                                   err_msg=name)


def test_every_model_runs_on_the_numba_backend(numba_backend):
    from npvae.models import Autoencoder, ConditionalVAE
    from npvae.nn import Conv2d

    x = (np.random.default_rng(0).random((8, 12)) < 0.5).astype(np.float32)
    for model in (VAE.mlp(12, (6,), 2, rng=0), Autoencoder.mlp(12, (6,), 2, rng=0),
                  ConditionalVAE.mlp(12, (6,), 2, rng=0, n_classes=3)):
        labels = {"y": np.arange(8) % 3} if isinstance(model, ConditionalVAE) else {}
        loss, _ = model.loss_and_grad(x, rng=0, **labels) if labels else model.loss_and_grad(x)
        assert np.isfinite(loss)
    conv = Conv2d(1, 2, 3, rng=0)
    assert conv.forward(np.ones((2, 1, 5, 5), dtype=np.float32)).shape == (2, 2, 3, 3)
