"""A 2-D uniform distribution encoded to a Gaussian latent and back: encoder and decoder
of 2 hidden layers of 30 ReLU units, latent of 2 and of 1 dimension, over a grid of beta
(below, at and above 1) and L2 weight decay lambda. Figures: the posterior means coloured
by the quadrant each point came from, and the reconstructions likewise. A 1-D latent must
cut the square into a curve; a large beta or lambda shrinks everything toward the mean."""

import common

from npvae import plots
from npvae.datasets import uniform_square
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n=5000, epochs=300, betas=[0.1, 1.0, 4.0], lambdas=[0.0, 0.01, 0.25], latents=[2, 1]),
    "quick": dict(n=2000, epochs=80, betas=[0.1, 1.0, 4.0], lambdas=[0.0, 0.01, 0.25], latents=[2, 1]),
    "smoke": dict(n=200, epochs=1, betas=[0.1], lambdas=[0.0, 0.25], latents=[1]),
}


def main():
    args, cfg = common.setup("uniform2d", __doc__, SETTINGS)
    x, quadrant = uniform_square(cfg["n"], seed=args.seed)
    latent_panels, recon_panels, results = [], [], {}
    for latent in cfg["latents"]:
        for beta in cfg["betas"]:
            for lam in cfg["lambdas"]:
                model = VAE.mlp(2, (30, 30), latent, "relu", "gaussian_learned_var", rng=args.seed)
                history = fit(model, x, optimizer="adam", lr=3e-3, epochs=cfg["epochs"], batch_size=100, beta=beta,
                              weight_decay=lam, seed=args.seed, log=None)
                title = f"d={latent}, beta={beta}, lambda={lam}"
                latent_panels.append((title, model.encode(x)[0], quadrant))
                recon = model.reconstruct(x)
                recon_panels.append((title, recon, quadrant))
                results[title] = {"train_elbo": history["train_elbo"][-1], "train_kl": history["train_kl"][-1],
                                  "reconstruction_mse": float(((recon - x) ** 2).sum(axis=1).mean()),
                                  **common.collapse(model, x, seed=args.seed)}
    n_cols = len(cfg["lambdas"])
    plots.scatter_panels(latent_panels, common.out(args, "latents.png"), n_cols=n_cols, cmap="tab10")
    plots.scatter_panels(recon_panels, common.out(args, "reconstructions.png"), n_cols=n_cols, cmap="tab10")
    common.finish(args, {"runs": results})


if __name__ == "__main__":
    main()
