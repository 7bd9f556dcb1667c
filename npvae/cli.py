"""The ``npvae`` command (also ``python -m npvae``): its flags, config files and exit
statuses; ``npvae.commands`` does the work of demo, train, eval, sample, plot and tour.

Every command checks all its flags before it loads data or writes a file; a bad flag,
a missing or corrupt file gives one line on stderr and exit status 2, a diverging run
one line and status 1, Ctrl-C a checkpoint, one line and status 130.
"""

import argparse
import json
import os
import sys

import numpy as np

from .commands import DATASETS, MODEL_NAMES, TRAIN_KEYS, demo, evaluate, gradient_tour, plot, sample, train


# ----------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least(minimum, kind=int, open_=False):
    """An argparse type: a number >= ``minimum`` (> with ``open_``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or (value <= minimum if open_ else value < minimum):
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what} {'>' if open_ else '>='} {minimum}, got {text!r}")
        return value
    return parse


def _int_list(text):
    """'32,64' -> [32, 64], each >= 1"""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1 like 32,64, got {text!r}")
    return values


def _config_file(path):
    """Settings from a JSON or TOML file, keys as the long flags with underscores."""
    try:
        return _load_config(path)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _load_config(path):
    """A train config file's settings, or a ValueError saying what is wrong with it."""
    if not os.path.isfile(path):
        raise ValueError(f"no such file {path}")
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as f:
                config = tomllib.load(f)
        else:
            with open(path) as f:
                config = json.load(f)
    except (ValueError, OSError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"{path} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {e}")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a table of settings, got {type(config).__name__}")
    unknown = sorted(set(config) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}; expected some of {list(TRAIN_KEYS)}")
    return config


def _config_tokens(config):
    """A config's settings as command-line tokens, so that they pass the flags' own
    checks; placed before the real flags, which therefore win."""
    tokens = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            items = [str(v) for v in value]
            tokens += [flag, ",".join(items)] if key == "channels" else [flag, *items]
        elif value is not None:
            tokens += [flag, str(value)]
    return tokens


def _backend_flag(p):
    from .kernels import BACKENDS

    default = os.environ.get("NPVAE_BACKEND", "numpy")
    default = default if default in BACKENDS else "numpy"
    p.add_argument("--backend", choices=sorted(BACKENDS), default=default,
                   help=f"the kernels: numpy (the reference), numba (CPU) or cuda (a GPU, with the cuda extra) "
                        f"(default: NPVAE_BACKEND or numpy, here {default})")


def _int_flag(p, flag, default, minimum, helptext):
    p.add_argument(flag, type=_at_least(minimum), default=default, help=f"{helptext} (default: {default})")


def parse_train_config(path):
    """A train config file's settings as the train command's parsed flags."""
    return build_parser()._subparsers._group_actions[0].choices["train"].parse_args(_config_tokens(_load_config(path)))


def build_parser():
    from . import __version__
    from .distributions import LIKELIHOODS
    from .nn import INITIALIZERS
    from .nn.activations import ACTIVATIONS
    from .objectives import SCHEDULES
    from .optim import OPTIMIZERS

    parser = _Parser(prog="npvae", description="Variational autoencoders from scratch in NumPy. Start with "
                     "`npvae demo`; then `npvae train --help`.")
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="train a VAE on the bundled MNIST and write figures",
                       description=demo.__doc__)
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")
    _int_flag(p, "--epochs", 20, 1, "passes over the training digits")
    _int_flag(p, "--hidden", 500, 1, "hidden units, as in the paper")
    _int_flag(p, "--latent", 20, 1, "latent dimensions")
    _int_flag(p, "--k", 1000, 1, "importance samples for log p(x)")
    _int_flag(p, "--n-test-ll", 1000, 1, "test digits for log p(x)")
    _int_flag(p, "--train-size", 50000, 1, "training digits, at most 50,000")
    _int_flag(p, "--seed", 0, 0, "random seed")
    _backend_flag(p)
    p.set_defaults(run=demo)

    p = sub.add_parser("train", help="train a model from flags or a JSON/TOML config file",
                       description=train.__doc__ + " Flags override the config file.")
    p.add_argument("--config", type=_config_file, help="JSON or TOML file of settings (keys: the flags below, "
                   "with underscores) (default: none)")
    p.add_argument("--model", choices=sorted(MODEL_NAMES), default="vae", help="(default: vae)")
    p.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                   help="mlp: fully connected networks; conv: stride-2 convolutions and their mirror (default: mlp)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist and frey ship with npvae; fashion-mnist needs --data-path or NPVAE_DATA (default: mnist)")
    p.add_argument("--data-path", help="folder holding the dataset's files (default: the bundled data)")
    p.add_argument("--likelihood", choices=sorted(LIKELIHOODS), default="bernoulli",
                   help="the decoder p(x|z) (default: bernoulli)")
    p.add_argument("--sigma", type=_at_least(0, float, open_=True), default=1.0,
                   help="the fixed sigma of --likelihood gaussian (default: 1)")
    p.add_argument("--sigma-floor", type=_at_least(0, float, open_=True),
                   help="the smallest sigma a learned-variance decoder may take (default: none)")
    p.add_argument("--decoder-mean", choices=("identity", "sigmoid"), default="identity",
                   help="gaussian_decoder_var: sigmoid keeps the mean in (0, 1), as grey levels (default: identity)")
    _int_flag(p, "--latent", 20, 1, "latent dimensions")
    p.add_argument("--hidden", type=_at_least(1), nargs="+", default=[500], help="mlp: hidden layer sizes (default: 500)")
    p.add_argument("--encoder-hidden", type=_at_least(1), nargs="+",
                   help="mlp: the encoder's own sizes (default: --hidden)")
    p.add_argument("--decoder-hidden", type=_at_least(1), nargs="+",
                   help="mlp: the decoder's own sizes (default: --hidden)")
    p.add_argument("--channels", type=_int_list, default=[32, 64], help="conv: channels per layer (default: 32,64)")
    _int_flag(p, "--kernel", 4, 2, "conv: kernel size")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), help="(default: tanh for mlp, relu for conv)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="(default: adam)")
    p.add_argument("--lr", type=_at_least(0, float, open_=True), default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--beta", type=_at_least(0, float), default=1.0, help="weight of the KL term (default: 1)")
    p.add_argument("--anneal", choices=sorted(SCHEDULES), default="constant", help="schedule of beta (default: constant)")
    _int_flag(p, "--anneal-steps", 0, 0, "warm-up length or cyclical period in steps")
    p.add_argument("--mae-eta", type=_at_least(0, float), default=0.0,
                   help="MAE regulariser: weight of the diversity term (default: 0, off)")
    p.add_argument("--mae-gamma", type=_at_least(0, float), default=0.0,
                   help="MAE regulariser: weight of the smoothness term (default: 0, off)")
    p.add_argument("--objective", choices=("elbo", "iwae"), default="elbo",
                   help="the training objective: the ELBO or the IWAE bound with --k samples (default: elbo)")
    p.add_argument("--estimator", choices=("A", "B"), default="B",
                   help="the ELBO's estimator: A all Monte Carlo, B with the analytic KL (default: B)")
    _int_flag(p, "--k", 1, 1, "samples of z per example in the objective (IWAE's k, the ELBO's L)")
    p.add_argument("--lr-schedule", choices=("constant", "iwae", "cosine"), default="constant",
                   help="iwae: stage i = 0..7 runs 3^i epochs at lr 10^(-i/7) (default: constant)")
    p.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                   help="the loss as the batch mean or sum (changes only the lr's scale and Adam's eps) (default: mean)")
    p.add_argument("--init", choices=sorted(INITIALIZERS),
                   help="weight initialisation (default: glorot_uniform for tanh/sigmoid, he_normal for ReLU-like)")
    _int_flag(p, "--epochs", 10, 1, "passes over the training data")
    _int_flag(p, "--batch-size", 100, 1, "examples per step")
    p.add_argument("--train-size", type=_at_least(1), default=None,
                   help="use only the first N training examples (default: all)")
    _int_flag(p, "--seed", 0, 0, "random seed")
    p.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its settings; --epochs may extend it")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")
    _backend_flag(p)
    p.set_defaults(run=train)

    for name, fn, helptext in (("eval", evaluate, "test ELBO, importance-sampled log-likelihood, collapse diagnostics"),
                               ("sample", sample, "a figure of samples from the model"),
                               ("plot", plot, "every figure for a checkpoint")):
        p = sub.add_parser(name, help=helptext, description=fn.__doc__)
        p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz written by train, demo or the API")
        _int_flag(p, "--seed", 0, 0, "random seed")
        _backend_flag(p)
        p.set_defaults(run=fn)
        if name == "eval":
            _int_flag(p, "--k", 1000, 1, "importance samples per example")
            p.add_argument("--n", type=_at_least(1), default=None, help="test examples (default: the whole test set)")
            p.add_argument("--json", help="also write the numbers to this JSON file (default: none)")
        elif name == "sample":
            _int_flag(p, "--n", 100, 1, "how many")
            p.add_argument("--mean", action="store_true", help="decoder means E[x|z] instead of samples of p(x|z)")
            p.add_argument("--out", default="samples.png", help="PNG or JPEG file to write (default: samples.png)")
        else:
            p.add_argument("--out", default="figures", help="output folder (default: figures)")

    p = sub.add_parser("tour", help="the gradient tour of a model, layer by layer", description=gradient_tour.__doc__)
    p.add_argument("source", metavar="CHECKPOINT_OR_CONFIG",
                   help="a checkpoint.npz, or a train config (.json or .toml) for a freshly initialised model")
    _int_flag(p, "--n", 64, 2, "test examples in the minibatch")
    _int_flag(p, "--fd-entries", 6, 1, "entries of each parameter checked by finite differences")
    _int_flag(p, "--seed", 0, 0, "random seed (the noise and the sampled entries)")
    p.add_argument("--out", default="tour", help="folder for tour.json and tour.png (default: tour)")
    _backend_flag(p)
    p.set_defaults(run=gradient_tour)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in a pipe or a file
    parser = build_parser()
    try:  # argparse exits (2 on a bad flag, 0 after --help): returned as the status, as every other outcome
        args = parser.parse_args(argv)
        if getattr(args, "config", None):  # the file's settings as flags before the real ones, which win
            at = argv.index(args.command) + 1
            args = parser.parse_args(argv[:at] + _config_tokens(args.config) + argv[at:])
    except SystemExit as e:
        return e.code
    from . import kernels

    try:
        kernels.use(args.backend)
        return args.run(args)
    except KeyboardInterrupt as e:
        hint = f"; continue with: npvae train --resume --out {args.out}" if args.command == "train" else ""
        print(f"npvae {args.command}: interrupted ({e or 'Ctrl-C'}){hint}", file=sys.stderr)
        return 130
    except FloatingPointError as e:
        print(f"npvae {args.command}: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, TypeError, KeyError, ImportError, RuntimeError, OSError) as e:
        print(f"npvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
