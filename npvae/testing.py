"""Property tests for your own layers and kernels: hypothesis strategies and assertions.

Needs hypothesis (``pip install -e '.[test]'``); the library itself never imports this
module. A layer of your own, tested in five lines::

    from hypothesis import given
    from npvae import nn
    from npvae.testing import arrays, assert_gradients_match

    @given(arrays(shape=(3, 4)))
    def test_my_layer(x):
        assert_gradients_match(nn.Linear(4, 2, rng=0).astype("float64"), x)

npvae's own tests use these (so every CI run exercises them).
"""

import copy

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as e:  # a clear message rather than a bare ModuleNotFoundError
    raise ImportError("npvae.testing needs hypothesis: pip install -e '.[test]'") from e

from . import kernels, nn
from .kernels import reference
from .contract import check_layer_contract
from .gradcheck import check_function, check_module
from .models import VAE
from .nn.module import Module

# ----------------------------------------------------------------------------- strategies
seeds = st.integers(0, 2**32 - 1)


@st.composite
def arrays(draw, shape=None, dtype=np.float64, max_dims=3, max_side=5, elements=None, views=True):
    """Float arrays of ``shape`` (drawn when None: 1 to ``max_dims`` axes of 1 to
    ``max_side``), values from ``elements`` (default: moderate normals with edge values
    mixed in: 0, +/-1e-3, +/-10), and with ``views`` sometimes non-contiguous (a
    transposed copy transposed back, or every other row of a taller array)."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims)))
    rng = np.random.default_rng(draw(seeds))
    a = rng.standard_normal(shape)
    if elements is None:
        edges = np.array([0.0, 1e-3, -1e-3, 10.0, -10.0])
        mask = rng.random(shape) < 0.1
        a[mask] = rng.choice(edges, size=int(mask.sum()))
    else:
        a = np.asarray(draw(st.lists(elements, min_size=a.size, max_size=a.size)), dtype=np.float64).reshape(shape)
    a = a.astype(dtype)
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"])) if views and a.ndim >= 2 else "contiguous"
    if layout == "transposed":  # same values, memory in the reversed axis order
        a = np.ascontiguousarray(a.T).T
    elif layout == "strided":  # every other row of an array twice as tall
        tall = np.repeat(a, 2, axis=0)
        a = tall[::2]
    return a


@st.composite
def conv_geometries(draw, max_channels=3, max_size=8, transposed=False):
    """Keyword arguments of a ``Conv2d`` (or ``ConvTranspose2d``) and an input shape
    that fit together by construction: the output has at least one pixel, and a
    transposed conv's ``output_padding`` is below its stride."""
    c_in, c_out = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)))
    if transposed:
        hw = (draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
        output_padding = (draw(st.integers(0, stride[0] - 1)), draw(st.integers(0, stride[1] - 1)))
        # the output, (h - 1) s - 2 p + k + op, must have a pixel: grow the input until it does
        hw = tuple(max(h, 1 + -(-(2 * p - kk - op + 1) // s)) for h, p, kk, op, s in
                   zip(hw, padding, k, output_padding, stride))
        kwargs = dict(in_channels=c_in, out_channels=c_out, kernel_size=k, stride=stride, padding=padding,
                      output_padding=output_padding)
    else:
        hw = tuple(draw(st.integers(max(1, kk - 2 * p), max_size)) for kk, p in zip(k, padding))
        kwargs = dict(in_channels=c_in, out_channels=c_out, kernel_size=k, stride=stride, padding=padding)
    return kwargs, (draw(st.integers(1, 3)), c_in, *hw)


def conv_layer(kwargs, rng, activation="identity"):
    """The float64 ``Conv2d`` of :func:`conv_geometries`' ``kwargs`` (a
    ``ConvTranspose2d`` when they hold ``output_padding``) with ``activation``, its bias
    drawn from ``rng``."""
    cls = nn.ConvTranspose2d if "output_padding" in kwargs else nn.Conv2d
    layer = cls(**kwargs, rng=rng, activation=activation).astype(np.float64)
    layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    return layer


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c_in": st.integers(1, 4), "c_out": st.integers(1, 4), "h": st.integers(1, 9),
    "w": st.integers(1, 9), "kernel": st.tuples(st.integers(1, 4), st.integers(1, 4)),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)), "padding": st.tuples(st.integers(0, 2), st.integers(0, 2)),
})
"""Convolution geometries for kernel tests, which also cover outputs of no pixel (the
caller skips those): batch ``n``, channels, image ``h`` x ``w``, kernel, stride, padding."""


def laid_out(rng, shape, dtype, layout="contiguous"):
    """A normal array of 2-D ``shape`` whose memory is laid out as asked: "contiguous",
    "transposed" (the transpose of a contiguous array) or "strided" (every other column)."""
    if layout == "transposed":
        return np.asarray(rng.normal(size=shape[::-1]), dtype=dtype).T
    if layout == "strided":
        return np.asarray(rng.normal(size=(shape[0], 2 * shape[1])), dtype=dtype)[:, ::2]
    return np.asarray(rng.normal(size=shape), dtype=dtype)


@st.composite
def small_models(draw, conv=None):
    """A small float64 VAE (MLP or conv, any likelihood) with data that suits it: ``(model, x)``."""
    rng = np.random.default_rng(draw(seeds))
    likelihood = draw(st.sampled_from(["bernoulli", "gaussian", "gaussian_learned_var", "gaussian_decoder_var"]))
    latent = draw(st.integers(1, 3))
    if conv if conv is not None else draw(st.booleans()):
        shape = (1, draw(st.integers(4, 7)), draw(st.integers(4, 7)))
        model = VAE.conv(shape, (2,), 3, latent, "tanh", likelihood, rng=rng, dtype="float64")
    else:
        shape = (draw(st.integers(2, 6)),)
        model = VAE.mlp(shape[0], (draw(st.integers(2, 5)),), latent, "tanh", likelihood, rng=rng, dtype="float64")
    n = draw(st.integers(1, 3))
    x = rng.random((n, *shape)) if likelihood == "bernoulli" else rng.standard_normal((n, *shape))
    return model, x


# ----------------------------------------------------------------------------- helpers
def away_from_kinks(x, margin=1e-2):
    """``x`` with entries near 0 moved off it, where ReLU-like activations have a kink
    (finite differences across a kink disagree with any one-sided derivative)."""
    x = np.array(x, copy=True)
    x[np.abs(x) < margin] += 3 * margin
    return x


# A kernel's tolerance against the reference, per dtype: the absolute part is scaled
# by the array's largest entry (a product's rounding error grows with its terms).
KERNEL_TOLERANCE = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12), np.dtype(np.float32): dict(rtol=2e-6, atol=2e-6)}


def assert_close(a, b, dtype, like=None):
    """``a`` equals ``b`` (both of ``dtype`` and one shape) to ``KERNEL_TOLERANCE``, the
    absolute part scaled by ``b``'s largest entry, or by ``like``'s when ``b`` was
    computed from ``like``."""
    dtype = np.dtype(dtype)
    assert a.dtype == b.dtype == dtype and a.shape == b.shape, (a.dtype, b.dtype, dtype, a.shape, b.shape)
    like = b if like is None else like
    scale = max(1.0, float(np.max(np.abs(like)))) if like.size else 1.0
    tol = KERNEL_TOLERANCE[dtype]
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


def assert_gradcheck(result):
    """Fail with the checker's table (worst entries per array) unless ``result.ok``."""
    if not hasattr(result, "ok") or not hasattr(result, "arrays"):
        raise TypeError(f"result: expected a GradcheckResult (from check_module, check_params or check_function), "
                        f"got {type(result).__name__}")
    assert result.ok, f"gradient check failed:\n{result}"


def assert_layer_contract(layer, x, rng=0, h=1e-5, rtol=1e-6, atol=1e-8):
    """Check ``layer`` against the whole layer contract on input ``x``, with random
    parameters (``npvae.contract.PROPERTIES``: finite differences for the input and every
    parameter, gradients added not assigned, x and dy untouched, ``need_dx=False``, the
    recorded output shape, float32 kept float32). On failure the message names each
    property that failed and tables the analytic and numeric values at the worst entries
    with their ratio. Returns the ``ContractReport``."""
    report = check_layer_contract(layer, x, rng, h, rtol, atol)
    assert report.ok, f"layer contract broken by {type(layer).__name__}:\n{report}"
    return report


def assert_gradients_match(module_or_function, inputs, grad=None, h=1e-5, rtol=1e-6, atol=1e-8, dy=None):
    """Central finite differences in float64 against the hand-derived gradient.

    A ``Module``: its backward, for the input ``inputs`` and every parameter, of
    L = sum(forward(x) * dy) (``dy`` random unless given). A function ``f(x) ->
    scalar``: its claimed gradient ``grad`` at ``inputs``. On failure the message
    tables the worst entries of each array."""
    inputs = np.asarray(inputs)
    if isinstance(module_or_function, Module):
        result = check_module(module_or_function, inputs, dy=dy, h=h, rtol=rtol, atol=atol)
    else:
        if grad is None:
            raise ValueError("grad: a function's claimed gradient is needed, got None")
        result = check_function(module_or_function, np.array(inputs, dtype=np.float64), grad, h, rtol, atol)
    assert_gradcheck(result)
    return result


def _copied(a):
    """An argument as a backend may change it: arrays copied, lists of arrays (Adam's
    parameters and moments) copied array by array, random generators in their state."""
    if isinstance(a, np.ndarray):
        return np.array(a, copy=True)
    if isinstance(a, np.random.Generator):
        return copy.deepcopy(a)
    if isinstance(a, (list, tuple)) and any(isinstance(b, np.ndarray) for b in a):
        return type(a)(_copied(b) for b in a)
    return a


def _flat_arrays(values):
    """Every array in ``values``, lists of arrays opened, in order, as NumPy float64."""
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flat_arrays(v)
        elif isinstance(v, np.ndarray) or kernels.is_device(v):
            yield np.asarray(kernels.to_host(v), dtype=np.float64)
        elif isinstance(v, (int, float, np.number, bool, np.bool_)):
            yield np.asarray(v, dtype=np.float64)


def assert_backends_agree(op, args, backends=("numpy", "numba"), rtol=1e-10, atol=1e-12):
    """Run the kernel op named ``op`` on each backend with copies of ``args`` (so that
    in-place updates, lists of arrays included, start from the same arrays) and require
    every output, and every argument the op may update in place, to agree with the first
    backend's (the reference, by default)."""
    backends = tuple(backends)
    if len(backends) < 2:
        raise ValueError(f"backends: expected at least two backends to compare, got {backends!r}")
    if op not in reference.OPS:
        raise ValueError(f"op: expected one of the op table's (kernels.reference.OPS), got {op!r}")
    runs, previous = [], kernels.backend
    for name in backends:
        ops = kernels.use(name)
        try:
            copies = [_copied(a) for a in args]
            out = getattr(ops, op)(*copies)
        finally:
            kernels.use(previous)
        outputs = list(out) if isinstance(out, tuple) else [out]
        runs.append((name, list(_flat_arrays(outputs)), list(_flat_arrays(a for a in copies if not isinstance(a, str)))))
    base_name, base_out, base_args = runs[0]
    for name, out, updated in runs[1:]:
        if len(out) != len(base_out):
            raise AssertionError(f"{op}: {name} returns {len(out)} arrays, {base_name} {len(base_out)}")
        for i, (a, b) in enumerate(zip(out + updated, base_out + base_args)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol,
                                       err_msg=f"{op}: {name} differs from {base_name} in result {i}")
