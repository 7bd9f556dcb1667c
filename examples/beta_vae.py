"""beta-VAE on MNIST with a 2-D latent: a small, a medium (1) and a large beta. For each,
the posterior means of test digits coloured by label and the decoded manifold. Too small a
beta lets q(z|x) wander from the prior, so prior samples land where the decoder never
trained; too large a beta pushes q(z|x) onto the prior: the KL and the active dimensions
go to zero (posterior collapse) and every digit decodes to the same blur."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(betas=[0.05, 1.0, 20.0], n_train=50000, n_test=5000, epochs=30, hidden=500),
    "quick": dict(betas=[0.05, 1.0, 20.0], n_train=10000, n_test=2000, epochs=6, hidden=256),
    "smoke": dict(betas=[0.05, 20.0], n_train=300, n_test=100, epochs=1, hidden=16),
}


def main():
    args, cfg = common.setup("beta_vae", __doc__, SETTINGS)
    x, _, x_test, y_test = common.mnist(cfg["n_train"], cfg["n_test"])
    panels, results = [], {}
    for beta in cfg["betas"]:
        model = VAE.mlp(784, (cfg["hidden"],), 2, "tanh", "bernoulli", rng=args.seed)
        history = fit(model, x, x_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], beta=beta, seed=args.seed,
                      binarize=True, log=None)
        mean, logvar = model.encode(x_test)
        kl_per_dim = 0.5 * (mean**2 + np.exp(logvar) - 1 - logvar).mean(axis=0)
        results[f"beta={beta}"] = {"test_elbo": history["val_elbo"][-1], "test_kl": history["val_kl"][-1],
                                   "kl_per_dim": kl_per_dim.tolist(), "active_dims": int((kl_per_dim > 0.01).sum()),
                                   "posterior_mean_std": mean.std(axis=0).tolist(),
                                   **common.collapse(model, x_test, seed=args.seed)}
        panels.append((f"beta = {beta}: KL {history['val_kl'][-1]:.2f} nats", mean, y_test))
        decode_mean = lambda z, model=model: model.likelihood.mean(model.decode(z))  # noqa: E731
        plots.manifold(decode_mean, common.out(args, f"manifold_beta_{beta}.png"), n=15)
        print(f"beta {beta}: test ELBO {history['val_elbo'][-1]:.2f}, KL {history['val_kl'][-1]:.2f} nats")
    plots.scatter_panels(panels, common.out(args, "posterior_means.png"))
    common.finish(args, {"betas": results})


if __name__ == "__main__":
    main()
