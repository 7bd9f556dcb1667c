"""What every example shares: the --quick / --smoke / --out / --seed flags, the
settings they select, the MNIST splits, and writing results.json.

Each example keeps a SETTINGS dict {"full": ..., "quick": ..., "smoke": ...}: "full"
is the experiment as published (or as close as a laptop allows), "quick" is a small
setting for a quick look, "smoke" the smallest that runs every line (the test suite runs it).
"""

import argparse
import os
import sys

import numpy as np

from npvae.datasets import binarize_static, load_mnist
from npvae.diagnostics import collapse_report
from npvae.files import save_json


def setup(name, doc, settings, flags=None):
    """Parse the flags (``flags(parser)`` adds an example's own); returns ``(args,
    settings for the chosen mode)``."""
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if flags is not None:
        flags(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a small setting, for a quick look")
    mode.add_argument("--smoke", action="store_true", help="tiny settings that run every line (for the tests)")
    parser.add_argument("--out", default=os.path.join("runs", "examples", name), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress appears as it happens, also in a pipe or a file
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    os.makedirs(args.out, exist_ok=True)
    print(f"{name}: {args.mode} setting {settings[args.mode]}; output in {args.out}")
    return args, settings[args.mode]


def out(args, filename):
    return os.path.join(args.out, filename)


def mnist(n_train, n_test, binarize=True):
    """(x_train, y_train, x_test, y_test): the first ``n_train`` of the 50,000 training
    digits (grey levels, for dynamic binarisation while training) and the first
    ``n_test`` test digits, binarised once with a fixed seed when ``binarize``."""
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_test = binarize_static(x_test[:n_test], seed=2) if binarize else x_test[:n_test]
    return x[: min(n_train, 50000)], y[: min(n_train, 50000)], x_test, y_test[:n_test]


def collapse(model, x, y=None, seed=0):
    """The posterior-collapse diagnostics of ``model`` on ``x`` for results.json: active
    units, KL per latent dimension, mutual information (``npvae.diagnostics``)."""
    report = collapse_report(model, x, y, rng=seed)
    return {"active_units": report["active_units"], "mutual_information": report["mutual_information"],
            "kl_per_dimension": report["kl_per_dimension"]}


def affine_decoder(model):
    """(W (D, q), b (D,)) of a model whose decoder's mean is one affine map of the code
    (no hidden layer): b = the mean at 0, column j = the mean at e_j minus b."""
    q = model.latent_dim
    out = model.decode(np.vstack([np.zeros(q), np.eye(q)]).astype(model.dtype))
    mean = model.likelihood.mean(out).astype(np.float64)
    return (mean[1:] - mean[0]).T, mean[0]


def finish(args, results):
    """Write results.json (with the mode and seed) and say where it is; the numbers
    worth a glance were printed as the example went."""
    results = {"mode": args.mode, "seed": args.seed, **results}
    path = out(args, "results.json")
    save_json(path, results)
    figures = sorted(f for f in os.listdir(args.out) if f.endswith(".png"))
    print(f"wrote {path} and {len(figures)} figures: {', '.join(figures)}")
