"""The gradient checker itself: it passes right gradients and catches wrong ones."""

import numpy as np
import pytest
from hypothesis import given

from npvae.testing import seeds
from npvae import check_function, check_module, check_params, nn


class LinearWithWrongBackward(nn.Linear):
    """A deliberate, plausible bug: the weight gradient forgets the batch sum's transpose
    order and uses dy's mean instead of its sum for the bias."""

    def backward(self, dy):
        x, _, _ = self.saved_for_backward(dy)
        self.grads["W"] += x.T @ dy
        self.grads["b"] += dy.mean(axis=0)
        return dy @ self.params["W"].T


class ReLUWithWrongBackward(nn.ReLU):
    def backward(self, dy):
        x, y = self.saved_for_backward(dy)
        return dy * (x >= -0.5)  # wrong kink


@given(seeds)
def test_catches_wrong_bias_gradient(seed):
    rng = np.random.default_rng(seed)
    layer = LinearWithWrongBackward(3, 2, rng=rng).astype(np.float64)
    result = check_module(layer, rng.standard_normal((4, 3)), rng=seed)
    assert not result.ok
    assert result.arrays["W"].ok and result.arrays["x"].ok and not result.arrays["b"].ok
    assert result.arrays["b"].rel_err > 0.1


def test_catches_wrong_activation_gradient():
    x = np.array([[-0.3, 0.4, -2.0]])
    result = check_module(ReLUWithWrongBackward(), x)
    assert not result.ok and result.arrays["x"].worst_index == (0, 0)
    assert "False" in str(result)


def test_check_function_on_a_plain_function():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert check_function(lambda a: np.sum(np.sin(a)), x, np.cos(x)).ok
    assert not check_function(lambda a: np.sum(np.sin(a)), x, np.sin(x)).ok


def test_check_params_reads_arrays_in_place_and_restores_them():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    before = (a.copy(), b.copy())
    result = check_params(lambda: float(a @ b), {"a": a, "b": b}, {"a": b, "b": a})
    assert result.ok and set(result.arrays) == {"a", "b"}
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])
    with pytest.raises(ValueError, match=r"grads: expected a gradient for every array, missing \['b'\]"):
        check_params(lambda: float(a @ b), {"a": a, "b": b}, {"a": b})


def test_float32_is_refused_with_a_hint():
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="gradcheck needs float64 arrays, got float32.*astype"):
        check_module(layer, np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x: gradcheck needs float64"):
        check_function(np.sum, np.zeros(3, np.float32), np.ones(3, np.float32))
