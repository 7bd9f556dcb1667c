"""The gradient tour: one minibatch through a model, and what every layer does to the
gradient on its way from the loss back to the input.

For each layer, from the loss backwards (decoder, then encoder): its output's shape and
statistics (mean, std, the fraction of saturated tanh/sigmoid units or of dead ReLUs),
the norm of dL/d(its output), each parameter's gradient norm and its ratio to the
parameter's norm (the size of an SGD step relative to the weights, per unit lr), and
how well the hand-derived gradient agrees with central finite differences in float64
on a sample of entries. Then how the gradient at the encoder's output splits between
the reconstruction term and the KL: their norms and their cosine (negative: the KL
pulls against reconstruction).

What a learner should see, e.g. on a fresh deep tanh stack (``tour(VAE.mlp(784, (200,)
* 6, 20, "tanh"), x)``): the gradient norm shrinking layer by layer towards the input
(vanishing gradients); on a ReLU net, dead units; on a trained VAE, a KL gradient at
the encoder's output whose cosine with the reconstruction's is negative.
"""

import copy
import json
import os

import numpy as np

from .checks import as_rng, check_positive_int
from .distributions import kl_standard_normal_grad
from .files import save_json
from .gradcheck import compare, numerical_gradient
from .models import VAE
from .nn.activations import Activation
from .nn.sequential import Sequential
from .plots import plt, save

SATURATING = {"tanh": lambda y: np.abs(y) > 0.99, "sigmoid": lambda y: (y < 0.01) | (y > 0.99)}
DYING = ("relu",)


def _leaves(network, prefix):
    """(dotted name, layer) of every non-container layer, in forward order."""
    for i, layer in enumerate(network):
        name = f"{prefix}.{i}"
        if isinstance(layer, Sequential):
            yield from _leaves(layer, name)
        else:
            yield name, layer


def _activation_of(layer):
    if isinstance(layer, Activation):
        return layer.kind
    return getattr(layer, "activation", "identity")


def _stats(y, kind):
    y = np.asarray(y, dtype=np.float64)
    stats = {"mean": float(y.mean()), "std": float(y.std())}
    if kind in SATURATING:
        stats["saturated"] = float(SATURATING[kind](y).mean())
    elif kind in DYING:
        stats["dead"] = float((y <= 0).all(axis=0).mean())  # units that are zero on every example of the batch
    return stats


def _norm(a):
    return float(np.sqrt(np.sum(np.asarray(a, dtype=np.float64) ** 2)))


def tour(model, x, y=None, rng=0, fd_entries=6, h=1e-5, **loss_kwargs):
    """The tour of ``model`` on the minibatch ``x`` (labels ``y`` for a ConditionalVAE);
    ``loss_kwargs`` go to ``loss_and_grad`` (beta, objective, ...). The finite
    differences run on a float64 copy of the model, with the noise held fixed, on
    ``fd_entries`` random entries of each parameter. Returns a JSON-able dict:
    ``layers`` (from the loss back to the input), ``loss``, ``encoder_output_split``
    (for a VAE). ``format_tour`` prints it as a table, ``plot_tour`` draws it."""
    fd_entries = check_positive_int(fd_entries, "fd_entries")
    if not model.params:
        raise ValueError("model: expected a model with parameters, got one with none")
    model.check_x(x)
    rng = as_rng(rng)
    work = copy.deepcopy(model).astype(np.float64)  # the tour never touches the caller's model
    x = x.astype(np.float64)
    vae = isinstance(work, VAE)
    labels = {} if y is None else {"y": y}
    if vae:
        loss_kwargs = {"eps": rng.standard_normal((len(x), loss_kwargs.get("n_samples", 1), work.latent_dim)),
                       **loss_kwargs}
    layers = [*_leaves(work.encoder, "encoder"), *_leaves(work.decoder, "decoder")]
    record = {name: {} for name, _ in layers}
    originals = []
    for name, layer in layers:  # record each layer's output and the gradient reaching it
        forward, backward = layer.forward, layer.backward

        def fwd(inp, forward=forward, name=name, layer=layer):
            out = forward(inp)
            record[name].update(shape=list(out.shape[1:]), **_stats(out, _activation_of(layer)))
            return out

        def bwd(dy, need_dx=True, backward=backward, name=name):
            record[name]["grad_output_norm"] = _norm(dy)
            record[name]["_dy"] = np.array(dy)
            return backward(dy, need_dx)

        layer.forward, layer.backward = fwd, bwd
        originals.append((layer, forward, backward))
    try:
        loss, _ = work.loss_and_grad(x, **labels, **loss_kwargs)
    finally:
        for layer, forward, backward in originals:
            layer.forward, layer.backward = forward, backward

    def loss_fn():
        return work.loss_and_grad(x, **labels, **loss_kwargs)[0]

    grads = {k: g.copy() for k, g in work.grads.items()}
    report = []
    for name, layer in reversed(layers):
        entry = {"layer": name, "type": type(layer).__name__, **record[name]}
        entry.pop("_dy", None)
        params = {}
        for pname, p in layer.params.items():
            full = f"{name}.{pname}"
            g = grads[full]
            idx = [tuple(rng.integers(0, s) for s in p.shape) for _ in range(min(fd_entries, p.size))]
            check = compare(np.array([g[i] for i in idx]), numerical_gradient(loss_fn, p, h, idx))
            params[pname] = {"grad_norm": _norm(g), "param_norm": _norm(p),  # update scale: none for a zero param
                             "update_scale": _norm(g) / _norm(p) if _norm(p) > 0 else None, "fd_rel_err": check.rel_err}
        entry["params"] = params
        report.append(entry)
    result = {"loss": float(loss), "batch": len(x), "layers": report}
    if vae:
        last_encoder_layer = [name for name, _ in _leaves(work.encoder, "encoder")][-1]
        result["encoder_output_split"] = _split(work, record[last_encoder_layer]["_dy"], loss_kwargs, x, labels)
    return result


def _split(model, d_encoder_output, loss_kwargs, x, labels):
    """The gradient at the encoder's output [dmean, dlogvar]: its KL part (analytic,
    times beta) and the rest (reconstruction, through the decoder and the sampling)."""
    mean, logvar = model.encode(x, **labels)
    beta = loss_kwargs.get("beta", 1.0)
    if (loss_kwargs.get("objective", "elbo") == "iwae" or loss_kwargs.get("estimator", "B") == "A"
            or loss_kwargs.get("free_bits") or loss_kwargs.get("mae_eta") or loss_kwargs.get("mae_gamma")):
        return None  # the KL is not a separate analytic term there (or other terms join it)
    dmean, dlogvar = kl_standard_normal_grad(mean, logvar)
    kl = beta * np.concatenate([dmean, dlogvar], axis=1) / len(x)
    recon = d_encoder_output - kl
    cos = float(np.sum(recon * kl) / max(_norm(recon) * _norm(kl), 1e-300))
    return {"reconstruction_norm": _norm(recon), "kl_norm": _norm(kl), "cosine": cos}


def format_tour(result):
    """The tour as a table, one row per parameter (layers from the loss back)."""
    head = f"{'layer':<12}{'type':<16}{'output':<14}{'mean':>8}{'std':>8}{'sat/dead':>9}{'|dL/dy|':>10}" \
           f"  {'param':<7}{'|grad|':>10}{'|g|/|p|':>10}{'FD rel err':>11}"
    rows = [f"loss {result['loss']:.4f} on a batch of {result['batch']}", head]
    for e in result["layers"]:
        frac = e.get("saturated", e.get("dead"))
        left = f"{e['layer']:<12}{e['type']:<16}{str(tuple(e.get('shape', ()))):<14}{e.get('mean', 0):>8.3f}" \
               f"{e.get('std', 0):>8.3f}{'' if frac is None else f'{frac:.2f}':>9}{e.get('grad_output_norm', 0):>10.3e}"
        if not e["params"]:
            rows.append(left)
        for j, (p, s) in enumerate(e["params"].items()):
            scale = "-" if s["update_scale"] is None else f"{s['update_scale']:.3e}"
            rows.append((left if j == 0 else " " * len(left)) +
                        f"  {p:<7}{s['grad_norm']:>10.3e}{scale:>10}{s['fd_rel_err']:>11.1e}")
    split = result.get("encoder_output_split")
    if split:
        rows.append(f"at the encoder's output: |reconstruction grad| {split['reconstruction_norm']:.3e}, "
                    f"|KL grad| {split['kl_norm']:.3e}, cosine {split['cosine']:+.3f}")
    return "\n".join(rows)


def plot_tour(result, path):
    """Two panels: gradient norm and update scale per parameter, from the loss back;
    the finite-difference error per parameter; both on log scales."""
    names, grad, scale, err, flow = [], [], [], [], []
    for e in result["layers"]:
        for j, (p, s) in enumerate(e["params"].items()):
            flow.append(e.get("grad_output_norm", np.nan) if j == 0 else np.nan)
            names.append(f"{e['layer']}.{p}")
            grad.append(s["grad_norm"])
            scale.append(np.nan if s["update_scale"] is None else s["update_scale"])
            err.append(max(s["fd_rel_err"], 1e-16))
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 0.5 * len(names) + 4), 4.5))
    pos = np.arange(len(names))
    a.semilogy(pos, grad, "o", label="|dL/dparam|")
    a.semilogy(pos, scale, "s", label="|grad| / |param| (update scale per unit lr)")
    a.semilogy(pos, flow, "^", label="|dL/d(layer output)|")
    a.set_title("gradient per parameter, from the loss back to the input")
    b.semilogy(pos, err, "o")
    b.set_title("hand-derived vs finite differences (float64)")
    b.set_ylabel("max relative error on sampled entries")
    a.set_ylabel("norm")
    for ax in (a, b):
        ax.set_xticks(pos, names, rotation=60, ha="right", fontsize=8)
        ax.set_xlabel("parameter")
    a.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def write_tour(result, folder):
    """tour.json and tour.png in ``folder``; returns their paths."""
    json_path, png_path = os.path.join(folder, "tour.json"), os.path.join(folder, "tour.png")
    save_json(json_path, json.loads(json.dumps(result)))
    return json_path, plot_tour(result, png_path)
