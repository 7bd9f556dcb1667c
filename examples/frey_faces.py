"""Kingma & Welling's Frey faces experiment: a Gaussian decoder whose mean and variance
are both outputs of the network, the mean through a sigmoid into (0, 1) as in the paper
("the means were constrained to the interval (0, 1) using a sigmoidal activation"),
latent size 2, 200 tanh hidden units, Adam 1e-3; the learned 2-D manifold of faces (a
grid over the unit square through the Gaussian inverse CDF) and the decoder's mean
+/- k sigma for a few z.

The recipe's two choices, each measured with the others fixed (``docs/results.md``): the
sigmoid keeps the mean in the grey range, so every face of the manifold is a face; the
floor on sigma (0.05 of the grey range) keeps the density bounded where a pixel barely
varies. A lower floor buys likelihood, not pictures.
"""

import common
import numpy as np

from npvae import plots
from npvae.datasets import load_frey_faces, train_val_split
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(epochs=1000, lr=1e-3),
    "quick": dict(epochs=300, lr=1e-3),
    "smoke": dict(epochs=2, lr=1e-3),
}
SIGMA_FLOOR = 0.05
SHAPE = (28, 20)


def main():
    args, cfg = common.setup("frey_faces", __doc__, SETTINGS)
    x_train, x_test = train_val_split(200, load_frey_faces(), seed=args.seed)
    # The floor keeps the density bounded on near-constant pixels, where sigma(z) -> 0
    # would send log p(x|z) to infinity.
    likelihood = {"logvar_floor": 2 * np.log(SIGMA_FLOOR), "mean_activation": "sigmoid"}
    model = VAE.mlp(560, (200,), 2, "tanh", "gaussian_decoder_var", likelihood, rng=args.seed)
    history = fit(model, x_train, x_test, optimizer="adam", lr=cfg["lr"], epochs=cfg["epochs"], batch_size=100,
                  seed=args.seed, log=None)
    decode_mean = lambda z: model.likelihood.mean(model.decode(z))  # noqa: E731
    plots.manifold(decode_mean, common.out(args, "manifold.png"), n=12, image_shape=SHAPE)
    rng = np.random.default_rng(args.seed)
    decoded = model.decode(rng.standard_normal((10, 2)).astype(np.float32))
    plots.mean_and_sigma(model.likelihood.mean(decoded), model.likelihood.std(decoded),
                         common.out(args, "mean_and_sigma.png"), image_shape=SHAPE)
    plots.reconstructions(x_test[:10], model.reconstruct(x_test[:10]), common.out(args, "reconstructions.png"),
                          image_shape=SHAPE)
    plots.training_curves(history, common.out(args, "curves.png"))
    log_px = float(model.log_likelihood(x_test, k=500 if args.mode != "smoke" else 5, rng=rng).mean())
    common.finish(args, {"train_elbo": history["train_elbo"][-1], "test_elbo": history["val_elbo"][-1],
                         "test_log_likelihood": log_px, "epochs": cfg["epochs"], "seconds": history["seconds"][-1],
                         **common.collapse(model, x_test, seed=args.seed)})


if __name__ == "__main__":
    main()
