"""The Numba backend's convolutions against the NumPy reference: forward and both
backwards on hypothesis-drawn geometries, channels-last and contiguous inputs, and a
whole conv VAE step on both backends."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import npvae
from npvae.kernels import cpu, reference
from npvae.models import VAE
from npvae.testing import assert_close, conv_cases, seeds

dtypes = st.sampled_from([np.float64, np.float32])


def conv_arrays(rng, cfg, dtype, transposed_conv, contiguous):
    """x, W, b for a conv (or a transposed conv) of ``cfg``; x non-contiguous unless asked."""
    shape = (cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])
    x = np.asarray(rng.normal(size=shape), dtype=dtype)
    if not contiguous:  # the same values, laid out channels-last
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    channels = (cfg["c_in"], cfg["c_out"]) if transposed_conv else (cfg["c_out"], cfg["c_in"])
    W = np.asarray(rng.normal(size=(*channels, *cfg["kernel"])), dtype=dtype)
    return x, W, np.asarray(rng.normal(size=cfg["c_out"]), dtype=dtype)


def compare_backward(op_name, args, dy, W, b, dtype, ys=(None, None), **kwargs):
    """Run ``op_name`` backward on both backends from the same non-zero gradients, each
    given its own forward's output in ``ys`` (Numba's, channels-last; the reference's)."""
    results = []
    for backend, y in zip((cpu, reference), ys):
        dW, db = W * 0.5, b * 0.5  # as after an earlier backward: the op must add to them
        dx = getattr(backend, op_name)(*args[:2], dy, dW, db, y=y, **kwargs)
        results.append((dx, dW, db))
    for ours, ref in zip(results[0][:2], results[1][:2]):
        assert_close(ours, ref, dtype)
    # db is a sum over every pixel: the float32 reference's rounding grows with sum |dy|
    # (the Numba sums run in float64), so that sets its absolute tolerance.
    assert_close(results[0][2], results[1][2], dtype, like=np.abs(dy).sum(axis=(0, 2, 3)))


kinds = st.sampled_from(sorted(reference.ACTIVATIONS))


@given(seed=seeds, cfg=conv_cases, dtype=dtypes, contiguous=st.booleans(), kind=kinds)
def test_conv2d_equals_the_reference(seed, cfg, dtype, contiguous, kind):
    rng = np.random.default_rng(seed)
    x, W, b = conv_arrays(rng, cfg, dtype, False, contiguous)
    args = (cfg["stride"], cfg["padding"])
    ho, wo = (reference.conv_output_size(s, k, st_, p) for s, k, st_, p in
              zip((cfg["h"], cfg["w"]), cfg["kernel"], cfg["stride"], cfg["padding"]))
    if min(ho, wo) < 1:
        return
    kernel = cfg["kernel"]
    assert_close(cpu.im2col(x, kernel, *args), reference.im2col(x, kernel, *args), dtype)
    cols = np.asarray(rng.normal(size=(cfg["n"], ho, wo, cfg["c_in"], *kernel)), dtype=dtype)
    assert_close(cpu.col2im(cols, x.shape, kernel, *args),
                 np.ascontiguousarray(reference.col2im(cols, x.shape, kernel, *args)),
                 dtype)
    ys = cpu.conv2d_forward(x, W, b, *args, kind, 0.3), reference.conv2d_forward(x, W, b, *args, kind, 0.3)
    assert_close(ys[0], np.ascontiguousarray(ys[1]), dtype)
    dy = np.asarray(rng.normal(size=(cfg["n"], cfg["c_out"], ho, wo)), dtype=dtype)
    compare_backward("conv2d_backward", (x, W), dy, W, b, dtype, ys, stride=cfg["stride"], padding=cfg["padding"],
                     kind=kind, alpha=0.3)
    assert cpu.conv2d_backward(x, W, dy, W * 0, b * 0, *args, need_dx=False) is None


@given(seed=seeds, cfg=conv_cases, dtype=dtypes, contiguous=st.booleans(), output_padding=st.integers(0, 2), kind=kinds)
def test_conv_transpose2d_equals_the_reference(seed, cfg, dtype, contiguous, output_padding, kind):
    rng = np.random.default_rng(seed)
    x, W, b = conv_arrays(rng, cfg, dtype, True, contiguous)
    op = tuple(min(output_padding, s - 1) for s in cfg["stride"])
    args = (cfg["stride"], cfg["padding"])
    ho, wo = (reference.conv_output_size(s, k, st_, p, o, transposed=True) for s, k, st_, p, o in
              zip((cfg["h"], cfg["w"]), cfg["kernel"], cfg["stride"], cfg["padding"], op))
    if min(ho, wo) < 1:
        return
    ys = (cpu.conv_transpose2d_forward(x, W, b, *args, op, kind, 0.3),
          reference.conv_transpose2d_forward(x, W, b, *args, op, kind, 0.3))
    assert_close(ys[0], np.ascontiguousarray(ys[1]), dtype)
    dy = np.asarray(rng.normal(size=(cfg["n"], cfg["c_out"], ho, wo)), dtype=dtype)
    compare_backward("conv_transpose2d_backward", (x, W), dy, W, b, dtype, ys, stride=cfg["stride"],
                     padding=cfg["padding"], kind=kind, alpha=0.3)


def test_a_conv_vae_step_is_the_same_on_both_backends():
    from npvae import nn
    from npvae.distributions import Bernoulli

    x = np.random.default_rng(0).random((5, 1, 8, 8))
    eps = np.random.default_rng(1).standard_normal((5, 1, 3))
    results = {}
    for backend in ("numpy", "numba"):
        npvae.kernels.use(backend)
        try:
            rng = np.random.default_rng(2)
            encoder = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1, rng=rng), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(64, 6, rng=rng))
            decoder = nn.Sequential(nn.Linear(3, 64, rng=rng), nn.Reshape((4, 4, 4)),
                                    nn.ConvTranspose2d(4, 1, 4, 2, 1, rng=rng))
            model = VAE(encoder, decoder, Bernoulli(), 3, (1, 8, 8)).astype(np.float64)
            loss, _ = model.loss_and_grad(x, eps=eps)
            results[backend] = (loss, {k: g.copy() for k, g in model.grads.items()})
        finally:
            npvae.kernels.use("numpy")
    np.testing.assert_allclose(results["numba"][0], results["numpy"][0], rtol=1e-10)
    for name, g in results["numpy"][1].items():
        np.testing.assert_allclose(results["numba"][1][name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_conv2d_backward_reuses_the_forwards_fields_only_for_that_input(monkeypatch):
    """The backward of the x the forward just saw reads the fields the forward kept; after
    a forward on another x of the same shape, or a second backward (the first wrote over
    them), it makes them again: every gradient equals the reference's each time."""
    rng = np.random.default_rng(0)
    x, other = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((2, 3, 6, 6))
    W, dy = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((2, 4, 3, 3))
    geometry = ((2, 2), (1, 1))

    def backward(backend):
        dW, db = np.zeros_like(W), np.zeros(4)
        dx = backend.conv2d_backward(x, W, dy, dW, db, *geometry)
        return dx, dW, db

    from npvae.kernels.cpu import conv

    made, fields = [], conv._fields
    monkeypatch.setattr(conv, "_fields", lambda *args, **kwargs: (made.append(1), fields(*args, **kwargs))[1])
    expected = backward(reference)
    for between in (None, "another forward", "a first backward"):
        cpu.conv2d_forward(x, W, None, *geometry)
        if between == "another forward":
            cpu.conv2d_forward(other, W, None, *geometry)
        elif between == "a first backward":
            backward(cpu)
        made.clear()
        for ours, ref in zip(backward(cpu), expected):
            assert_close(ours, ref, np.float64)
        assert len(made) == (0 if between is None else 1), between
