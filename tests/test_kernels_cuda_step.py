"""The CUDA backend's machinery for a device-resident step, against the reference: the
batch means read once a step, workspaces, the joined halves of the latent backward,
the clipping ops over packed gradients, and split K (tiny shapes in numba-cuda's
simulator unless NPVAE_TEST_GPU=1, tests/conftest.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.kernels import cuda as gpu
from npvae.kernels import reference
from npvae.kernels.cuda import arrays, gemm
from npvae.testing import assert_close, seeds

dtypes = st.sampled_from([np.float64, np.float32])
few = settings(max_examples=4)  # the simulator runs a GPU thread as a Python thread


@few
@given(seed=seeds, n=st.integers(1, 40), n_samples=st.integers(1, 3), d=st.integers(1, 5), dtype=dtypes,
       with_ratio=st.booleans())
def test_the_batch_means_equal_the_reference_on_device_arrays(seed, n, n_samples, d, dtype, with_ratio):
    """One block's strided sums and fixed-order tree, past one stride of threads."""
    rng = np.random.default_rng(seed)
    log_px, kl, ratio = (rng.standard_normal(shape).astype(dtype) for shape in ((n, n_samples), (n, d), (n, n_samples)))
    ratio = ratio if with_ratio else None
    means = gpu.batch_means(gpu.to_device(log_px), gpu.to_device(kl), None if ratio is None else gpu.to_device(ratio))
    np.testing.assert_allclose(gpu.to_host(means), reference.batch_means(log_px, kl, ratio), rtol=1e-12, atol=1e-12)


def test_a_workspace_returns_the_kth_array_of_a_shape_again():
    store = {}
    with gpu.workspace(store, "step"):
        a, b, c = arrays.empty((2, 3), np.float32), arrays.empty((2, 3), np.float32), arrays.empty(3, np.float64)
        assert a is not b
    with gpu.workspace(store, "step"):
        assert arrays.empty((2, 3), np.float32) is a and arrays.empty((2, 3), np.float32) is b
        assert arrays.empty(3, np.float64) is c
        assert new(arrays.empty((2, 3), np.float32), a, b)  # a third request: a new array
        with gpu.workspace(store, "inner"):  # another entry point's own arrays
            assert new(arrays.empty((2, 3), np.float32), a, b)
    assert new(arrays.empty((2, 3), np.float32), a, b)  # outside any workspace: always new


def new(array, *others):
    return all(array is not other for other in others)


def test_the_joined_halves_concatenate_without_a_pass():
    joined = gpu.to_device(np.arange(12.0).reshape(3, 4))
    left, right = arrays.halves(joined, 1)
    before = dict(npvae_counts())
    assert gpu.concat_columns(left, right) is joined and npvae_counts() == before
    swapped = gpu.to_host(gpu.concat_columns(right, left))
    np.testing.assert_array_equal(swapped, np.arange(12.0).reshape(3, 4)[:, [1, 2, 3, 0]])


def npvae_counts():
    from npvae import kernels
    return dict(kernels.COUNTS)


def test_a_long_k_product_with_few_tiles_splits_k_and_keeps_its_epilogue():
    """A 5 x 6 output over K = 40 is one tiny tile: split into 5 runs of strips and a
    second launch that adds them in order, then the bias, the activation, the ones
    row (the dense backward's db) and dh read as dy * f'(h), as without the split."""
    from numba import config

    from npvae import kernels
    from npvae.kernels.scalar import KINDS
    rng = np.random.default_rng(0)
    if config.ENABLE_CUDASIM:  # the simulator's rule splits this product by itself (a GPU's: past 64 strips)
        assert gemm.split_count(1, 40, gemm.TILES["tiny"][2]) == 5
    a, b, bias = rng.standard_normal((5, 40)), rng.standard_normal((40, 6)), rng.standard_normal(6)
    c, y = gpu.to_device(np.zeros((5, 6))), gpu.to_device(np.zeros((5, 6)))
    before = kernels.COUNTS["launches"]
    gemm.gemm(gpu.to_device(a), gpu.to_device(b), c, bias=gpu.to_device(bias), y=y, kind=KINDS["tanh"], tile="tiny",
              splits=5)
    assert kernels.COUNTS["launches"] - before == 2
    assert_close(gpu.to_host(y), np.tanh(a @ b + bias), np.float64)
    x, W = rng.standard_normal((40, 5)), rng.standard_normal((5, 6))  # dW's product: K = 40 examples
    h = x @ W
    dy = rng.standard_normal(h.shape)
    dW, db, dW_ref, db_ref = np.zeros_like(W), np.zeros(6), np.zeros_like(W), np.zeros(6)
    dx = gpu.linear_backward(x, W, h, np.maximum(h, 0), dy, dW, db, "relu")
    dx_ref = reference.linear_backward(x, W, h, np.maximum(h, 0), dy, dW_ref, db_ref, "relu")
    for ours, ref in ((dx, dx_ref), (dW, dW_ref), (db, db_ref)):
        assert_close(ours, ref, np.float64)


def test_clipping_ops_on_packed_device_gradients_equal_the_reference():
    """One launch each over a packed list, past one block of THREADS for the norm's sums."""
    from npvae.kernels.cuda import optim
    rng = np.random.default_rng(0)
    hosts = [rng.standard_normal(shape) for shape in ((7, 9), (5,), (40,))]
    grads = arrays.pack(hosts)
    assert optim.squared_norm(grads) == pytest.approx(reference.squared_norm(hosts), rel=1e-12)
    optim.clip_all(grads, 0.5)
    optim.scale_all(grads, -3.0)
    reference.clip_all(hosts, 0.5)
    reference.scale_all(hosts, -3.0)
    for ours, ref in zip(grads, hosts):
        np.testing.assert_array_equal(gpu.to_host(ours), ref)
