"""Learning-rate schedules (the IWAE stages, exponential, cosine; resumed exactly),
the summed loss (Adam's steps unchanged with eps scaled by N), and the builders'
initialisation choices."""

import math

import numpy as np
import pytest

from npvae import io
from npvae.models import VAE, Autoencoder
from npvae.optim import iwae_stages, lr_schedule, scheduled_lr
from npvae.train import fit


def test_the_iwae_stages():
    schedule = lr_schedule("iwae")
    assert schedule["epochs"] == [1, 3, 9, 27, 81, 243, 729, 2187] and sum(schedule["epochs"]) == 3280
    lrs = {e: scheduled_lr(1e-3, schedule, e, 0, 1) for e in (1, 2, 4, 5, 13, 14, 3280, 4000)}
    assert lrs[1] == 1e-3 and lrs[2] == lrs[4] == pytest.approx(1e-3 * 10 ** (-1 / 7))
    assert lrs[5] == lrs[13] == pytest.approx(1e-3 * 10 ** (-2 / 7)) and lrs[14] == pytest.approx(1e-3 * 10 ** (-3 / 7))
    assert lrs[3280] == lrs[4000] == pytest.approx(1e-4)  # the last stage, and after it
    short = iwae_stages(passes=[1, 1, 2])
    assert [scheduled_lr(1.0, short, e, 0, 1) for e in (1, 2, 3, 4)] == pytest.approx([1, 10 ** (-1 / 7)] +
                                                                                      [10 ** (-2 / 7)] * 2)


def test_exponential_and_cosine():
    exp = lr_schedule({"name": "exponential", "gamma": 0.5})
    assert scheduled_lr(8.0, exp, 1, 3, 10) == 1.0
    cos = lr_schedule({"name": "cosine", "lr_min": 0.1})
    assert [scheduled_lr(1.0, cos, 1, s, 10) for s in (0, 5, 10, 20)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert lr_schedule("cosine") == {"name": "cosine", "lr_min": 0.0} and lr_schedule(None) == {"name": "constant"}


@pytest.mark.parametrize("bad, error", [
    ("step", r"lr_schedule: expected None, 'constant', 'iwae', 'cosine' or a dict"),
    ({"name": "exponential"}, r"a 'exponential' schedule takes \['gamma', 'name'\]"),
    ({"name": "exponential", "gamma": 1.5}, r"lr_schedule: gamma: expected a finite number in \(0, 1\]"),
    ({"name": "stages", "epochs": [1, 0], "factor": 0.5}, r"stages' epochs: expected a list of integers >= 1"),
])
def test_bad_schedules_are_refused(bad, error):
    with pytest.raises(ValueError, match=error):
        fit(VAE.mlp(4, (3,), 2, rng=0), np.ones((4, 4), np.float32) / 2, lr_schedule=bad, log=None)


def data():
    return np.random.default_rng(0).random((40, 6)).astype(np.float32)


def test_a_resumed_schedule_continues_exactly(tmp_path):
    kwargs = dict(optimizer="adam", lr=1e-2, lr_schedule=iwae_stages(passes=[1, 2, 2]), batch_size=10, seed=3,
                  binarize=True, log=None)
    straight = VAE.mlp(6, (5,), 2, rng=0)
    history = fit(straight, data(), epochs=5, **kwargs)
    first = VAE.mlp(6, (5,), 2, rng=0)
    fit(first, data(), epochs=2, checkpoint_dir=tmp_path, **kwargs)
    resumed = VAE.mlp(6, (5,), 2, rng=0)
    resumed_history = fit(resumed, data(), epochs=5, resume=tmp_path / "checkpoint.npz", **kwargs)
    assert resumed_history["lr"] == history["lr"] and history["lr"][0] > history["lr"][1] > history["lr"][3]
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v)
    assert io.load_checkpoint(tmp_path / "checkpoint.npz")[2]["state"]["lr_schedule"] == kwargs["lr_schedule"]
    other = VAE.mlp(6, (5,), 2, rng=7)
    before = {k: v.copy() for k, v in other.params.items()}
    with pytest.raises(ValueError, match="lr_schedule: the checkpoint's run used"):
        fit(other, data(), epochs=6, resume=tmp_path / "checkpoint.npz", **{**kwargs, "lr_schedule": "cosine"})
    assert all(np.array_equal(before[k], v) for k, v in other.params.items())


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_the_summed_loss_is_n_times_the_mean_and_adam_follows_it_with_eps_times_n(cls):
    x = data().astype(np.float64)
    mean_model, sum_model = (cls.mlp(6, (5,), 2, rng=0, dtype="float64") for _ in range(2))
    eps = np.random.default_rng(1).standard_normal((40, 1, 2))
    extra = {"eps": eps} if cls is VAE else {}
    loss_mean, _ = mean_model.loss_and_grad(x, **extra)
    loss_sum, _ = sum_model.loss_and_grad(x, reduction="sum", **extra)
    assert loss_sum == pytest.approx(40 * loss_mean, rel=1e-12)
    for k, g in mean_model.grads.items():
        np.testing.assert_allclose(sum_model.grads[k], 40 * g, rtol=1e-12, atol=1e-12)
    fit(mean_model, x, optimizer="adam", optimizer_kwargs={"eps": 1e-4}, epochs=3, batch_size=40, log=None)
    fit(sum_model, x, optimizer="adam", optimizer_kwargs={"eps": 40e-4}, reduction="sum", epochs=3, batch_size=40,
        log=None)
    for k, v in mean_model.params.items():
        np.testing.assert_allclose(sum_model.params[k], v, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"reduction: expected one of \('mean', 'sum'\), got 'max'"):
        mean_model.loss_and_grad(x, reduction="max", **extra)


def test_initialisation_choices():
    model = VAE.mlp(400, (300,), 20, init="torch_default", rng=0, dtype="float64")
    W, b = model.encoder[0].params["W"], model.encoder[0].params["b"]
    assert W.var() == pytest.approx(1 / (3 * 400), rel=0.02) and np.abs(W).max() <= 1 / math.sqrt(400)
    assert b.var() == pytest.approx(1 / (3 * 400), rel=0.2) and np.abs(b).max() <= 1 / math.sqrt(400)
    mean = np.linspace(0.0, 1.0, 6)
    bias = VAE.mlp(6, (5,), 2, rng=0, data_mean=mean).decoder[-1].params["b"]
    p = np.clip(mean, 1e-4, 1 - 1e-4)
    np.testing.assert_allclose(bias, np.log(p / (1 - p)), rtol=1e-5)
    gauss = VAE.mlp(6, (5,), 2, likelihood="gaussian_decoder_var", rng=0, data_mean=mean).decoder[-1].params["b"]
    np.testing.assert_allclose(gauss, np.r_[mean, np.zeros(6)], atol=1e-7)
    with pytest.raises(ValueError, match=r"data_mean: expected 6 finite values, got shape \(5,\)"):
        VAE.mlp(6, (5,), 2, data_mean=np.zeros(5))
    with pytest.raises(ValueError, match="init: expected one of"):
        VAE.conv(init="xavier")
