"""Every example runs with its tiny "smoke" settings and writes its figures and numbers."""

import json
import os
import runpy
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
sys.path.insert(0, EXAMPLES)
import run_all  # noqa: E402
OUTPUTS = {
    "aevb_mnist": ["lower_bound.png", "architectures.png"],
    "frey_faces": ["manifold.png", "mean_and_sigma.png", "reconstructions.png", "curves.png"],
    "decoders": ["fixed_sigma_1_mean_vs_sample.png", "sigma_of_z_mean_and_sigma.png",
                 "learned_per_pixel_sigma_mean_and_sigma.png"],
    "beta_vae": ["posterior_means.png", "manifold_beta_0.05.png", "manifold_beta_20.0.png"],
    "uniform2d": ["latents.png", "reconstructions.png"],
    "clipping_momentum": ["loss_curves.png", "momentum_posteriors.png", "best_model_samples.png"],
    "conditional_vae": ["samples_per_digit.png", "latent_all_digits.png", "latent_digit_3.png"],
    "vae_vs_autoencoder": ["reconstructions.png", "decoded_prior_codes.png"],
    "conv_vae": ["reconstructions.png", "samples.png"],
    "posterior_collapse": ["kl_per_dimension.png", "au_mi.png", "samples.png"],
    "iwae_table": [],
    "theory_vs_implementation": ["means_vs_samples.png", "plane_digit_4.png", "mean_pm_sigma.png",
                                 "beta_posteriors.png", "beta_plane_digit_9.png"],
    "manifold": ["manifold.png", "latent.png"],
    "gmm_em": ["ellipses.png", "curves.png"],
    "ppca_em": ["em_vs_closed_form.png", "ppca_samples.png", "vae_means.png"],
    "latent_classification": ["accuracy.png"],
    "bounded_likelihood": ["samples_mnist.png", "samples_frey.png"],
    "gaussian_variance": ["singularity.png", "sigma_maps.png", "sigma_collapse.png"],
    "elbo_gap": ["gap_linear.png", "gap_against_k.png"],
    "denoising": ["error_against_masking.png", "reconstructions_mask_0.5.png", "filters.png"],
    "linear_autoencoder": ["angles.png", "components.png"],
    "pixelcnn_collapse": ["samples.png", "reconstructions.png", "interpolations.png", "collapse_over_training.png",
                          "kl_per_dimension.png"],
    "full_vb": ["bounds.png", "weight_draws_frey.png", "weight_draws_mnist.png"],
    "hyperspherical": ["log_likelihood.png", "codes_d3.png"],
}


def test_every_example_is_listed():
    scripts = {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py") and f not in ("common.py", "run_all.py")}
    assert scripts == set(OUTPUTS) == set(run_all.EXAMPLES)


def test_run_all_rewrites_only_the_examples_table(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    kept = "| `manifold.py` | the learned 2-D MNIST manifold | 7 s; test ELBO -173.6 nats |"
    readme.write_text(f"# before\n{run_all.BEGIN}\n| script | old |\n{kept}\n{run_all.END}\n# after\n")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--smoke", "--only", "gmm_em", "conditional_vae",
                                      "--readme", str(readme), "--out", str(tmp_path / "runs")])
    run_all.main()
    text = readme.read_text()
    assert text.startswith(f"# before\n{run_all.BEGIN}\n| script |") and text.endswith(f"{run_all.END}\n# after\n")
    assert "| `gmm_em.py` |" in text and "BIC picks K = " in text and "| `conditional_vae.py` |" in text
    assert "| script | old |" not in text and kept in text  # --only: the other rows stay
    assert text.index("conditional_vae.py") < text.index("manifold.py") < text.index("gmm_em.py")  # EXAMPLES order


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_example_runs_and_writes_its_outputs(name, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--smoke", "--out", str(tmp_path)])
    runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), run_name="__main__")
    for figure in OUTPUTS[name]:
        assert (tmp_path / figure).stat().st_size > 1000, figure
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"


def test_the_iwae_budget_keeps_the_stages_and_ends_on_time_when_the_machine_slows():
    import iwae_table

    clock, pace, budget = [0.0], [8.0], 40 * 60.0  # seconds of a simulated clock; 300 passes at 8 s

    def train_stage(stage, passes, deadline):
        start = clock[0]
        for n in range(1, passes + 1):
            clock[0] += pace[0]
            if iwae_table.past_deadline(clock[0], start, n, deadline):
                break
        pace[0] = 12.0 if stage == 4 else pace[0]  # from stage 5 on a pass takes longer than planned
        return clock[0], n

    passes = iwae_table.run_stages(train_stage, [3**i for i in range(8)], budget)
    assert len(passes) == 8 and passes[0] == 1 and min(passes) >= 1 and passes == sorted(passes)
    assert budget - 12.0 < clock[0] <= budget, clock[0]  # the last stage ends within a pass of the budget
    assert 150 < sum(passes) < 300 and passes[-1] > passes[-2]
    assert iwae_table.run_stages(lambda stage, n, deadline: (float(n), n), [1, 3, 9]) == [1, 3, 9]  # no budget


def test_iwae_table_runs_given_stage_passes_and_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    def run(*flags):
        monkeypatch.setattr(sys, "argv", ["iwae_table.py", "--smoke", "--rows", "vae1", "--out", str(tmp_path), *flags])
        runpy.run_path(os.path.join(EXAMPLES, "iwae_table.py"), run_name="__main__")
        return json.loads((tmp_path / "vae1.json").read_text())["npvae"]

    with pytest.raises(SystemExit) as refused:
        run("--resume")  # no checkpoint yet
    assert refused.value.code == 2 and not (tmp_path / "vae1.json").exists()
    first = run("--stage-passes", "1", "2")
    assert first["stage_passes"] == [1, 2] and first["passes"] == 3
    again = run("--stage-passes", "1", "2", "--resume")  # the run is complete: its checkpoint is evaluated as it is
    assert again["test_nll"] == first["test_nll"] and again["train_seconds"] == first["train_seconds"]


def test_iwae_table_trains_the_two_layer_rows_on_a_budget_and_draws_each_layer(tmp_path, monkeypatch):
    """The budget's stages resume one another's checkpoints at a lower learning rate."""
    monkeypatch.setattr(sys, "argv", ["iwae_table.py", "--smoke", "--stochastic-layers", "2", "--rows", "vae1",
                                      "--budget-minutes", "0.02", "--out", str(tmp_path)])
    runpy.run_path(os.path.join(EXAMPLES, "iwae_table.py"), run_name="__main__")
    row = json.loads((tmp_path / "two-layer-vae1.json").read_text())
    assert row["paper"] == 85.33 and len(row["npvae"]["stage_passes"]) == 2 and len(row["npvae"]["active_units"]) == 2
    assert (tmp_path / "two-layer-vae1-npvae" / "layers.png").stat().st_size > 1000


def test_beside_returns_the_forked_result_and_reports_a_death():
    import iwae_table

    assert iwae_table.beside(pow, 2, 10)() == 1024
    with pytest.raises(EOFError):
        iwae_table.beside(os._exit, 3)()  # the child dies without a result: the wait ends
