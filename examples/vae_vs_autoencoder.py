"""The VAE against the plain autoencoder with the same networks and the same Bernoulli
likelihood, on the MNIST test set: reconstruction error (cross-entropy in nats and squared
error of the mean, per image), reconstructions side by side, and what each decoder makes
of codes drawn from N(0, I): the autoencoder has no prior, so its decoder was never asked
to make sense of them."""

import common
import numpy as np

from npvae import plots
from npvae.models import VAE, Autoencoder
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=30, hidden=500, latent=20),
    "quick": dict(n_train=10000, n_test=2000, epochs=6, hidden=256, latent=20),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16, latent=4),
}


def main():
    args, cfg = common.setup("vae_vs_autoencoder", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"])
    results, recons, prior_decodes = {}, [x_test[:10]], []
    z = np.random.default_rng(args.seed).standard_normal((10, cfg["latent"])).astype(np.float32)
    for name, cls in (("vae", VAE), ("autoencoder", Autoencoder)):
        model = cls.mlp(784, (cfg["hidden"],), cfg["latent"], "tanh", "bernoulli", rng=args.seed)
        fit(model, x, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], seed=args.seed, binarize=True, log=None)
        code = model.encode(x_test)[0] if name == "vae" else model.encode(x_test)  # the VAE's code: its mean
        logits = model.decode(code)
        p = model.likelihood.mean(logits)
        results[name] = {"test_cross_entropy": float(-model.likelihood.log_prob(x_test, logits).mean()),
                         "test_squared_error": float(((p - x_test) ** 2).sum(axis=1).mean()),
                         **(common.collapse(model, x_test, seed=args.seed) if name == "vae" else {})}
        recons.append(p[:10])
        prior_decodes.append(model.likelihood.mean(model.decode(z)))
        print(f"{name}: test reconstruction cross-entropy {results[name]['test_cross_entropy']:.2f} nats")
    plots.image_grid(np.concatenate(recons), common.out(args, "reconstructions.png"),
                     title="test digits / VAE / autoencoder reconstructions")
    plots.image_grid(np.concatenate(prior_decodes), common.out(args, "decoded_prior_codes.png"),
                     title="z ~ N(0, I) decoded: VAE (top) / autoencoder (bottom)")
    common.finish(args, {"models": results, "epochs": cfg["epochs"]})


if __name__ == "__main__":
    main()
