"""Each optimiser's step against a step computed by hand; clipping."""

import numpy as np
import pytest

from npvae.optim import SGD, Adagrad, Adam, RMSProp, clip_by_global_norm, clip_by_value


def run(opt_class, grads_seq, **kwargs):
    params, grads = {"p": np.array([1.0, -2.0])}, {"p": np.zeros(2)}
    opt = opt_class(params, grads, **kwargs)
    out = []
    for g in grads_seq:
        grads["p"][:] = g
        opt.step()
        out.append(params["p"].copy())
    return out


G = [np.array([0.5, -1.0]), np.array([0.25, 2.0])]
P0 = np.array([1.0, -2.0])


def test_sgd_plain_and_momentum_and_nesterov():
    p1, p2 = run(SGD, G, lr=0.1)
    np.testing.assert_allclose(p2, P0 - 0.1 * G[0] - 0.1 * G[1])
    p1, p2 = run(SGD, G, lr=0.1, momentum=0.9)
    v1 = G[0]
    v2 = 0.9 * v1 + G[1]
    np.testing.assert_allclose(p2, P0 - 0.1 * v1 - 0.1 * v2)
    p1, p2 = run(SGD, G, lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(p2, P0 - 0.1 * (G[0] + 0.9 * v1) - 0.1 * (G[1] + 0.9 * v2))


def test_adagrad():
    _, p2 = run(Adagrad, G, lr=0.5, eps=0.0)
    s1, s2 = G[0] ** 2, G[0] ** 2 + G[1] ** 2
    np.testing.assert_allclose(p2, P0 - 0.5 * G[0] / np.sqrt(s1) - 0.5 * G[1] / np.sqrt(s2))


def test_rmsprop():
    _, p2 = run(RMSProp, G, lr=0.01, alpha=0.9, eps=1e-8)
    s1 = 0.1 * G[0] ** 2
    s2 = 0.9 * s1 + 0.1 * G[1] ** 2
    np.testing.assert_allclose(p2, P0 - 0.01 * G[0] / (np.sqrt(s1) + 1e-8) - 0.01 * G[1] / (np.sqrt(s2) + 1e-8))


def test_adam_with_bias_correction():
    p1, p2 = run(Adam, G, lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    # first step: m_hat = g, v_hat = g^2, so the step is lr * sign(g) (up to eps)
    np.testing.assert_allclose(p1, P0 - 0.1 * np.sign(G[0]), rtol=1e-6)
    m = 0.9 * 0.1 * G[0] + 0.1 * G[1]
    v = 0.99 * 0.01 * G[0] ** 2 + 0.01 * G[1] ** 2
    np.testing.assert_allclose(p2, p1 - 0.1 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.99**2)) + 1e-8))


def test_state_dict_round_trip():
    params, grads = {"a": np.ones(3)}, {"a": np.full(3, 0.5)}
    opt = Adam(params, grads)
    opt.step()
    other = Adam({"a": np.ones(3)}, {"a": np.zeros(3)})
    other.load_state_dict(opt.state_dict())
    assert other.t == 1
    np.testing.assert_array_equal(other.state["m"]["a"], opt.state["m"]["a"])
    with pytest.raises(ValueError, match="optimizer state: expected arrays"):
        SGD(params, grads, momentum=0.5).load_state_dict(opt.state_dict())
    # a wrong shape (which NumPy would broadcast), dtype, NaN or step count is refused,
    # and the state is left as it was
    cases = (("m/a", np.array([0.0]), r"m/a: expected float64 of shape \(3,\), got float64 of shape \(1,\)"),
             ("v/a", np.zeros(3, np.float32), r"v/a: expected float64 of shape \(3,\), got float32"),
             ("m/a", np.array([0.0, np.nan, 0.0]), "m/a: expected finite values"),
             ("t", np.array(-1), "t: expected a step count >= 0"),
             ("t", np.array(1.5), "t: expected a step count >= 0"))
    for key, bad, message in cases:
        with pytest.raises(ValueError, match=f"optimizer state: {message}"):
            other.load_state_dict({**opt.state_dict(), key: bad})
        assert other.t == 1
        np.testing.assert_array_equal(other.state["m"]["a"], opt.state["m"]["a"])


def test_clip_by_value_and_by_global_norm():
    grads = {"a": np.array([3.0, -0.5]), "b": np.array([[-4.0]])}
    clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(grads["a"], [1.0, -0.5])
    np.testing.assert_array_equal(grads["b"], [[-1.0]])
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert clip_by_global_norm(grads, 10.0) == pytest.approx(1.0)  # under the threshold: unchanged
    np.testing.assert_allclose(grads["b"], [[0.8]])


def test_bad_hyperparameters():
    p, g = {"a": np.ones(1)}, {"a": np.ones(1)}
    with pytest.raises(ValueError, match=r"lr: expected a finite number in \(0, inf\), got -1"):
        SGD(p, g, lr=-1)
    with pytest.raises(ValueError, match=r"momentum: expected a finite number in \[0, 1\), got 1.5"):
        SGD(p, g, momentum=1.5)
    with pytest.raises(ValueError, match=r"clip_value: expected a finite number in \(0, inf\)"):
        clip_by_value(g, 0)
    with pytest.raises(ValueError, match=r"clip_norm: expected a finite number in \(0, inf\), got nan"):
        clip_by_global_norm(g, float("nan"))


@pytest.mark.parametrize("make, error", [
    (lambda p, g: Adam(p, g, betas=(1.0, 0.999)), r"betas\[0\]: expected a finite number in \[0, 1\), got 1.0"),
    (lambda p, g: Adam(p, g, betas=(0.9, -0.1)), r"betas\[1\]: expected a finite number in \[0, 1\)"),
    (lambda p, g: Adam(p, g, betas=0.9), r"betas: expected a pair \(beta1, beta2\), got 0.9"),
    (lambda p, g: Adam(p, g, eps=-1e-8), r"eps: expected a finite number in \[0, inf\), got -1e-08"),
    (lambda p, g: RMSProp(p, g, alpha=1.5), r"alpha: expected a finite number in \[0, 1\), got 1.5"),
    (lambda p, g: Adagrad(p, g, lr=float("inf")), r"lr: expected a finite number in \(0, inf\), got inf"),
    (lambda p, g: SGD(p, {}), r"grads: expected an array shaped like each parameter .* missing \['a'\]"),
    (lambda p, g: SGD(p, {"a": np.ones(2)}), r"grads: .*, or a shape differs; pass model.grads"),
])
def test_optimisers_refuse_hyperparameters_that_would_break_them(make, error):
    """Adam with beta1 = 1 or RMSProp with alpha > 1 make the parameters NaN after one
    step; a grads dict missing a key failed in the first step with a KeyError."""
    p, g = {"a": np.ones(1)}, {"a": np.ones(1)}
    with pytest.raises(ValueError, match=error):
        make(p, g)
