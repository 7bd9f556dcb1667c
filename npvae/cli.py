"""The ``npvae`` command (also ``python -m npvae``): its flags, config files and exit
statuses; ``npvae.commands`` does the work of demo, train, eval, sample, plot and tour.

Every command checks all its flags before it loads data or writes a file; a bad flag,
a missing or corrupt file gives one line on stderr and exit status 2, a diverging run
one line and status 1, Ctrl-C a checkpoint, one line and status 130.
"""

import argparse
import difflib
import json
import os
import sys
import tomllib

from . import __version__, kernels
from .commands import demo, evaluate, gradient_tour, plot, sample, train
from .settings import CONFIG_KEYS, RUN, TRAINING, Setting


# ----------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2, and a did-you-mean
    for a mistyped flag or command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}{self._did_you_mean(message)} (see {self.prog} --help)\n")

    def _did_you_mean(self, message):
        """The nearest flag to an unrecognised one, or command to an invalid choice."""
        words = message.split(": ", 1)[-1].replace("'", " ").replace(",", " ").split()
        known = [o for a in self._actions for o in a.option_strings] + [
            c for a in self._actions if isinstance(a, argparse._SubParsersAction) for c in a.choices]
        for word in words:
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            if close and close[0] != word:
                return f"; did you mean {close[0]}?"
        return ""


def _int_list(minimum=1):
    """An argparse type: '32,64' -> [32, 64], each >= ``minimum``."""
    def parse(text):
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            values = []
        if not values or min(values) < minimum:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers >= {minimum} like 32,64, got {text!r}")
        return values
    return parse


def _number(setting):
    """An argparse type for an "int" or "float" setting, checked by the setting itself."""
    kind = int if setting.kind == "int" else float

    def parse(text):
        try:
            return setting.check(kind(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {setting.expects()}, got {text!r}") from None
    return parse


def _positive_int(minimum):
    """An argparse type for a flag outside the settings table: an integer >= ``minimum``."""
    return _number(Setting("value", "int", None, "", low=minimum))


def _add_setting(p, setting):
    """The flag of one entry of ``settings.TRAINING`` or ``settings.RUN``."""
    flag, helptext = "--" + setting.cli_name, setting.describe()
    dest = dict(dest=setting.name, default=setting.default, help=helptext)
    if setting.kind == "bool":
        p.add_argument(flag, action="store_true", **dest)
    elif setting.kind in ("choice", "schedule"):
        p.add_argument(flag, choices=setting.choices, **dest)
    else:
        types = {"ints": _int_list(setting.low), "int": _number(setting), "float": _number(setting)}
        p.add_argument(flag, type=types.get(setting.kind, str), metavar=setting.cli_name.upper().replace("-", "_"),
                       **dest)


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
            with open(path, "rb") as f:
                config = tomllib.load(f)
        else:
            with open(path) as f:
                config = json.load(f)
    except (ValueError, OSError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"{path} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {e}")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a table of settings, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}; expected some of {list(CONFIG_KEYS)}")
    return config


def _config_tokens(config):
    """A config's settings as command-line tokens, so that they pass the flags' own
    checks; placed before the real flags, which therefore win."""
    tokens = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            tokens += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, bool):
            tokens += [flag] if value else []
        elif value is not None:
            tokens += [flag, str(value)]
    return tokens


def _backend_flag(p):
    default = os.environ.get("NPVAE_BACKEND", "numpy")
    default = default if default in kernels.BACKENDS else "numpy"
    p.add_argument("--backend", choices=sorted(kernels.BACKENDS), default=default,
                   help=f"the kernels: numpy (the reference), numba (CPU) or cuda (a GPU, with the cuda extra) "
                        f"(default: NPVAE_BACKEND or numpy, here {default})")


def _int_flag(p, flag, default, minimum, helptext):
    p.add_argument(flag, type=_positive_int(minimum), default=default, help=f"{helptext} (default: {default})")


def build_parser():
    parser = _Parser(prog="npvae", description="Variational autoencoders from scratch in NumPy. Start with "
                     "`npvae demo`; then `npvae train --help`.")
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    parser.commands = sub.choices  # name -> its parser, for errors that only the command's parser can word

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
    for setting in RUN + TRAINING:
        if setting.cli_name:
            _add_setting(p, setting)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its settings; --epochs may extend it")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")
    _backend_flag(p)
    p.set_defaults(run=train)

    for name, fn, helptext in (("eval", evaluate, "test ELBO, importance-sampled log-likelihood, collapse diagnostics"),
                               ("sample", sample, "a figure of samples from the model"),
                               ("plot", plot, "every figure for a checkpoint")):
        p = sub.add_parser(name, help=helptext, description=fn.__doc__)
        p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz written by train, demo or the "
                       "API, or a run folder (its checkpoint.npz)")
        _int_flag(p, "--seed", 0, 0, "random seed")
        _backend_flag(p)
        p.set_defaults(run=fn)
        if name == "eval":
            _int_flag(p, "--k", 1000, 1, "importance samples per example")
            p.add_argument("--n", type=_positive_int(1), default=None, help="test examples (default: the whole test set)")
            p.add_argument("--json", help="also write the numbers to this JSON file (default: none)")
        elif name == "sample":
            _int_flag(p, "--n", 100, 1, "how many")
            p.add_argument("--mean", action="store_true", help="decoder means E[x|z] instead of samples of p(x|z)")
            p.add_argument("--out", default="samples.png", help="PNG or JPEG file to write (default: samples.png)")
        else:
            p.add_argument("--out", default="figures", help="output folder (default: figures)")

    p = sub.add_parser("tour", help="the gradient tour of a model, layer by layer", description=gradient_tour.__doc__)
    p.add_argument("source", metavar="CHECKPOINT_OR_CONFIG",
                   help="a checkpoint.npz or a run folder (the trained model), or a train config (.json or .toml, "
                        "not a run's run.json) for a freshly initialised model")
    _int_flag(p, "--n", 64, 2, "test examples in the minibatch")
    _int_flag(p, "--fd-entries", 6, 1, "entries of each parameter checked by finite differences")
    _int_flag(p, "--seed", 0, 0, "random seed (the noise and the sampled entries)")
    p.add_argument("--out", default="tour", help="folder for tour.json and tour.png (default: tour)")
    _backend_flag(p)
    p.set_defaults(run=gradient_tour)
    return parser


def _checkpoint_of(path):
    """A run folder, or the run.json in one, as that run's checkpoint; anything else as it is."""
    if os.path.isdir(path):
        return os.path.join(path, "checkpoint.npz")
    return os.path.join(os.path.dirname(path), "checkpoint.npz") if os.path.basename(path) == "run.json" else path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, also in a pipe or a file
    parser = build_parser()
    try:  # argparse exits (2 on a bad flag, 0 after --help): returned as the status, as every other outcome
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # worded by the command's own parser, which knows its flags
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        if getattr(args, "config", None):  # the file's settings as flags before the real ones, which win
            at = argv.index(args.command) + 1
            args = parser.parse_args(argv[:at] + _config_tokens(args.config) + argv[at:])
        for name in ("checkpoint", "source"):  # a run folder or its run.json: the run's checkpoint
            if hasattr(args, name):
                setattr(args, name, _checkpoint_of(getattr(args, name)))
        if args.command == "tour" and args.source.endswith((".json", ".toml")):  # the train flags' own checks
            args.train_settings = parser.parse_args(["train", *_config_tokens(_config_file(args.source))])
    except SystemExit as e:
        return e.code
    except argparse.ArgumentTypeError as e:
        print(f"npvae {args.command}: error: {e}", file=sys.stderr)
        return 2
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
