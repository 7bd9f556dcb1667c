"""A model's architecture as data: JSON that a checkpoint stores beside the arrays, and
the model rebuilt from it, with no pickle and no code execution.

A layer is ``{"layer": "Conv2d", "in_channels": 1, ..., "padding": [1, 1]}``: its class
name and its ``config()`` (constructor arguments, not weights); a ``Sequential`` is
``{"layer": "Sequential", "layers": [...]}``. A model adds its class, encoder,
decoder, likelihood, latent size, data shape and dtype::

    {"model": "VAE", "encoder": {...}, "decoder": {...}, "likelihood": {"name": "bernoulli"},
     "latent_dim": 20, "data_shape": [1, 28, 28], "dtype": "float32"}

A layer of the user's own is described the same way, by its class name and its
``config()``; rebuilding it needs its class from the caller (``build_model(spec,
layers=[MyLayer])``): a file names classes, it never supplies code. A user's class may
not take the name of one of npvae's (rebuilding it as npvae's would be a different model).
"""

import inspect
import json
import math

import numpy as np

from . import nn
from .checks import as_rng
from .distributions import LIKELIHOODS, make_likelihood
from .models import MODELS, BayesianDecoderVAE, ConditionalVAE, TwoLayerVAE

LAYERS = {c.__name__: c for c in (nn.Linear, nn.BayesianLinear, nn.Conv2d, nn.ConvTranspose2d, nn.MaskedConv2d,
                                  nn.PixelCNN, nn.Flatten, nn.Reshape, nn.Identity, nn.ReLU, nn.LeakyReLU, nn.Tanh,
                                  nn.Sigmoid, nn.Softplus, nn.ELU)}
DTYPES = ("float32", "float64")
# Sane limits, so that a file cannot ask for more memory or recursion than it is worth:
MAX_DEPTH = 8  # Sequentials nested in Sequentials
MAX_DATA_VALUES = 10**7  # numbers in one example (data_shape)
MAX_LAYER_PARAMETERS = 10**8  # numbers in one layer's parameters


# ----------------------------------------------------------------------------- describe
def _own(obj, table, key, where):
    if table.get(key) is not type(obj):
        raise TypeError(f"{where}: {type(obj).__name__} is not one of npvae's classes ({sorted(table)}), so a "
                        f"checkpoint cannot describe it; save its parameters with io.save_checkpoint and rebuild "
                        f"the model in code, loading them with io.load_params")


def layer_spec(layer, where="layer"):
    """The spec of one layer or Sequential (nested Sequentials allowed): its class name
    and ``config()``, which must be JSON values."""
    if type(layer) is nn.Sequential:
        return {"layer": "Sequential", "layers": [layer_spec(m, f"{where}.{i}") for i, m in enumerate(layer)]}
    name = type(layer).__name__
    if (name in LAYERS and LAYERS[name] is not type(layer) or isinstance(layer, nn.Container) and name not in LAYERS
            or name == "Sequential"):
        raise TypeError(f"{where}: {name} shares the name of one of npvae's classes (or is a container other "
                        f"than Sequential), so a checkpoint cannot describe it: give the class a name of its own")
    config = layer.config()
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: {name}.config() must return JSON values (the constructor's arguments), "
                        f"got {config!r} ({e})") from None
    return {"layer": name, **config}


def model_spec(model):
    """The spec of a VAE, ConditionalVAE or Autoencoder made of npvae's layers; a
    TypeError naming the first layer that cannot be described."""
    _own(model, MODELS, type(model).__name__, "model")
    _own(model.likelihood, LIKELIHOODS, model.likelihood.name, "likelihood")
    spec = {"model": type(model).__name__, **{name: layer_spec(model.children[name], name) for name in model.networks},
            "likelihood": {"name": model.likelihood.name, **model.likelihood.config()},
            "latent_dim": model.latent_dim, "data_shape": list(model.data_shape), "dtype": str(model.dtype)}
    if isinstance(model, ConditionalVAE):
        spec["n_classes"] = model.n_classes
    if isinstance(model, TwoLayerVAE):
        spec["latent2_dim"] = model.latent2_dim
    if isinstance(model, BayesianDecoderVAE):
        spec["n_train"] = model.n_train
    return spec


# ----------------------------------------------------------------------------- build
def _fields(spec, where, required, optional=()):
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(spec).__name__}")
    missing, unknown = set(required) - set(spec), set(spec) - set(required) - set(optional)
    if missing or unknown:
        raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}; expected the keys "
                         f"{sorted(required)} (and optionally {sorted(optional)})")
    return spec


def layer_table(layers=()):
    """npvae's layer classes by name, with the caller's ``layers`` (classes) added."""
    table = dict(LAYERS)
    for cls in layers:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"layers: expected npvae.nn.Module classes, got {cls!r}")
        if cls.__name__ in table and table[cls.__name__] is not cls or cls.__name__ == "Sequential":
            raise ValueError(f"layers: {cls.__name__} takes the name of one of npvae's classes; rename it")
        table[cls.__name__] = cls
    return table


def _parameter_count(cls, args):
    """How many numbers an npvae layer of these arguments holds (0 for the others and
    for arguments its own checks will refuse), computed before anything is allocated."""
    def ints(*values):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if cls in (nn.Linear, nn.BayesianLinear) and ints(args.get("in_features"), args.get("out_features")):
        means = args["in_features"] * args["out_features"] + args["out_features"]
        return means * (2 if cls is nn.BayesianLinear else 1)  # a Bayesian layer's log sigmas too
    if cls is nn.PixelCNN and ints(*(args.get(k, 1) for k in ("latent_dim", "in_channels", "channels", "n_layers",
                                                              "kernel_size", "first_kernel_size"))):
        c, k = args.get("channels", 32), args.get("kernel_size", 5)
        first = args.get("in_channels", 1) * c * args.get("first_kernel_size", 7) ** 2
        size = args.get("image_size") if args.get("z_bias") == "pixel" else None
        pixels = math.prod(size) if isinstance(size, list) and len(size) == 2 and ints(*size) else 1
        return (first + (args.get("n_layers", 4) - 1) * c * c * k * k
                + args.get("n_layers", 4) * ((args.get("latent_dim", 1) + 1) * c * pixels + c)
                + (c + 1) * args.get("in_channels", 1))
    if issubclass(cls, (nn.Conv2d, nn.ConvTranspose2d)):
        k = args.get("kernel_size")
        k = [k, k] if isinstance(k, int) else k
        if isinstance(k, list) and ints(args.get("in_channels"), args.get("out_channels"), *k):
            return args["in_channels"] * args["out_channels"] * math.prod(k) + args["out_channels"]
    return 0


def build_layer(spec, rng=None, where="layer", layers=(), budget=None):
    """The layer (freshly initialised from ``rng``) that ``spec`` describes, or a
    ValueError naming where in the spec it is wrong; ``layers``: the classes of the
    user's own layers that the spec may name; ``budget``: a one-item list holding how
    many parameter numbers may still be allocated (a checkpoint's own count)."""
    table = layers if isinstance(layers, dict) else layer_table(layers)  # a dict: a table already made
    if not isinstance(spec, dict) or not isinstance(spec.get("layer"), str) or spec["layer"] not in {*table,
                                                                                                     "Sequential"}:
        got = spec.get("layer") if isinstance(spec, dict) else spec
        hint = (f"; a layer of your own: pass its class, layers=[{got}]" if isinstance(got, str) and got.isidentifier()
                else "")
        raise ValueError(f"{where}: expected a layer, one of {sorted({*table, 'Sequential'})}, got {got!r}{hint}")
    rng = as_rng(rng)
    if spec["layer"] == "Sequential":
        if where.count(".") >= MAX_DEPTH:
            raise ValueError(f"{where}: Sequentials nested deeper than {MAX_DEPTH}; expected a flatter network")
        items = _fields(spec, where, ("layer", "layers"))["layers"]
        if not isinstance(items, list) or not items:
            raise ValueError(f"{where}.layers: expected a non-empty list of layers, got {items!r}")
        return nn.Sequential(*(build_layer(s, rng, f"{where}.{i}", table, budget) for i, s in enumerate(items)))
    cls = table[spec["layer"]]
    signature = inspect.signature(cls).parameters
    arguments = {k for k in signature if k not in ("rng", "init", "dtype")}
    required = {k for k in arguments if signature[k].default is inspect.Parameter.empty}
    args = {k: v for k, v in _fields(spec, f"{where} ({cls.__name__})", {"layer", *required}, arguments).items()
            if k != "layer"}
    count = _parameter_count(cls, args)
    if count > MAX_LAYER_PARAMETERS or (budget is not None and count > budget[0]):
        limit = MAX_LAYER_PARAMETERS if count > MAX_LAYER_PARAMETERS else budget[0]
        raise ValueError(f"{where} ({cls.__name__}): expected at most {limit:,} parameters "
                         f"{'in a layer' if limit == MAX_LAYER_PARAMETERS else 'left of those the file holds'}, "
                         f"got {count:,} from {args}")
    if budget is not None:
        budget[0] -= count
    try:
        return cls(**args, **({"rng": rng} if "rng" in signature else {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} ({cls.__name__}): {e}") from None


def build_model(spec, rng=None, layers=(), max_parameters=None):
    """The model ``spec`` describes, its weights freshly initialised from ``rng``;
    ``layers``: the classes of the user's own layers it may name; ``max_parameters``: how
    many parameter numbers it may hold (a checkpoint's own count), checked layer by layer
    before each is allocated. One example is passed through both networks, so that a spec
    whose networks do not fit together (or its data shape) is refused here, not at the
    first batch."""
    table = layers if isinstance(layers, dict) else layer_table(layers)
    required = ("model", "encoder", "decoder", "likelihood", "latent_dim", "data_shape", "dtype")
    spec = _fields(spec, "spec", required, ("n_classes", "n_train", "encoder2", "prior", "latent2_dim"))
    if spec["model"] not in MODELS:
        raise ValueError(f"spec.model: expected one of {sorted(MODELS)}, got {spec['model']!r}")
    if spec["dtype"] not in DTYPES:
        raise ValueError(f"spec.dtype: expected one of {DTYPES}, got {spec['dtype']!r}")
    shape = spec["data_shape"]
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"spec.data_shape: expected a list of positive ints, got {shape!r}")
    if math.prod(shape) > MAX_DATA_VALUES:
        raise ValueError(f"spec.data_shape: expected at most {MAX_DATA_VALUES:,} numbers an example, got {shape}")
    lik, size = dict(spec["likelihood"]) if isinstance(spec["likelihood"], dict) else {}, math.prod(shape)
    if lik.pop("dim", size) != size:
        raise ValueError(f"spec.likelihood.dim: expected {size} (the data's size), got {spec['likelihood']['dim']!r}")
    try:
        likelihood = make_likelihood(lik.pop("name", None), size, **lik)
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec.likelihood: {e}") from None
    rng = as_rng(rng)
    extra = {k: spec[k] for k in ("n_classes", "n_train") if k in spec}
    networks = MODELS[spec["model"]].networks
    missing = sorted({*networks, "latent2_dim"} - set(spec) if "prior" in networks else set())
    if missing or {"encoder2", "prior", "latent2_dim"} & set(spec) and "prior" not in networks:
        raise ValueError(f"spec: a {spec['model']} takes the networks {list(networks)}"
                         f"{' and latent2_dim' if 'prior' in networks else ''}; missing {missing}, got keys "
                         f"{sorted(spec)}")
    try:
        budget = None if max_parameters is None else [max_parameters]
        built = {name: build_layer(spec[name], rng, name, table, budget) for name in networks}
        if "prior" in networks:
            extra.update(encoder2=built.pop("encoder2"), prior=built.pop("prior"), latent2_dim=spec["latent2_dim"])
        model = MODELS[spec["model"]](built["encoder"], built["decoder"], likelihood, spec["latent_dim"], shape,
                                      **extra).astype(spec["dtype"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec: {e}") from None
    x, labels = np.zeros((1, *shape), dtype=spec["dtype"]), {"y": np.zeros(1, int)} if "n_classes" in spec else {}
    checks = [("encoder", lambda: model.encode(x, **labels)),  # each checks its network's output size
              ("decoder", lambda: model.decode(np.zeros((1, model.latent_dim), x.dtype), **labels))]
    if isinstance(model, TwoLayerVAE):
        checks += [("encoder2", lambda: model.encode2(np.zeros((1, model.latent_dim), x.dtype))),
                   ("prior", lambda: model.prior_z1(np.zeros((1, model.latent2_dim), x.dtype)))]
    for name, run in checks:
        try:
            run()
        except (TypeError, ValueError) as e:
            raise ValueError(f"spec: {name} does not fit the data shape {shape} and latent size: {e}") from None
    return model
