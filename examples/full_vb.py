"""Full variational Bayes over the decoder's weights (Kingma & Welling, "Auto-Encoding
Variational Bayes", 2014, appendix F): a mean-field Gaussian q(theta) over every weight
of the generative network, a N(0, I) prior, and the bound

    L = sum_n ELBO_n - KL(q(theta) || p(theta))

estimated by SGVB, on Frey faces and on MNIST, against the point-estimate VAE of the
same architecture (``npvae.models.BayesianDecoderVAE``). An AEVB reproduction saw "a
decrease of variational lower bound, but no evidence of learning"; this example trains
the full-VB model four ways, adding one change at a time, to find what it takes:

* naive: q(theta) starts at sigma = 1 (the prior's scale), one weight draw per
  minibatch, the weight KL at full weight from the first step;
* small sigma: q(theta) starts at sigma = e^-5 (near the point estimate);
* + local reparameterisation (Kingma, Salimans & Welling 2015): each layer's outputs
  drawn per example instead of one weight draw per minibatch;
* + warm-up: the weight KL's weight rises linearly from 0 to 1 over the first
  ``warmup`` of the epochs.

Reported per epoch: the bound per example (train: the running mean over the epoch's
minibatches; test: the test ELBO less KL / N, N the training set's size), the test
ELBO and the weight KL. Figures: the bound over training for each variant and the
point estimate (``bounds.png``), and the same z decoded under several draws of the
weights (``weight_draws.png``: the weight uncertainty made visible).

    python examples/full_vb.py          # the full run (docs/results.md has what it gave)
    python examples/full_vb.py --quick
"""

import common
import numpy as np

from npvae import plots
from npvae.plots import plt, save
from npvae.datasets import load_frey_faces, train_val_split
from npvae.models import VAE, BayesianDecoderVAE
from npvae.train import fit

SETTINGS = {
    "full": dict(frey_train=None, frey_epochs=300, mnist_train=10000, mnist_test=2000, mnist_epochs=30, warmup=0.3),
    "quick": dict(frey_train=None, frey_epochs=10, mnist_train=1000, mnist_test=200, mnist_epochs=3, warmup=0.3),
    "smoke": dict(frey_train=60, frey_epochs=1, mnist_train=60, mnist_test=20, mnist_epochs=1, warmup=1.0),
}
VARIANTS = {  # name -> (initial log sigma, local reparameterisation, warm-up)
    "naive": (0.0, False, False),
    "small sigma": (-5.0, False, False),
    "+ local reparam": (-5.0, True, False),
    "+ warm-up": (-5.0, True, True),
}
FREY = dict(input_dim=560, hidden=(200,), latent_dim=2, likelihood="gaussian_decoder_var",
            likelihood_kwargs={"logvar_floor": 2 * np.log(0.05), "mean_activation": "sigmoid"})
MNIST = dict(input_dim=784, hidden=(500,), latent_dim=20, likelihood="bernoulli", likelihood_kwargs=None)


def train(model, x, x_test, epochs, seed, warmup_epochs=0, binarize=False):
    """Adam 1e-3, batch 100; returns the per-epoch bound (train, test), test ELBO and
    weight KL (0 for the point estimate)."""
    kls = []

    def after_epoch(epoch, history):
        kls.append(model.weight_kl() if isinstance(model, BayesianDecoderVAE) else 0.0)
        if warmup_epochs:
            model.weight_kl_weight = min(1.0, epoch / warmup_epochs)

    if warmup_epochs:
        model.weight_kl_weight = 0.0
    h = fit(model, x, x_test, lr=1e-3, epochs=epochs, batch_size=100, seed=seed, binarize=binarize,
            callbacks=[after_epoch], log=None)
    kl_per_example = np.array(kls) / len(x)
    # the train ELBO is the epoch's running mean; the bound pays the weight KL at the epoch's end
    return {"train_bound": (np.array(h["train_elbo"]) - kl_per_example).tolist(),
            "test_bound": (np.array(h["val_elbo"]) - kl_per_example).tolist(), "test_elbo": h["val_elbo"],
            "weight_kl": kls, "n_train": len(x), "seconds": h["seconds"][-1]}


def experiment(name, net, x, x_test, epochs, cfg, seed, binarize):
    """The point estimate and each variant on one dataset; returns results and models."""
    net = dict(net)
    shape = dict(input_dim=net.pop("input_dim"), hidden=net.pop("hidden"), latent_dim=net.pop("latent_dim"))
    point = VAE.mlp(shape["input_dim"], shape["hidden"], shape["latent_dim"], "tanh", rng=seed, **net)
    results = {"point estimate": train(point, x, x_test, epochs, seed, binarize=binarize)}
    models = {}
    for variant, (logsigma, local, warm) in VARIANTS.items():
        model = BayesianDecoderVAE.mlp(**shape, n_train=len(x), init_logsigma=logsigma, local_reparam=local,
                                       rng=seed, **net)
        results[variant] = train(model, x, x_test, epochs, seed, round(cfg["warmup"] * epochs) if warm else 0,
                                 binarize)
        models[variant] = model
        r = results[variant]
        print(f"{name} {variant:>16}: test bound {r['test_bound'][-1]:9.2f}  (epoch 1: {r['test_bound'][0]:9.2f}), "
              f"weight KL {r['weight_kl'][-1]:10.1f} nats, {r['seconds']:.0f} s")
    print(f"{name} {'point estimate':>16}: test ELBO {results['point estimate']['test_bound'][-1]:9.2f}")
    return results, models


def bounds_figure(datasets, path):
    """Per dataset (a row): the bound (test, and train dashed), the test ELBO (the data term alone) and the
    weight KL per example, each variant a line; a line far below the others (the naive
    start) is left below the axis, its last value in its label."""
    fig, axes = plt.subplots(len(datasets), 3, figsize=(17, 5 * len(datasets)), squeeze=False)
    for row, (name, results) in zip(axes, datasets.items()):
        colour = {variant: f"C{i}" for i, variant in enumerate(results)}  # one colour per variant in every panel
        for ax, key, what in zip(row, ("test_bound", "test_elbo", "weight_kl"),
                                 ("bound: ELBO - KL(q(theta) || p(theta)) / N (test; train dashed)",
                                  "test ELBO (theta ~ q(theta))",
                                  "KL(q(theta) || p(theta)) / N")):
            curves = {variant: np.asarray(r[key]) / (r["n_train"] if key == "weight_kl" else 1)
                      for variant, r in results.items() if key != "weight_kl" or variant != "point estimate"}
            shown = [c for v, c in curves.items() if v != "naive"]
            low, high = min(c.min() for c in shown), max(c.max() for c in shown)
            for variant, c in curves.items():
                below = key != "weight_kl" and c[-1] < low - 0.1 * (high - low)  # off the axis drawn below
                ax.plot(np.arange(1, len(c) + 1), c, color=colour[variant],
                        label=f"{variant} (ends at {c[-1]:.0f}, below the axis)" if below else variant)
                if key == "test_bound":  # the training bound beside it, dashed
                    ax.plot(np.arange(1, len(c) + 1), results[variant]["train_bound"], color=colour[variant],
                            linestyle="--", linewidth=0.8)
            if key == "weight_kl":
                ax.set_yscale("log")
            else:
                ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
            ax.set(title=f"{name}: {what}", xlabel="epoch", ylabel="nats per example")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def weight_draws(models, rng):
    """Rows: one z ~ p(z) each, decoded (the mean image) under six draws of the weights."""
    panels = []
    for name, model, shape in models:
        z = rng.standard_normal((4, model.latent_dim)).astype(model.dtype)
        out = model.decode_with_weights(z, 6, rng)  # (draws, 4, D)
        panels.append((f"{name}: a z per row, a weight draw per column",
                       model.likelihood.mean(out.transpose(1, 0, 2).reshape(24, -1)), shape))
    return panels


def main():
    args, cfg = common.setup("full_vb", __doc__, SETTINGS)
    frey_train, frey_test = train_val_split(200, load_frey_faces(), seed=args.seed)
    frey_train = frey_train[: cfg["frey_train"]]
    x, _, x_test, _ = common.mnist(cfg["mnist_train"], cfg["mnist_test"])
    frey, frey_models = experiment("frey", FREY, frey_train, frey_test, cfg["frey_epochs"], cfg, args.seed, False)
    mnist, mnist_models = experiment("mnist", MNIST, x, x_test, cfg["mnist_epochs"], cfg, args.seed, True)
    bounds_figure({"Frey faces": frey, "MNIST": mnist}, common.out(args, "bounds.png"))
    rng = np.random.default_rng(args.seed)
    for (title, images, shape), file in zip(weight_draws([("Frey faces", frey_models["+ warm-up"], (28, 20)),
                                                          ("MNIST", mnist_models["+ warm-up"], (28, 28))], rng),
                                            ("weight_draws_frey.png", "weight_draws_mnist.png")):
        plots.image_grid(images, common.out(args, file), n_cols=6, title=title, image_shape=shape)
    common.finish(args, {"frey": frey, "mnist": mnist, "settings": cfg})


if __name__ == "__main__":
    main()
