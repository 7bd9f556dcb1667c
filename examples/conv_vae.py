"""A convolutional VAE against the MLP VAE on MNIST, at the same latent size, the same
Bernoulli likelihood, optimiser and data (dynamically binarised): test ELBO,
importance-sampled log p(x), reconstructions and samples side by side.

The conv VAE is ``VAE.conv()``: Conv 1-32-64 (kernel 4, stride 2, ReLU), Linear to
2 x latent, and the mirrored decoder; the MLP is Kingma & Welling's 784-500-latent
with tanh. The conv encoder shares its weights across positions, so it has fewer
parameters for a stronger prior on images.
"""

import time

import common
import numpy as np

from npvae import plots
from npvae.models import VAE
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, epochs=30, latent=20, k=1000, n_ll=1000),
    "quick": dict(n_train=10000, n_test=1000, epochs=6, latent=20, k=100, n_ll=200),
    "smoke": dict(n_train=300, n_test=50, epochs=1, latent=4, k=5, n_ll=10),
}


def main():
    args, cfg = common.setup("conv_vae", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"])
    d = cfg["latent"]
    models = {"mlp": (VAE.mlp(784, (500,), d, "tanh", "bernoulli", rng=args.seed), (784,)),
              "conv": (VAE.conv((1, 28, 28), (32, 64), 4, d, "relu", "bernoulli", rng=args.seed), (1, 28, 28))}
    rng = np.random.default_rng(args.seed)
    results, recons, samples = {}, [x_test[:10]], []
    for name, (model, shape) in models.items():
        xs, xt = x.reshape(-1, *shape), x_test.reshape(-1, *shape)
        history = fit(model, xs, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], seed=args.seed, binarize=True,
                      log=lambda line, name=name: print(f"  {name}: {line}", flush=True))
        t0 = time.perf_counter()
        results[name] = {
            "parameters": int(sum(p.size for p in model.params.values())),
            "train_seconds": history["seconds"][-1],
            "test_elbo": float(model.elbo(xt, rng=rng).mean()),
            "test_log_likelihood": float(model.log_likelihood(xt[: cfg["n_ll"]], k=cfg["k"], rng=rng).mean()),
        }
        results[name]["eval_seconds"] = time.perf_counter() - t0
        results[name].update(common.collapse(model, xt, seed=args.seed))
        recons.append(model.reconstruct(xt[:10]).reshape(10, -1))
        samples.append((f"{name} VAE", model.sample(64, rng, mean=True).reshape(64, -1)))
        print(f"{name}: {results[name]['parameters']:,} parameters, test ELBO {results[name]['test_elbo']:.2f}, "
              f"log p(x) {results[name]['test_log_likelihood']:.2f} nats (k={cfg['k']}, first {cfg['n_ll']} test "
              f"digits), {results[name]['train_seconds']:.0f} s training")
    plots.image_grid(np.concatenate(recons), common.out(args, "reconstructions.png"),
                     title="test digits (top) / MLP VAE / conv VAE reconstructions (bottom)")
    plots.image_panels(samples, common.out(args, "samples.png"), n_cols=8,
                       title="decoder means E[x|z] of z ~ p(z), after the same training")
    common.finish(args, {"models": results, "epochs": cfg["epochs"], "latent": d, "k": cfg["k"],
                         "log_likelihood_examples": cfg["n_ll"]})


if __name__ == "__main__":
    main()
