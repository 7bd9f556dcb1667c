"""Every example runs with its tiny "smoke" settings and writes its figures and numbers."""

import json
import os
import runpy
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
OUTPUTS = {
    "aevb_mnist": ["lower_bound.png"],
    "frey_faces": ["manifold.png", "mean_and_sigma.png", "reconstructions.png", "curves.png"],
    "decoders": ["fixed_sigma_1_mean_vs_sample.png", "sigma_of_z_mean_and_sigma.png",
                 "learned_per_pixel_sigma_mean_and_sigma.png"],
    "beta_vae": ["posterior_means.png", "manifold_beta_0.05.png", "manifold_beta_20.0.png"],
    "uniform2d": ["latents.png", "reconstructions.png"],
    "clipping_momentum": ["loss_curves.png"],
    "conditional_vae": ["samples_per_digit.png", "latent_all_digits.png", "latent_digit_3.png"],
    "vae_vs_autoencoder": ["reconstructions.png", "decoded_prior_codes.png"],
    "conv_vae": ["reconstructions.png", "samples.png"],
    "posterior_collapse": ["kl_per_dimension.png", "au_mi.png", "samples.png"],
    "manifold": ["manifold.png", "latent.png"],
    "gmm_em": ["ellipses.png", "curves.png"],
    "ppca_em": ["em_vs_closed_form.png", "ppca_samples.png", "vae_means.png"],
}


def test_every_example_is_listed():
    scripts = {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py") and f != "common.py"}
    assert scripts == set(OUTPUTS)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_example_runs_and_writes_its_outputs(name, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--smoke", "--out", str(tmp_path)])
    runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), run_name="__main__")
    for figure in OUTPUTS[name]:
        assert (tmp_path / figure).stat().st_size > 1000, figure
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
