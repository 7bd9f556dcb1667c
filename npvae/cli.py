"""The ``npvae`` command (also ``python -m npvae``)."""

import argparse
import os
import sys
import time

import numpy as np


def demo(args):
    """Train Kingma & Welling's MNIST VAE on the bundled data and write its figures."""
    from . import io, plots
    from .datasets import binarize_static, load_mnist
    from .models import VAE
    from .train import fit

    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_train, x_val = x[: min(args.train_size, 50000)], binarize_static(x[50000:], seed=1)
    x_test_bin = binarize_static(x_test, seed=2)  # the evaluation data: one fixed binarisation
    model = VAE.mlp(784, (args.hidden,), args.latent, "tanh", "bernoulli", rng=args.seed)
    print(f"npvae demo: VAE 784-{args.hidden}-{args.latent} (tanh, Bernoulli), Adam, dynamic binarisation, "
          f"{args.epochs} epochs of {len(x_train):,} MNIST digits; output in {args.out}")
    history = fit(model, x_train, x_val, optimizer="adam", lr=1e-3, epochs=args.epochs, batch_size=100,
                  seed=args.seed, binarize=True, checkpoint_dir=args.out, checkpoint_every=5)
    io.save_json(os.path.join(args.out, "history.json"), history)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    elbo = float(model.elbo(x_test_bin, rng=rng).mean())
    n_ll = min(args.n_test_ll, len(x_test_bin))
    log_px = float(model.log_likelihood(x_test_bin[:n_ll], k=args.k, rng=rng).mean())
    results = {"test_elbo": elbo, "test_log_likelihood": log_px, "log_likelihood_k": args.k,
               "log_likelihood_examples": n_ll, "epochs": args.epochs, "train_seconds": history["seconds"][-1],
               "eval_seconds": time.perf_counter() - t0}
    io.save_json(os.path.join(args.out, "results.json"), results)

    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    plots.image_grid(model.sample(100, rng, mean=True), out("samples_mean.png"), title="decoder means E[x|z], z ~ p(z)")
    plots.image_grid(model.sample(100, rng), out("samples_ancestral.png"), title="ancestral samples x ~ p(x|z)")
    plots.reconstructions(x_test_bin[:10], model.reconstruct(x_test_bin[:10]), out("reconstructions.png"))
    plots.latent_scatter(model.encode(x_test_bin[:5000])[0], y_test[:5000], out("latent.png"))
    plots.training_curves(history, out("curves.png"))
    print(f"test ELBO {elbo:.2f} nats; importance-sampled log p(x) {log_px:.2f} nats "
          f"(k={args.k}, first {n_ll} test digits)")
    print(f"wrote checkpoint.npz, history.json, results.json and 5 figures to {args.out}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="npvae", description="Variational autoencoders from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a VAE on the bundled MNIST and write figures (a few minutes)",
                       description=demo.__doc__)
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the 50,000 training digits (default: 20)")
    p.add_argument("--hidden", type=int, default=500, help="hidden units (default: 500, as in the paper)")
    p.add_argument("--latent", type=int, default=20, help="latent dimensions (default: 20)")
    p.add_argument("--k", type=int, default=1000, help="importance samples for log p(x) (default: 1000)")
    p.add_argument("--n-test-ll", type=int, default=1000, help="test digits for log p(x) (default: 1000)")
    p.add_argument("--train-size", type=int, default=50000, help="training digits, at most 50,000 (default: 50000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"npvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
