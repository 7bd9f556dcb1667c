"""The gradient tour: what it reports is right (finite differences agree, the model is
left alone), it shows what a learner should see (vanishing gradients, dead ReLUs), and
`npvae tour` writes its table, JSON and figure."""

import json

import numpy as np
import pytest

from npvae.cli import main
from npvae.tour import tour
from npvae.models import VAE
from npvae.tour import format_tour


def batch(n=16, d=12, seed=0):
    return (np.random.default_rng(seed).random((n, d)) > 0.5).astype(np.float32)


def test_the_tour_agrees_with_finite_differences_and_leaves_the_model_alone():
    model = VAE.mlp(12, (8, 6), 3, "tanh", rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    result = tour(model, batch())
    assert [e["layer"] for e in result["layers"]] == ["decoder.2", "decoder.1", "decoder.0", "encoder.2",
                                                       "encoder.1", "encoder.0"]
    assert all(s["fd_rel_err"] < 1e-5 and s["pass"] for e in result["layers"] for s in e["params"].values())
    assert all(e["input"]["pass"] for e in result["layers"]) and result["all_passed"]
    assert all(np.array_equal(before[k], v) and v.dtype == np.float32 for k, v in model.params.items())
    split = result["encoder_output_split"]
    assert split["kl_norm"] > 0 and -1 <= split["cosine"] <= 1
    table = format_tour(result)
    assert "FD rel err" in table and "cosine" in table and len(table.splitlines()) == 2 + 6 + 12 + 2
    assert table.splitlines()[-1].startswith("every check passed")


def test_the_tour_shows_vanishing_gradients_and_dead_relus():
    deep = VAE.mlp(12, (10,) * 5, 3, "tanh", rng=0)
    for layer in [*deep.encoder, *deep.decoder]:
        layer.params["W"] *= 0.4
    flow = {e["layer"]: e["grad_output_norm"] for e in tour(deep, batch())["layers"]}
    assert flow["encoder.0"] < 1e-3 * flow["decoder.5"]
    relu = VAE.mlp(12, (8,), 3, "relu", rng=0)
    dead = lambda: next(e for e in tour(relu, batch())["layers"] if e["layer"] == "encoder.0")["dead"]  # noqa: E731
    before = dead()
    relu.encoder[0].params["b"][:4] = -100.0  # four units below zero for every input
    assert before < 0.5 <= dead() <= before + 0.5


def test_the_tour_refuses_what_it_cannot_tour():
    model = VAE.mlp(12, (8,), 3, rng=0)
    with pytest.raises(ValueError, match=r"x: expected at least one example"):
        tour(model, batch()[:0])
    with pytest.raises(ValueError, match="fd_entries: expected an integer >= 1, got 0"):
        tour(model, batch(), fd_entries=0)


def test_npvae_tour_on_a_checkpoint_and_on_a_conv_config(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16", "--latent", "2", "--epochs", "1", "--train-size", "200",
                 "--out", str(run)]) == 0
    assert main(["tour", str(run / "checkpoint.npz"), "--n", "8", "--out", str(tmp_path / "t1")]) == 0
    result = json.loads((tmp_path / "t1" / "tour.json").read_text())
    assert result["batch"] == 8 and len(result["layers"]) == 4
    assert (tmp_path / "t1" / "tour.png").stat().st_size > 10000
    config = tmp_path / "conv.toml"
    config.write_text('arch = "conv"\nchannels = [4]\nlatent = 3\n')
    assert main(["tour", str(config), "--n", "4", "--fd-entries", "2", "--out", str(tmp_path / "t2")]) == 0
    layers = json.loads((tmp_path / "t2" / "tour.json").read_text())["layers"]
    assert {"Conv2d", "ConvTranspose2d", "Flatten", "Reshape"} <= {e["type"] for e in layers}
    assert "dead" in next(e for e in layers if e["type"] == "Conv2d")  # its joined ReLU's dead units
    assert "encoder's output" in capsys.readouterr().out
    assert main(["tour", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_fresh_conv_vae_on_digits_tours_with_every_row_passing():
    """Zero biases on MNIST's background put many ReLU pre-activations exactly at the
    kink: those sampled entries are skipped and counted, not reported as errors."""
    from npvae.datasets import binarize_static, load_mnist

    x = binarize_static(load_mnist("test")[0][:16], seed=2).reshape(16, 1, 28, 28)
    result = tour(VAE.conv((1, 28, 28), (4, 8), 4, latent_dim=3, rng=0), x, fd_entries=8)
    assert result["all_passed"], format_tour(result)
    assert result["skipped_at_kinks"] > 0
    assert {e["type"] for e in result["layers"]} >= {"Flatten", "Reshape"}  # parameter-free layers too


def test_a_wrong_backward_in_a_parameter_free_layer_fails_its_own_row():
    from npvae import nn

    class ForgetfulTanh(nn.Tanh):
        def backward(self, dy, need_dx=True):
            return dy  # f' left out
    model = VAE.mlp(12, (8,), 3, "tanh", rng=0)
    model = VAE(nn.Sequential(model.encoder[0], ForgetfulTanh(), *model.encoder.layers[1:]), model.decoder,
                model.likelihood, 3, (12,))
    result = tour(model, batch())
    rows = {e["layer"]: e["input"]["pass"] for e in result["layers"]}
    assert rows["encoder.1"] is False and not result["all_passed"]
    assert sum(not ok for ok in rows.values()) == 1  # only the wrong layer: each is checked on its own
    assert "1 checks FAILED" in format_tour(result)
