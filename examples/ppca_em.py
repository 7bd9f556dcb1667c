"""Probabilistic PCA on MNIST, the "bridging model" between the Gaussian mixture and the
VAE: a linear-Gaussian decoder with an exact posterior. pPCA fitted by EM against the
closed form (EM climbs to the same log-likelihood, slowly where the signal-to-noise is
high); samples; and the test log-likelihood of pPCA beside a VAE's with a Gaussian
decoder of the same latent size, both as densities on the same dequantised images
((pixel + u) / 256, u ~ U(0, 1), so that neither density can grow without bound)."""

import warnings

import common
import numpy as np

from npvae import plots
from npvae.em import PPCA, ConvergenceWarning
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, q=50, em_iter=500, epochs=30, hidden=500, k=500),
    "quick": dict(n_train=10000, n_test=1000, q=20, em_iter=100, epochs=5, hidden=256, k=100),
    "smoke": dict(n_train=300, n_test=50, q=5, em_iter=5, epochs=1, hidden=16, k=5),
}


def dequantise(x, seed):
    return ((x * 255 + np.random.default_rng(seed).random(x.shape)) / 256).astype(np.float32)


def main():
    args, cfg = common.setup("ppca_em", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"], binarize=False)
    x, x_test = dequantise(x, args.seed), dequantise(x_test, args.seed + 1)
    closed = PPCA(cfg["q"]).fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of iterations, on purpose
        em = PPCA(cfg["q"], method="em", max_iter=cfg["em_iter"], tol=0, random_state=args.seed).fit(x)
    iters = list(range(1, em.n_iter_ + 1))
    plots.line_panels([("pPCA on MNIST: EM against the closed form",
                        {"EM": (iters, em.log_likelihood_history_),
                         "closed form": (iters, [closed.log_likelihood_history_[0]] * len(iters))})],
                      common.out(args, "em_vs_closed_form.png"), "EM iteration", "mean log p(x) (nats)", logx=True)
    plots.image_grid(np.clip(closed.sample(50), 0, 1), common.out(args, "ppca_samples.png"),
                     title="pPCA samples x = W z + mu + sigma eps (clipped to [0, 1])")
    plots.image_grid(np.clip(closed.inverse_transform(np.random.default_rng(args.seed).standard_normal((50, cfg["q"]))),
                             0, 1), common.out(args, "ppca_means.png"), title="pPCA decoder means W z + mu")

    # sigma(z) from the decoder, floored at one grey level (1/256): the dequantisation noise
    vae = VAE.mlp(784, (cfg["hidden"],), cfg["q"], "tanh", "gaussian_decoder_var", {"logvar_floor": -2 * np.log(256)},
                  rng=args.seed)
    fit(vae, x, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], seed=args.seed, log=None)
    vae_log_px = float(vae.log_likelihood(x_test, k=cfg["k"], rng=args.seed).mean())
    plots.image_grid(vae.sample(50, args.seed, mean=True), common.out(args, "vae_means.png"),
                     title="VAE decoder means")
    results = {"ppca_closed_form_train": closed.log_likelihood_history_[0], "ppca_em_train": em.log_likelihood_history_[-1],
               "ppca_em_iterations": em.n_iter_, "ppca_test": closed.score(x_test),
               "ppca_noise_std": float(np.sqrt(closed.noise_variance_)), "vae_test": vae_log_px,
               "vae_log_likelihood_k": cfg["k"], "latent": cfg["q"],
               "vae_diagnostics": common.collapse(vae, x_test, seed=args.seed)}
    print(f"test log p(x), dequantised MNIST: pPCA {results['ppca_test']:.1f} nats, VAE {vae_log_px:.1f} nats")
    common.finish(args, results)


if __name__ == "__main__":
    main()
