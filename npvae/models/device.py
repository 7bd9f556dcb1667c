"""Which models and settings keep a training step's arrays on the GPU (the CUDA
backend's device path), and why not when they cannot."""

from ..nn.module import Container


def device_refusal(model, optimizer="adam", corruption=False):
    """Why training ``model`` with ``optimizer`` (and input ``corruption``) cannot keep its
    arrays on the GPU (a sentence), or None when it can. The device path covers a model
    that says so (``device_path``: every VAE), layers and a likelihood with ``on_device``
    (a Bayesian layer with local noise, not one drawing whole weights), and Adam, with
    every estimator and objective, free bits, MAE, weight decay, either reduction and
    clipping; the rest trains on the CUDA backend with NumPy arrays, each op copying them
    to the GPU and back. Estimator B's step reads nothing but its three batch means; free bits, the IWAE bound,
    MAE and weight decay read their batch's terms or norms (more synchronisations)."""
    layers = [layer for name in model.networks for layer in _layers(model.children[name])]
    own = {type(m).__name__ for m in layers if not type(m).__module__.startswith("npvae.")}
    host = {type(m).__name__ for m in layers if not m.on_device} - own
    reasons = [(not model.device_path, f"a {type(model).__name__}"),
               (bool(own), f"layers of your own ({', '.join(sorted(own))}: no device kernels)"),
               (bool(host), f"layers that compute on host arrays ({', '.join(sorted(host))})"),
               (not model.likelihood.on_device, f"the {model.likelihood.name} likelihood" + (
                   " with a logvar floor" if getattr(model.likelihood, "logvar_floor", None) is not None else "")),
               (optimizer != "adam", f"optimizer {optimizer!r}"),
               (corruption, "input corruption")]
    found = [what for refused, what in reasons if refused]
    return f"{', '.join(found)}: outside the device path" if found else None


def _layers(module):
    """The layers a network is made of (containers opened)."""
    if isinstance(module, Container):
        return [leaf for child in module.children.values() for leaf in _layers(child)]
    return [module]
