"""The ``npvae`` command (also ``python -m npvae``): demo, train, eval, sample, plot.

Every command writes into a folder; bad flags and missing or corrupt files give one
line on stderr and exit status 2.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

DATASETS = ("mnist", "fashion-mnist", "frey")
MODEL_NAMES = {"vae": "VAE", "cvae": "ConditionalVAE", "autoencoder": "Autoencoder"}


# ----------------------------------------------------------------------------- data
def load_data(name, split, data_path=None):
    """``(x, y, image_shape)`` for a dataset name; Frey faces (no labels, no test split)
    use their first 1,765 faces for training and the last 200 for testing."""
    from . import datasets

    if name == "frey":
        x = datasets.load_frey_faces(data_path)
        return (x[:1765], None, (28, 20)) if split == "train" else (x[1765:], None, (28, 20))
    loader = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}[name]
    x, y = loader(split, data_path)
    return x, y, (28, 28)


def eval_data(settings):
    """The test set as the model is evaluated on it: binarised once, with a fixed seed,
    for a Bernoulli decoder (it is trained on fresh binarisations every epoch)."""
    from .datasets import binarize_static

    x, y, shape = load_data(settings["dataset"], "test", settings.get("data_path"))
    return (binarize_static(x, seed=2) if settings["likelihood"] == "bernoulli" else x), y, shape


def run_settings(checkpoint):
    """The settings ``npvae train`` saved beside a checkpoint (``run.json``), or MNIST's."""
    from .io import load_checkpoint

    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"CHECKPOINT: no such file {checkpoint}")
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "run.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    meta = load_checkpoint(checkpoint)[2]
    likelihood = (meta.get("spec") or {}).get("likelihood", {}).get("name") or (meta.get("model") or {}).get("likelihood")
    return {"dataset": "mnist", "likelihood": likelihood or "bernoulli", "seed": 0}


# ----------------------------------------------------------------------------- commands
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
    io.save_json(os.path.join(args.out, "run.json"), {"dataset": "mnist", "likelihood": "bernoulli", "seed": args.seed})

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


TRAIN_KEYS = ("model", "arch", "dataset", "data_path", "likelihood", "sigma", "latent", "hidden", "encoder_hidden",
              "decoder_hidden", "channels", "kernel", "activation", "optimizer", "lr", "beta", "anneal", "anneal_steps",
              "mae_eta", "mae_gamma", "epochs", "batch_size", "train_size", "seed", "out")


def build_model(args, image_shape, input_dim):
    """The model the flags describe, and a one-line description of it."""
    from .models import MODELS

    cls = MODELS[MODEL_NAMES[args.model]]
    common = dict(latent_dim=args.latent, activation=args.activation, likelihood=args.likelihood,
                  likelihood_kwargs={"sigma": args.sigma} if args.likelihood == "gaussian" else {}, rng=args.seed,
                  **({"n_classes": 10} if args.model == "cvae" else {}))
    if args.arch == "conv":
        model = cls.conv((1, *image_shape), args.channels, args.kernel, **common)
        return model, f"conv 1x{image_shape[0]}x{image_shape[1]}-{'-'.join(map(str, args.channels))} (kernel " \
                      f"{args.kernel})-{args.latent}"
    enc, dec = args.encoder_hidden or args.hidden, args.decoder_hidden or args.hidden
    model = cls.mlp(input_dim, latent_dim=args.latent, encoder_hidden=enc, decoder_hidden=dec,
                    **{k: v for k, v in common.items() if k != "latent_dim"})
    join = lambda sizes: "-".join(map(str, sizes))  # noqa: E731
    if enc == dec:
        return model, join([input_dim, *enc, args.latent])
    return model, f"encoder {join([input_dim, *enc, args.latent])}, decoder {join([args.latent, *dec, input_dim])}"


def as_model_input(model, x):
    """Flat data (N, D) as the model takes it: (N, 1, H, W) for a conv model."""
    return x.reshape(len(x), *model.data_shape)


def train(args):
    """Train a model from flags or a config file; write checkpoint, history and curves."""
    from . import io, plots
    from .datasets import binarize_static
    from .train import fit

    if args.activation is None:
        args.activation = "relu" if args.arch == "conv" else "tanh"
    settings = {k: getattr(args, k) for k in TRAIN_KEYS}
    x, y, image_shape = load_data(args.dataset, "train", args.data_path)
    if args.model == "cvae" and y is None:
        raise ValueError(f"--model: cvae needs labels and {args.dataset} has none")
    n_val = min(10000, len(x) // 10)
    x_train, x_val = x[: len(x) - n_val][: args.train_size], x[len(x) - n_val :]
    y_train, y_val = (None, None) if (y is None or args.model != "cvae") else (y[: len(x_train)], y[len(x) - n_val :])
    bernoulli = args.likelihood == "bernoulli"
    if bernoulli:
        x_val = binarize_static(x_val, seed=1)
    model, description = build_model(args, image_shape, x.shape[1])
    x_train, x_val = as_model_input(model, x_train), as_model_input(model, x_val)
    print(f"npvae train: {MODEL_NAMES[args.model]} {description} "
          f"({args.activation}, {args.likelihood}), {args.optimizer} lr {args.lr}, {args.epochs} epochs of "
          f"{len(x_train):,} {args.dataset} examples on the {args.backend} backend; output in {args.out}")
    os.makedirs(args.out, exist_ok=True)
    io.save_json(os.path.join(args.out, "run.json"), settings)
    kl_args = {} if args.model == "autoencoder" else {"beta": args.beta, "anneal": args.anneal,
                                                       "anneal_steps": args.anneal_steps, "mae_eta": args.mae_eta,
                                                       "mae_gamma": args.mae_gamma}
    history = fit(model, x_train, x_val, y=y_train, y_val=y_val, optimizer=args.optimizer, lr=args.lr,
                  epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, binarize=bernoulli,
                  checkpoint_dir=args.out, checkpoint_every=5, **kl_args)
    io.save_json(os.path.join(args.out, "history.json"), history)
    plots.training_curves(history, os.path.join(args.out, "curves.png"))
    print(f"wrote checkpoint.npz, run.json, history.json and curves.png to {args.out}")
    return 0


def evaluate(args):
    """Test ELBO, importance-sampled log-likelihood, and the posterior-collapse
    diagnostics (active units, KL per dimension, mutual information) of a checkpoint."""
    from .diagnostics import collapse_report
    from .io import load_model, save_json
    from .models import VAE, ConditionalVAE

    settings = run_settings(args.checkpoint)
    model = load_model(args.checkpoint)
    if not isinstance(model, VAE):
        raise ValueError("CHECKPOINT: an Autoencoder has no ELBO or likelihood; expected a VAE checkpoint")
    x, y, _ = eval_data(settings)
    x, y = as_model_input(model, x), y if isinstance(model, ConditionalVAE) else None
    n = min(args.n, len(x))
    rng = np.random.default_rng(args.seed)
    labels = {} if y is None else {"y": y[:n]}
    results = {"checkpoint": args.checkpoint, "examples": n, "k": args.k,
               "test_elbo": float(model.elbo(x[:n], rng=rng, **labels).mean()),
               "test_log_likelihood": float(model.log_likelihood(x[:n], k=args.k, rng=rng, **labels).mean()),
               **collapse_report(model, x[:n], rng=rng, **labels)}
    print(f"test ELBO {results['test_elbo']:.2f} nats; importance-sampled log p(x) "
          f"{results['test_log_likelihood']:.2f} nats (k={args.k}, {n} test examples)")
    print(f"active units {results['active_units']}/{model.latent_dim}; KL {sum(results['kl_per_dimension']):.2f} "
          f"nats (largest dimension {max(results['kl_per_dimension']):.2f}); mutual information I_q(x; z) "
          f"{results['mutual_information']:.2f} nats (at most log {n} = {np.log(n):.2f})")
    if args.json:
        save_json(args.json, results)
    return 0


def _image_shape(settings, model):
    if len(model.data_shape) == 3:
        return model.data_shape[1:]
    return (28, 20) if settings.get("dataset") == "frey" else (28, 28)


def sample(args):
    """A grid of samples: ancestral x ~ p(x|z) by default, the decoder mean with --mean."""
    from . import plots
    from .io import load_model
    from .models import VAE, ConditionalVAE

    settings = run_settings(args.checkpoint)
    model = load_model(args.checkpoint)
    if not isinstance(model, VAE):
        raise ValueError("CHECKPOINT: an Autoencoder has no prior to sample from; expected a VAE checkpoint")
    rng = np.random.default_rng(args.seed)
    y = np.repeat(np.arange(10), -(-args.n // 10))[: args.n] if isinstance(model, ConditionalVAE) else None
    x = model.sample(args.n, rng, mean=args.mean, y=y)
    title = "decoder means E[x|z], z ~ p(z)" if args.mean else "ancestral samples x ~ p(x|z)"
    print(f"wrote {plots.image_grid(x, args.out, title=title, image_shape=_image_shape(settings, model))}")
    return 0


def plot(args):
    """Every figure that applies to the checkpoint: samples (mean and ancestral),
    reconstructions, latent scatter, the 2-D manifold, mean +/- k sigma, curves."""
    from . import plots
    from .distributions import GaussianDecoderVar, GaussianLearnedVar
    from .io import load_model
    from .models import VAE, ConditionalVAE

    settings = run_settings(args.checkpoint)
    model = load_model(args.checkpoint)
    x, y, _ = eval_data(settings)
    x, shape = as_model_input(model, x), _image_shape(settings, model)
    conditional = isinstance(model, ConditionalVAE)
    labels = {"y": y[:5000]} if conditional else {}
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    written = [plots.reconstructions(x[:10], model.reconstruct(x[:10], **{k: v[:10] for k, v in labels.items()}),
                                     out("reconstructions.png"), image_shape=shape)]
    if isinstance(model, VAE):
        ys = {"y": np.repeat(np.arange(10), 10)} if conditional else {}
        written.append(plots.image_grid(model.sample(100, rng, mean=True, **ys), out("samples_mean.png"),
                                        title="decoder means E[x|z], z ~ p(z)", image_shape=shape))
        written.append(plots.image_grid(model.sample(100, rng, **ys), out("samples_ancestral.png"),
                                        title="ancestral samples x ~ p(x|z)", image_shape=shape))
        z = model.encode(x[:5000], **labels)[0]
        if model.latent_dim == 2 and not conditional:
            decode_mean = lambda z: model.likelihood.mean(model.decode(z))  # noqa: E731
            written.append(plots.manifold(decode_mean, out("manifold.png"), image_shape=shape, dtype=model.dtype))
        if isinstance(model.likelihood, (GaussianLearnedVar, GaussianDecoderVar)):
            decoded = model.decode(rng.standard_normal((8, model.latent_dim)).astype(model.dtype), **(
                {"y": np.arange(8)} if conditional else {}))
            written.append(plots.mean_and_sigma(model.likelihood.mean(decoded), model.likelihood.std(decoded),
                                                out("mean_and_sigma.png"), image_shape=shape))
    else:
        z = model.encode(x[:5000])
    if y is not None:
        written.append(plots.latent_scatter(z, y[:5000], out("latent.png")))
    history = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "history.json")
    if os.path.isfile(history):
        with open(history) as f:
            written.append(plots.training_curves(json.load(f), out("curves.png")))
    print("wrote " + ", ".join(written))
    return 0


# ----------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _config_file(path):
    """Settings from a JSON or TOML file, keys as the long flags with underscores."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file {path}")
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as f:
                config = tomllib.load(f)
        else:
            with open(path) as f:
                config = json.load(f)
    except (ValueError, OSError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise argparse.ArgumentTypeError(f"{path} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {e}")
    unknown = sorted(set(config) - set(TRAIN_KEYS))
    if unknown:
        raise argparse.ArgumentTypeError(f"{path}: unknown settings {unknown}; expected some of {list(TRAIN_KEYS)}")
    return config


def _int_list(text):
    """'32,64' -> [32, 64]"""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 32,64, got {text!r}") from None


def _backend_flag(p):
    from .kernels import BACKENDS

    default = os.environ.get("NPVAE_BACKEND", "numpy")
    p.add_argument("--backend", choices=sorted(BACKENDS), default=default,
                   help=f"the kernels: numpy (the reference), numba (CPU) or cuda (a GPU, with the cuda extra) "
                        f"(default: NPVAE_BACKEND or numpy, here {default})")


def build_parser():
    from .distributions import LIKELIHOODS
    from .nn.activations import ACTIVATIONS
    from .objectives import SCHEDULES
    from .optim import OPTIMIZERS

    parser = _Parser(prog="npvae", description="Variational autoencoders from scratch in NumPy. Start with "
                     "`npvae demo`; then `npvae train --help`.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    _backend_flag(p)
    p.set_defaults(run=demo)

    p = sub.add_parser("train", help="train a model from flags or a JSON/TOML config file",
                       description=train.__doc__ + " Flags override the config file.")
    p.add_argument("--config", type=_config_file, help="JSON or TOML file of settings (keys: the flags below, "
                   "with underscores)")
    p.add_argument("--model", choices=sorted(MODEL_NAMES), default="vae")
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist and frey ship with npvae; fashion-mnist needs --data-path or NPVAE_DATA")
    p.add_argument("--data-path", help="folder holding the dataset's files")
    p.add_argument("--likelihood", choices=sorted(LIKELIHOODS), default="bernoulli", help="the decoder p(x|z)")
    p.add_argument("--sigma", type=float, default=1.0, help="the fixed sigma of --likelihood gaussian")
    p.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                   help="mlp: fully connected networks; conv: stride-2 convolutions and their mirror (default: mlp)")
    p.add_argument("--latent", type=int, default=20, help="latent dimensions (default: 20)")
    p.add_argument("--hidden", type=int, nargs="+", default=[500], help="mlp: hidden layer sizes (default: 500)")
    p.add_argument("--encoder-hidden", type=int, nargs="+", help="mlp: the encoder's own sizes (default: --hidden)")
    p.add_argument("--decoder-hidden", type=int, nargs="+", help="mlp: the decoder's own sizes (default: --hidden)")
    p.add_argument("--channels", type=_int_list, default=[32, 64], help="conv: channels per layer (default: 32,64)")
    p.add_argument("--kernel", type=int, default=4, help="conv: kernel size (default: 4)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), help="default: tanh for mlp, relu for conv")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (default: 1)")
    p.add_argument("--anneal", choices=sorted(SCHEDULES), default="constant", help="schedule of beta")
    p.add_argument("--anneal-steps", type=int, default=0, help="warm-up length or cycle period in steps")
    p.add_argument("--mae-eta", type=float, default=0.0, help="MAE regulariser: weight of the diversity term")
    p.add_argument("--mae-gamma", type=float, default=0.0, help="MAE regulariser: weight of the smoothness term")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--train-size", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    _backend_flag(p)
    p.set_defaults(run=train)

    for name, fn, helptext in (("eval", evaluate, "test ELBO and importance-sampled log-likelihood"),
                               ("sample", sample, "a figure of samples from the model"),
                               ("plot", plot, "every figure for a checkpoint")):
        p = sub.add_parser(name, help=helptext, description=fn.__doc__)
        p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz written by train or demo")
        p.add_argument("--seed", type=int, default=0)
        _backend_flag(p)
        p.set_defaults(run=fn)
        if name == "eval":
            p.add_argument("--k", type=int, default=1000, help="importance samples per example (default: 1000)")
            p.add_argument("--n", type=int, default=1000, help="test examples (default: 1000)")
            p.add_argument("--json", help="also write the numbers to this JSON file")
        elif name == "sample":
            p.add_argument("--n", type=int, default=100, help="how many (default: 100)")
            p.add_argument("--mean", action="store_true", help="decoder means E[x|z] instead of samples of p(x|z)")
            p.add_argument("--out", default="samples.png", help="PNG file to write (default: samples.png)")
        else:
            p.add_argument("--out", default="figures", help="output folder (default: figures)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):  # the file's settings become defaults; explicit flags still win
        sub = parser._subparsers._group_actions[0].choices[args.command]
        sub.set_defaults(**args.config)
        args = parser.parse_args(argv)
    from . import kernels

    try:
        kernels.use(args.backend)
    except (ValueError, ImportError, RuntimeError) as e:  # an unknown name, no numba-cuda, no GPU
        print(f"npvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, TypeError, KeyError) as e:
        print(f"npvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
