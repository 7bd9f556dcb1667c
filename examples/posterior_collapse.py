"""Posterior collapse, and what KL annealing, free bits and the MAE regulariser do
about it, on dynamically binarised MNIST.

The setting: the IWAE paper's network (784-200-200-50, tanh) with a 50-dimensional
latent. Burda et al. (2015) found a plain VAE of this shape uses about 20 of its 50
units (the rest collapse onto the prior), and a network this small shows the collapse
cheaply. Five runs on the same data, seed and budget:
plain; KL annealing (a linear warm-up of beta); free bits (each dimension pays at
least lambda nats); MAE at two settings of (eta, gamma). Per run: the test NLL
(importance-sampled), test ELBO, KL, active units and the mutual information
I_q(x; z), with figures of the KL per dimension (sorted), active units and mutual
information against training steps (on the validation set), and samples.

The claim to check is MAE's (Ma et al. 2019): more active units and more mutual
information at a similar NLL.

What the full run shows (its table, date, machine and command are in ``docs/results.md``):
on this MLP decoder MAE makes every unit active but costs NLL, so the claim of "more
active units at a similar NLL" does not hold at the weights tried; the paper's decoders
are autoregressive, whose collapse is far stronger.
"""

import common
import numpy as np

from npvae import diagnostics, plots
from npvae.datasets import binarize_static, load_mnist
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_val=10000, n_test=10000, epochs=100, k=1000, n_ll=10000, every=5),
    "quick": dict(n_train=10000, n_val=2000, n_test=2000, epochs=12, k=50, n_ll=500, every=2),
    "smoke": dict(n_train=300, n_val=100, n_test=100, epochs=2, k=5, n_ll=20, every=1),
}


def runs(cfg, steps_per_epoch):
    """name -> the fit arguments that make the run."""
    return {
        "plain": {},
        "annealing": dict(anneal="linear", anneal_steps=max(1, cfg["epochs"] // 5) * steps_per_epoch),
        "free bits 0.1": dict(free_bits=0.1),
        "MAE eta 1 gamma 0.5": dict(mae_eta=1.0, mae_gamma=0.5),
        "MAE eta 4 gamma 1": dict(mae_eta=4.0, mae_gamma=1.0),
    }


def main():
    args, cfg = common.setup("posterior_collapse", __doc__, SETTINGS)
    x, _ = load_mnist("train")
    x_test = binarize_static(load_mnist("test")[0][: cfg["n_test"]], seed=2)
    x_train, x_val = x[: cfg["n_train"]], binarize_static(x[50000 : 50000 + cfg["n_val"]], seed=1)
    rng = np.random.default_rng(args.seed)
    results, kl_panels, curves_au, curves_mi, samples = {}, [], {}, {}, []
    steps_per_epoch = -(-len(x_train) // 100)
    for name, kwargs in runs(cfg, steps_per_epoch).items():
        model = VAE.mlp(784, (200, 200), 50, "tanh", "bernoulli", rng=args.seed)
        history = fit(model, x_train, x_val, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], batch_size=100,
                      seed=args.seed, binarize=True, diagnostics_every=cfg["every"],
                      log=lambda line, name=name: print(f"  {name}: {line}", flush=True), **kwargs)
        report = diagnostics.collapse_report(model, x_test, rng=args.seed)
        kl = np.array(report["kl_per_dimension"])
        results[name] = {
            "settings": kwargs,
            "test_nll": -float(model.log_likelihood(x_test[: cfg["n_ll"]], k=cfg["k"], rng=rng).mean()),
            "test_elbo": float(model.elbo(x_test, rng=rng).mean()),
            "test_kl": float(kl.sum()),
            "active_units": report["active_units"],
            "mutual_information": report["mutual_information"],
            "train_seconds": history["seconds"][-1],
        }
        measured = [i for i, v in enumerate(history["active_units"]) if v is not None]
        steps = [history["epoch"][i] * steps_per_epoch for i in measured]
        curves_au[name] = (steps, [history["active_units"][i] for i in measured])
        curves_mi[name] = (steps, [history["mutual_information"][i] for i in measured])
        curves_mi["log N: the estimator's cap"] = (steps, [np.log(len(x_val))] * len(steps))
        kl_panels.append((name, np.sort(kl)[::-1]))
        samples.append((name, model.sample(36, rng, mean=True)))
        r = results[name]
        print(f"{name:20s} NLL {r['test_nll']:7.2f}  ELBO {r['test_elbo']:8.2f}  KL {r['test_kl']:6.2f}  "
              f"active units {r['active_units']:2d}/50  MI {r['mutual_information']:5.2f} nats  "
              f"({r['train_seconds']:.0f} s)")

    plots.bar_panels(kl_panels, common.out(args, "kl_per_dimension.png"), xlabel="latent dimension (sorted by KL)",
                     ylabel="KL (nats, test mean)", title="KL per latent dimension: collapsed dimensions have 0")
    plots.line_panels([("active units (Var_x E[z_u|x] > 0.01)", curves_au),
                       ("mutual information I_q(x; z) (nats)", curves_mi)], common.out(args, "au_mi.png"),
                      xlabel="training steps", ylabel=["active units (of 50)", "nats"], n_cols=2)
    plots.image_panels(samples, common.out(args, "samples.png"), n_cols=6,
                       title="decoder means E[x|z] of z ~ p(z), one panel per run")
    common.finish(args, {"runs": results, "epochs": cfg["epochs"], "k": cfg["k"],
                         "nll_examples": cfg["n_ll"], "test_examples": cfg["n_test"]})


if __name__ == "__main__":
    main()
