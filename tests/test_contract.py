"""The layer contract: npvae's layers and a user's (a LayerNorm and a GELU written as
the tutorial shows) keep it; six planted bugs each break it, with a report that names
the property and shows the values; the user's layers train as the decoder's last layer,
save, reload from the caller's classes and resume bit for bit."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.special import erf

from npvae import io, nn
from npvae.models import VAE
from npvae.testing import arrays, assert_layer_contract, away_from_kinks, conv_geometries, conv_layer, seeds
from npvae.train import fit


class LayerNorm(nn.Module):
    """y = gamma (x - mean) / sqrt(var + eps) + beta over each row's features. With
    xh the normalised row and g = dy gamma: dx = (g - mean(g) - xh mean(g xh)) / sqrt(var + eps)."""

    def __init__(self, features, eps=1e-5):
        super().__init__()
        self.features, self.eps = features, eps
        self.add_param("gamma", np.ones(features, dtype=np.float32))
        self.add_param("beta", np.zeros(features, dtype=np.float32))

    def forward(self, x):
        inv_std = 1 / np.sqrt(x.var(axis=1, keepdims=True) + self.eps)
        xh = (x - x.mean(axis=1, keepdims=True)) * inv_std
        return self.save_for_backward((xh, inv_std), xh * self.params["gamma"] + self.params["beta"])

    def backward(self, dy, need_dx=True):
        xh, inv_std = self.saved_for_backward(dy)
        self.grads["gamma"] += (dy * xh).sum(axis=0)
        self.grads["beta"] += dy.sum(axis=0)
        if not need_dx:
            return None
        g = dy * self.params["gamma"]
        return (g - g.mean(axis=1, keepdims=True) - xh * (g * xh).mean(axis=1, keepdims=True)) * inv_std

    def config(self):
        return {"features": self.features, "eps": self.eps}


class GELU(nn.Module):
    """y = x Phi(x), Phi the standard normal CDF: dy/dx = Phi(x) + x phi(x). (Python
    floats as constants: a NumPy float64 scalar would turn float32 arrays into float64.)"""

    def forward(self, x):
        cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return self.save_for_backward((x, cdf), x * cdf)

    def backward(self, dy, need_dx=True):
        x, cdf = self.saved_for_backward(dy)
        return dy * (cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)) if need_dx else None


@settings(max_examples=5)
@given(arrays(shape=(4, 6)), seeds)
def test_npvae_layers_and_the_users_keep_the_contract(x, seed):
    for layer in (nn.Linear(6, 3, rng=seed, activation="tanh"), nn.Linear(6, 3, rng=seed, activation="elu"),
                  nn.Tanh(), nn.Sigmoid(), nn.Softplus(), nn.ELU(), nn.Flatten(), nn.Reshape((2, 3)),
                  LayerNorm(6), GELU()):
        assert_layer_contract(layer, away_from_kinks(x), rng=seed)  # ELU's derivative jumps at 0


@settings(max_examples=5)
@given(conv_geometries(max_size=5), conv_geometries(max_size=4, transposed=True), seeds)
def test_conv_layers_keep_the_contract(geometry, transposed, seed):
    for kwargs, x_shape in (geometry, transposed):
        rng = np.random.default_rng(seed)
        assert_layer_contract(conv_layer(kwargs, rng), rng.standard_normal(x_shape), rng=seed)


class GradsAssigned(LayerNorm):
    def backward(self, dy, need_dx=True):
        before = {k: g.copy() for k, g in self.grads.items()}
        dx = super().backward(dy, need_dx)
        self.grads["gamma"][...] -= before["gamma"]  # as if assigned: only this pass's gradient is left
        return dx


class DyChanged(LayerNorm):
    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        dy *= 2
        return dx


class XChanged(GELU):
    def forward(self, x):
        y = super().forward(x)
        x -= x.mean()
        return y


class Float64Leak(GELU):
    def forward(self, x):
        return super().forward(x.astype(np.float64))

    def backward(self, dy, need_dx=True):
        return super().backward(dy.astype(np.float64), need_dx)


class DxWithoutGamma(LayerNorm):
    def backward(self, dy, need_dx=True):
        gamma = self.params["gamma"].copy()
        self.params["gamma"][...] = 1
        try:
            dx = super().backward(dy, need_dx)
        finally:
            self.params["gamma"][...] = gamma
        self.grads["gamma"] += 0  # gamma's own gradient stays right: only dx forgets it
        return dx


class WrongBetaGradient(LayerNorm):
    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        self.grads["beta"] += dy.mean(axis=0) - dy.sum(axis=0)  # the batch mean instead of the sum
        return dx


@pytest.mark.parametrize("layer, prop", [
    (GradsAssigned(6), "backward adds into grads"),
    (DyChanged(6), "backward leaves dy and x unchanged"),
    (XChanged(), "forward leaves x unchanged"),
    (Float64Leak(), "float32 in, float32 out"),
    (DxWithoutGamma(6), "backward matches finite differences"),
    (WrongBetaGradient(6), "backward matches finite differences"),
])
def test_each_planted_bug_breaks_the_contract_with_a_report(layer, prop):
    x = np.random.default_rng(0).standard_normal((4, 6))
    with pytest.raises(AssertionError) as caught:
        assert_layer_contract(layer, x)
    report = str(caught.value)
    assert f"FAIL {prop}" in report, report
    assert "analytic" in report and "numeric" in report and "ratio" in report


def test_a_layer_that_records_no_output_shape_is_told_how():
    class Bare(GELU):
        def forward(self, x):
            self.cache = (x, 0.5 * (1 + erf(x / math.sqrt(2))))
            return x * self.cache[1]

        def backward(self, dy, need_dx=True):
            x, cdf = self.cache
            return dy * (cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)) if need_dx else None
    with pytest.raises(AssertionError, match="FAIL out_shape is recorded: .*save_for_backward"):
        assert_layer_contract(Bare(), np.ones((2, 3)))


def users_vae(seed=0):
    """A VAE built by hand from Sequentials and a likelihood, the user's layers in it,
    a LayerNorm last in the decoder."""
    encoder = nn.Sequential(nn.Linear(6, 8, rng=seed), GELU(), nn.Linear(8, 4, rng=seed))
    decoder = nn.Sequential(nn.Linear(2, 8, rng=seed), GELU(), nn.Linear(8, 6, rng=seed), LayerNorm(6))
    from npvae.distributions import make_likelihood

    return VAE(encoder, decoder, make_likelihood("bernoulli", 6), latent_dim=2, data_shape=(6,))


def test_the_users_layers_train_save_reload_and_resume_bit_for_bit(tmp_path):
    x = (np.random.default_rng(0).random((40, 6)) < 0.5).astype(np.float32)
    straight = users_vae()
    fit(straight, x, epochs=2, batch_size=10, checkpoint_dir=tmp_path / "a", log=None)
    resumed = users_vae()
    fit(resumed, x, epochs=1, batch_size=10, checkpoint_dir=tmp_path / "b", log=None)
    fit(resumed, x, epochs=2, batch_size=10, checkpoint_dir=tmp_path / "b", resume=tmp_path / "b" / "checkpoint.npz",
        log=None)
    for k, p in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], p, err_msg=k)
    loaded = io.load_model(tmp_path / "a" / "checkpoint.npz", layers=[LayerNorm, GELU])
    assert [type(m) for m in loaded.decoder] == [nn.Linear, GELU, nn.Linear, LayerNorm]
    np.testing.assert_array_equal(loaded.encode(x)[0], straight.encode(x)[0])
    assert "LayerNorm(features=6, eps=1e-05)" in repr(loaded)


def test_the_users_layers_keep_a_model_off_the_device_path():
    """On the CUDA backend such a model trains with NumPy arrays (each npvae op copying to
    the GPU and back) rather than handing device arrays to layers that cannot take them."""
    from npvae.models.device import device_refusal

    assert device_refusal(users_vae()) == "layers of your own (GELU, LayerNorm: no device kernels): outside the device path"
    assert device_refusal(VAE.mlp(6, (8,), 2)) is None


def test_the_users_layers_tour_with_every_row_passing_and_a_layer_without_bookkeeping_trains_last():
    from npvae.tour import format_tour, tour

    x = (np.random.default_rng(0).random((16, 6)) < 0.5).astype(np.float32)
    result = tour(users_vae(), x)
    assert result["all_passed"], format_tour(result)

    class Swish(nn.Module):  # the tutorial's first draft: its own cache, no save_for_backward
        def forward(self, x):
            self.cache = (x, 1 / (1 + np.exp(-x)))
            return x * self.cache[1]

        def backward(self, dy, need_dx=True):
            x, s = self.cache
            return dy * (s + x * s * (1 - s))
    model = users_vae()
    model = VAE(model.encoder, nn.Sequential(*model.decoder.layers[:3], Swish()), model.likelihood, 2, (6,))
    history = fit(model, x, epochs=1, batch_size=8, log=None)  # the decoder's Sequential keeps out_shape
    assert np.isfinite(history["train_elbo"][0])
