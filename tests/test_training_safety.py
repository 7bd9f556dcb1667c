"""fit never loses a good run: every argument checked before any work, a refused
resume changes nothing, a diverging run stops naming the step and never checkpoints a
non-finite state, Ctrl-C checkpoints the last finished step and resumes bit for bit."""

import os
import signal

import numpy as np
import pytest

from npvae import io
from npvae.models import VAE, Autoencoder, ConditionalVAE
from npvae.train import fit


def data(n=60, d=8, seed=0):
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def small_vae(seed=0):
    return VAE.mlp(8, (6,), 2, rng=seed)


@pytest.mark.parametrize("kwargs, error", [
    (dict(beta=-1.0), r"beta: expected a finite number in \[0, inf\), got -1.0"),
    (dict(anneal="linear", anneal_steps=-5), r"anneal_steps: expected an integer >= 0, got -5"),
    (dict(anneal="cyclical"), r"anneal_steps: cyclical annealing needs a period of at least 1 step, got 0"),
    (dict(free_bits=-0.1), r"free_bits: expected a finite number in \[0, inf\), got -0.1"),
    (dict(free_bits=0.1, estimator="A"), r"free_bits: applies to the analytic KL of estimator B"),
    (dict(weight_decay=-1e-3), r"weight_decay: expected a finite number in \[0, inf\)"),
    (dict(clip_norm=0.0), r"clip_norm: expected a finite number in \(0, inf\), got 0.0"),
    (dict(seed=-1), r"seed: expected an integer >= 0, got -1"),
    (dict(n_samples=0), r"n_samples: expected an integer >= 1, got 0"),
    (dict(estimator="C"), r"estimator: expected one of \('A', 'B'\), got 'C'"),
    (dict(optimizer="adam", optimizer_kwargs={"betas": (1.0, 0.999)}), r"betas\[0\]: expected a finite number"),
    (dict(x_val=np.ones((5, 7), np.float32)), r"x_val: expected shape \(N, 8\), got \(5, 7\)"),
    (dict(x_val=np.full((5, 8), 2.0, np.float32)), r"x_val: expected values in \[0, 1\]"),
])
def test_bad_settings_are_refused_before_any_work(tmp_path, kwargs, error):
    model = small_vae()
    before = {k: v.copy() for k, v in model.params.items()}
    x_val = kwargs.pop("x_val", None)
    with pytest.raises(ValueError, match=error):
        fit(model, data(), x_val, epochs=1, checkpoint_dir=tmp_path, log=None, **kwargs)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
    assert not os.listdir(tmp_path)


def test_empty_data_and_bad_labels_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"x: expected at least one example, got an empty array of shape \(0, 8\)"):
        fit(small_vae(), data()[:0], epochs=1, log=None)
    cvae = ConditionalVAE.mlp(8, (6,), 2, rng=0, n_classes=3)
    x, y = data(), np.arange(60) % 3
    with pytest.raises(ValueError, match=r"y: expected 60 integer labels \(one per example\), got shape \(59,\)"):
        fit(cvae, x, y=y[:59], epochs=1, log=None)
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 3\), got range \[0, 3\]"):
        fit(cvae, x, y=np.r_[y[:-1], 3], epochs=1, log=None)
    with pytest.raises(ValueError, match=r"y_val: expected labels in \[0, 3\), got range \[-1, 2\]"):
        fit(cvae, x, x[:10], y=y, y_val=np.r_[-1, y[:9]], epochs=1, checkpoint_dir=tmp_path, log=None)
    with pytest.raises(ValueError, match="y: this model takes no labels"):
        fit(Autoencoder.mlp(8, (6,), 2, rng=0), x, y=y, epochs=1, log=None)
    assert not os.listdir(tmp_path)


def test_a_refused_resume_changes_nothing(tmp_path):
    model = small_vae()
    fit(model, data(), optimizer="sgd", lr=0.1, epochs=1, checkpoint_dir=tmp_path, log=None)
    other = small_vae(seed=5)
    before = {k: v.copy() for k, v in other.params.items()}
    with pytest.raises(ValueError, match="resume: the checkpoint's run used optimizer='sgd'; got optimizer='adam'"):
        fit(other, data(), optimizer="adam", epochs=2, resume=tmp_path / "checkpoint.npz", log=None)
    io.save_checkpoint(tmp_path / "model_only.npz", model)  # no training state: io's checkpoint, not fit's
    with pytest.raises(ValueError, match="resume: .*model_only.npz holds no training state"):
        fit(other, data(), optimizer="sgd", lr=0.1, epochs=2, resume=tmp_path / "model_only.npz", log=None)
    assert all(np.array_equal(before[k], v) for k, v in other.params.items())


@pytest.mark.parametrize("optimizer, lr", [("adam", 10.0), ("rmsprop", 1.0)])
def test_a_diverging_run_stops_and_keeps_the_good_checkpoint(tmp_path, optimizer, lr):
    """These finished with infinite moment estimates and checkpointed them, which resume
    then refused; now the exploding loss stops them within the first epoch."""
    x = data(200)
    model = small_vae()
    fit(model, x, optimizer=optimizer, lr=1e-3, epochs=1, batch_size=20, checkpoint_dir=tmp_path, log=None)
    good = io.load_checkpoint(tmp_path / "checkpoint.npz")[0]
    with pytest.raises(FloatingPointError, match=r"training diverged at epoch 1, step \d+: the loss is .* times the "
                                                 r"first step's .*the last good checkpoint is"):
        with np.errstate(over="ignore", invalid="ignore"):
            fit(small_vae(), x, optimizer=optimizer, lr=lr, epochs=20, batch_size=20, checkpoint_dir=tmp_path,
                log=None)
    kept = io.load_checkpoint(tmp_path / "checkpoint.npz")[0]
    assert all(np.array_equal(good[k], kept[k]) for k in good)


def test_divergence_blames_the_parameters_not_the_data(tmp_path):
    """A layer refusing its non-finite input said "x: expected finite values", blaming the data."""
    def poison(epoch, history):
        model.params["encoder.0.W"][0, 0] = np.nan

    model = small_vae()
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 2, step 1: the parameters are no longer finite"):
        fit(model, data(), epochs=2, batch_size=10, callbacks=[poison], log=None)
    model = small_vae()
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 1, step 6: the parameters are no longer finite "
                                                 r"\(nothing checkpointed\)"):
        fit(model, data(), epochs=2, batch_size=10, callbacks=[poison], checkpoint_dir=tmp_path, checkpoint_every=1,
            log=None)
    assert not os.listdir(tmp_path)


def test_ctrl_c_checkpoints_the_last_step_and_resume_is_bit_identical(tmp_path):
    x = data(100)
    kwargs = dict(optimizer="adam", epochs=3, batch_size=10, seed=4, binarize=True, log=None)
    straight = small_vae()
    fit(straight, x, **kwargs)

    model = small_vae()
    real, calls = model.loss_and_grad, []

    def interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 14:  # epoch 2, step 4
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)

    model.loss_and_grad = interrupted
    with pytest.raises(KeyboardInterrupt, match="stopped at epoch 2, step 4; checkpoint"):
        fit(model, x, checkpoint_dir=tmp_path, **kwargs)
    resumed = small_vae(seed=9)
    fit(resumed, x, resume=tmp_path / "checkpoint.npz", **kwargs)
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v)


def test_a_finite_but_exploding_loss_is_a_divergence(tmp_path):
    """SGD at lr 1 ran to an ELBO of -6.6e29 with only RuntimeWarnings."""
    model = small_vae()
    real, calls = model.loss_and_grad, []

    def exploding(*args, **kwargs):
        calls.append(1)
        loss, stats = real(*args, **kwargs)
        return (loss * 1e7 if len(calls) == 9 else loss), stats

    model.loss_and_grad = exploding
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 2, step 3: the loss is .*e\+0?\d+, 1e\+06 times "
                                                 r"the first step's"):
        fit(model, data(), epochs=3, batch_size=10, log=None)


def test_an_overflowing_optimiser_state_is_never_checkpointed(tmp_path, monkeypatch):
    """Adam's moments can overflow while the loss stays finite (its steps then vanish)."""
    from npvae.optim import Adam

    real = Adam.step

    def overflowing(self):
        real(self)
        if self.t == 8:
            next(iter(self.state["v"].values()))[...] = np.inf

    monkeypatch.setattr(Adam, "step", overflowing)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 2, step 6: the optimiser's state is no longer "
                                                 r"finite \(nothing checkpointed\)"):
        fit(small_vae(), data(), epochs=3, batch_size=10, checkpoint_dir=tmp_path, checkpoint_every=1, log=None)
    assert io.load_checkpoint(tmp_path / "checkpoint.npz")[2]["state"]["epoch"] == 1
