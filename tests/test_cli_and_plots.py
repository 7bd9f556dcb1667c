"""The command line's main path in a temporary folder, bad flags, and the figures' maths."""

import json
import subprocess
import sys

import numpy as np
from scipy.stats import norm

from npvae import plots
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
    assert "invalid int value: 'many'" in run.stderr and "Traceback" not in run.stderr


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
