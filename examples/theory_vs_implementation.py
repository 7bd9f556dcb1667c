"""Theory against implementation (section 3.6 of Beaulac,
"Variational AutoEncoders: Theory, implementation and unanswered questions", 2019, its
Figures 1-14), on MNIST.

The model is the supervised (conditional) VAE, labels given to the encoder and the
decoder, with a 2-D latent so that z can be drawn as a plane; beta = 1 unless said. Its
decoder in five variants: sigma(z) output by the decoder; a learned sigma per pixel;
a fixed sigma = 1 (what "output the mean and minimise the squared error" amounts to);
a fixed small sigma = 0.1 (the text's "fixing sigma"); and the Bernoulli decoder. For
each: decoder means mu_x(z) beside true ancestral samples x ~ p(x|z) for z ~ p(z)
(one per digit), the plane of mu_x(z) for the digit four, and the mu +/- k sigma rows
of the learned-sigma decoders. Then the beta study (the text's Figures 9-11): small,
medium and large beta on the Bernoulli conditional model, the posterior means of the
test set and the plane of mu_x(z) for the digit nine.

What the figures show, as the text argues: the theory's generative model is the
sample x ~ p(x|z), but what implementations show is the mean mu_x(z). With a Gaussian
decoder the samples are pixels drawn independently around the mean: noise on a digit
(sigma(z) and sigma = 0.1), or almost pure noise (sigma = 1, on data in [0, 1]); the
pictures that look like digits are means, a deterministic function of z. Too small a
beta leaves the posteriors far from the prior, so much of the plane under p(z) decodes
to nothing the decoder was trained on; too large a beta makes mu_x(z) nearly the same
for every z (collapse).
"""

import common
import numpy as np

from npvae import plots
from npvae.distributions import kl_standard_normal
from npvae.models import ConditionalVAE
from npvae.plots import manifold_grid
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=50, hidden=500),
    "quick": dict(n_train=8000, n_test=2000, epochs=4, hidden=256),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16),
}
FLOOR = 2 * np.log(0.02)  # sigma >= 0.02: keeps the learned densities bounded on constant pixels
VARIANTS = {
    "sigma(z)": ("gaussian_decoder_var", {"logvar_floor": FLOOR}),
    "per-pixel sigma": ("gaussian_learned_var", {"logvar_floor": FLOOR}),
    "fixed sigma = 1": ("gaussian", {"sigma": 1.0}),
    "fixed sigma = 0.1": ("gaussian", {"sigma": 0.1}),
    "Bernoulli": ("bernoulli", {}),
}
BETAS = {"beta = 0.1 (small)": 0.1, "beta = 1 (medium)": 1.0, "beta = 10 (large)": 10.0}
GRID = 10


def train(likelihood, kwargs, beta, x, y, x_test, y_test, cfg, seed):
    model = ConditionalVAE.mlp(784, (cfg["hidden"],), 2, "tanh", likelihood, kwargs, rng=seed, n_classes=10)
    bernoulli = likelihood == "bernoulli"
    history = fit(model, x, x_test, y=y, y_val=y_test, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], beta=beta,
                  seed=seed, binarize=bernoulli, log=None)
    return model, history["val_elbo"][-1]


def plane(model, digit):
    """mu_x(z) over the equal-mass grid of z, with the label fixed."""
    z = manifold_grid(GRID).astype(model.dtype)
    return model.likelihood.mean(model.decode(z, y=np.full(len(z), digit)))


def main():
    args, cfg = common.setup("theory_vs_implementation", __doc__, SETTINGS)
    x, y, x_test_bin, y_test = common.mnist(cfg["n_train"], cfg["n_test"])
    x_test_grey = common.mnist(0, cfg["n_test"], binarize=False)[2]
    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((10, 2)).astype(np.float32)
    digits = np.arange(10)
    results, sample_panels, plane_panels, sigma_panels = {}, [], [], []
    for name, (likelihood, kwargs) in VARIANTS.items():
        x_test = x_test_bin if likelihood == "bernoulli" else x_test_grey
        model, elbo = train(likelihood, kwargs, 1.0, x, y, x_test, y_test, cfg, args.seed)
        out = model.decode(z, y=digits)
        means, samples = model.likelihood.mean(out), np.clip(model.likelihood.sample(out, rng), 0, 1)
        sample_panels += [(f"{name}: means mu_x(z)", means), (f"{name}: samples x ~ p(x|z)", samples)]
        plane_panels.append((name, plane(model, 4)))
        if likelihood.startswith("gaussian_"):
            std = model.likelihood.std(out)
            rows = [np.clip(means + k * std, 0, 1) for k in (-2, -1, 0, 1, 2)]
            sigma_panels.append((f"{name}: rows mu + k sigma, k = -2..2", np.concatenate(rows)))
        results[name] = {"likelihood": likelihood, **kwargs, "test_elbo": elbo,
                         "sample_minus_mean_rms": float(np.sqrt(np.mean((samples - means) ** 2)))}
        print(f"{name:18s} test ELBO {elbo:9.1f} nats; samples differ from means by "
              f"{results[name]['sample_minus_mean_rms']:.3f} (rms grey level)")
    plots.image_panels(sample_panels, common.out(args, "means_vs_samples.png"), n_cols=10, panels_per_row=2,
                       title="one z ~ p(z) per digit 0-9: what implementations show (left) and what the model "
                             "generates (right; clipped to [0, 1])")
    plots.image_panels(plane_panels, common.out(args, "plane_digit_4.png"), n_cols=GRID,
                       title="mu_x(z) for the digit four over the plane of z (equal-mass grid of p(z))")
    plots.image_panels(sigma_panels, common.out(args, "mean_pm_sigma.png"), n_cols=10, panels_per_row=2,
                       title="learned sigma: mu_x(z) + k sigma_x(z), one column per digit")

    beta_scatter, beta_planes = [], []
    for name, beta in BETAS.items():
        model, elbo = train("bernoulli", {}, beta, x, y, x_test_bin, y_test, cfg, args.seed)
        mean, logvar = model.encode(x_test_bin, y=y_test)
        beta_scatter.append((f"{name}: test posterior means", mean, y_test))
        beta_planes.append((name, plane(model, 9)))
        kl = float(kl_standard_normal(mean, logvar).sum(axis=1).mean())
        results[name] = {"beta": beta, "test_elbo": elbo, "test_kl": kl}
        print(f"{name:18s} test ELBO {elbo:9.1f} nats, KL {kl:.2f} nats")
    plots.scatter_panels(beta_scatter, common.out(args, "beta_posteriors.png"), n_cols=3)
    plots.image_panels(beta_planes, common.out(args, "beta_plane_digit_9.png"), n_cols=GRID,
                       title="mu_x(z) for the digit nine over the plane of z, three betas")
    common.finish(args, {"models": results, "epochs": cfg["epochs"]})


if __name__ == "__main__":
    main()
