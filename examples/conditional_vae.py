"""The conditional VAE on MNIST: the digit's label is given to the encoder and to the
decoder, q(z|x, y) and p(x|z, y). A grid of samples, one row per digit, with the same z
down each column (so z carries the style, y the class); the posterior means of all test
digits, which no longer separate by class, and of one digit alone."""

import common
import numpy as np

from npvae import plots
from npvae.models import ConditionalVAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=5000, epochs=30, hidden=500, latent=2),
    "quick": dict(n_train=10000, n_test=2000, epochs=6, hidden=256, latent=2),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16, latent=2),
}
DIGIT = 3


def main():
    args, cfg = common.setup("conditional_vae", __doc__, SETTINGS)
    x, y, x_test, y_test = common.mnist(cfg["n_train"], cfg["n_test"])
    model = ConditionalVAE.mlp(784, (cfg["hidden"],), cfg["latent"], "tanh", "bernoulli", rng=args.seed,
                               n_classes=10)
    history = fit(model, x, x_test, y=y, y_val=y_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"],
                  seed=args.seed, binarize=True, log=None)
    z = np.tile(np.random.default_rng(args.seed).standard_normal((10, cfg["latent"])), (10, 1)).astype(np.float32)
    digits = np.repeat(np.arange(10), 10)
    grid = model.likelihood.mean(model.decode(z, y=digits))
    plots.image_grid(grid, common.out(args, "samples_per_digit.png"), title="row = label y, column = the same z")
    mean = model.encode(x_test, y=y_test)[0]
    plots.latent_scatter(mean, y_test, common.out(args, "latent_all_digits.png"),
                         title="posterior means given the labels")
    plots.latent_scatter(mean[y_test == DIGIT], np.zeros(int((y_test == DIGIT).sum())),
                         common.out(args, f"latent_digit_{DIGIT}.png"), title=f"posterior means of the {DIGIT}s")
    common.finish(args, {"test_elbo": history["val_elbo"][-1], "test_kl": history["val_kl"][-1],
                         "epochs": cfg["epochs"], "seconds": history["seconds"][-1],
                         **common.collapse(model, x_test, y_test, seed=args.seed)})


if __name__ == "__main__":
    main()
