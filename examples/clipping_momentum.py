"""An MNIST VAE trained with plain SGD, to see what gradient clipping and momentum do
(Mashra & Shahid, "Variational Autoencoder", 2022, its Figures 1-4): clipping by
value at several thresholds in (0, 1], clipping by global norm at several thresholds,
and heavy-ball momentum from 0.5 to 0.99; training-loss curves for each against
unclipped, momentum-free SGD.

Then the text's momentum study with its objective, the summed squared error plus the
KL: a Gaussian decoder with a fixed sigma = 1/sqrt(2), whose -log p(x|z) is the SSE plus
a constant (D/2) log pi, on a 2-D latent; for each momentum the distribution over the
test set of the posterior's mu_1, mu_2, sigma_1, sigma_2 (Figure 3), and decoder means
from the model with the lowest final loss (Figure 4)."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=20, hidden=500, values=[0.01, 0.1, 0.5, 1.0],
                 norms=[1.0, 5.0, 20.0], momenta=[0.5, 0.8, 0.9, 0.95, 0.99]),
    "quick": dict(n_train=5000, n_test=2000, epochs=5, hidden=200, values=[0.01, 0.1, 1.0], norms=[1.0, 5.0, 20.0],
                  momenta=[0.5, 0.9, 0.99]),
    "smoke": dict(n_train=200, n_test=50, epochs=1, hidden=16, values=[0.1], norms=[5.0], momenta=[0.9]),
}
LR = 0.01  # SGD on the per-example mean loss


def main():
    args, cfg = common.setup("clipping_momentum", __doc__, SETTINGS)
    x, _, _, _ = common.mnist(cfg["n_train"], 0)
    curves, diverged = {}, []

    def train(label, **kwargs):
        model = VAE.mlp(784, (cfg["hidden"],), 20, "tanh", "bernoulli", rng=args.seed)
        epochs, losses = [], []

        def record(epoch, history):
            epochs.append(epoch)
            losses.append(-history["train_elbo"][-1])

        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is what divergence looks like
                fit(model, x, optimizer="sgd", lr=LR, epochs=cfg["epochs"], seed=args.seed, binarize=True, log=None,
                    callbacks=[record], **kwargs)
        except (FloatingPointError, ValueError) as e:  # the weights went to inf/NaN: that is the result
            diverged.append(label)
            print(f"{label}: diverged in epoch {len(epochs) + 1} ({e})")
        curves[label] = (epochs, losses)
        if losses:
            print(f"{label}: training loss {losses[-1]:.2f} nats after epoch {epochs[-1]}")

    train("SGD")
    for v in cfg["values"]:
        train(f"clip value {v}", clip_value=v)
    for c in cfg["norms"]:
        train(f"clip norm {c}", clip_norm=c)
    for m in cfg["momenta"]:
        train(f"momentum {m}", optimizer_kwargs={"momentum": m})
    groups = [(title, {k: v for k, v in curves.items() if k == "SGD" or k.startswith(prefix)})
              for title, prefix in (("clipping by value", "clip value"), ("clipping by norm", "clip norm"),
                                    ("momentum", "momentum"))]
    plots.line_panels(groups, common.out(args, "loss_curves.png"), "epoch", "training loss, -ELBO (nats)")
    sse = sse_momentum_study(args, cfg)
    common.finish(args, {"lr": LR, "diverged": diverged, "sse_kl_momentum": sse,
                         "curves": {k: {"epoch": e, "loss": loss} for k, (e, loss) in curves.items()}})


def sse_momentum_study(args, cfg):
    """SSE + KL on a 2-D latent, one model per momentum: the posterior parameters'
    distributions over the test set, and the best model's decoder means."""
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"], binarize=False)
    results, panels, best = {}, {"mu_1": {}, "mu_2": {}, "sigma_1": {}, "sigma_2": {}}, None
    for m in cfg["momenta"]:
        model = VAE.mlp(784, (cfg["hidden"],), 2, "tanh", "gaussian", {"sigma": 2**-0.5}, rng=args.seed)
        history = fit(model, x, optimizer="sgd", lr=LR / 10, optimizer_kwargs={"momentum": m}, epochs=cfg["epochs"],
                      seed=args.seed, clip_value=1.0, log=None)
        mean, logvar = model.encode(x_test)
        sigma = np.exp(0.5 * logvar)
        for name, values in (("mu_1", mean[:, 0]), ("mu_2", mean[:, 1]), ("sigma_1", sigma[:, 0]),
                             ("sigma_2", sigma[:, 1])):
            panels[name][f"{m}"] = values
        # the SSE + KL loss: -ELBO less the constant (D/2) log pi of the Gaussian with sigma^2 = 1/2
        loss = -history["train_elbo"][-1] - 784 / 2 * np.log(np.pi)
        results[f"momentum {m}"] = {"final_sse_kl_loss": float(loss), "mu_std": mean.std(axis=0).tolist(),
                                    "sigma_median": np.median(sigma, axis=0).tolist()}
        print(f"SSE + KL, momentum {m}: final training loss {loss:.2f}")
        if best is None or loss < best[0]:
            best = (loss, m, model)
    plots.box_panels([(f"posterior {k} over the test set", v) for k, v in panels.items()],
                     common.out(args, "momentum_posteriors.png"), xlabel="momentum", ylabel="value", n_cols=4)
    loss, m, model = best
    plots.image_grid(np.clip(model.sample(50, args.seed, mean=True), 0, 1), common.out(args, "best_model_samples.png"),
                     title=f"decoder means mu_x(z), z ~ p(z), of the best model (momentum {m}, SSE + KL)")
    return {"runs": results, "best_momentum": m}


if __name__ == "__main__":
    main()
