"""The CUDA backend's ops against the NumPy reference: every op on tiny
hypothesis-drawn shapes in float32 and float64, on NumPy and on device arrays, the
device noise against its specification, and the backend refused without a GPU (whole
models: test_device_training.py). In numba-cuda's simulator unless NPVAE_TEST_GPU=1 (tests/conftest.py):
the simulator runs each GPU thread as a Python thread, so shapes stay small and the
examples few."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.testing import assert_close, conv_cases, laid_out, seeds
from npvae.kernels import cuda as gpu
from npvae.kernels import reference
from npvae.kernels.cuda import arrays, gemm

dtypes = st.sampled_from([np.float64, np.float32])
layouts = st.sampled_from(["contiguous", "transposed", "strided"])
few = settings(max_examples=4)  # the simulator runs a GPU thread as a Python thread; test_backends.py adds cases


def both(op, *args, **kwargs):
    """``op`` on NumPy arrays, and on the same arrays moved to the device with its
    results brought back: both must give the same numbers."""
    host = op(*args, **kwargs)
    on_device = op(*(gpu.to_device(a) if isinstance(a, np.ndarray) else a for a in args), **kwargs)
    if isinstance(host, tuple):
        on_device = tuple(gpu.to_host(a) for a in on_device)
        for a, b in zip(host, on_device):
            np.testing.assert_array_equal(a, b)
    else:
        on_device = gpu.to_host(on_device)
        np.testing.assert_array_equal(host, on_device)
    return host


@few
@given(seed=seeds, m=st.integers(1, 17), k=st.integers(1, 24), n=st.integers(1, 17), dtype=dtypes,
       trans_a=st.booleans(), trans_b=st.booleans(), tile=st.sampled_from(sorted(gemm.TILES)),
       beta=st.sampled_from([0.0, 1.0, -0.5]), splits=st.sampled_from([None, 1, 3]))
def test_the_tiled_product_equals_numpy(seed, m, k, n, dtype, trans_a, trans_b, tile, beta, splits):
    """Every tile, either operand transposed, beta accumulating into c; on the tiny
    tile (8 x 8, strips of 4) these shapes take up to 9 blocks, the tiles' edges and
    chains of up to 6 strips; split K (by default where the tiles are few, or
    into 3 runs of strips, some perhaps empty) adds the runs' sums in order."""
    rng = np.random.default_rng(seed)
    a = laid_out(rng, (k, m) if trans_a else (m, k), dtype)
    b = laid_out(rng, (n, k) if trans_b else (k, n), dtype)
    c0 = laid_out(rng, (m, n), dtype)
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    c = gpu.to_device(c0)
    gemm.gemm(gpu.to_device(a), gpu.to_device(b), c, trans_a, trans_b, beta, tile=tile, splits=splits)
    assert_close(c.copy_to_host(), (op_a @ op_b + dtype(beta) * c0).astype(dtype), dtype)
    assert_close(both(gpu.matmul, op_a, op_b), op_a @ op_b, dtype)


@few
@given(seed=seeds, n=st.integers(0, 9), d_in=st.integers(1, 20), d_out=st.integers(1, 12),
       kind=st.sampled_from(sorted(reference.ACTIVATIONS)), alpha=st.floats(0.01, 1.0), dtype=dtypes,
       layout=layouts)
def test_linear_forward_and_backward_equal_the_reference(seed, n, d_in, d_out, kind, alpha, dtype, layout):
    rng = np.random.default_rng(seed)
    x, W = laid_out(rng, (n, d_in), dtype, layout), laid_out(rng, (d_in, d_out), dtype, layout)
    b, dy = laid_out(rng, (1, d_out), dtype)[0], laid_out(rng, (n, d_out), dtype, layout)
    h, y = reference.linear_forward(x, W, b, kind, alpha)
    ours_h, ours_y = both(gpu.linear_forward, x, W, b, kind, alpha)
    assert_close(ours_h, h, dtype)
    assert_close(ours_y, y, dtype, like=h)
    dW0, db0 = laid_out(rng, (d_in, d_out), dtype), laid_out(rng, (1, d_out), dtype)[0]
    grads = {backend: (dW0.copy(), db0.copy()) for backend in ("gpu", "reference")}
    dx = gpu.linear_backward(x, W, h, y, dy, *grads["gpu"], kind, alpha)
    assert_close(dx, reference.linear_backward(x, W, h, y, dy, *grads["reference"], kind, alpha), dtype)
    for ours, ref in zip(grads["gpu"], grads["reference"]):
        assert_close(ours, ref, dtype)
    # On device arrays the gradients accumulate in place on the device.
    dW, db = gpu.to_device(grads["gpu"][0]), gpu.to_device(grads["gpu"][1])
    args = [gpu.to_device(a) for a in (x, W, h, y, dy)]
    assert gpu.linear_backward(*args, dW, db, kind, alpha, need_dx=False) is None
    assert_close(dW.copy_to_host(), dW0 + 2 * (grads["reference"][0] - dW0), dtype)
    assert_close(db.copy_to_host(), db0 + 2 * (grads["reference"][1] - db0), dtype)


@few
@given(seed=seeds, shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       kind=st.sampled_from(sorted(reference.ACTIVATIONS)), alpha=st.floats(0.01, 2.0), dtype=dtypes,
       big=st.booleans())
def test_activations_equal_the_reference(seed, shape, kind, alpha, dtype, big):
    rng = np.random.default_rng(seed)
    x, dy = laid_out(rng, (1, *shape), dtype)[0] * (50 if big else 1), laid_out(rng, (1, *shape), dtype)[0]
    y = both(gpu.activation_forward, x, kind, alpha)
    assert_close(y, reference.activation_forward(x, kind, alpha), dtype)
    assert_close(both(gpu.activation_backward, dy, x, y, kind, alpha),
                 reference.activation_backward(dy, x, y, kind, alpha),
                 dtype)


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_all_finite_on_device_arrays(bad):
    x = np.arange(12.0).reshape(3, 4)
    if bad is not None:
        x[2, 1] = bad
    assert gpu.all_finite(gpu.to_device(x)) is (bad is None)
    assert gpu.all_finite(x) is (bad is None)


@few
@given(seed=seeds, n=st.integers(1, 5), n_samples=st.integers(1, 3), d=st.integers(1, 5), dtype=dtypes,
       layout=layouts, scalar_dkl=st.booleans())
def test_reparameterize_kl_and_its_backward_equal_the_reference(seed, n, n_samples, d, dtype, layout, scalar_dkl):
    rng = np.random.default_rng(seed)
    mean, logvar = laid_out(rng, (n, d), dtype, layout), laid_out(rng, (n, d), dtype, layout)
    eps, dz = laid_out(rng, (n, n_samples, d), dtype), laid_out(rng, (n, n_samples, d), dtype)
    dkl = dtype(0.5) if scalar_dkl else laid_out(rng, (n, d), dtype)
    ref = reference.reparameterize_kl(mean, logvar, eps)
    for ours, expected in zip(both(gpu.reparameterize_kl, mean, logvar, eps), ref):
        assert_close(ours, expected, dtype)
    ref = reference.reparameterize_kl_backward(dz, eps, mean, logvar, dkl)
    for ours, expected in zip(gpu.reparameterize_kl_backward(dz, eps, mean, logvar, dkl), ref):
        assert_close(ours, expected, dtype)


@few
@given(seed=seeds, n=st.integers(1, 4), d=st.integers(1, 140), dtype=dtypes, scale=st.sampled_from([1.0, 30.0]),
       per_row_logvar=st.booleans())
def test_likelihood_kernels_equal_the_reference(seed, n, d, dtype, scale, per_row_logvar):
    """Rows longer than a block's 128 threads; logits far into both tails."""
    rng = np.random.default_rng(seed)
    x, logits = rng.random((n, d)).astype(dtype), laid_out(rng, (n, d), dtype) * dtype(scale)
    for ours, ref in zip(both(gpu.bernoulli_log_prob_grad, x, logits), reference.bernoulli_log_prob_grad(x, logits)):
        assert_close(ours, ref, dtype)
    assert_close(both(gpu.bernoulli_log_prob, x, logits), reference.bernoulli_log_prob(x, logits), dtype)
    logvar = laid_out(rng, (n, d) if per_row_logvar else (1, d), dtype)
    logvar = logvar if per_row_logvar else logvar[0]
    for ours, ref in zip(both(gpu.gaussian_log_prob_grad, x, logits, logvar),
                         reference.gaussian_log_prob_grad(x, logits, logvar)):
        assert_close(ours, ref, dtype)


@few
@given(seed=seeds, shapes=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=2), min_size=1, max_size=3),
       dtype=dtypes, t=st.integers(1, 1000), place=st.sampled_from(["host", "device", "packed"]))
def test_adam_update_equals_the_reference(seed, shapes, dtype, t, place):
    """On NumPy arrays, on device arrays (a launch each), on packed ones (one launch)."""
    rng = np.random.default_rng(seed)
    groups = [[laid_out(rng, (1, *shape), dtype)[0] for shape in shapes] for _ in range(4)]
    for v in groups[3]:
        np.abs(v, out=v)
    ref = [[a.copy() for a in g] for g in groups]
    put = {"host": lambda g: [a.copy() for a in g], "device": lambda g: [gpu.to_device(a) for a in g],
           "packed": gpu.pack}[place]
    ours = [put(g) for g in groups]
    assert all((arrays.packed_buffer(g) is not None) == (place == "packed") for g in ours)
    reference.adam_update(*ref, 1e-2, 0.9, 0.999, 1e-8, t)
    gpu.adam_update(*ours, 1e-2, 0.9, 0.999, 1e-8, t)
    for group_ours, group_ref in zip(ours, ref):
        for a, b in zip(group_ours, group_ref):
            assert_close(gpu.to_host(a), b, dtype)


# Small inputs and small transposed outputs: the simulator runs a thread per output entry.
small_convs = conv_cases.filter(lambda c: c["n"] * c["c_in"] * c["h"] * c["w"] <= 80 and c["n"] * c["c_out"] * (
    c["h"] * c["stride"][0] + c["kernel"][0]) * (c["w"] * c["stride"][1] + c["kernel"][1]) <= 400)


@settings(max_examples=2)  # the conformance suite (test_backends.py) draws more, on NumPy arrays
@given(seed=seeds, cfg=small_convs, dtype=dtypes, output_padding=st.integers(0, 2))
def test_convolutions_equal_the_reference(seed, cfg, dtype, output_padding):
    """Conv2d and ConvTranspose2d, forward and both backwards (accumulating into
    non-zero gradients), and im2col / col2im."""
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.normal(size=(cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])), dtype=dtype)
    kernel, stride, padding = cfg["kernel"], cfg["stride"], cfg["padding"]
    geometry = (kernel, stride, padding)
    ho, wo = (reference.conv_output_size(s, k, st_, p) for s, k, st_, p in zip(x.shape[2:], *geometry))
    if min(ho, wo) >= 1:
        assert_close(both(gpu.im2col, x, *geometry), np.ascontiguousarray(reference.im2col(x, *geometry)), dtype)
        cols = np.asarray(rng.normal(size=(cfg["n"], ho, wo, cfg["c_in"], *kernel)), dtype=dtype)
        assert_close(gpu.col2im(cols, x.shape, *geometry), reference.col2im(cols, x.shape, *geometry), dtype)
        W = np.asarray(rng.normal(size=(cfg["c_out"], cfg["c_in"], *kernel)), dtype=dtype)
        b = np.asarray(rng.normal(size=cfg["c_out"]), dtype=dtype)
        assert_close(both(gpu.conv2d_forward, x, W, b, stride, padding),
                     reference.conv2d_forward(x, W, b, stride, padding),
                     dtype)
        dy = np.asarray(rng.normal(size=(cfg["n"], cfg["c_out"], ho, wo)), dtype=dtype)
        _compare_backward("conv2d_backward", x, W, b, dy, dtype, stride, padding)
    op = tuple(min(output_padding, s - 1) for s in stride)
    W = np.asarray(rng.normal(size=(cfg["c_in"], cfg["c_out"], *kernel)), dtype=dtype)
    b = np.asarray(rng.normal(size=cfg["c_out"]), dtype=dtype)
    ho, wo = (reference.conv_output_size(s, k, st_, p, o, transposed=True)
              for s, k, st_, p, o in zip(x.shape[2:], kernel, stride, padding, op))
    if min(ho, wo) >= 1:
        assert_close(both(gpu.conv_transpose2d_forward, x, W, b, stride, padding, op),
                     reference.conv_transpose2d_forward(x, W, b, stride, padding, op), dtype)
        dy = np.asarray(rng.normal(size=(cfg["n"], cfg["c_out"], ho, wo)), dtype=dtype)
        _compare_backward("conv_transpose2d_backward", x, W, b, dy, dtype, stride, padding)


def _compare_backward(name, x, W, b, dy, dtype, stride, padding):
    results = []
    for backend in (gpu, reference):
        dW, db = W * 0.5, b * 0.5  # as after an earlier backward: the op must add to them
        dx = getattr(backend, name)(x, W, dy, dW, db, stride, padding)
        results.append((dx, dW, db))
    for ours, ref in zip(*results):
        assert_close(ours, ref, dtype)
    assert getattr(gpu, name)(x, W, dy, W * 0, b * 0, stride, padding, need_dx=False) is None


def test_ops_refuse_mismatched_shapes():
    x, W, b = np.ones((3, 4)), np.ones((5, 2)), np.ones(2)
    with pytest.raises(ValueError, match="x, W, b"):
        gpu.linear_forward(x, W, b)
    with pytest.raises(ValueError, match="mean, logvar, eps"):
        gpu.reparameterize_kl(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1, 4)))
    with pytest.raises(ValueError, match="x, logits"):
        gpu.bernoulli_log_prob_grad(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        gpu.adam_update([np.ones(2, dtype=np.int64)], [np.ones(2)], [np.ones(2)], [np.ones(2)], 0.1, 0.9, 0.99, 1e-8, 1)



def test_kernels_refuse_shapes_they_would_read_out_of_bounds():
    """Where the reference stops on NumPy's shape errors, these would read or write past
    an array on the GPU (or return wrong numbers): each stops with a ValueError."""
    d = gpu.to_device
    with pytest.raises(ValueError, match="a, b, c"):
        gpu.matmul(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="a, b, c"):  # a conv's channels against its weight's
        gpu.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((3, 1, 3, 3)), np.ones(3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="dy, x, y"):
        gpu.activation_backward(np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2)), "tanh")
    with pytest.raises(ValueError, match="db"):
        gpu.conv2d_backward(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 2, 2)), np.zeros((2, 1, 3, 3)),
                            np.zeros(3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="dy"):  # dy of another spatial size than the forward's output
        gpu.conv2d_backward(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 3, 3)), np.zeros((2, 1, 3, 3)),
                            np.zeros(2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="dy's fields"):
        gpu.conv_transpose2d_backward(np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), np.ones((1, 1, 4, 4)),
                                      np.zeros((2, 1, 3, 3)), np.zeros(1), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="cols"):
        gpu.col2im(np.ones((1, 2, 2, 1, 3, 3)), (1, 1, 5, 5), (3, 3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="dkl"):
        gpu.reparameterize_kl_backward(d(np.ones((2, 1, 3))), d(np.ones((2, 1, 3))), d(np.ones((2, 3))),
                                       d(np.ones((2, 3))), d(np.ones((1, 3))))
    with pytest.raises(ValueError, match="a, b"):
        arrays.concat_columns(d(np.ones((2, 3))), d(np.ones((3, 3))))
    for times in (0, 1.5):  # on the device and, for NumPy arrays, the reference
        for rows in (d(np.ones((2, 3))), np.ones((2, 3))):
            with pytest.raises(ValueError, match="times: expected an integer >= 1"):
                arrays.repeat_rows(rows, times)
    with pytest.raises(ValueError, match="a, b: expected shapes equal"):
        arrays.add(d(np.ones((2, 3))), d(np.ones((3, 2))))
    with pytest.raises(ValueError, match="a, out: expected shapes"):
        gpu.add_column_sums(d(np.ones((2, 3))), d(np.zeros(2)))
    x, W, b, xi = d(np.ones((2, 3))), d(np.ones((3, 4))), d(np.ones(4)), d(np.ones((2, 4)))
    with pytest.raises(ValueError, match="std, dy, dW, dW_logsigma, db_logsigma: expected shapes"):
        gpu.local_reparam_backward(x, W, W, b, xi, d(np.ones((2, 3))), xi, W, b, W, b)  # std of x's shape
    with pytest.raises(ValueError, match="mean, logsigma, dmean, dlogsigma: expected shapes equal"):
        gpu.gaussian_weight_kl(d(np.ones((2, 3))), d(np.ones((2, 3))), 1.0, 1.0, d(np.ones((2, 3))), d(np.ones(3)))


def test_the_cuda_backend_without_a_gpu_is_refused_with_one_clear_line():
    """Outside the simulator, on a machine without a GPU: RuntimeError from use(), a
    warning (not a crash) for NPVAE_BACKEND at import, and exit 2 on the CLI."""
    if os.environ.get("NPVAE_TEST_GPU") == "1":
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    code = "import npvae.kernels as k\ntry:\n    k.use('cuda')\nexcept RuntimeError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "no CUDA GPU is available" in out.stdout, out.stderr
    cli = subprocess.run([sys.executable, "-m", "npvae", "eval", "missing.npz", "--backend", "cuda"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "no CUDA GPU" in cli.stderr, cli.stderr


@few
@given(seed=seeds, n=st.integers(1, 6), d=st.integers(1, 5), dtype=dtypes, on_device=st.booleans())
def test_the_array_ops_equal_the_reference(seed, n, d, dtype, on_device):
    """What the models do besides the layers (rows of a minibatch, columns joined, rows
    weighted, zeroing, log p(z) - log q(z|x)), on NumPy and on device arrays."""
    rng = np.random.default_rng(seed)
    x, other, w = laid_out(rng, (n, d), dtype), laid_out(rng, (n, 2), dtype), rng.standard_normal(n)
    idx = rng.integers(0, n, size=n + 2)
    put = gpu.to_device if on_device else (lambda a: a)
    for ours, ref in ((gpu.take_rows(put(x), idx), x[idx]),
                      (gpu.take_rows(put(x.reshape(n, 1, d)), idx), x.reshape(n, 1, d)[idx]),
                      (gpu.concat_columns(put(x), other), np.concatenate([x, other], axis=1)),
                      (gpu.scale_rows(put(x), w), reference.scale_rows(x, w)),
                      (gpu.clear(put(x.copy())), np.zeros_like(x))):
        assert gpu.is_device(ours) == on_device
        assert_close(gpu.to_host(ours), ref, dtype)
    with pytest.raises(ValueError, match="expected shapes .N, D., .N,."):
        gpu.scale_rows(put(x), np.ones(n + 1))  # a weight per row, not one more (nor one for all)
    n_samples = 3
    z, eps = laid_out(rng, (n, n_samples, d), dtype), laid_out(rng, (n, n_samples, d), dtype)
    logvar = laid_out(rng, (n, d), dtype)
    assert_close(gpu.to_host(both(gpu.log_pz_minus_log_qz, z, eps, logvar)),
                 reference.log_pz_minus_log_qz(z, eps, logvar),
                 dtype)


def test_packed_arrays_are_views_of_one_buffer():
    """pack: the values, as views of one buffer that packed_buffer finds only for the
    whole list in order; clear_all zeros them (through the buffer, or one by one)."""
    a, b = np.arange(6.0).reshape(2, 3), np.arange(4.0)
    views = gpu.pack([a, b])
    np.testing.assert_array_equal(views[0].copy_to_host(), a)
    np.testing.assert_array_equal(views[1].copy_to_host(), b)
    buffer = arrays.packed_buffer(views)
    assert buffer is not None and buffer.size == 10
    assert arrays.packed_buffer(views[::-1]) is None and arrays.packed_buffer(views[:1]) is None
    assert arrays.packed_buffer([gpu.to_device(a)]) is None
    gpu.clear_all(views)
    assert not buffer.copy_to_host().any()
    mixed = gpu.pack([a, b.astype(np.float32)])  # two dtypes: copied up one by one
    assert arrays.packed_buffer(mixed) is None and mixed[1].dtype == np.float32
    reference.clear_all(hosts := [a.copy(), b.copy()])
    assert not any(h.any() for h in hosts)


# The simulator runs the kernels as Python, where NumPy reports the hash's uint64
# arithmetic wrapping (as it must).
@pytest.mark.filterwarnings("ignore:.*overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_device_noise_equals_its_specification(dtype):
    """standard_normal and binarize on device arrays: the counter-based draws of
    reference.counter_normal / counter_uniform, the seed taken from the generator."""
    shape = (3, 2, 5)
    ours = gpu.standard_normal(np.random.default_rng(7), shape, dtype).copy_to_host()
    seed = int(np.random.default_rng(7).integers(2**63))
    np.testing.assert_allclose(ours, reference.counter_normal(seed, shape, dtype), rtol=1e-6 if dtype == np.float32
                               else 1e-12, atol=1e-7)
    assert ours.dtype == dtype
    x = np.random.default_rng(1).random((4, 6)).astype(dtype)
    binary = gpu.binarize(gpu.to_device(x), np.random.default_rng(3)).copy_to_host()
    seed = int(np.random.default_rng(3).integers(2**63))
    np.testing.assert_array_equal(binary, (reference.counter_uniform(seed, x.shape) < x).astype(dtype))
    # NumPy arrays keep the reference's draws from the generator itself
    np.testing.assert_array_equal(gpu.standard_normal(np.random.default_rng(7), shape, dtype, like=x),
                                  reference.standard_normal(np.random.default_rng(7), shape, dtype))


def test_the_counter_based_draws_look_like_their_distributions():
    """200,000 draws: N(0, 1) by a Kolmogorov-Smirnov test and its moments; uniform
    halves; two seeds give unrelated streams."""
    from scipy import stats

    z = reference.counter_normal(12345, (200_000,), np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01 and abs(stats.kurtosis(z)) < 0.05
    u = reference.counter_uniform(12345, (200_000,))
    assert 0 < u.min() and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(z, reference.counter_normal(12346, (200_000,), np.float64))[0, 1]) < 0.01


def test_the_step_ops_refuse_shapes_they_would_read_out_of_bounds():
    """A mask not of the weight's kernel, log-weights of unequal shapes: a ValueError
    naming them, before any kernel reads past an array (every backend)."""
    from npvae.kernels import cpu
    W, x = np.ones((2, 1, 3, 3)), np.ones((1, 1, 4, 4))
    for backend in (reference, cpu, gpu):
        with pytest.raises(ValueError, match="W, mask"):
            backend.masked_conv2d_forward(x, W, None, np.ones((3, 1)))
        with pytest.raises(ValueError, match="log_px, log_ratio, running"):
            backend.log_sum_exp_rows(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="log_px, log_ratio, running"):
        gpu.log_sum_exp_rows(gpu.to_device(np.ones((2, 3))), gpu.to_device(np.ones((2, 3))),
                             gpu.to_device(np.ones((3, 2))))
