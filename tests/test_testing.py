"""npvae.testing itself: its strategies make what they promise, its assertions fail on
a wrong gradient or a wrong backend with a report, and pass on right ones."""

import numpy as np
import pytest
from hypothesis import find, given

from npvae import kernels, nn
from npvae.testing import (
    arrays, assert_backends_agree, assert_gradients_match, conv_geometries, seeds, small_models,
)


@given(arrays(dtype=np.float32))
def test_arrays_are_finite_float_arrays_of_every_layout(a):
    assert a.dtype == np.float32 and np.isfinite(a).all() and 1 <= a.ndim <= 3


def test_arrays_include_non_contiguous_views_and_edge_values():
    assert not find(arrays(shape=(3, 2)), lambda a: not a.flags.c_contiguous).flags.c_contiguous
    assert find(arrays(shape=(4, 4)), lambda a: np.any(np.abs(a) == 10)).shape == (4, 4)


@given(conv_geometries(), conv_geometries(transposed=True))
def test_conv_geometries_are_valid_by_construction(plain, transposed):
    for cls, (kwargs, shape) in ((nn.Conv2d, plain), (nn.ConvTranspose2d, transposed)):
        layer = cls(**kwargs, rng=0).astype(np.float64)
        assert min(layer.forward(np.zeros(shape)).shape[2:]) >= 1


@given(small_models())
def test_small_models_train_a_step(model_and_x):
    model, x = model_and_x
    loss, _ = model.loss_and_grad(x, rng=0)
    assert np.isfinite(loss)


class WrongLinear(nn.Linear):
    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        self.grads["W"] *= 1.01  # one percent off
        return dx


@given(arrays(shape=(3, 4)))
def test_assert_gradients_match_passes_a_right_layer_and_reports_a_wrong_one(x):
    assert_gradients_match(nn.Linear(4, 2, rng=0).astype(np.float64), x)
    with pytest.raises(AssertionError, match=r"(?s)gradient check failed:.*\nW .*False"):
        assert_gradients_match(WrongLinear(4, 2, rng=0).astype(np.float64), x)
    assert_gradients_match(lambda v: float(np.sum(v**3)), x, grad=3 * x**2)
    with pytest.raises(AssertionError, match="gradient check failed"):
        assert_gradients_match(lambda v: float(np.sum(v**3)), x, grad=3.1 * x**2 + 1)


@given(seeds)
def test_assert_backends_agree_on_an_op(seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    assert_backends_agree("linear_forward", (x, W, b, "tanh"))
    assert kernels.backend == "numpy"


def test_assert_backends_agree_fails_when_a_backend_is_wrong(monkeypatch):
    cpu = kernels.use("numba")
    kernels.use("numpy")
    real = cpu.activation_forward
    monkeypatch.setattr(cpu, "activation_forward", lambda x, kind, alpha=0.0: real(x, kind, alpha) * 1.001)
    with pytest.raises(AssertionError, match="activation_forward: numba differs from numpy in result 0"):
        assert_backends_agree("activation_forward", (np.linspace(-2, 2, 12).reshape(3, 4), "relu"))


def test_assert_backends_agree_copies_and_compares_list_arguments(monkeypatch):
    """Adam takes lists of arrays and updates them in place: each backend gets its own
    copies (the caller's arrays stay as they were) and the updated lists are compared."""
    rng = np.random.default_rng(0)
    lists = [[rng.standard_normal((3, 2)), rng.standard_normal(4)] for _ in range(4)]
    params, grads, ms, vs = lists
    vs = [np.abs(v) for v in vs]
    before = [a.copy() for a in params]
    assert_backends_agree("adam_update", (params, grads, ms, vs, 1e-2, 0.9, 0.999, 1e-8, 1), rtol=1e-9)
    assert all(np.array_equal(a, b) for a, b in zip(params, before))
    cpu = kernels.use("numba")
    kernels.use("numpy")
    real = cpu.adam_update

    def wrong(params, *rest):
        real(params, *rest)
        params[1] += 1e-3  # an update that is off in the second array only
    monkeypatch.setattr(cpu, "adam_update", wrong)
    with pytest.raises(AssertionError, match="adam_update: numba differs from numpy"):
        assert_backends_agree("adam_update", (params, grads, ms, vs, 1e-2, 0.9, 0.999, 1e-8, 1), rtol=1e-9)


@pytest.mark.parametrize("backends", [(), ("numpy",)])
def test_assert_backends_agree_refuses_fewer_than_two_backends_and_unknown_ops(backends):
    with pytest.raises(ValueError, match="backends: expected at least two backends"):
        assert_backends_agree("matmul", (np.ones((2, 2)), np.ones((2, 2))), backends=backends)
    with pytest.raises(ValueError, match="op: expected one of the op table's .*, got 'matmull'"):
        assert_backends_agree("matmull", (np.ones((2, 2)), np.ones((2, 2))))
