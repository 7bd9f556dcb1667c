"""Every training setting once: its name, type, range or choices, default and help.

``fit`` checks its keyword arguments against :data:`TRAINING`; the ``npvae train``
command makes its flags and config-file keys from :data:`TRAINING` and :data:`RUN`
(the model and the data), writes them to ``run.json`` and compares them on
``--resume``. A new setting is one entry here plus the code that uses it.
"""

import json
from dataclasses import dataclass

from .checks import check_number, check_positive_int
from .datasets import CORRUPTIONS
from .distributions import LIKELIHOODS
from .models.vae import check_objective_terms
from .nn.activations import ACTIVATIONS
from .nn.init import INITIALIZERS
from .objectives import SCHEDULES
from .optim import OPTIMIZERS, lr_schedule

DATASETS = ("mnist", "fashion-mnist", "frey")
MODEL_NAMES = {"vae": "VAE", "cvae": "ConditionalVAE", "autoencoder": "Autoencoder"}


@dataclass(frozen=True)
class Setting:
    """One setting. ``kind``: "int" or "float" (with ``low``, ``high`` and whether each
    bound is open), "choice" (one of ``choices``), "bool", "ints" (a list of integers
    >= ``low``), "schedule" (one of ``choices`` on the command line, also a dict in
    ``fit``: ``optim.lr_schedule`` checks it), "text" or "dict" (free). ``optional``:
    None is allowed (and is the default). ``flag``: its command-line name without the
    dashes (None: no flag; the config key is the flag with underscores)."""

    name: str
    kind: str
    default: object
    help: str
    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    optional: bool = False
    flag: str = "same"
    default_help: str = None  # the default in words, where the value alone says too little

    @property
    def cli_name(self):
        return None if self.flag is None else (self.name if self.flag == "same" else self.flag).replace("_", "-")

    def check(self, value, name=None):
        """``value`` checked (and converted: an int for "int", a float for "float"), or a
        ValueError naming the setting, what it expects and what it got."""
        name = name or self.name
        if value is None and self.optional:
            return None
        if self.kind == "int":
            value = check_positive_int(value, name, self.low)
            if self.high is not None and value > self.high:
                raise ValueError(f"{name}: expected {self.expects()}, got {value!r}")
            return value
        if self.kind == "float":
            return check_number(value, name, self.low, self.high, self.low_open, self.high_open)
        if self.kind == "choice" and value not in self.choices:
            raise ValueError(f"{name}: expected one of {self.choices}, got {value!r}")
        if self.kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{name}: expected True or False, got {value!r}")
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"{name}: expected a non-empty list of integers >= {self.low}, got {value!r}")
            return [check_positive_int(v, name, self.low) for v in value]
        return value

    def expects(self):
        """What a value must be, in words: "an integer >= 1", "a number in (0, 1]"."""
        if self.kind == "int":
            return f"an integer >= {self.low}" + ("" if self.high is None else f" and <= {self.high}")
        if self.kind == "float" and self.high is None:
            return f"a number {'>' if self.low_open else '>='} {self.low:g}"
        if self.kind == "float":
            return f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.kind in ("choice", "schedule"):
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "ints":
            return f"integers >= {self.low}, comma-separated on the command line"
        return {"bool": "true or false", "text": "text", "dict": "a dict"}[self.kind]

    def describe(self):
        """The help line with what the value must be and its default, for ``--help`` and docs."""
        default = self.default_help or ("none" if self.default is None else (
            ",".join(map(str, self.default)) if isinstance(self.default, (list, tuple)) else self.default))
        return f"{self.help}; {self.expects()} (default: {default})"


def _float(name, default, help, low=0, low_open=False, high=None, high_open=False, **kw):
    return Setting(name, "float", default, help, low, high, low_open, high_open, **kw)


def _int(name, default, help, low=1, **kw):
    return Setting(name, "int", default, help, low, **kw)


def _choice(name, default, help, choices, **kw):
    return Setting(name, "choice", default, help, choices=tuple(choices), **kw)


# fit's settings: how a model trains.
TRAINING = (
    _choice("optimizer", "adam", "the optimiser", sorted(OPTIMIZERS)),
    _float("lr", 1e-3, "learning rate", low_open=True),
    _float("momentum", 0.0, "sgd: heavy-ball momentum", high=1, high_open=True),
    Setting("nesterov", "bool", False, "sgd: Nesterov's momentum"),
    _float("adam_eps", 1e-8, "adam: the eps added to sqrt(v)", low_open=True),
    Setting("optimizer_kwargs", "dict", None, "more of the optimiser's own arguments (betas, alpha, ...)",
            optional=True, flag=None),
    Setting("lr_schedule", "schedule", "constant", "the learning rate's schedule: iwae runs stage i = 0..7 for "
            "3^i epochs at lr 10^(-i/7); cosine falls to 0 over the run; exponential multiplies it by lr_gamma "
            "every step (fit also takes a dict, see optim.lr_schedule)",
            choices=("constant", "iwae", "cosine", "exponential")),
    _float("lr_gamma", None, "exponential: the factor per step", low_open=True, high=1, optional=True),
    _choice("reduction", "mean", "the loss as the batch mean or sum (changes only the lr's scale and Adam's eps)",
            ("mean", "sum")),
    _int("epochs", 10, "passes over the training data"),
    _int("batch_size", 100, "examples per step"),
    _int("seed", 0, "random seed (shuffling, noise, binarisation)", low=0),
    _choice("objective", "elbo", "the ELBO, or the IWAE bound with n_samples samples", ("elbo", "iwae")),
    _choice("estimator", "B", "the ELBO's estimator: A all Monte Carlo, B with the analytic KL", ("A", "B")),
    _int("n_samples", 1, "samples of z per example in the objective (IWAE's k, the ELBO's L)", flag="k"),
    _float("beta", 1.0, "weight of the KL term"),
    _choice("anneal", "constant", "schedule of beta", sorted(SCHEDULES)),
    _int("anneal_steps", 0, "warm-up length or cyclical period in steps", low=0),
    _float("free_bits", 0.0, "estimator B: nats each latent dimension pays at least (Kingma et al. 2016)"),
    _float("weight_decay", 0.0, "L2 penalty on the weight matrices"),
    _float("mae_eta", 0.0, "MAE regulariser: weight of the diversity term (0: off)"),
    _float("mae_gamma", 0.0, "MAE regulariser: weight of the smoothness term (0: off)"),
    _float("clip_value", None, "clip every gradient entry to [-c, c]", low_open=True, optional=True),
    _float("clip_norm", None, "scale the gradients to a global norm of at most c", low_open=True, optional=True),
    _choice("corruption", "none", "denoising: the encoder sees x masked (each pixel 0 with probability "
            "corruption_level) or plus N(0, corruption_level^2) noise; the loss scores the clean x", CORRUPTIONS),
    _float("corruption_level", 0.25, "the masked fraction, or the noise's sigma"),
    _float("corruption_final", None, "scheduled denoising (Geras & Sutton 2014): the level moves linearly from "
           "corruption_level to this over the run", optional=True),
    Setting("binarize", "bool", False, "draw every pixel as Bernoulli(grey level) afresh each epoch", flag=None),
    _int("diagnostics_every", 0, "every k epochs, active units and mutual information on the validation data",
         low=0),
    _int("checkpoint_every", 0, "a checkpoint every k epochs (and at the end)", low=0, flag=None),
)

# What ``npvae train`` builds before fit: the model and the data.
RUN = (
    _choice("model", "vae", "the model", sorted(MODEL_NAMES)),
    _choice("arch", "mlp", "mlp: fully connected networks; conv: stride-2 convolutions and their mirror",
            ("mlp", "conv")),
    _choice("dataset", "mnist", "mnist and frey ship with npvae; fashion-mnist needs --data-path or NPVAE_DATA",
            DATASETS),
    Setting("data_path", "text", None, "folder holding the dataset's files", optional=True,
            default_help="the bundled data"),
    _choice("likelihood", "bernoulli", "the decoder p(x|z)", sorted(LIKELIHOODS)),
    _float("sigma", 1.0, "the fixed sigma of --likelihood gaussian", low_open=True),
    _float("sigma_floor", None, "the smallest sigma a learned-variance decoder may take", low_open=True,
           optional=True),
    _choice("decoder_mean", "identity", "gaussian_decoder_var: sigmoid keeps the mean in (0, 1), as grey levels",
            ("identity", "sigmoid")),
    _int("latent", 20, "latent dimensions (with --stochastic-layers 2: z1's)"),
    _choice("latent_distribution", "gaussian", "vae: q(z|x) Gaussian with p(z) = N(0, I), or von Mises-Fisher on the "
            "sphere S^(latent-1) with a uniform p(z) (HypersphericalVAE)", ("gaussian", "vmf")),
    _int("stochastic_layers", 1, "mlp, vae: 2 adds Burda et al.'s second Gaussian layer z2 above z1 "
         "(TwoLayerVAE: q(z2|z1), p(z1|z2) through --hidden2)", high=2),
    _int("latent2", 50, "--stochastic-layers 2: z2's dimensions"),
    Setting("hidden2", "ints", [100, 100], "--stochastic-layers 2: the sizes between z1 and z2", low=1),
    Setting("hidden", "ints", [500], "mlp: hidden layer sizes", low=1),
    Setting("encoder_hidden", "ints", None, "mlp: the encoder's own sizes", low=1, optional=True,
            default_help="--hidden"),
    Setting("decoder_hidden", "ints", None, "mlp: the decoder's own sizes", low=1, optional=True,
            default_help="--hidden"),
    Setting("channels", "ints", [32, 64], "conv: channels per layer", low=1),
    _int("kernel", 4, "conv: kernel size", low=2),
    _choice("activation", None, "the hidden layers' activation", sorted(ACTIVATIONS), optional=True,
            default_help="tanh for mlp, relu for conv"),
    _choice("init", None, "weight initialisation", sorted(INITIALIZERS), optional=True,
            default_help="glorot_uniform for tanh and sigmoid, he_normal for the ReLU family"),
    _int("train_size", None, "use only the first N training examples", optional=True, default_help="all"),
    Setting("out", "text", "runs/train", "output folder"),
)

TRAINING_BY_NAME = {s.name: s for s in TRAINING}
# The keys of a train config file and of run.json: every setting with a flag.
CONFIG_KEYS = tuple(s.cli_name.replace("-", "_") for s in RUN + TRAINING if s.cli_name)
# Settings that a resumed run may change: how long it goes on, where it writes, and the
# learning rate (a stage-wise schedule by hand, as Burda et al.'s code lowers it between
# its checkpoints).
RESUMABLE = ("epochs", "lr", "out", "diagnostics_every", "checkpoint_every")


def check_training(settings):
    """fit's settings, every one checked against :data:`TRAINING`, with the defaults
    filled in; a TypeError for an unknown name, a ValueError naming the first bad one."""
    unknown = sorted(set(settings) - set(TRAINING_BY_NAME))
    if unknown:
        raise TypeError(f"fit: unknown settings {unknown}; expected some of {sorted(TRAINING_BY_NAME)}")
    checked = {s.name: s.check(settings.get(s.name, s.default)) for s in TRAINING}
    _check_together(checked)
    return checked


def _check_together(s):
    """The rules that join two settings."""
    if s["anneal"] == "cyclical" and s["anneal_steps"] == 0:
        raise ValueError("anneal_steps: cyclical annealing needs a period of at least 1 step, got 0")
    check_objective_terms(s["estimator"], s["objective"], s["beta"], s["free_bits"], s["mae_eta"], s["mae_gamma"])
    if s["optimizer_kwargs"] is not None and not isinstance(s["optimizer_kwargs"], dict):
        raise ValueError(f"optimizer_kwargs: expected a dict or None, got {type(s['optimizer_kwargs']).__name__}")
    if (s["lr_schedule"] == "exponential") != (s["lr_gamma"] is not None):
        raise ValueError(f"lr_gamma: goes with lr_schedule 'exponential' and only with it, got lr_schedule "
                         f"{s['lr_schedule']!r}, lr_gamma {s['lr_gamma']!r}")
    OPTIMIZERS[s["optimizer"]]({}, {}, s["lr"], **optimizer_arguments(s))  # its own checks, on no parameters
    lr_schedule(lr_schedule_argument(s))
    if s["corruption"] == "none" and (s["corruption_level"] != TRAINING_BY_NAME["corruption_level"].default
                                      or s["corruption_final"] is not None):
        raise ValueError(f"corruption_level, corruption_final: go with a corruption ('mask' or 'gaussian'), got "
                         f"corruption 'none', corruption_level {s['corruption_level']!r}, corruption_final "
                         f"{s['corruption_final']!r}")
    if s["corruption"] == "mask" and not all(v is None or v <= 1 for v in (s["corruption_level"],
                                                                           s["corruption_final"])):
        raise ValueError(f"corruption_level, corruption_final: a masked fraction is at most 1, got "
                         f"{s['corruption_level']!r} and {s['corruption_final']!r}")
    for name, optimizer in (("momentum", "sgd"), ("nesterov", "sgd"), ("adam_eps", "adam")):
        if s[name] != TRAINING_BY_NAME[name].default and s["optimizer"] != optimizer:
            raise ValueError(f"{name}: only the {optimizer} optimiser takes it, got optimizer {s['optimizer']!r}")


def optimizer_arguments(s):
    """The chosen optimiser's keyword arguments from the checked settings ``s``."""
    own = {"sgd": {"momentum": s["momentum"], "nesterov": s["nesterov"]}, "adam": {"eps": s["adam_eps"]}}
    return {**own.get(s["optimizer"], {}), **(s["optimizer_kwargs"] or {})}


def lr_schedule_argument(s):
    """The schedule ``optim.lr_schedule`` takes, from the checked settings ``s``."""
    if s["lr_schedule"] == "exponential":
        return {"name": "exponential", "gamma": s["lr_gamma"]}
    return s["lr_schedule"]


def shared_settings(s):
    """The checked settings ``s`` that a resumed run must share, as JSON would give
    them back (a tuple as a list), or a ValueError for one that JSON cannot hold."""
    shared = {k: v for k, v in s.items() if k not in RESUMABLE}
    try:
        return json.loads(json.dumps(shared))
    except (TypeError, ValueError) as e:
        raise ValueError(f"settings: expected JSON-able values (plain numbers, strings, lists, dicts), {e}") from None
