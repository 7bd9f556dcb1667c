"""Run every example and rewrite the README's examples table from what they wrote.

    python examples/run_all.py --quick            # every example's --quick, then the table
    python examples/run_all.py --smoke --only conditional_vae --readme /tmp/README.md

Each example runs in its own process (``--out runs/examples/<name>``); its wall time
and a summary of its ``results.json`` become its row. The table sits between the
README's two ``examples table`` markers; nothing else of the file changes.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from npvae.files import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN = "<!-- examples table: python examples/run_all.py --quick -->"
END = "<!-- end of the examples table -->"


def _runs(r, key, field, fmt="{:.1f}"):
    return " / ".join(fmt.format(v[field]) for v in r[key].values())


# name -> (what it shows, a summary of its results.json)
EXAMPLES = {
    "aevb_mnist": ("Kingma & Welling's MNIST runs: lower bound vs examples seen, latent sizes, estimators A and B",
                   lambda r: "test bound at the smallest latent: " + " / ".join(
                       f"{k.split(',')[1][10:]} {v['test_lower_bound'][-1]:.1f}" for k, v in list(r["runs"].items())[:2])
                   + " nats"),
    "frey_faces": ("Gaussian decoder sigma(z), sigmoid mean, sigma >= 0.05, latent 2: the face manifold, mean +/- k sigma",
                   lambda r: f"test ELBO {r['test_elbo']:.1f} nats"),
    "decoders": ("fixed sigma = 1 vs learned per-pixel sigma vs sigma(z); means vs ancestral samples",
                 lambda r: f"test ELBO {_runs(r, 'decoders', 'test_elbo')} nats"),
    "beta_vae": ("beta = 0.05, 1, 20 on a 2-D latent: posterior means and manifolds",
                 lambda r: f"KL {_runs(r, 'betas', 'test_kl')} nats"),
    "uniform2d": ("the uniform square through a 2-D and a 1-D latent, beta x weight-decay grid",
                  lambda r: f"{len(r['runs'])} runs"),
    "clipping_momentum": ("SGD with clipping by value, by norm, and momentum: loss curves",
                          lambda r: f"diverged: {', '.join(r['diverged']) or 'none'}"),
    "conditional_vae": ("labels to encoder and decoder: samples per digit, latent scatter",
                        lambda r: f"test ELBO {r['test_elbo']:.1f} nats"),
    "conv_vae": ("a conv VAE (`VAE.conv()`) against the MLP VAE at the same latent size",
                 lambda r: f"test ELBO {_runs(r, 'models', 'test_elbo')} (MLP / conv), log p(x) "
                           f"{_runs(r, 'models', 'test_log_likelihood')} nats (k = {r['k']})"),
    "vae_vs_autoencoder": ("test reconstruction error, VAE vs autoencoder, same networks",
                           lambda r: f"cross-entropy {_runs(r, 'models', 'test_cross_entropy')} nats"),
    "manifold": ("the learned 2-D MNIST manifold", lambda r: f"test ELBO {r['test_elbo']:.1f} nats"),
    "posterior_collapse": ("a 50-d latent collapses: plain, annealing, free bits, MAE; active units, MI, KL",
                           lambda r: "active units " + _runs(r, "runs", "active_units", "{}") + " of 50; NLL "
                                     + _runs(r, "runs", "test_nll") + f" nats (k = {r['k']})"),
    "iwae_table": ("Burda et al.'s MNIST NLLs as a command: the recipe, its stage schedule, k = 5000 evaluation",
                   lambda r: "test NLL " + " / ".join(f"{k} {v['npvae']['test_nll']:.1f}" for k, v in r["rows"].items())
                             + f" nats (tiny: {r['settings']['n_train']:,} images, 1 pass a stage)"),
    "theory_vs_implementation": ("the conditional VAE's decoders: means vs samples of p(x\\|z), mu +/- k sigma, "
                                 "the plane of z per digit, three betas",
                                 lambda r: "test ELBO " + " / ".join(f"{v['test_elbo']:.0f}" for v in
                                                                      r["models"].values()) + " nats"),
    "gmm_em": ("EM ellipses over iterations, log-likelihood curve, BIC against K",
               lambda r: f"BIC picks K = {min(r['bic'], key=r['bic'].get)}"),
    "ppca_em": ("pPCA by EM against the closed form; test log-likelihood beside a VAE's",
                lambda r: f"test log p(x): pPCA {r['ppca_test']:.1f}, VAE {r['vae_test']:.1f} nats"),
    "latent_classification": ("logistic regression on pixels, PCA, pPCA, autoencoder and VAE codes against "
                              "the number of labels", lambda r: _accuracies(r)),
    "bounded_likelihood": ("grey levels: a Gaussian decoder's samples leave [0, 1], the continuous Bernoulli's do not",
                           lambda r: "test log p(x), Gaussian / continuous Bernoulli: " + ", ".join(
                               f"{d} " + " / ".join(f"{v['test_log_likelihood']:.0f}" for k, v in r["models"].items()
                                                    if k.startswith(d)) for d in ("MNIST", "Frey"))
                           + f" nats (k = {r['k']})"),
    "gaussian_variance": ("sigma of a Gaussian decoder: the singularity without a floor; fixed sigma and collapse",
                          lambda r: "smallest sigma, no floor: " + " / ".join(
                              f"{v['smallest_sigma'][-1]:.0e}" for k, v in r["learned_sigma"].items()
                              if "no floor" in k) + "; active units at sigma 0.05 / 2: "
                          + f"{r['fixed_sigma']['0.05']['active_units']} / {r['fixed_sigma']['2.0']['active_units']}"),
    "elbo_gap": ("ln p(x) = ELBO + KL(q(z\\|x), p(z\\|x)), in closed form on the linear-Gaussian model; the gap "
                 "against k",
                 lambda r: f"linear gap {r['linear_gaussian']['gap'][-1]:.2f} nats (E step "
                           f"{r['linear_gaussian']['gap_e_step_max']:.0e}); MNIST ELBO {r['mnist']['elbo']:.1f}, "
                           f"ln p(x) k = {list(r['mnist']['importance_sampled'])[-1]}: "
                           f"{list(r['mnist']['importance_sampled'].values())[-1]:.1f} nats"),
    "denoising": ("denoising autoencoders and VAEs (masking, Gaussian, scheduled): corrupted test digits, filters",
                  lambda r: "cross-entropy at mask 0.5, clean / denoising AE: "
                            f"{r['runs']['AE, clean']['test_cross_entropy']['mask 0.5']:.0f} / "
                            f"{r['runs']['AE, mask 0.5']['test_cross_entropy']['mask 0.5']:.0f} nats"),
    "linear_autoencoder": ("a linear autoencoder spans PCA's subspace; a linear VAE recovers pPCA's W up to rotation",
                           lambda r: f"largest angle: AE to PCA {r['autoencoder']['angles_to_pca'][-1]:.1f} deg, "
                                     f"VAE to pPCA {r['vae']['angles_to_ppca'][-1]:.1f} deg"),
    "pixelcnn_collapse": ("a PixelCNN decoder: plain, annealing, free bits, MAE, a weak decoder; KL, active units, NLL",
                          lambda r: "KL " + _runs(r, "runs", "test_kl") + " nats; NLL " + _runs(r, "runs", "test_nll")
                                    + f" nats (k = {r['k']})"),
    "hyperspherical": ("Davidson et al.'s N-VAE vs S-VAE (von Mises-Fisher latent) on MNIST at small d; codes on S^2",
                       lambda r: "test LL at d = 2, N / S: " + f"{r['runs']['N-VAE']['2']['test_log_likelihood']:.1f} / "
                                 f"{r['runs']['S-VAE']['2']['test_log_likelihood']:.1f} nats"),
    "full_vb": ("full VB over the decoder's weights vs the point estimate, Frey faces and MNIST: what makes it learn",
                lambda r: "Frey test bound: " + " / ".join(f"{k} {v['test_bound'][-1]:.0f}" for k, v in r["frey"].items())
                          + " nats"),
}


def _accuracies(r):
    """Test accuracy with the most labels, for pixels, pPCA and the VAEs at the code size."""
    n, code = str(r["labelled"][-1]), r["settings"]["code"]
    names = ["raw pixels", f"pPCA {code}", f"VAE {code}", f"MAE VAE {code}"]
    return f"accuracy with {int(n):,} labels: " + " / ".join(f"{r['accuracy'][k][n]:.3f}" for k in names
                                                              if k in r["accuracy"]) + " (" + ", ".join(
        k for k in names if k in r["accuracy"]) + ")"


def run(name, mode, out):
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(HERE, f"{name}.py"), f"--{mode}", "--out", out],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    with open(os.path.join(out, "results.json")) as f:
        return seconds, json.load(f)


def table(rows, mode, old_table=""):
    """The table's lines; with ``--only``, the other examples keep their old rows."""
    backend = os.environ.get("NPVAE_BACKEND", "numpy")
    head = (f"| script | what it shows | `--{mode}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, "
            f"{backend} backend, seed 0) |")
    cells = {line.split("`")[1][:-3]: line for line in old_table.splitlines() if line.startswith("| `")}
    cells.update({name: f"| `{name}.py` | {EXAMPLES[name][0]} | {seconds:.0f} s; {summary} |"
                  for name, seconds, summary in rows})
    return "\n".join([head, "|---|---|---|"] + [cells[name] for name in EXAMPLES if name in cells])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="+", choices=sorted(EXAMPLES), help="these examples (default: all)")
    parser.add_argument("--readme", default=os.path.join(HERE, "..", "README.md"), help="the file to rewrite")
    parser.add_argument("--out", default=os.path.join("runs", "examples"), help="the examples' output folders")
    args = parser.parse_args()
    mode = "quick" if args.quick else "smoke"
    with open(args.readme) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        parser.error(f"--readme: {args.readme} has no examples-table markers ({BEGIN} ... {END})")
    rows = []
    for name in args.only or EXAMPLES:
        seconds, results = run(name, mode, os.path.join(args.out, name))
        rows.append((name, seconds, EXAMPLES[name][1](results)))
        print(f"{name}: {seconds:.0f} s; {rows[-1][2]}", flush=True)
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    new = readme[:start] + "\n" + table(rows, mode, readme[start:end]) + "\n" + readme[end:]
    atomic_write(args.readme, lambda f: f.write(new.encode()))
    print(f"rewrote the examples table in {args.readme}")


if __name__ == "__main__":
    main()
