"""The learned 2-D MNIST manifold (Kingma & Welling, figure 4): a VAE with a 2-D latent;
a linear grid over the unit square mapped through the Gaussian inverse CDF to z, and the
decoder mean at each z."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=50, hidden=500),
    "quick": dict(n_train=20000, n_test=2000, epochs=5, hidden=500),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16),
}


def main():
    args, cfg = common.setup("manifold", __doc__, SETTINGS)
    x, _, x_test, y_test = common.mnist(cfg["n_train"], cfg["n_test"])
    model = VAE.mlp(784, (cfg["hidden"],), 2, "tanh", "bernoulli", rng=args.seed)
    history = fit(model, x, x_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], seed=args.seed, binarize=True,
                  log=None)
    decode_mean = lambda z: model.likelihood.mean(model.decode(z))  # noqa: E731
    plots.manifold(decode_mean, common.out(args, "manifold.png"), n=20)
    plots.latent_scatter(model.encode(x_test)[0], y_test, common.out(args, "latent.png"))
    common.finish(args, {"test_elbo": history["val_elbo"][-1], "epochs": cfg["epochs"],
                         "seconds": history["seconds"][-1], "latent_std": np.std(model.encode(x_test)[0], 0).tolist(),
                         **common.collapse(model, x_test, seed=args.seed)})


if __name__ == "__main__":
    main()
