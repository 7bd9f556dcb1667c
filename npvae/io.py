"""Saving and loading: arrays in ``.npz``, configuration as JSON inside it, never
pickle; every file written atomically (``npvae.files``)."""

import json
import os
import warnings
import zipfile

import numpy as np

from . import kernels
from .models import MODELS
from .spec import build_model, layer_table, model_spec
from .files import atomic_write

FORMAT = "npvae-checkpoint-2"  # format 1 (MLP builders' arguments instead of a spec) still loads


def save_checkpoint(path, model, optimizer=None, state=None):
    """Write the model's parameters, its architecture (``npvae.spec``), the optimiser's
    state and ``state`` (a JSON-able dict: epoch, history, random generator state) to
    one ``.npz`` file. A layer of the user's own is described by its class name and
    ``config()`` (``load_model(path, layers=[ItsClass])`` rebuilds it). A model the spec
    cannot describe (a class of the user's own model or likelihood, a config that is not
    JSON) is saved with its parameters only, with a warning, and the reason in the file:
    ``load_params(model, path)`` restores them into a model built in code."""
    arrays = {f"param/{k}": kernels.to_host(v) for k, v in model.params.items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": kernels.to_host(v) for k, v in optimizer.state_dict().items()})
    try:
        spec, spec_error = model_spec(model), None
    except TypeError as e:
        spec, spec_error = None, str(e)
        warnings.warn(f"{os.fspath(path)}: parameters only, no architecture: {e}", UserWarning, stacklevel=2)
    meta = {"format": FORMAT, "spec": spec, "spec_error": spec_error, "state": state or {},
            "optimizer": None if optimizer is None else type(optimizer).__name__}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """``(params, optimizer_state, meta)`` from a checkpoint, or a ValueError naming
    the file when it is missing, truncated, corrupt or not an npvae checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError,
            RecursionError, RuntimeError, NotImplementedError, TypeError):  # a flipped byte can raise any of these
        raise ValueError(f"checkpoint: {path} is not an npvae checkpoint (or is truncated, or its JSON nested "
                         f"too deep to read)") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint: {path}: expected its metadata as a JSON object, got {type(meta).__name__}")
    if meta.get("format") not in (FORMAT, "npvae-checkpoint-1"):
        raise ValueError(f"checkpoint: {path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return params, optim, meta


def load_params(model, params, source="checkpoint"):
    """Copy ``params`` (a dict of arrays, or a checkpoint's path) into the model's arrays
    in place, after checking that names, shapes and dtypes are the model's own (else: a
    checkpoint of another architecture). Returns the model."""
    if isinstance(params, (str, os.PathLike)):
        params, source = load_checkpoint(params)[0], f"checkpoint {os.fspath(params)}"
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of arrays or a checkpoint's path, got {type(params).__name__}")
    own = model.params
    if set(own) != set(params):
        raise ValueError(
            f"{source}: parameters do not match the model: missing {sorted(set(own) - set(params))}, "
            f"unexpected {sorted(set(params) - set(own))}"
        )
    for k, p in own.items():
        if p.shape != params[k].shape or p.dtype != params[k].dtype:
            raise ValueError(f"{source}: parameter {k}: expected {p.dtype} of shape {p.shape}, "
                             f"got {params[k].dtype} of shape {params[k].shape}")
        if not np.isfinite(params[k]).all():
            raise ValueError(f"{source}: parameter {k}: expected finite values, got NaN or inf")
    for k, p in own.items():
        p[...] = params[k]
    return model


def load_model(path, layers=()):
    """Rebuild the model a checkpoint describes, with its parameters; ``layers``: the
    classes of the user's own layers it contains (the file names them; the code comes
    from the caller only). A ValueError naming what is wrong (an unknown layer, a bad
    argument, arrays that do not match the architecture), and no model, if it cannot."""
    layers = layer_table(layers)  # the caller's classes, checked before the file is read
    params, _, meta = load_checkpoint(path)
    if meta["format"] == "npvae-checkpoint-1":  # the arguments of an MLP builder
        config = dict(meta["model"]) if isinstance(meta.get("model"), dict) else {}
        name = config.pop("model", None)
        if not isinstance(name, str) or name not in MODELS:
            raise ValueError(f"checkpoint: {path}: expected a model built by VAE.mlp and the like, got "
                             f"{meta.get('model')!r}")
        try:
            model = MODELS[name].mlp(**config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"checkpoint: {path}: {e}") from None
    elif meta.get("spec") is None:
        raise ValueError(f"checkpoint: {path} holds parameters only ({meta.get('spec_error')}); build the model "
                         f"in code and load them with io.load_params(model, path)")
    else:
        try:
            model = build_model(meta["spec"], rng=0, layers=layers,
                                max_parameters=sum(a.size for a in params.values()))
        except ValueError as e:
            raise ValueError(f"checkpoint: {path}: {e}") from None
    return load_params(model, params, f"checkpoint {path}")
