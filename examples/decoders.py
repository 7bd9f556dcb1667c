"""Theory vs implementation for Gaussian decoders, on Frey faces: a fixed sigma = 1 (what
"output the mean and minimise squared error" amounts to), a learned per-pixel sigma,
and sigma(z) output by the decoder. For each: the decoder mean E[x|z] beside true
ancestral samples x ~ p(x|z), and mean +/- 1 and 2 sigma panels. With sigma = 1 on
data in [0, 1], a sample of p(x|z) is mostly noise: the pictures such implementations
show are means, not samples of their model.

What --quick (100 epochs, latent 10, seed 0) shows: the per-pixel sigma is still 0.40 of
the grey range (it starts at 1 and Adam moves log sigma^2 by about 1e-3 a step), so its
samples are noise as well; sigma(z) is down at the floor of 0.05 where the decoder is
sure (median 0.17) and reaches 13 for z it has not learned to decode (a z ~ p(z) in 10
dimensions is often far from every training code): there mean +/- sigma clips to black
and white, and the samples are noise."""

import common
import numpy as np

from npvae import plots
from npvae.datasets import load_frey_faces, train_val_split
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {"full": dict(epochs=600), "quick": dict(epochs=100), "smoke": dict(epochs=1)}
SHAPE = (28, 20)
FLOOR = 2 * np.log(0.05)  # sigma >= 0.05 of the grey range: keeps the learned densities bounded
DECODERS = {
    "fixed_sigma_1": ("gaussian", {"sigma": 1.0}),
    "learned_per_pixel_sigma": ("gaussian_learned_var", {"logvar_floor": FLOOR}),
    # the mean through a sigmoid into the grey range, as Kingma & Welling's (frey_faces.py)
    "sigma_of_z": ("gaussian_decoder_var", {"logvar_floor": FLOOR, "mean_activation": "sigmoid"}),
}


def main():
    args, cfg = common.setup("decoders", __doc__, SETTINGS)
    x_train, x_test = train_val_split(200, load_frey_faces(), seed=args.seed)
    results = {}
    for name, (likelihood, kwargs) in DECODERS.items():
        model = VAE.mlp(560, (200,), 10, "tanh", likelihood, kwargs, rng=args.seed)
        history = fit(model, x_train, x_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], batch_size=100,
                      seed=args.seed, log=None)
        rng = np.random.default_rng(args.seed)
        means, samples = model.sample(10, rng, mean=True), model.sample(10, np.random.default_rng(args.seed), mean=False)
        plots.image_grid(np.concatenate([means, np.clip(samples, 0, 1)]), common.out(args, f"{name}_mean_vs_sample.png"),
                         title=f"{name}: decoder means (top) / ancestral samples, clipped to [0,1] (bottom)",
                         image_shape=SHAPE)
        decoded = model.decode(rng.standard_normal((8, 10)).astype(np.float32))
        sigma = model.likelihood.std(decoded)
        plots.mean_and_sigma(model.likelihood.mean(decoded), sigma, common.out(args, f"{name}_mean_and_sigma.png"),
                             image_shape=SHAPE)
        results[name] = {"test_elbo": history["val_elbo"][-1], "sigma_min": float(sigma.min()),
                         "sigma_median": float(np.median(sigma)), "sigma_max": float(sigma.max()),
                         "sample_minus_mean_rms": float(np.sqrt(np.mean((samples - means) ** 2))),
                         **common.collapse(model, x_test, seed=args.seed)}
        print(f"{name}: test ELBO {results[name]['test_elbo']:.1f} nats, sigma median {results[name]['sigma_median']:.3f}")
    common.finish(args, {"decoders": results, "epochs": cfg["epochs"]})


if __name__ == "__main__":
    main()
