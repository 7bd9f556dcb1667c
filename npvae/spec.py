"""A model's architecture as data: JSON that a checkpoint stores beside the arrays, and
the model rebuilt from it, with no pickle and no code execution.

A layer is ``{"layer": "Conv2d", "in_channels": 1, ..., "padding": [1, 1]}``: its class
name and its ``config()`` (constructor arguments, not weights); a ``Sequential`` is
``{"layer": "Sequential", "layers": [...]}``. A model adds its class, encoder,
decoder, likelihood, latent size, data shape and dtype::

    {"model": "VAE", "encoder": {...}, "decoder": {...}, "likelihood": {"name": "bernoulli"},
     "latent_dim": 20, "data_shape": [1, 28, 28], "dtype": "float32"}

Only npvae's own classes (the tables below) can be described: a user's layer, even a
subclass of one of them, is refused by name, since rebuilding it as its parent would
be a different model.
"""

import inspect
import math

import numpy as np

from . import nn
from .checks import as_rng
from .distributions import LIKELIHOODS, make_likelihood
from .models import MODELS, ConditionalVAE

LAYERS = {c.__name__: c for c in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Flatten, nn.Reshape, nn.Identity,
                                  nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU)}
DTYPES = ("float32", "float64")


# ----------------------------------------------------------------------------- describe
def _own(obj, table, key, where):
    if table.get(key) is not type(obj):
        raise TypeError(f"{where}: {type(obj).__name__} is not one of npvae's classes ({sorted(table)}), so a "
                        f"checkpoint cannot describe it; save its parameters with io.save_checkpoint and rebuild "
                        f"the model in code, loading them with io.load_params")


def layer_spec(layer, where="layer"):
    """The spec of one npvae layer or Sequential (nested Sequentials allowed)."""
    if type(layer) is nn.Sequential:
        return {"layer": "Sequential", "layers": [layer_spec(m, f"{where}.{i}") for i, m in enumerate(layer)]}
    _own(layer, LAYERS, type(layer).__name__, where)
    return {"layer": type(layer).__name__, **layer.config()}


def model_spec(model):
    """The spec of a VAE, ConditionalVAE or Autoencoder made of npvae's layers; a
    TypeError naming the first layer that cannot be described."""
    _own(model, MODELS, type(model).__name__, "model")
    _own(model.likelihood, LIKELIHOODS, model.likelihood.name, "likelihood")
    spec = {"model": type(model).__name__, "encoder": layer_spec(model.encoder, "encoder"),
            "decoder": layer_spec(model.decoder, "decoder"),
            "likelihood": {"name": model.likelihood.name, **model.likelihood.config()},
            "latent_dim": model.latent_dim, "data_shape": list(model.data_shape), "dtype": str(model.dtype)}
    if isinstance(model, ConditionalVAE):
        spec["n_classes"] = model.n_classes
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


def build_layer(spec, rng=None, where="layer"):
    """The layer (freshly initialised from ``rng``) that ``spec`` describes, or a
    ValueError naming where in the spec it is wrong."""
    if not isinstance(spec, dict) or spec.get("layer") not in {*LAYERS, "Sequential"}:
        got = spec.get("layer") if isinstance(spec, dict) else spec
        raise ValueError(f"{where}: expected a layer, one of {sorted({*LAYERS, 'Sequential'})}, got {got!r}")
    rng = as_rng(rng)
    if spec["layer"] == "Sequential":
        layers = _fields(spec, where, ("layer", "layers"))["layers"]
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"{where}.layers: expected a non-empty list of layers, got {layers!r}")
        return nn.Sequential(*(build_layer(s, rng, f"{where}.{i}") for i, s in enumerate(layers)))
    cls = LAYERS[spec["layer"]]
    signature = inspect.signature(cls).parameters
    arguments = {k for k in signature if k not in ("rng", "init", "dtype")}
    required = {k for k in arguments if signature[k].default is inspect.Parameter.empty}
    args = {k: v for k, v in _fields(spec, f"{where} ({cls.__name__})", {"layer", *required}, arguments).items()
            if k != "layer"}
    try:
        return cls(**args, **({"rng": rng} if "rng" in signature else {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} ({cls.__name__}): {e}") from None


def build_model(spec, rng=None):
    """The model ``spec`` describes, its weights freshly initialised from ``rng``.
    One example is passed through both networks, so that a spec whose networks do not
    fit together (or its data shape) is refused here, not at the first batch."""
    required = ("model", "encoder", "decoder", "likelihood", "latent_dim", "data_shape", "dtype")
    spec = _fields(spec, "spec", required, ("n_classes",))
    if spec["model"] not in MODELS:
        raise ValueError(f"spec.model: expected one of {sorted(MODELS)}, got {spec['model']!r}")
    if spec["dtype"] not in DTYPES:
        raise ValueError(f"spec.dtype: expected one of {DTYPES}, got {spec['dtype']!r}")
    shape = spec["data_shape"]
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"spec.data_shape: expected a list of positive ints, got {shape!r}")
    lik, size = dict(spec["likelihood"]) if isinstance(spec["likelihood"], dict) else {}, math.prod(shape)
    if lik.pop("dim", size) != size:
        raise ValueError(f"spec.likelihood.dim: expected {size} (the data's size), got {spec['likelihood']['dim']!r}")
    try:
        likelihood = make_likelihood(lik.pop("name", None), size, **lik)
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec.likelihood: {e}") from None
    rng = as_rng(rng)
    extra = {"n_classes": spec["n_classes"]} if "n_classes" in spec else {}
    try:
        model = MODELS[spec["model"]](build_layer(spec["encoder"], rng, "encoder"),
                                      build_layer(spec["decoder"], rng, "decoder"), likelihood, spec["latent_dim"],
                                      shape, **extra).astype(spec["dtype"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec: {e}") from None
    x, labels = np.zeros((1, *shape), dtype=spec["dtype"]), {"y": np.zeros(1, int)} if "n_classes" in spec else {}
    for name, run in (("encoder", lambda: model.encode(x, **labels)),  # each checks its network's output size
                      ("decoder", lambda: model.decode(np.zeros((1, model.latent_dim), x.dtype), **labels))):
        try:
            run()
        except (TypeError, ValueError) as e:
            raise ValueError(f"spec: {name} does not fit the data shape {shape} and latent size: {e}") from None
    return model
