"""One conformance suite for every backend: each exports every op of the reference's op
table (``kernels.reference.OPS``) with the reference's signature, and each op gives the
reference's numbers (``npvae.testing.assert_backends_agree``: outputs, and arguments
updated in place) on small hypothesis-drawn cases in float64 and float32. The CUDA
backend runs in numba-cuda's simulator (tests/conftest.py). Each backend's own paths
(memory layouts, tile shapes, device arrays) are in test_kernels_cpu.py and
test_kernels_cuda.py."""

import importlib
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import kernels
from npvae.kernels import reference
from npvae.nn.conv import causal_mask
from npvae.testing import assert_backends_agree, conv_geometries, seeds

BACKENDS = ["numba", "cuda"]
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}
KIND = sorted(reference.ACTIVATIONS)


def normal(rng, shape, dtype):
    return np.asarray(rng.normal(size=shape), dtype=dtype)


def dense_case(rng, dtype, kind):
    x, W, b = normal(rng, (3, 5), dtype), normal(rng, (5, 4), dtype), normal(rng, (4,), dtype)
    h, y = reference.linear_forward(x, W, b, kind, 0.3)
    return x, W, b, h, y, normal(rng, (3, 4), dtype)


def conv_case(rng, dtype, geometry, transposed):
    kwargs, x_shape = geometry
    c_in, c_out, kernel = kwargs["in_channels"], kwargs["out_channels"], kwargs["kernel_size"]
    stride, padding = kwargs["stride"], kwargs["padding"]
    x = normal(rng, x_shape, dtype)
    W = normal(rng, (c_in, c_out, *kernel) if transposed else (c_out, c_in, *kernel), dtype)
    if transposed:
        y = reference.conv_transpose2d_forward(x, W, W[0, :, 0, 0], stride, padding, kwargs["output_padding"])
    else:
        y = reference.conv2d_forward(x, W, W[:, 0, 0, 0], stride, padding)
    return x, W, normal(rng, (c_out,), dtype), normal(rng, y.shape, dtype), kwargs


def latent_case(rng, dtype):
    mean, logvar, eps = normal(rng, (3, 2), dtype), 0.5 * normal(rng, (3, 2), dtype), normal(rng, (3, 2, 2), dtype)
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    return mean, logvar, eps, z


def cases(op, rng, dtype, kind, geometry, transposed_geometry):
    """The arguments of ``op`` for one drawn case."""
    if op == "matmul":
        return normal(rng, (3, 5), dtype), normal(rng, (5, 4), dtype)
    if op in ("linear_forward", "linear_backward"):
        x, W, b, h, y, dy = dense_case(rng, dtype, kind)
        if op == "linear_forward":
            return x, W, b, kind, 0.3
        return x, W, h, y, dy, normal(rng, W.shape, dtype), normal(rng, b.shape, dtype), kind, 0.3
    if op in ("local_reparam_forward", "local_reparam_backward"):  # a Bayesian dense layer's local noise
        x, W, b = normal(rng, (3, 4), dtype), normal(rng, (4, 2), dtype), normal(rng, (2,), dtype)
        W_logsigma, b_logsigma = 0.3 * normal(rng, W.shape, dtype) - 1, 0.3 * normal(rng, b.shape, dtype) - 1
        xi = normal(rng, (3, 2), dtype)
        if op == "local_reparam_forward":
            return x, W, b, W_logsigma, b_logsigma, xi
        std = reference.local_reparam_forward(x, W, b, W_logsigma, b_logsigma, xi)[1]
        return (x, W, W_logsigma, b_logsigma, xi, std, normal(rng, xi.shape, dtype),
                *(normal(rng, shape, dtype) for shape in (W.shape, b.shape, W.shape, b.shape)))
    if op == "gaussian_weight_kl":  # the KL, and its gradient added into the two last arrays
        mean, logsigma = normal(rng, (3, 5), dtype), 0.3 * normal(rng, (3, 5), dtype) - 1
        return mean, logsigma, 0.8, 0.25, normal(rng, mean.shape, dtype), normal(rng, mean.shape, dtype)
    if op in ("activation_forward", "activation_backward"):
        x = normal(rng, (3, 4), dtype)
        if op == "activation_forward":
            return x, kind, 0.3
        return normal(rng, x.shape, dtype), x, reference.activation_forward(x, kind, 0.3), kind, 0.3
    if op == "all_finite":
        x = normal(rng, (3, 4), dtype)
        x[rng.integers(3), rng.integers(4)] = rng.choice([1.0, np.nan, np.inf])
        return (x,)
    if op in ("conv_output_size", "im2col", "col2im", "conv2d_forward", "conv2d_backward"):
        x, W, b, dy, kw = conv_case(rng, dtype, geometry, False)
        geometry_args = (kw["kernel_size"], kw["stride"], kw["padding"])
        if op == "conv_output_size":
            return x.shape[2], kw["kernel_size"][0], kw["stride"][0], kw["padding"][0]
        if op == "im2col":
            return (x, *geometry_args)
        if op == "col2im":
            cols = reference.im2col(x, *geometry_args)
            return (normal(rng, cols.shape, dtype), x.shape, *geometry_args)
        if op == "conv2d_forward":
            return x, W, b, kw["stride"], kw["padding"], kind, 0.3
        y = reference.conv2d_forward(x, W, b, kw["stride"], kw["padding"], kind, 0.3)
        return (x, W, dy, normal(rng, W.shape, dtype), normal(rng, b.shape, dtype), kw["stride"], kw["padding"],
                True, kind, 0.3, y)
    if op in ("masked_conv2d_forward", "masked_conv2d_backward"):  # a causal mask, or one of no shape in particular
        k = int(rng.choice([1, 3, 5]))
        mask = causal_mask((k, k), str(rng.choice(["A", "B"]))) if rng.random() < 0.8 else rng.random((k, k)) < 0.5
        x, W, b = normal(rng, (1, 2, 4, 3), dtype), normal(rng, (2, 2, k, k), dtype), normal(rng, (2,), dtype)
        mask = mask.astype(dtype)
        if op == "masked_conv2d_forward":
            return x, W, b, mask, kind, 0.3
        y = reference.masked_conv2d_forward(x, W, b, mask, kind, 0.3)
        return (x, W, normal(rng, y.shape, dtype), normal(rng, W.shape, dtype), normal(rng, b.shape, dtype), mask,
                True, kind, 0.3, y)
    if op == "add_channel_bias":
        return normal(rng, (2, 3, 4, 5), dtype), normal(rng, (2, 3), dtype)
    if op == "append_channels":
        return normal(rng, (2, 3, 4, 5), dtype), normal(rng, (2, 2), dtype)
    if op == "channel_sums":
        return (normal(rng, (2, 3, 4, 5), dtype),)
    if op in ("conv_transpose2d_forward", "conv_transpose2d_backward"):
        x, W, b, dy, kw = conv_case(rng, dtype, transposed_geometry, True)
        if op == "conv_transpose2d_forward":
            return x, W, b, kw["stride"], kw["padding"], kw["output_padding"], kind, 0.3
        y = reference.conv_transpose2d_forward(x, W, b, kw["stride"], kw["padding"], kw["output_padding"], kind, 0.3)
        return (x, W, dy, normal(rng, W.shape, dtype), normal(rng, b.shape, dtype), kw["stride"], kw["padding"],
                True, kind, 0.3, y)
    mean, logvar, eps, z = latent_case(rng, dtype)
    if op == "reparameterize_kl":
        return mean, logvar, eps
    if op == "reparameterize_kl_backward":
        return normal(rng, eps.shape, dtype), eps, mean, logvar, normal(rng, mean.shape, dtype)
    if op == "log_pz_minus_log_qz":
        return z, eps, logvar
    if op == "log_pz_minus_log_qz_backward":
        return normal(rng, z.shape[:2], dtype), z
    if op in ("log_prior_minus_log_qz", "log_prior_minus_log_qz_backward"):  # a prior per sample row
        prior = normal(rng, (z.shape[0] * z.shape[1], 2 * z.shape[2]), dtype)
        if op == "log_prior_minus_log_qz":
            return z, eps, logvar, prior
        return (normal(rng, z.shape[:2], dtype) if rng.random() < 0.7 else 0.3), z, prior
    if op == "mae_penalty":
        return mean, logvar, 1.0, 0.5
    data, out = (rng.random((3, 6)) < 0.5).astype(dtype), normal(rng, (3, 6), dtype)
    if op == "bernoulli_log_prob":
        return data, out
    if op == "bernoulli_log_prob_grad":  # the gradient scaled as a loss weighs it
        return data, out, -0.25
    if op == "gaussian_log_prob_grad":
        return rng.random((3, 6)).astype(dtype), out, 0.5 * normal(rng, (6,), dtype), -0.25
    if op == "log_sum_exp_rows":  # a second chunk folded into the first's [m, s]
        first = reference.log_sum_exp_rows(normal(rng, (3, 2), np.float64), normal(rng, (3, 2), np.float64))
        return normal(rng, (3, 4), dtype), normal(rng, (3, 4), dtype), first
    if op == "batch_means":
        return normal(rng, (3, 2), dtype), normal(rng, (3, 4), dtype), normal(rng, (3, 2), dtype)
    if op == "adam_update":
        arrays = [[normal(rng, shape, dtype) for shape in ((3, 2), (4,))] for _ in range(4)]
        arrays[3] = [np.abs(v) for v in arrays[3]]
        return (*arrays, 1e-2, 0.9, 0.999, 1e-8, 3)
    if op in ("to_device", "clear"):
        return (out,)
    if op in ("clear_all", "pack"):
        return ([out, normal(rng, (4,), dtype)],)
    if op == "take_rows":
        return out, rng.integers(0, 3, size=5)
    if op == "add":
        return out, normal(rng, out.shape, dtype)
    if op == "add_column_sums":  # into a gradient, in place
        return out, normal(rng, (6,), dtype)
    if op in ("clip_all", "scale_all"):
        return [out, normal(rng, (4,), dtype)], 0.5
    if op == "add_scaled":  # into a gradient, in place
        return normal(rng, (3, 2), dtype), normal(rng, (3, 2), dtype), 0.1
    if op == "squared_norm":
        return ([out, normal(rng, (4,), dtype)],)
    if op == "take_columns":
        return out, 1, 4
    if op == "repeat_rows":
        return out, 3
    if op == "concat_columns":
        return out, normal(rng, (3, 2), dtype)
    if op == "scale_rows":
        return out, normal(rng, (3,), dtype)
    if op == "standard_normal":  # NumPy ``like``: the reference's draw from the generator, on every backend
        return np.random.default_rng(int(rng.integers(2**31))), (3, 4), dtype, out
    if op == "binarize":
        return rng.random((3, 6)).astype(dtype), np.random.default_rng(int(rng.integers(2**31)))
    raise AssertionError(f"no case for op {op}")


def backend_module(name):
    """The backend's op module (importing it selects nothing)."""
    return importlib.import_module(kernels.BACKENDS[name])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_exports_every_op_with_the_references_signature(backend):
    ops = backend_module(backend)
    missing = [op for op in reference.OPS if not callable(getattr(ops, op, None))]
    assert not missing, f"{backend} lacks {missing}"
    for op in reference.OPS:
        ours, theirs = inspect.signature(getattr(ops, op)), inspect.signature(getattr(reference, op))
        assert list(ours.parameters) == list(theirs.parameters), (backend, op, ours, theirs)


def test_every_op_has_a_conformance_case():
    rng = np.random.default_rng(0)
    geometry = ({"in_channels": 1, "out_channels": 2, "kernel_size": (2, 2), "stride": (1, 1), "padding": (0, 0)},
                (1, 1, 3, 3))
    transposed = ({**geometry[0], "output_padding": (0, 0)}, geometry[1])
    for op in reference.OPS:
        assert isinstance(cases(op, rng, np.float64, "tanh", geometry, transposed), tuple), op


drawn = dict(seed=seeds, dtype=st.sampled_from([np.float64, np.float32]), kind=st.sampled_from(KIND),
             geometry=conv_geometries(max_size=6), transposed_geometry=conv_geometries(max_size=5, transposed=True))


def agrees(backend, op, seed, dtype, kind, geometry, transposed_geometry):
    args = cases(op, np.random.default_rng(seed), dtype, kind, geometry, transposed_geometry)
    assert_backends_agree(op, args, backends=("numpy", backend), **TOLERANCE[dtype])


@pytest.mark.parametrize("op", reference.OPS)
@settings(max_examples=3)
@given(**drawn)
def test_every_numba_op_equals_the_reference(op, **case):
    agrees("numba", op, **case)


@pytest.mark.parametrize("op", reference.OPS)
@settings(max_examples=2)  # the simulator runs each GPU thread as a Python thread
@given(**drawn)
def test_every_cuda_op_equals_the_reference(op, **case):
    agrees("cuda", op, **case)


@pytest.mark.parametrize("name", ["numpy", *BACKENDS])
def test_a_conv_with_its_activation_refuses_what_its_backward_cannot_read(name):
    """f' is read from the output y: a backward without y (or with another shape), a
    negative alpha (the ReLU family's sign test needs alpha >= 0) or an unknown kind is
    refused before any array is written."""
    backend = reference if name == "numpy" else backend_module(name)
    x, W, dy, dW, db = np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 2, 2)), np.zeros((2, 1, 3, 3)), \
        np.zeros(2)
    with pytest.raises(ValueError, match=r"y: the backward of a convolution with activation 'relu' needs its output"):
        backend.conv2d_backward(x, W, dy, dW, db, (1, 1), (0, 0), True, "relu", 0.0)
    with pytest.raises(ValueError, match=r"y: .* of dy's shape \(1, 1, 4, 4\), got \(1, 2, 2, 1\)"):
        backend.conv_transpose2d_backward(np.ones((1, 2, 2, 2)), np.ones((2, 1, 3, 3)), np.ones((1, 1, 4, 4)), dW,
                                          np.zeros(1), (1, 1), (0, 0), True, "tanh", 0.0, np.ones((1, 2, 2, 1)))
    with pytest.raises(ValueError, match=r"alpha: expected a number >= 0 .* got -0.1"):
        backend.conv2d_forward(x, W, None, (1, 1), (0, 0), "leaky_relu", -0.1)
    with pytest.raises(ValueError, match=r"kind: expected one of \['elu', .*\], got 'gelu'"):
        backend.masked_conv2d_forward(x, np.ones((2, 1, 3, 3)), None, np.ones((3, 3)), "gelu")
    assert not dW.any() and not db.any()
