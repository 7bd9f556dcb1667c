"""The Numba backend against the NumPy reference: every op, hypothesis-drawn shapes,
batch 1, odd sizes, non-contiguous and transposed inputs; and one whole VAE training
step giving the same loss and gradients on both backends."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npvae
from npvae.testing import KERNEL_TOLERANCE, assert_close, away_from_kinks, laid_out, seeds
from npvae.kernels import cpu, reference
from npvae.models import VAE

dtypes = st.sampled_from([np.float64, np.float32])
layouts = st.sampled_from(["contiguous", "transposed", "strided"])


@given(seed=seeds, n=st.integers(0, 37), d_in=st.integers(1, 40) | st.integers(100, 130), d_out=st.integers(1, 40),
       kind=st.sampled_from(sorted(cpu.KINDS)), alpha=st.floats(0.01, 1.0), dtype=dtypes, layout=layouts)
def test_linear_forward_and_backward_equal_the_reference(seed, n, d_in, d_out, kind, alpha, dtype, layout):
    """With every activation; d_in from 100 with n up to 32 takes the backend's
    one-thread route to dx; an empty batch leaves the gradients as they were."""
    rng = np.random.default_rng(seed)
    x, W = laid_out(rng, (n, d_in), dtype, layout), laid_out(rng, (d_in, d_out), dtype, layout)
    b, dy = laid_out(rng, (1, d_out), dtype)[0], laid_out(rng, (n, d_out), dtype, layout)
    h, y = reference.linear_forward(x, W, b, kind, alpha)
    ours_h, ours_y = cpu.linear_forward(x, W, b, kind, alpha)
    assert_close(ours_h, h, dtype)
    # Every activation here has |f'| <= 1 (alpha <= 1), so y carries at most h's
    # rounding error: the tolerance is h's.
    assert_close(ours_y, y, dtype, like=h)
    # Both backwards get the reference's h and y (so that a ReLU's h near 0 takes one
    # side in both), accumulate into the gradients they are given (here non-zero, as
    # after an earlier backward) and skip dx on request.
    dW0, db0 = laid_out(rng, (d_in, d_out), dtype), laid_out(rng, (1, d_out), dtype)[0]
    grads = {backend: (dW0.copy(), db0.copy()) for backend in ("cpu", "reference")}
    dx = cpu.linear_backward(x, W, h, y, dy, *grads["cpu"], kind, alpha)
    assert_close(dx, reference.linear_backward(x, W, h, y, dy, *grads["reference"], kind, alpha), dtype)
    for ours, ref in zip(grads["cpu"], grads["reference"]):
        assert_close(ours, ref, dtype)
    assert cpu.linear_backward(x, W, h, y, dy, *grads["cpu"], kind, alpha, need_dx=False) is None
    assert_close(grads["cpu"][0], dW0 + 2 * (grads["reference"][0] - dW0), dtype)


@given(seed=seeds, n=st.integers(1, 40), d_in=st.integers(1, 60), d_out=st.integers(1, 30),
       density=st.sampled_from([0.0, 0.05, 0.2, 0.3, 0.6, 1.0]), extreme=st.sampled_from([None, 0.0, 1.0]),
       kind=st.sampled_from(["identity", "relu", "tanh"]), dtype=dtypes)
def test_binary_inputs_give_the_dense_products_numbers(seed, n, d_in, d_out, density, extreme, kind, dtype):
    """A 0/1 input (any density, a row all 0 or all 1 among them) takes the sums of
    weight rows on small batches below the density threshold and gemm otherwise: both
    equal the reference to rounding, forward and backward, dx included."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, d_in)) < density).astype(dtype)
    if extreme is not None:
        x[rng.integers(n)] = extreme
    assert cpu.dense.binary_input(x) == (n <= cpu.dense.SERIAL_ROWS and x.mean() <= cpu.dense.BINARY_DENSITY)
    W, b, dy = (rng.standard_normal(shape).astype(dtype) for shape in ((d_in, d_out), (d_out,), (n, d_out)))
    h, y = reference.linear_forward(x, W, b, kind)
    ours_h, ours_y = cpu.linear_forward(x, W, b, kind)
    assert_close(ours_h, h, dtype)
    assert_close(ours_y, y, dtype, like=h)
    grads = {backend: (np.ones_like(W), np.ones_like(b)) for backend in ("cpu", "reference")}
    assert_close(cpu.linear_backward(x, W, h, y, dy, *grads["cpu"], kind),
                 reference.linear_backward(x, W, h, y, dy, *grads["reference"], kind), dtype)
    for ours, ref in zip(grads["cpu"], grads["reference"]):
        assert_close(ours, ref, dtype)


def test_binary_density_stops_at_the_first_value_that_is_not_0_or_1():
    x = np.zeros((3, 4))
    assert cpu.dense._binary_density(x) == 0
    x[0, 1], x[2, 3] = 1, 0.5
    assert cpu.dense._binary_density(x) == -1
    x[2, 3] = 1
    assert cpu.dense._binary_density(x) == 2 / 12


@given(seed=seeds, shape=st.lists(st.integers(0, 9), min_size=1, max_size=3), dtype=dtypes,
       bad=st.sampled_from([None, np.nan, np.inf, -np.inf]), big=st.booleans(),
       layout=st.sampled_from(["c", "strided", "transposed"]))
def test_all_finite_equals_the_reference(seed, shape, dtype, bad, big, layout):
    """NaN and inf anywhere are found, in any memory layout; huge finite values whose
    sum overflows are not taken for inf."""
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.normal(size=shape) * (np.finfo(dtype).max / 4 if big else 1), dtype=dtype)
    if bad is not None and x.size:
        x.reshape(-1)[rng.integers(x.size)] = bad
    if layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    elif layout == "transposed":  # contiguous in another axis order, as channels-last images
        x = x.T
    expected = bad is None or x.size == 0
    assert cpu.all_finite(x) is reference.all_finite(x) is expected


def test_numpys_openblas_is_found_where_numpy_bundles_it():
    """Without it the gemm path silently falls back to NumPy's product and add."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if blas["name"] != "scipy-openblas":
        pytest.skip(f"NumPy is built against {blas['name']}, not scipy-openblas")
    assert cpu.dense._OPENBLAS is not None and "libscipy_openblas64_" in cpu.dense._OPENBLAS


def test_small_batches_run_blas_on_one_thread_and_restore_the_count():
    if cpu.dense._OPENBLAS is None:
        pytest.skip("NumPy's OpenBLAS was not found (see the test above)")
    before = cpu.dense._blas_threads(0)  # 0 reads the count and leaves it
    assert cpu.dense._blas_threads(1) == before and cpu.dense._blas_threads(0) == 1
    assert cpu.dense._blas_threads(before) == 1 and cpu.dense._blas_threads(0) == before
    rng = np.random.default_rng(0)
    for n in (cpu.dense.SERIAL_ROWS, cpu.dense.SERIAL_ROWS + 1):  # one thread, then all of them
        x, W, dy = rng.normal(size=(n, 100)), rng.normal(size=(100, 3)), rng.normal(size=(n, 3))
        h, y = cpu.linear_forward(x, W, np.zeros(3), "relu")
        cpu.linear_backward(x, W, h, y, dy, np.zeros((100, 3)), np.zeros(3), "relu")
        assert cpu.dense._blas_threads(0) == before


@given(seed=seeds, n=st.integers(1, 9), n_samples=st.integers(1, 4), d=st.integers(1, 7), dtype=dtypes,
       layout=layouts)
def test_reparameterize_kl_and_its_backward_equal_the_reference(seed, n, n_samples, d, dtype, layout):
    rng = np.random.default_rng(seed)
    mean, logvar, dkl = (laid_out(rng, (n, d), dtype, layout) for _ in range(3))
    eps, dz = (np.asarray(rng.normal(size=(n, n_samples, d)), dtype=dtype) for _ in range(2))
    for ours, ref in zip(cpu.reparameterize_kl(mean, logvar, eps), reference.reparameterize_kl(mean, logvar, eps)):
        assert_close(ours, ref, dtype)
    for weight in (dkl, dtype(0.5)):
        for ours, ref in zip(cpu.reparameterize_kl_backward(dz, eps, mean, logvar, weight),
                             reference.reparameterize_kl_backward(dz, eps, mean, logvar, weight)):
            assert_close(ours, ref, dtype)


@given(seed=seeds, n=st.integers(1, 9), d=st.integers(1, 40), dtype=dtypes, layout=layouts,
       scale=st.sampled_from([1.0, 30.0]), per_row_logvar=st.booleans())
def test_likelihood_kernels_equal_the_reference(seed, n, d, dtype, layout, scale, per_row_logvar):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.random((n, d)), dtype=dtype)
    logits = laid_out(rng, (n, d), dtype, layout) * dtype(scale)  # scale 30: saturated logits
    for ours, ref in zip(cpu.bernoulli_log_prob_grad(x, logits), reference.bernoulli_log_prob_grad(x, logits)):
        assert_close(ours, ref, dtype)
    assert_close(cpu.bernoulli_log_prob(x, logits), reference.bernoulli_log_prob(x, logits), dtype)
    logvar = laid_out(rng, (n, d), dtype, layout) if per_row_logvar else laid_out(rng, (1, d), dtype)[0]
    for ours, ref in zip(cpu.gaussian_log_prob_grad(x, logits, logvar),
                         reference.gaussian_log_prob_grad(x, logits, logvar)):
        assert_close(ours, ref, dtype)


def test_float32_bernoulli_kernel_over_the_whole_range_of_logits():
    """The float32 kernel computes its own exp(-|l|) and log1p: one logit per row on a
    fine grid over [-120, 120] (exp(-|l|) is flushed to 0 past 87), against the
    reference in float64, to float32's rounding of terms as large as |l|; and +-inf and
    NaN, which must give the reference's inf and NaN. And the two functions themselves,
    to within 3e-7 of float64's exp and log1p over their domains."""
    a, e = np.linspace(0, 87, 4001, dtype=np.float32), np.linspace(0, 1, 4001, dtype=np.float32)
    np.testing.assert_allclose([cpu.elbo._exp_minus_f32(v) for v in a], np.exp(-a.astype(np.float64)), rtol=3e-7, atol=0)
    np.testing.assert_allclose([cpu.elbo._log1p_f32(v) for v in e], np.log1p(e.astype(np.float64)), rtol=3e-7, atol=0)
    logits = np.concatenate([np.linspace(-120, 120, 96001), [87, -87, 87.5, np.inf, -np.inf, np.nan]])
    logits = logits.astype(np.float32)[:, None]
    x = np.random.default_rng(0).random(logits.shape).astype(np.float32)
    with np.errstate(invalid="ignore"):
        truth = reference.bernoulli_log_prob_grad(x.astype(np.float64), logits.astype(np.float64))
    for ours, ref in zip(cpu.bernoulli_log_prob_grad(x, logits), truth):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(ref))
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(ours[~finite], ref[~finite].astype(np.float32))
        bound = 2e-6 * (1 + np.abs(logits)).reshape(ref.shape)
        np.testing.assert_array_less(np.abs(ours[finite] - ref[finite]), bound[finite])


@given(seed=seeds, shapes=st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=2), min_size=1, max_size=4),
       dtype=dtypes, t=st.integers(1, 1000), contiguous=st.booleans())
def test_adam_update_equals_the_reference(seed, shapes, dtype, t, contiguous):
    rng = np.random.default_rng(seed)
    p, g, m, v = ([laid_out(rng, shape, dtype) for shape in shapes] for _ in range(4))
    v = [np.abs(a) for a in v]
    ours, ref = ([[a.copy() for a in group] for group in (p, m, v)] for _ in range(2))
    if not contiguous:  # a strided parameter (same values) sends the call to the reference's path
        for group in ours:
            group[-1] = np.repeat(group[-1], 2, axis=-1)[..., ::2]
        assert ours[0][-1].size == 1 or not ours[0][-1].flags.c_contiguous  # one number is contiguous anyway
    cpu.adam_update(ours[0], g, ours[1], ours[2], 1e-3, 0.9, 0.999, 1e-8, t)
    reference.adam_update(ref[0], g, ref[1], ref[2], 1e-3, 0.9, 0.999, 1e-8, t)
    for group, ref_group in zip(ours, ref):
        for a, b in zip(group, ref_group):
            assert_close(a, b, dtype)
    assert not any(np.array_equal(a, b) for a, b in zip(ours[0], p))  # every update happened in place


@pytest.mark.parametrize("backend", [cpu, reference], ids=["numba", "numpy"])
def test_adam_update_refuses_mismatched_arrays(backend):
    """Both backends: a transposed gradient, a (1,) gradient that NumPy would broadcast,
    lists of different lengths that ``zip`` would truncate, and integer arrays."""
    a, b, row, one = (np.zeros(s, np.float32) for s in ((2, 3), (3, 2), (3,), (1,)))
    for params, grads in (([a], [b]), ([row], [one]), ([a, a], [a])):
        with pytest.raises(ValueError, match="matching length and shapes"):
            backend.adam_update(params, grads, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params],
                                1e-3, 0.9, 0.999, 1e-8, 1)
    # integer arrays (the Numba loop wrote -2^63 into them) are refused; float16 is stepped as by the reference
    ints = [np.ones(3, np.int64)]
    with pytest.raises(TypeError, match="expected floating-point arrays, got dtype int64"):
        backend.adam_update(ints, ints, [np.zeros(3, np.int64)], [np.zeros(3, np.int64)], 1e-3, 0.9, 0.999, 1e-8, 1)
    p, g, m, v = ([np.full(3, value, np.float16)] for value in (1, 1, 0, 0))
    backend.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(p[0], 1 - 1e-3, rtol=2e-4)  # from zero moments the first step is lr g / |g|


@pytest.mark.parametrize("backend", [cpu, reference], ids=["numba", "numpy"])
def test_ops_refuse_mismatched_shapes(backend):
    """Both backends name the arrays and their shapes where the Numba loops would read or
    write out of bounds, or NumPy would broadcast (a (1,) bias, a one-column mean)."""
    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    x, W, dy = z(2, 3), z(3, 4), z(2, 4)
    refused = {
        "x, W, b": [lambda: backend.linear_forward(x, W, z(1)), lambda: backend.linear_forward(x, z(5, 4), z(4))],
        "x, W, h, y, dy, dW, db": [lambda: backend.linear_backward(x, W, dy, dy, z(3, 4), z(3, 4), z(4)),
                                   lambda: backend.linear_backward(x, W, dy, dy, dy, z(3, 4), z(1)),
                                   lambda: backend.linear_backward(x, W, z(2, 3), dy, dy, z(3, 4), z(4), "relu")],
        "mean, logvar, eps": [lambda: backend.reparameterize_kl(x, x, z(2, 1, 1)),
                              lambda: backend.reparameterize_kl(x, z(2, 1), z(2, 1, 3))],
        "mean, logvar, eps, dz": [lambda: backend.reparameterize_kl_backward(z(2, 5, 3), z(2, 1, 3), x, x, x)],
        "x, logits": [lambda: backend.bernoulli_log_prob_grad(x, z(2, 1))],
        "x, mu, logvar": [lambda: backend.gaussian_log_prob_grad(x, x, z(2)),
                          lambda: backend.gaussian_log_prob_grad(x, z(1, 3), z(3))],
    }
    for names, calls in refused.items():
        for call in calls:
            with pytest.raises(ValueError, match=f"^{names}: expected shapes"):
                call()


def test_elbo_path_kernels_with_mixed_or_integer_dtypes_give_the_references_result():
    """The Numba kernels write into outputs of one input's dtype: an integer eps or
    data (0/1 labels), or float32 beside float64, would have been truncated or
    rounded there, so such calls go to the reference, whose NumPy promotes."""
    rng = np.random.default_rng(0)
    mean, logvar, x = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.integers(0, 2, (2, 3))
    eps, dz = rng.integers(-2, 3, (2, 1, 3)), rng.normal(size=(2, 1, 3)).astype(np.float32)
    calls = [lambda k: k.reparameterize_kl(mean, logvar, eps),
             lambda k: k.reparameterize_kl_backward(dz, eps, mean, logvar, 0.5),
             lambda k: k.gaussian_log_prob_grad(x, mean, logvar[0]), lambda k: k.bernoulli_log_prob_grad(x, mean),
             lambda k: k.bernoulli_log_prob_grad(x.astype(np.float64), mean.astype(np.float32))]
    for call in calls:
        for ours, ref in zip(call(cpu), call(reference)):
            assert ours.dtype == ref.dtype
            np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_activation_and_conv_kernels_with_mixed_or_integer_dtypes_give_the_references_result():
    """As above for the activations (an integer input's sigmoid was written into ints)
    and the convolutions (float32 images with a float64 kernel, integer images)."""
    rng = np.random.default_rng(0)
    ints = rng.integers(-3, 4, (2, 5))
    for kind in sorted(cpu.KINDS):
        y = reference.activation_forward(ints, kind, 0.5)
        for ours, ref in ((cpu.activation_forward(ints, kind, 0.5), y),
                          (cpu.activation_backward(ints * 0.5, ints, y, kind, 0.5),
                           reference.activation_backward(ints * 0.5, ints, y, kind, 0.5))):
            assert ours.dtype == ref.dtype
            np.testing.assert_allclose(ours, ref, rtol=1e-12)
    W, b = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    for x in (rng.normal(size=(2, 2, 5, 5)).astype(np.float32), rng.integers(0, 2, (2, 2, 5, 5))):
        for op, back, extra in (("conv2d_forward", "conv2d_backward", ()),
                                ("conv_transpose2d_forward", "conv_transpose2d_backward", ((0, 0),))):
            Wt = W if op == "conv2d_forward" else W.transpose(1, 0, 2, 3).copy()
            outs = [getattr(k, op)(x, Wt, b, (2, 2), (1, 1), *extra) for k in (cpu, reference)]
            grads = [(np.zeros_like(Wt), np.zeros_like(b)) for _ in range(2)]
            dxs = [getattr(k, back)(x, Wt, outs[1], *g, (2, 2), (1, 1)) for k, g in zip((cpu, reference), grads)]
            for ours, ref in [outs, dxs, *zip(*grads)]:
                assert ours.dtype == ref.dtype
                np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_numba_column_sums_refuse_a_bias_of_another_length():
    """The conv ops' bias gradient is summed by this loop, which indexes it unchecked."""
    with pytest.raises(ValueError, match="db: expected one entry per column"):
        cpu.conv2d_backward(np.ones((2, 1, 5, 5)), np.ones((3, 1, 3, 3)), np.ones((2, 3, 3, 3)),
                            np.zeros((3, 1, 3, 3)), np.zeros(2), (1, 1), (0, 0))


@given(seed=seeds, shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), kind=st.sampled_from(sorted(cpu.KINDS)),
       alpha=st.floats(0.01, 1.0), dtype=dtypes, big=st.booleans())
def test_activations_equal_the_reference(seed, shape, kind, alpha, dtype, big):
    rng = np.random.default_rng(seed)
    x = away_from_kinks(np.asarray(rng.normal(size=shape) * (30 if big else 2), dtype=dtype))  # big: saturation
    dy = np.asarray(rng.normal(size=shape), dtype=dtype)
    y = cpu.activation_forward(x, kind, alpha)
    assert_close(y, reference.activation_forward(x, kind, alpha), dtype)
    assert_close(cpu.activation_backward(dy, x, y, kind, alpha), reference.activation_backward(dy, x, y, kind, alpha),
                 dtype)


def test_activations_on_non_contiguous_input():
    x = np.random.default_rng(0).normal(size=(6, 8))[:, ::3].T
    for kind in cpu.KINDS:
        np.testing.assert_allclose(cpu.activation_forward(x, kind, 0.1), reference.activation_forward(x, kind, 0.1),
                                   rtol=1e-12)


@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=4, max_size=4), kind=st.sampled_from(sorted(cpu.KINDS)),
       dy_layout=st.sampled_from(["contiguous", "channels_last"]))
def test_activations_keep_a_channels_last_layout(seed, shape, kind, dy_layout):
    """Conv outputs here are channels-last in memory; the activations work in that order,
    keep it, and take a ``dy`` in either layout."""
    rng = np.random.default_rng(seed)

    def channels_last(a):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    x = channels_last(away_from_kinks(rng.normal(size=shape)))
    dy = rng.normal(size=shape)
    dy = channels_last(dy) if dy_layout == "channels_last" else dy
    y = cpu.activation_forward(x, kind, 0.1)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    assert_close(y, reference.activation_forward(x, kind, 0.1), np.float64)
    assert_close(cpu.activation_backward(dy, x, y, kind, 0.1), reference.activation_backward(dy, x, y, kind, 0.1),
                 np.float64)


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
    tol = KERNEL_TOLERANCE[np.dtype(dtype)]
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
