"""Training on real MNIST, determinism, checkpoints and resume, and bad input."""

import os

import numpy as np
import pytest

from npvae import files, io
from npvae.datasets import load_mnist
from npvae.models import VAE, Autoencoder, ConditionalVAE
from npvae.train import fit


@pytest.fixture(scope="module")
def mnist():
    x, y = load_mnist("train")
    return x[:1500], y[:1500], x[50000:50400], y[50000:50400]


def small_vae(seed=0, cls=VAE, **kw):
    return cls.mlp(784, (64,), 8, "tanh", "bernoulli", rng=seed, **kw)


@pytest.mark.parametrize("optimizer,lr,extra", [
    ("adagrad", 0.05, {}), ("adam", 2e-3, {}), ("rmsprop", 1e-3, {}),
    ("sgd", 1e-2, {"optimizer_kwargs": {"momentum": 0.9}, "clip_norm": 50.0}),
])
def test_validation_elbo_increases_on_real_mnist(mnist, optimizer, lr, extra):
    x, _, xv, _ = mnist
    history = fit(small_vae(), x, xv, optimizer=optimizer, lr=lr, epochs=3, batch_size=100, log=None, **extra)
    assert history["val_elbo"][-1] > history["val_elbo"][0] + 5, history["val_elbo"]
    assert history["epoch"] == [1, 2, 3]


def test_objectives_and_models_train(mnist):
    x, y, xv, yv = mnist
    for kw in (dict(estimator="A", n_samples=2), dict(objective="iwae", n_samples=3),
               dict(anneal="linear", anneal_steps=20, free_bits=0.1, clip_value=1.0, weight_decay=1e-4),
               dict(anneal="cyclical", anneal_steps=10, binarize=True)):
        h = fit(small_vae(), x, xv, optimizer="adam", epochs=2, log=None, **kw)
        assert h["val_elbo"][-1] > h["val_elbo"][0], kw
    h = fit(small_vae(cls=ConditionalVAE, n_classes=10), x, xv, y=y, y_val=yv, epochs=2, log=None)
    assert h["val_elbo"][-1] > h["val_elbo"][0]
    ae = Autoencoder.mlp(784, (64,), 8, "tanh", "bernoulli", rng=0)
    h = fit(ae, x, xv, epochs=2, log=None)
    assert h["val_log_px"][-1] > h["val_log_px"][0]


def test_same_seed_same_result_bit_for_bit(mnist):
    x, _, xv, _ = mnist
    runs = []
    for _ in range(2):
        model = small_vae(seed=1)
        fit(model, x[:500], xv, epochs=2, seed=7, binarize=True, log=None)
        runs.append(model.params)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_resumed_run_ends_identical(mnist, tmp_path):
    x, _, xv, _ = mnist
    straight = small_vae(seed=1)
    h1 = fit(straight, x[:500], xv, optimizer="adam", epochs=4, seed=3, binarize=True, log=None)
    first = small_vae(seed=1)
    fit(first, x[:500], xv, optimizer="adam", epochs=2, seed=3, binarize=True, checkpoint_dir=tmp_path, log=None)
    resumed = small_vae(seed=99)  # other initial weights: the checkpoint replaces them
    h2 = fit(resumed, x[:500], xv, optimizer="adam", epochs=4, seed=3, binarize=True,
             resume=tmp_path / "checkpoint.npz", log=None)
    for k in straight.params:
        np.testing.assert_array_equal(straight.params[k], resumed.params[k])
    assert h1["val_elbo"] == h2["val_elbo"] and h2["epoch"] == [1, 2, 3, 4]
    assert np.all(np.diff(h2["seconds"]) > 0), h2["seconds"]  # the resumed clock goes on from the checkpoint's


def test_checkpoint_round_trip(mnist, tmp_path):
    x, _, xv, _ = mnist
    model = small_vae()
    fit(model, x[:300], epochs=1, checkpoint_dir=tmp_path, log=None)
    loaded = io.load_model(tmp_path / "checkpoint.npz")
    eps = np.random.default_rng(0).standard_normal((len(xv), 1, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.elbo(xv, eps=eps), loaded.elbo(xv, eps=eps))


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_checkpoint(mnist, tmp_path):
    x, _, _, _ = mnist
    model = small_vae()
    real = model.loss_and_grad
    calls = []

    def poisoned(*args, **kwargs):  # the 7th step (epoch 3, step 1) returns NaN
        calls.append(1)
        loss, stats = real(*args, **kwargs)
        return (np.nan if len(calls) == 7 else loss), stats

    model.loss_and_grad = poisoned
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 3, step 1: the loss is nan .*; the last good checkpoint is"):
        fit(model, x[:300], epochs=5, batch_size=100, checkpoint_dir=tmp_path, checkpoint_every=1, log=None)
    _, _, meta = io.load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2
    assert all(np.isfinite(p).all() for p in io.load_model(tmp_path / "checkpoint.npz").params.values())


def test_bad_data_is_refused(mnist):
    x, y, _, _ = mnist
    model = small_vae()
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\] for a Bernoulli likelihood"):
        fit(model, x * 2, log=None)
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values, got NaN or inf"):
        fit(model, bad, log=None)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 784\), got \(1500, 783\)"):
        fit(model, x[:, :783], log=None)
    cvae = small_vae(cls=ConditionalVAE, n_classes=10)
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 10\), got range \[0, 10\]"):
        cvae.elbo(x[:5], y=np.array([0, 1, 2, 3, 10]), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="y: a ConditionalVAE needs labels, got None"):
        cvae.elbo(x[:5], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        fit(model, x, batch_size=0, log=None)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got -1"):
        fit(model, x, epochs=-1, log=None)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        fit(model, x, optimizer="lbfgs", log=None)


def test_bad_checkpoints_are_refused(mnist, tmp_path):
    x, _, _, _ = mnist
    model = small_vae()
    path = tmp_path / "ck.npz"
    io.save_checkpoint(path, model)
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.npz is not an npvae checkpoint \(or is truncated"):
        io.load_checkpoint(tmp_path / "cut.npz")
    other = VAE.mlp(784, (32,), 8, "tanh", "bernoulli", rng=0)
    params, _, _ = io.load_checkpoint(path)
    with pytest.raises(ValueError, match=r"parameter encoder.0.W: expected float32 of shape \(784, 32\), "
                                         r"got float32 of shape \(784, 64\)"):
        io.load_params(other, params)
    with pytest.raises(ValueError, match=r"parameter encoder.0.W: expected float32 of shape \(784, 64\), got float64"):
        io.load_params(small_vae(), {**params, "encoder.0.W": params["encoder.0.W"].astype(np.float64)})
    params["decoder.0.b"][3] = np.nan
    with pytest.raises(ValueError, match="parameter decoder.0.b: expected finite values, got NaN or inf"):
        io.load_params(small_vae(), params)
    with pytest.raises(FileNotFoundError, match="checkpoint: no such file"):
        io.load_checkpoint(tmp_path / "missing.npz")


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.json"
    files.save_json(path, {"a": 1})

    def broken(f):
        f.write(b"{half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(path, broken)
    assert path.read_text() == '{\n  "a": 1\n}'
    assert os.listdir(tmp_path) == ["f.json"]


def test_callback_can_stop_training_and_sees_the_history(mnist, tmp_path):
    x, _, xv, _ = mnist
    seen = []

    def stop_after_two(epoch, history):
        seen.append((epoch, len(history["val_elbo"])))
        return epoch == 2

    h = fit(small_vae(), x[:300], xv, epochs=10, callbacks=[stop_after_two], checkpoint_dir=tmp_path, log=None)
    assert seen == [(1, 1), (2, 2)] and h["epoch"] == [1, 2]
    assert io.load_checkpoint(tmp_path / "checkpoint.npz")[2]["state"]["epoch"] == 2


def test_progress_line_has_elapsed_and_eta(mnist):
    x, _, xv, _ = mnist
    lines = []
    fit(small_vae(), x[:200], xv, epochs=2, log=lines.append)
    assert len(lines) == 2 and "elapsed" in lines[0] and "eta" in lines[0] and "val elbo" in lines[0]
