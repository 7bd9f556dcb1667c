"""Kingma & Welling's MNIST experiment (AEVB, section 5): a Bernoulli decoder, one
hidden layer of 500 tanh units, Adagrad, minibatches of 100; the lower bound on the
training and test sets against the number of training examples seen, for latent sizes
3, 5, 10, 20 and 200 and for the SGVB estimators A (log p(x,z) - log q(z|x) sampled) and
B (the KL term analytic).

Then the architecture experiments of Budzianowski, Nicholson & Tebbutt's poster
"Auto-Encoding Variational Bayes" (a study of Kingma & Welling's paper) at N_z = 20, estimator B: the activation function (tanh, the
paper's, against ReLU, softplus, sigmoid and ELU) and a deeper encoder only
(784-500-500 encoder, the 500-unit decoder unchanged)."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(latents=[3, 5, 10, 20, 200], n_train=50000, n_test=10000, epochs=100, lr=0.02),
    "quick": dict(latents=[3, 5, 10, 20, 200], n_train=1500, n_test=1000, epochs=8, lr=0.02),
    "smoke": dict(latents=[3], n_train=300, n_test=100, epochs=2, lr=0.02),
}
ARCHITECTURES = {  # name -> VAE.mlp arguments beyond the paper's 784-500-20 tanh
    "tanh (the paper)": {}, "relu": {"activation": "relu"}, "softplus": {"activation": "softplus"},
    "sigmoid": {"activation": "sigmoid"}, "elu": {"activation": "elu"},
    "deeper encoder 500-500, tanh": {"encoder_hidden": (500, 500)},
}


def run(x, x_test, cfg, seed, estimator="B", latent=20, **architecture):
    """One training run: the history, and the test bound after every epoch."""
    kwargs = {"hidden": (500,), "activation": "tanh", **architecture}
    model = VAE.mlp(784, latent_dim=latent, likelihood="bernoulli", rng=seed, **kwargs)
    test = []

    def test_bound(epoch, history):
        test.append(float(model.elbo(x_test, rng=np.random.default_rng(epoch), estimator="B").mean()))

    history = fit(model, x, optimizer="adagrad", lr=cfg["lr"], epochs=cfg["epochs"], batch_size=100, seed=seed,
                  estimator=estimator, binarize=True, callbacks=[test_bound], log=None)
    return history, test


def main():
    args, cfg = common.setup("aevb_mnist", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"])
    runs, panels = {}, []
    for latent in cfg["latents"]:
        lines = {}
        for estimator in ("A", "B"):
            history, test = run(x, x_test, cfg, args.seed, estimator, latent)
            seen = [e * len(x) for e in history["epoch"]]
            runs[f"latent={latent},estimator={estimator}"] = {
                "examples_seen": seen, "train_lower_bound": history["train_elbo"], "test_lower_bound": test,
                "seconds": history["seconds"][-1]}
            lines[f"{estimator} train"] = (seen, history["train_elbo"])
            lines[f"{estimator} test"] = (seen, test)
            print(f"latent {latent:3d}, estimator {estimator}: train {history['train_elbo'][-1]:.2f}, "
                  f"test {test[-1]:.2f} nats after {seen[-1]:,} examples")
        panels.append((f"MNIST, N_z = {latent}", lines))
    lowest_test = min(min(r["test_lower_bound"]) for r in runs.values())
    plots.line_panels(panels, common.out(args, "lower_bound.png"), "training examples seen", "lower bound (nats)",
                      logx=True, bottom=lowest_test - 30)
    architectures, lines = {}, {}
    for name, architecture in ARCHITECTURES.items():
        history, test = run(x, x_test, cfg, args.seed, **architecture)
        seen = [e * len(x) for e in history["epoch"]]
        architectures[name] = {"test_lower_bound": test, "train_lower_bound": history["train_elbo"],
                               "examples_seen": seen, "seconds": history["seconds"][-1]}
        lines[name] = (seen, test)
        print(f"N_z = 20, {name}: test bound {test[-1]:.2f} nats after {seen[-1]:,} examples")
    plots.line_panels([("test lower bound at N_z = 20, estimator B", lines)],
                      common.out(args, "architectures.png"), "training examples seen", "lower bound (nats)",
                      logx=True, n_cols=1, size=6.0)
    common.finish(args, {"runs": runs, "architectures": architectures})


if __name__ == "__main__":
    main()
