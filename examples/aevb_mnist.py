"""Kingma & Welling's MNIST experiment (AEVB, section 5): a Bernoulli decoder, one
hidden layer of 500 tanh units, Adagrad, minibatches of 100; the lower bound on the
training and test sets against the number of training examples seen, for latent sizes
3, 5, 10, 20 and 200 and for the SGVB estimators A (log p(x,z) - log q(z|x) sampled) and
B (the KL term analytic)."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(latents=[3, 5, 10, 20, 200], n_train=50000, n_test=10000, epochs=100, lr=0.02),
    "quick": dict(latents=[3, 5, 10, 20, 200], n_train=6000, n_test=1000, epochs=2, lr=0.02),
    "smoke": dict(latents=[3], n_train=300, n_test=100, epochs=1, lr=0.02),
}


def main():
    args, cfg = common.setup("aevb_mnist", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"])
    runs, panels = {}, []
    for latent in cfg["latents"]:
        lines = {}
        for estimator in ("A", "B"):
            model = VAE.mlp(784, (500,), latent, "tanh", "bernoulli", rng=args.seed)
            test = []

            def test_bound(epoch, history, model=model, test=test):
                test.append(float(model.elbo(x_test, rng=np.random.default_rng(epoch), estimator="B").mean()))

            history = fit(model, x, optimizer="adagrad", lr=cfg["lr"], epochs=cfg["epochs"], batch_size=100,
                          seed=args.seed, estimator=estimator, binarize=True, callbacks=[test_bound], log=None)
            seen = [e * len(x) for e in history["epoch"]]
            runs[f"latent={latent},estimator={estimator}"] = {
                "examples_seen": seen, "train_lower_bound": history["train_elbo"], "test_lower_bound": test,
                "seconds": history["seconds"][-1], **common.collapse(model, x_test, seed=args.seed)}
            lines[f"{estimator} train"] = (seen, history["train_elbo"])
            lines[f"{estimator} test"] = (seen, test)
            print(f"latent {latent:3d}, estimator {estimator}: train {history['train_elbo'][-1]:.2f}, "
                  f"test {test[-1]:.2f} nats after {seen[-1]:,} examples")
        panels.append((f"MNIST, N_z = {latent}", lines))
    plots.line_panels(panels, common.out(args, "lower_bound.png"), "training examples seen", "lower bound (nats)",
                      logx=True)
    common.finish(args, {"runs": runs})


if __name__ == "__main__":
    main()
