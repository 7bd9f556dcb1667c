"""What each ``npvae`` command does, given its checked flags (``npvae.cli`` parses
them): demo, train, eval, sample, plot and tour, and the data and settings they share."""

import json
import math
import os
import time

import numpy as np

from . import datasets, kernels, plots
from .datasets import binarize_static, load_mnist
from .diagnostics import active_units_per_layer, collapse_report
from .distributions import GaussianDecoderVar, GaussianLearnedVar
from .files import save_json
from .io import load_checkpoint, load_model
from .models import MODELS, VAE, ConditionalVAE, HypersphericalVAE, PixelCNNVAE, TwoLayerVAE
from .settings import MODEL_NAMES, RESUMABLE, RUN, TRAINING
from .tour import format_tour, tour, write_tour
from .train import check_fit_arguments, fit

# The settings ``npvae train`` takes, by the key of its config files and run.json
# (the flag's name with underscores): key -> the setting.
TRAIN_SETTINGS = {s.cli_name.replace("-", "_"): s for s in RUN + TRAINING if s.cli_name}


# ----------------------------------------------------------------------------- data
def load_data(name, split, data_path=None):
    """``(x, y, image_shape)`` for a dataset name; Frey faces (no labels, no test split)
    use their first 1,765 faces for training and the last 200 for testing."""
    if name == "frey":
        x = datasets.load_frey_faces(data_path)
        return (x[:1765], None, (28, 20)) if split == "train" else (x[1765:], None, (28, 20))
    loader = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}[name]
    x, y = loader(split, data_path)
    return x, y, (28, 28)


def eval_data(settings):
    """The test set as the model is evaluated on it: binarised once, with a fixed seed,
    for a Bernoulli decoder (it is trained on fresh binarisations every epoch)."""
    x, y, shape = load_data(settings["dataset"], "test", settings.get("data_path"))
    return (binarize_static(x, seed=2) if settings["likelihood"] == "bernoulli" else x), y, shape


def run_settings(checkpoint):
    """The settings ``npvae train`` saved beside a checkpoint (``run.json``), or MNIST's."""
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"CHECKPOINT: no such file {checkpoint}")
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "run.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    meta = load_checkpoint(checkpoint)[2]
    likelihood = (meta.get("spec") or {}).get("likelihood", {}).get("name") or (meta.get("model") or {}).get("likelihood")
    return {"dataset": "mnist", "likelihood": likelihood or "bernoulli", "seed": 0}


def check_out_folder(out, resume=False, overwrite=False):
    """``--out`` must be a folder that can be made, and an existing run in it is only
    touched when asked: ``resume`` needs its checkpoint, ``overwrite`` replaces it."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out: {out} is a file; expected a folder")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--out: {parent} is a file, so {out} cannot be made; expected a folder")
    existing = [f for f in ("checkpoint.npz", "run.json") if os.path.exists(os.path.join(path, f))]
    if resume and "checkpoint.npz" not in existing:
        raise ValueError(f"--resume: no checkpoint.npz in {out} to resume")
    if existing and not (resume or overwrite):
        raise ValueError(f"--out: {out} holds a run ({', '.join(existing)}); pass --resume to continue it, "
                         f"--overwrite to replace it, or choose another --out")


def _header(command, what, args, n, dataset):
    """The run's first line: what trains on what, where, in which dtype and how many threads."""
    threads = os.environ.get("NUMBA_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count()
    return (f"npvae {command}: {what}, {args.epochs} epochs of {n:,} {dataset} examples; backend {kernels.backend}, "
            f"float32, {threads} threads; output in {args.out}")


def _progress(label):
    """A function ``(done, total)`` printing ``label`` with a percentage every tenth."""
    marks = []

    def report(done, total):
        tenth = 10 * done // total
        if tenth > len(marks) or done == total:
            marks.extend(range(len(marks), tenth))
            print(f"  {label}: {done:,}/{total:,} ({100 * done // total}%)", flush=True)
    return report


# ----------------------------------------------------------------------------- commands
def demo(args):
    """Train Kingma & Welling's MNIST VAE on the bundled data and write its figures."""
    if args.train_size > 50000:
        raise ValueError(f"--train-size: expected at most 50,000 (the rest of MNIST's training set validates), "
                         f"got {args.train_size}")
    check_out_folder(args.out, overwrite=args.overwrite)
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_train, x_val = x[: min(args.train_size, 50000)], binarize_static(x[50000:], seed=1)
    x_test_bin = binarize_static(x_test, seed=2)  # the evaluation data: one fixed binarisation
    model = VAE.mlp(784, (args.hidden,), args.latent, "tanh", "bernoulli", rng=args.seed)
    print(_header("demo", f"VAE 784-{args.hidden}-{args.latent} (tanh, Bernoulli), Adam, dynamic binarisation",
                  args, len(x_train), "MNIST"))
    save_json(os.path.join(args.out, "run.json"), {"dataset": "mnist", "likelihood": "bernoulli", "seed": args.seed})
    history = fit(model, x_train, x_val, optimizer="adam", lr=1e-3, epochs=args.epochs, batch_size=100,
                  seed=args.seed, binarize=True, checkpoint_dir=args.out, checkpoint_every=5)
    save_json(os.path.join(args.out, "history.json"), history)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    elbo = float(model.elbo(x_test_bin, rng=rng).mean())
    n_ll = min(args.n_test_ll, len(x_test_bin))
    log_px = float(model.log_likelihood(x_test_bin[:n_ll], k=args.k, rng=rng,
                                        progress=_progress("importance sampling")).mean())
    results = {"test_elbo": elbo, "test_log_likelihood": log_px, "log_likelihood_k": args.k,
               "log_likelihood_examples": n_ll, "epochs": args.epochs, "train_seconds": history["seconds"][-1],
               "eval_seconds": time.perf_counter() - t0}
    save_json(os.path.join(args.out, "results.json"), results)

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


def likelihood_kwargs(args):
    """The likelihood's arguments from --sigma, --sigma-floor and --decoder-mean; a flag
    that the chosen likelihood does not take is refused."""
    kwargs = {"sigma": args.sigma} if args.likelihood == "gaussian" else {}
    if args.sigma_floor is not None:
        if args.likelihood not in ("gaussian_learned_var", "gaussian_decoder_var"):
            raise ValueError(f"--sigma-floor: only gaussian_learned_var and gaussian_decoder_var learn a sigma to "
                             f"floor, got --likelihood {args.likelihood}")
        kwargs["logvar_floor"] = 2 * math.log(args.sigma_floor)
    if args.decoder_mean != "identity":
        if args.likelihood != "gaussian_decoder_var":
            raise ValueError(f"--decoder-mean: only gaussian_decoder_var takes it, got --likelihood {args.likelihood}")
        kwargs["mean_activation"] = args.decoder_mean
    return kwargs


def build_model(args, image_shape, input_dim):
    """The model the flags describe, and a one-line description of it."""
    if args.stochastic_layers == 2 and (args.model != "vae" or args.arch != "mlp" or args.encoder_hidden
                                        or args.decoder_hidden):
        raise ValueError(f"--stochastic-layers: 2 builds Burda et al.'s MLP VAE with --hidden on both sides; got "
                         f"--model {args.model}, --arch {args.arch}"
                         f"{', --encoder-hidden/--decoder-hidden' if args.encoder_hidden or args.decoder_hidden else ''}")
    if args.latent_distribution == "vmf" and (args.model != "vae" or args.stochastic_layers != 1):
        raise ValueError(f"--latent-distribution: vmf is for a one-layer vae; got --model {args.model}, "
                         f"--stochastic-layers {args.stochastic_layers}")
    cls = HypersphericalVAE if args.latent_distribution == "vmf" else MODELS[MODEL_NAMES[args.model]]
    common = dict(latent_dim=args.latent, activation=args.activation, likelihood=args.likelihood, init=args.init,
                  likelihood_kwargs=likelihood_kwargs(args), rng=args.seed,
                  **({"n_classes": 10} if args.model == "cvae" else {}))
    if args.arch == "conv":
        model = cls.conv((1, *image_shape), args.channels, args.kernel, **common)
        return model, f"conv 1x{image_shape[0]}x{image_shape[1]}-{'-'.join(map(str, args.channels))} (kernel " \
                      f"{args.kernel})-{args.latent}"
    enc, dec = args.encoder_hidden or args.hidden, args.decoder_hidden or args.hidden
    if args.stochastic_layers == 2:
        model = TwoLayerVAE.mlp(input_dim, args.hidden, args.latent, args.hidden2, args.latent2, **{
            k: v for k, v in common.items() if k != "latent_dim"})
        return model, "-".join(map(str, [input_dim, *args.hidden, args.latent, *args.hidden2, args.latent2]))
    model = cls.mlp(input_dim, latent_dim=args.latent, encoder_hidden=enc, decoder_hidden=dec,
                    **{k: v for k, v in common.items() if k != "latent_dim"})
    join = lambda sizes: "-".join(map(str, sizes))  # noqa: E731
    if enc == dec:
        return model, join([input_dim, *enc, args.latent])
    return model, f"encoder {join([input_dim, *enc, args.latent])}, decoder {join([args.latent, *dec, input_dim])}"


def as_model_input(model, x):
    """Flat data (N, D) as the model takes it: (N, 1, H, W) for a conv model."""
    return x.reshape(len(x), *model.data_shape)


def run_settings_of(args):
    """The run's settings from the parsed flags, by config key (what run.json holds)."""
    return {key: getattr(args, setting.name) for key, setting in TRAIN_SETTINGS.items()}


def resume_settings(args):
    """For ``--resume``: the flags become the run's own settings (run.json). A flag set
    to a value other than its default and the run's is refused, as ``fit`` refuses a
    checkpoint of other settings; ``settings.RESUMABLE`` (``--epochs``, ``--lr``) may change."""
    with open(os.path.join(args.out, "run.json")) as f:
        saved = json.load(f)
    for key, setting in TRAIN_SETTINGS.items():
        given = getattr(args, setting.name)
        if key in saved and setting.name not in RESUMABLE and given not in (setting.default, saved[key]):
            raise ValueError(f"--{setting.cli_name}: the run in {args.out} was trained with {saved[key]!r}, got "
                             f"{given!r}; a resumed run keeps its settings (only --epochs and --lr may change)")
        if key in saved and setting.name not in RESUMABLE:
            setattr(args, setting.name, saved[key])


def train(args):
    """Train a model from flags or a config file; write checkpoint, history and curves."""
    check_out_folder(args.out, args.resume, args.overwrite)
    if args.resume:
        resume_settings(args)
    if args.activation is None:
        args.activation = "relu" if args.arch == "conv" else "tanh"
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
    checkpoint = os.path.join(args.out, "checkpoint.npz")
    settings = {s.name: getattr(args, s.name) for s in TRAINING if s.cli_name}
    settings.update(binarize=bernoulli, checkpoint_every=5)
    data = dict(y=y_train, y_val=y_val)
    check_fit_arguments(model, x_train, x_val, settings=settings, **data)  # before run.json: a refused run writes nothing
    what = f"{MODEL_NAMES[args.model]} {description} ({args.activation}, {args.likelihood}), {args.optimizer} lr {args.lr}"
    print(_header("train", what, args, len(x_train), args.dataset))
    save_json(os.path.join(args.out, "run.json"), run_settings_of(args))
    history = fit(model, x_train, x_val, **data, checkpoint_dir=args.out, resume=checkpoint if args.resume else None,
                  **settings)
    save_json(os.path.join(args.out, "history.json"), history)
    plots.training_curves(history, os.path.join(args.out, "curves.png"))
    print(f"wrote checkpoint.npz, run.json, history.json and curves.png to {args.out}")
    return 0


def evaluate(args):
    """Test ELBO, importance-sampled log-likelihood, and the posterior-collapse
    diagnostics (active units, KL per dimension, mutual information) of a checkpoint."""
    settings = run_settings(args.checkpoint)
    model = load_model(args.checkpoint)
    if not isinstance(model, VAE):
        raise ValueError("CHECKPOINT: an Autoencoder has no ELBO or likelihood; expected a VAE checkpoint")
    x, y, _ = eval_data(settings)
    x, y = as_model_input(model, x), y if isinstance(model, ConditionalVAE) else None
    n = len(x) if args.n is None else min(args.n, len(x))
    rng = np.random.default_rng(args.seed)
    labels = {} if y is None else {"y": y[:n]}
    results = {"checkpoint": args.checkpoint, "examples": n, "k": args.k,
               "test_elbo": float(model.elbo(x[:n], rng=rng, **labels).mean()),
               "test_log_likelihood": float(model.log_likelihood(x[:n], k=args.k, rng=rng, progress=_progress(
                   "importance sampling"), **labels).mean())}
    print(f"test ELBO {results['test_elbo']:.2f} nats; importance-sampled log p(x) "
          f"{results['test_log_likelihood']:.2f} nats (k={args.k}, {n} test examples)")
    if isinstance(model, (TwoLayerVAE, HypersphericalVAE)):  # no Gaussian q(z|x) against N(0, I): by layer
        units = [count for count, _ in active_units_per_layer(model, x[:n], rng=rng)]
        results["active_units_per_layer"] = units
        print("active units: " + ", ".join(f"{name} {count}/{dim}" for name, count, dim in zip(
            ("z1", "z2") if len(units) == 2 else ("z",), units, (model.latent_dim, getattr(model, "latent2_dim", 0)))))
    else:
        results.update(collapse_report(model, x[:n], rng=rng, **labels))
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
    plots.check_image_path(args.out, "--out")
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
    """Every figure that applies to the checkpoint: samples (mean, but for a PixelCNN, and ancestral),
    reconstructions, latent scatter, the 2-D manifold, mean +/- k sigma, curves."""
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
        autoregressive = isinstance(model, PixelCNNVAE)  # no mean image: each pixel's mean depends on those before
        if not autoregressive:
            written.append(plots.image_grid(model.sample(100, rng, mean=True, **ys), out("samples_mean.png"),
                                            title="decoder means E[x|z], z ~ p(z)", image_shape=shape))
        written.append(plots.image_grid(model.sample(100, rng, **ys), out("samples_ancestral.png"),
                                        title="ancestral samples x ~ p(x|z)", image_shape=shape))
        z = model.encode(x[:5000], **labels)[0]
        if model.latent_dim == 2 and type(model) is VAE:  # a grid over p(z) = N(0, I)
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


def gradient_tour(args):
    """The gradient tour of a checkpoint, or of a freshly initialised model from a train
    config (JSON or TOML): per layer, from the loss back to the input, activation
    statistics, gradient norms, update scales and the agreement with finite differences;
    the reconstruction and KL gradients at the encoder's output. Writes tour.json and
    tour.png to --out; the exit status is 1 when a layer's backward fails its check."""
    if args.source.endswith((".json", ".toml")):
        settings = args.train_settings  # the config file's settings, parsed by npvae.cli as train's flags
        print(f"npvae tour: a freshly initialised model from the config {args.source} (tour a trained one by its "
              f"checkpoint or run folder)")
        settings.activation = settings.activation or ("relu" if settings.arch == "conv" else "tanh")
        x, y, image_shape = load_data(settings.dataset, "test", settings.data_path)
        model, _ = build_model(settings, image_shape, x.shape[1])
        dataset, likelihood = settings.dataset, settings.likelihood
    else:
        run = run_settings(args.source)
        model = load_model(args.source)
        dataset, likelihood = run.get("dataset", "mnist"), run.get("likelihood", "bernoulli")
        x, y, _ = load_data(dataset, "test", run.get("data_path"))
    if likelihood == "bernoulli":
        x = binarize_static(x[: args.n], seed=2)
    x = as_model_input(model, x[: args.n]).astype(model.dtype)
    labels = {"y": y[: args.n]} if isinstance(model, ConditionalVAE) else {}
    result = tour(model, x, rng=args.seed, fd_entries=args.fd_entries, **labels)
    print(format_tour(result))
    os.makedirs(args.out, exist_ok=True)
    print("wrote " + ", ".join(write_tour(result, args.out)))
    return 0 if result["all_passed"] else 1  # a failed check is a finding, not bad input
