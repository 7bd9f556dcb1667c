"""The command line's main path in a temporary folder, bad flags, and the figures' maths."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import norm

from npvae import io, plots
from npvae.cli import main


def test_demo_with_tiny_settings_writes_everything(tmp_path, capsys):
    code = main(["demo", "--epochs", "1", "--train-size", "500", "--hidden", "32", "--k", "5",
                 "--n-test-ll", "20", "--out", str(tmp_path)])
    assert code == 0
    for name in ("checkpoint.npz", "history.json", "results.json", "samples_mean.png", "samples_ancestral.png",
                 "reconstructions.png", "latent.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "results.json").read_text())
    assert np.isfinite(results["test_elbo"]) and results["test_log_likelihood"] < 0
    assert "test ELBO" in capsys.readouterr().out


def test_bad_flag_is_one_line_and_exit_2():
    run = subprocess.run([sys.executable, "-m", "npvae", "demo", "--epochs", "many"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "argument --epochs: expected an integer >= 1, got 'many'" in run.stderr and "Traceback" not in run.stderr


def test_manifold_grid_has_equal_mass_cells():
    z = plots.manifold_grid(10)
    assert z.shape == (100, 2)
    u = np.unique(norm.cdf(z[:, 0]))
    np.testing.assert_allclose(np.diff(u), 0.1)  # equally spaced in probability


def test_tile_places_images_row_major():
    images = np.arange(6)[:, None, None] * np.ones((6, 2, 3))
    canvas = plots.tile(images, 4, (2, 3))
    assert canvas.shape == (4, 12)
    assert canvas[0, 3] == 1 and canvas[2, 0] == 4 and canvas[2, 9] == 1.0  # empty cells stay white
    with pytest.raises(ValueError, match=r"images: expected \(N, 6\) or \(N, 1, 2, 3\) for image_shape=\(2, 3\), "
                                         r"got shape \(6, 7\)"):
        plots.tile(np.ones((6, 7)), 4, (2, 3))


def test_train_eval_sample_plot_from_a_json_config(tmp_path, capsys):
    config = tmp_path / "cvae.json"
    config.write_text(json.dumps({"model": "cvae", "latent": 2, "hidden": [16], "epochs": 3, "train_size": 300}))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--epochs", "1", "--out", str(run)]) == 0  # the flag wins
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [1] and json.loads((run / "run.json").read_text())["model"] == "cvae"
    ckpt = str(run / "checkpoint.npz")
    assert main(["eval", ckpt, "--k", "4", "--n", "20", "--json", str(tmp_path / "eval.json")]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["test_log_likelihood"] < 0 and results["examples"] == 20
    assert main(["sample", ckpt, "--n", "20", "--mean", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["plot", ckpt, "--out", str(tmp_path / "figs")]) == 0
    for name in ("reconstructions", "samples_mean", "samples_ancestral", "latent", "curves"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 0, name
    assert "test ELBO" in capsys.readouterr().out


def test_conv_models_train_eval_sample_and_plot_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "conv"
    assert main(["train", "--arch", "conv", "--channels", "4,8", "--kernel", "3", "--latent", "2", "--epochs", "1",
                 "--train-size", "200", "--dataset", "frey", "--likelihood", "gaussian_decoder_var",
                 "--out", str(run)]) == 0
    assert "VAE conv 1x28x20-4-8 (kernel 3)-2 (relu, gaussian_decoder_var)" in capsys.readouterr().out
    ckpt = str(run / "checkpoint.npz")
    assert main(["eval", ckpt, "--k", "3", "--n", "10", "--json", str(tmp_path / "eval.json")]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["examples"] == 10 and 0 <= results["active_units"] <= 2 and len(results["kl_per_dimension"]) == 2
    assert 0 <= results["mutual_information"] <= np.log(10) + 1e-9
    assert "mutual information I_q(x; z)" in capsys.readouterr().out
    assert main(["sample", ckpt, "--n", "10", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["plot", ckpt, "--out", str(tmp_path / "figs")]) == 0
    for name in ("reconstructions", "samples_mean", "samples_ancestral", "manifold", "mean_and_sigma", "curves"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 0, name
    config = tmp_path / "cvae.toml"
    config.write_text('model = "cvae"\narch = "conv"\nchannels = [4]\nlatent = 3\nepochs = 1\ntrain_size = 100\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "cvae")]) == 0
    assert main(["plot", str(tmp_path / "cvae" / "checkpoint.npz"), "--out", str(tmp_path / "cfigs")]) == 0
    assert (tmp_path / "cfigs" / "latent.png").stat().st_size > 0


def test_mlp_encoder_and_decoder_sizes_from_the_command_line(tmp_path, capsys):
    assert main(["train", "--encoder-hidden", "16,8", "--decoder-hidden", "12", "--latent", "2", "--epochs", "1",
                 "--train-size", "100", "--out", str(tmp_path)]) == 0
    assert "VAE encoder 784-16-8-2, decoder 2-12-784" in capsys.readouterr().out
    from npvae.io import load_model

    model = load_model(tmp_path / "checkpoint.npz")
    assert [m.out_features for m in model.encoder] == [16, 8, 4] and [m.out_features for m in model.decoder] == [12, 784]


def test_train_frey_faces_from_toml_gives_manifold_and_sigma_panels(tmp_path):
    config = tmp_path / "frey.toml"
    config.write_text('dataset = "frey"\nlikelihood = "gaussian_decoder_var"\ndecoder_mean = "sigmoid"\n'
                      'sigma_floor = 0.05\nlatent = 2\nhidden = [16]\nepochs = 1\noptimizer = "adagrad"\nlr = 0.02\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path)]) == 0
    likelihood = io.load_model(str(tmp_path / "checkpoint.npz")).likelihood
    assert likelihood.mean_activation == "sigmoid" and likelihood.logvar_floor == pytest.approx(2 * np.log(0.05))
    assert main(["plot", str(tmp_path / "checkpoint.npz"), "--out", str(tmp_path / "figs")]) == 0
    for name in ("manifold", "mean_and_sigma", "samples_ancestral"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 0, name


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 0.1, "colour": "red"}')
    corrupt = tmp_path / "checkpoint.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    for argv in (["eval", str(tmp_path / "missing.npz")], ["train", "--config", str(bad)],
                 ["train", "--config", str(tmp_path / "none.toml")], ["eval", str(corrupt)],
                 ["train", "--activation", "sine"],
                 ["train", "--likelihood", "bernoulli", "--sigma-floor", "0.05", "--out", str(tmp_path / "o")],
                 ["train", "--likelihood", "gaussian", "--decoder-mean", "sigmoid", "--out", str(tmp_path / "o")]):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "error" in err, (argv, err)
