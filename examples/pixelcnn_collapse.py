"""Posterior collapse where it really happens: a VAE with a PixelCNN decoder on
dynamically binarised MNIST, trained five ways.

Chen et al. ("Variational Lossy Autoencoder", 2017, section 2) argue that a decoder
able to model x on its own is best off ignoring z, so the KL goes to 0; the MAE
regulariser (Ma, Zhou & Hovy, "MAE: Mutual Posterior-Divergence Regularization for
Variational AutoEncoders", 2019) is meant to keep z informative with such decoders.
``examples/posterior_collapse.py`` asks this of an MLP decoder, where collapse is mild;
here the decoder is autoregressive (``PixelCNNVAE``: a conv encoder, a latent of 32, a
PixelCNN of masked convolutions with z as a bias in every layer, per pixel and channel,
or per channel only with ``--z-bias channel``). Runs, on the same data, seed and budget:

(a) plain ELBO; (b) KL annealing (beta from 0 to 1 over the first half); (c) free bits
(0.25 nats a dimension, Kingma et al. 2016); (d) MAE (eta 1, gamma 0.5, the setting of
``posterior_collapse.py``); (e) a weak decoder (one masked layer, 3 x 3: it sees only
the pixels just above and to the left), plain ELBO, as the contrast.

Per run: test NLL (importance-sampled, k samples), test ELBO, KL, active units, the
mutual information I_q(x; z) and the KL per dimension; figures: samples from the prior,
reconstructions (z = the posterior mean of a test digit, the pixels drawn afresh), a
z-interpolation between two test digits with the sampling noise held fixed (a decoder
that ignores z draws the same image all along), and KL, active units and mutual
information over training.

The setting of the MAE paper's code (github.com/XuezheMax/mae, experiments/
binary_image.py and configs/binary_image.json) is larger: a ResNet encoder, an
autoregressive-flow prior, a bigger PixelCNN, gradient clipping at 5, Polyak averaging,
training until the learning rate decays below 5e-5, NLL with k = 4096.

What the full runs show (numbers, date, machine and commands in ``docs/results.md``):
with z as a bias per pixel nothing collapses (plain ELBO: KL 8.7 nats, NLL 85.8), MAE
spreads the KL over every dimension and keeps the most information for 1.8 nats of NLL,
and the weak decoder leans on z more than the strong one (KL 13.0). With z as a bias per
channel the decoder collapses (KL 1.5 nats), KL annealing only delays it, free bits hold
the KL at its floor with little information, MAE keeps all 32 units active and 6.3 nats
of information for 2.8 nats of NLL, and the weak decoder collapses too. MAE's claim of
an informative latent holds in both, at a small cost in NLL.
"""

import common
import numpy as np

from npvae import diagnostics, plots
from npvae.datasets import binarize_static, load_mnist
from npvae.models import PixelCNNVAE
from npvae.train import evaluate, fit

SETTINGS = {
    "full": dict(n_train=20000, n_val=1000, n_test=10000, epochs=10, k=20, channels=16, n_layers=4, n_show=16,
                 size=28),
    "quick": dict(n_train=800, n_val=100, n_test=100, epochs=2, k=5, channels=16, n_layers=4, n_show=6, size=28),
    "smoke": dict(n_train=100, n_val=50, n_test=20, epochs=1, k=2, channels=4, n_layers=2, n_show=2, size=8),
}  # size: the images' centre crop (the smoke run samples 8 x 8 pixels, not 28 x 28)
LATENT = 32
STEPS = 8  # interpolation steps


def runs(cfg, steps_per_epoch):
    """name -> (the decoder's (n_layers, kernel_size, first_kernel_size), fit's settings)."""
    strong = (cfg["n_layers"], 3, 5)
    return {
        "plain": (strong, {}),
        "KL annealing": (strong, dict(anneal="linear", anneal_steps=max(1, cfg["epochs"] * steps_per_epoch // 2))),
        "free bits 0.25": (strong, dict(free_bits=0.25)),
        "MAE eta 1 gamma 0.5": (strong, dict(mae_eta=1.0, mae_gamma=0.5)),
        "weak decoder": ((1, 3, 3), {}),
    }


def interpolation(model, x_pair, seed):
    """STEPS images decoded along the line between the posterior means of two images,
    each drawn with the same random numbers."""
    mean, _ = model.encode(x_pair)
    weights = np.linspace(0, 1, STEPS, dtype=model.dtype)[:, None]
    z = (1 - weights) * mean[0] + weights * mean[1]
    return model.sample_given(z, rng=seed, shared_noise=True)


def flags(parser):
    parser.add_argument("--z-bias", choices=("pixel", "channel"), default="pixel",
                        help="how z enters each decoder layer: a bias per pixel and channel, or per channel only")


def main():
    args, cfg = common.setup("pixelcnn_collapse", __doc__, SETTINGS, flags)
    crop = slice(14 - cfg["size"] // 2, 14 + cfg["size"] // 2)
    images = load_mnist("train", flatten=False)[0][:, :, crop, crop]
    x_train = images[: cfg["n_train"]]
    x_val = binarize_static(images[50000 : 50000 + cfg["n_val"]], seed=1)
    x_test = binarize_static(load_mnist("test", flatten=False)[0][: cfg["n_test"], :, crop, crop], seed=2)
    n_show = cfg["n_show"]
    steps_per_epoch = -(-len(x_train) // 100)
    results, curves = {}, {"KL": {}, "active units": {}, "I_q(x; z)": {}}
    sample_panels, recon_panels, interp_panels, kl_panels = [], [("test digits", x_test[:n_show])], [], []
    for name, ((n_layers, kernel, first), settings) in runs(cfg, steps_per_epoch).items():
        model = PixelCNNVAE.build((1, cfg["size"], cfg["size"]), LATENT, channels=cfg["channels"], n_layers=n_layers,
                                  kernel_size=kernel, first_kernel_size=first, rng=args.seed, z_bias=args.z_bias)
        history = fit(model, x_train, x_val, optimizer="adam", lr=1e-3, epochs=cfg["epochs"], batch_size=100,
                      seed=args.seed, binarize=True, diagnostics_every=1, log=None, **settings)
        epochs = history["epoch"]
        curves["KL"][name] = (epochs, history["val_kl"])
        curves["active units"][name] = (epochs, history["active_units"])
        curves["I_q(x; z)"][name] = (epochs, history["mutual_information"])
        report = diagnostics.collapse_report(model, x_test, rng=args.seed)
        test = evaluate(model, x_test)
        nll = -float(model.log_likelihood(x_test, k=cfg["k"], rng=args.seed).mean())
        results[name] = {"decoder_layers": n_layers, "kernel_size": kernel, "first_kernel_size": first,
                         "settings": settings, "test_nll": nll, "test_elbo": test["elbo"], "test_kl": test["kl"],
                         "active_units": report["active_units"], "mutual_information": report["mutual_information"],
                         "kl_per_dimension": report["kl_per_dimension"], "train_seconds": history["seconds"][-1]}
        print(f"{name:20s} NLL {nll:7.2f}  ELBO {test['elbo']:8.2f}  KL {test['kl']:6.2f}  active units "
              f"{report['active_units']:2d}  MI {report['mutual_information']:.2f} nats  "
              f"({history['seconds'][-1]:.0f} s)")
        sample_panels.append((name, model.sample(n_show, rng=args.seed)))
        recon_panels.append((name, model.reconstruct(x_test[:n_show], rng=args.seed)))
        interp_panels.append((name, interpolation(model, x_test[:2], args.seed)))
        kl_panels.append((name, np.sort(report["kl_per_dimension"])[::-1]))
    flat = lambda panels: [(name, images.reshape(len(images), -1)) for name, images in panels]  # noqa: E731
    shape = (cfg["size"], cfg["size"])
    plots.image_panels(flat(sample_panels), common.out(args, "samples.png"), n_cols=n_show, panels_per_row=1,
                       title="x ~ p(x|z), z ~ p(z), drawn pixel by pixel", image_shape=shape)
    plots.image_panels(flat(recon_panels), common.out(args, "reconstructions.png"), n_cols=n_show,
                       panels_per_row=1, title="test digits, then x ~ p(x | z = posterior mean): what z keeps",
                       image_shape=shape)
    plots.image_panels(flat(interp_panels), common.out(args, "interpolations.png"), n_cols=STEPS, panels_per_row=2,
                       title="z from the first test digit's code to the second's, the same sampling noise each step",
                       image_shape=shape)
    plots.line_panels([(f"{key} on validation digits", lines) for key, lines in curves.items()],
                      common.out(args, "collapse_over_training.png"), "epoch", ["nats", "units", "nats"])
    plots.bar_panels(kl_panels, common.out(args, "kl_per_dimension.png"), "latent dimension (sorted)",
                     "KL (nats)", title="KL per latent dimension on test digits")
    common.finish(args, {"runs": results, "k": cfg["k"], "z_bias": args.z_bias, "settings": cfg})


if __name__ == "__main__":
    main()
