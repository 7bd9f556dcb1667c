"""The Gaussian decoder's sigma, on grey-level MNIST: the singularity of a learned
variance, and a fixed sigma's part in posterior collapse.

1. The singularity (Beaulac, "Variational AutoEncoders: Theory, implementation and
   unanswered questions", 2019, section 3.3.1). log N(x; mu, sigma^2) = -log sigma -
   (x - mu)^2 / (2 sigma^2) - log(2 pi) / 2 grows without bound as sigma -> 0 on a pixel
   that the mean fits exactly, as one component of a Gaussian mixture collapsing onto a
   data point does. MNIST's border pixels are 0 in every image: a decoder can fit them
   exactly, and then each step that shrinks their sigma raises the ELBO, forever. Four
   runs: sigma(z) output by the decoder and a learned sigma per pixel, each without a
   floor and with sigma >= 0.02 (``logvar_floor``). Figures: the train and test ELBO
   and the smallest sigma over training; the map of sigma per pixel at the end.
2. Sigma and collapse (Lucas, Tucker, Grosse & Norouzi, "Don't Blame the ELBO! A Linear
   VAE Perspective on Posterior Collapse", 2019; Beaulac's section 3.6.2): with a fixed
   sigma, the reconstruction term is ||x - mu||^2 / (2 sigma^2), so a large sigma makes
   the KL the dearer term and the posterior collapses onto the prior. Fixed sigma from
   0.05 to 2: the KL, the active units and the mutual information I_q(x; z) against
   sigma, with the floored learned-sigma runs marked at their median sigma.

What the full run shows (numbers, date, machine and command in ``docs/results.md``):
without a floor, sigma(z) drops to about 1e-3 on the border pixels within the first
epochs (397 pixels end with a median sigma below 0.01) and its ELBO climbs some 200
nats above the floored run's while the test ELBO jumps by hundreds of nats from epoch
to epoch; the learned per-pixel sigma falls at a constant rate in log sigma (Adam moves
each log-variance by about its learning rate a step), passes the floor at epoch 15
and is still falling at the end, its ELBO still climbing. Only the optimiser's pace
and the mean's rounding stop the descent; the floored runs settle. So the singularity
holds, and the floor is what removes it. Against a fixed sigma the KL falls from 87
nats (sigma 0.05) to 0.3 (sigma 2) and the active units from 20 to 1: Lucas et al.'s
claim holds here.
"""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=20, hidden=400, latent=20),
    "quick": dict(n_train=10000, n_test=2000, epochs=5, hidden=200, latent=20),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16, latent=4),
}
FLOOR = 2 * np.log(0.02)
LEARNED = {  # name -> likelihood, its arguments
    "sigma(z), no floor": ("gaussian_decoder_var", {"logvar_floor": None}),
    "sigma(z), sigma >= 0.02": ("gaussian_decoder_var", {"logvar_floor": FLOOR}),
    "per-pixel sigma, no floor": ("gaussian_learned_var", {"logvar_floor": None}),
    "per-pixel sigma, sigma >= 0.02": ("gaussian_learned_var", {"logvar_floor": FLOOR}),
}
FIXED_SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def decoded_sigma(model, x):
    """sigma of p(x|z) at z = the posterior mean of each row of ``x``: (N, 784)."""
    return np.asarray(model.likelihood.std(model.decode(model.encode(x)[0])), dtype=np.float64)


def train(likelihood, kwargs, x, x_test, cfg, seed):
    """A VAE trained on ``x``. Returns (model, watch, how it ended), ``watch`` the
    train and test ELBO and the decoded sigma of 500 training images after each epoch,
    kept as they come: a run that diverges still has its epochs before."""
    model = VAE.mlp(784, (cfg["hidden"],), cfg["latent"], "relu", likelihood, kwargs, rng=seed)
    watch = {"train_elbo": [], "val_elbo": [], "sigma": []}

    def record(epoch, history):
        for key in ("train_elbo", "val_elbo"):
            watch[key].append(history[key][-1])
        watch["sigma"].append(decoded_sigma(model, x[:500]))

    try:
        fit(model, x, x_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], batch_size=100, seed=seed,
            callbacks=(record,), log=None)
        ended = "ran every epoch"
    except FloatingPointError as e:  # the singularity: the loss or a parameter stopped being finite
        ended = f"stopped: {e}"
    return model, watch, ended


def singularity(x, x_test, cfg, args):
    results, elbo_lines, sigma_lines, maps = {}, {}, {}, []
    for name, (likelihood, kwargs) in LEARNED.items():
        model, watch, ended = train(likelihood, kwargs, x, x_test, cfg, args.seed)
        epochs = np.arange(1, len(watch["sigma"]) + 1)
        smallest = [float(s.min()) for s in watch["sigma"]]
        elbo_lines[f"{name}: train"] = (epochs, watch["train_elbo"])
        elbo_lines[f"{name}: test"] = (epochs, watch["val_elbo"])
        sigma_lines[name] = (epochs, smallest)
        median_per_pixel = np.median(watch["sigma"][-1], axis=0)
        maps.append((f"{name}\n(log10 median sigma per pixel)", np.log10(median_per_pixel).reshape(28, 28)))
        results[name] = {"likelihood": likelihood, **kwargs, "ended": ended, "epochs_run": len(epochs),
                         "train_elbo": watch["train_elbo"], "test_elbo": watch["val_elbo"],
                         "smallest_sigma": smallest, "median_sigma": float(np.median(watch["sigma"][-1])),
                         "pixels_below_0.01": int(np.sum(median_per_pixel < 0.01)), "model": model}
        print(f"{name:32s} {ended[:60]:60s} last test ELBO {watch['val_elbo'][-1]:10.1f}; "
              f"smallest sigma {smallest[-1]:.2e}; pixels with median sigma < 0.01: "
              f"{results[name]['pixels_below_0.01']}")
    plots.line_panels([("ELBO over training (nats)", elbo_lines),
                       ("smallest sigma of p(x|z), 500 training images", sigma_lines)],
                      common.out(args, "singularity.png"), "epoch", ["ELBO (nats)", "smallest sigma"], n_cols=2,
                      size=5.5, logy=[False, True])
    plots.heatmaps(maps, common.out(args, "sigma_maps.png"), "log10 sigma",
                   title="where sigma goes: the median sigma of each pixel over 500 training images")
    return results


def sigma_and_collapse(x, x_test, cfg, args, learned):
    results = {}
    for sigma in FIXED_SIGMAS:
        model, watch, _ = train("gaussian", {"sigma": sigma}, x, x_test, cfg, args.seed)
        report = common.collapse(model, x_test, seed=args.seed)
        results[sigma] = {"test_elbo": watch["val_elbo"][-1], "kl": float(np.sum(report["kl_per_dimension"])),
                          **report}
        print(f"fixed sigma {sigma:5.2f}: test ELBO {watch['val_elbo'][-1]:10.1f}, KL {results[sigma]['kl']:6.2f}, "
              f"active units {report['active_units']:2d}, MI {report['mutual_information']:.2f} nats")
    marked = {}
    for name, label in (("sigma(z), sigma >= 0.02", "learned sigma(z)"),
                        ("per-pixel sigma, sigma >= 0.02", "learned per-pixel sigma")):
        report = common.collapse(learned[name]["model"], x_test, seed=args.seed)
        marked[f"{label}, floored (median)"] = (learned[name]["median_sigma"], report)
        learned[name].update(kl=float(np.sum(report["kl_per_dimension"])), **report)
    sigmas = np.array(FIXED_SIGMAS)
    panels = []
    for key, label in (("kl", "KL (nats)"), ("active_units", "active units"), ("mutual_information", "I_q(x; z)")):
        lines = {"fixed sigma": (sigmas, [results[s][key] for s in FIXED_SIGMAS])}
        for name, (median, report) in marked.items():
            value = float(np.sum(report["kl_per_dimension"])) if key == "kl" else report[key]
            lines[name] = ([median], [value])
        panels.append((f"{label} against sigma", lines))
    plots.line_panels(panels, common.out(args, "sigma_collapse.png"), "sigma of p(x|z)",
                      ["KL (nats)", "active units", "nats"], logx=True, size=4.5)
    return results


def main():
    args, cfg = common.setup("gaussian_variance", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"], binarize=False)
    learned = singularity(x, x_test, cfg, args)
    fixed = sigma_and_collapse(x, x_test, cfg, args, learned)
    for entry in learned.values():
        del entry["model"]
    common.finish(args, {"learned_sigma": learned, "fixed_sigma": {str(s): r for s, r in fixed.items()},
                         "epochs": cfg["epochs"]})


if __name__ == "__main__":
    main()
