"""An MNIST VAE trained with plain SGD, to see what gradient clipping and momentum do:
clipping by value at several thresholds in (0, 1], clipping by global norm at several
thresholds, and heavy-ball momentum from 0.5 to 0.99; training-loss curves for each
against unclipped, momentum-free SGD."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, epochs=20, hidden=500, values=[0.01, 0.1, 0.5, 1.0], norms=[1.0, 5.0, 20.0],
                 momenta=[0.5, 0.9, 0.99]),
    "quick": dict(n_train=5000, epochs=5, hidden=200, values=[0.01, 0.1, 1.0], norms=[1.0, 5.0, 20.0],
                  momenta=[0.5, 0.9, 0.99]),
    "smoke": dict(n_train=200, epochs=1, hidden=16, values=[0.1], norms=[5.0], momenta=[0.9]),
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
    common.finish(args, {"lr": LR, "diverged": diverged,
                         "curves": {k: {"epoch": e, "loss": loss} for k, (e, loss) in curves.items()}})


if __name__ == "__main__":
    main()
