"""The gradient tour: one minibatch through a model, and what every layer does to the
gradient on its way from the loss back to the input.

For each layer, from the loss backwards (decoder, then encoder; a two-layer VAE's
prior and encoder2 between them): its output's shape and
statistics (mean, std, the fraction of saturated tanh/sigmoid units or of dead ReLUs),
the norm of dL/d(its output), each parameter's gradient norm and its ratio to the
parameter's norm (the gradient-to-weight ratio: the relative size of a plain SGD step
per unit learning rate; Adam's steps are about lr per entry whatever it is), and a
check of the layer's own backward, for its input and every parameter, parameter-free
layers included: central finite differences in float64 of sum(layer(x) * dy) at the x
and dy the layer saw in the pass, on sampled entries. An entry whose two one-sided
differences disagree is at a kink within h (a ReLU's pre-activation at 0, as on
MNIST's background): it is skipped and counted, not reported as an error. Each row
passes when its relative error is at most ``THRESHOLD``. Then how the gradient at the
encoder's output splits between the reconstruction term and the KL: their norms and
their cosine (negative: the KL pulls against reconstruction).

What a learner should see, e.g. on a fresh deep tanh stack (``tour(VAE.mlp(784, (200,)
* 6, 20, "tanh"), x)``): the gradient norm shrinking layer by layer towards the input
(vanishing gradients); on a ReLU net, dead units; on a trained VAE, a KL gradient at
the encoder's output whose cosine with the reconstruction's is negative.
"""

import copy
import json
import os

import numpy as np

from .checks import as_rng, check_number, check_positive_int
from .distributions import kl_standard_normal_grad
from .files import save_json
from .gradcheck import compare
from .hyperspherical import uniform_sphere
from .models import VAE, HypersphericalVAE, TwoLayerVAE
from .models.base import LatentModel
from .nn.activations import Activation
from .nn.bayesian import BayesianLinear
from .nn.module import Container
from .plots import plt, save

THRESHOLD = 1e-5  # a row passes when the backward is within this of finite differences, relative
KINK = 1e-3  # one-sided slopes further apart than this (relative), by a gap that does not scale with h: a kink
SATURATING = {"tanh": lambda y: np.abs(y) > 0.99, "sigmoid": lambda y: (y < 0.01) | (y > 0.99)}
DYING = ("relu",)


def _leaves(network, prefix):
    """(dotted name, layer) of every non-container layer, in forward order (a
    container's children in the order it names them)."""
    if not isinstance(network, Container):
        yield prefix, network
        return
    for key, layer in network.children.items():
        yield from _leaves(layer, f"{prefix}.{key}")


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
    if not isinstance(model, LatentModel):
        raise TypeError(f"model: the tour follows a model's loss (a VAE, ConditionalVAE or Autoencoder), got "
                        f"{type(model).__name__}; check a single layer with npvae.testing.assert_layer_contract")
    fd_entries = check_positive_int(fd_entries, "fd_entries")
    h = check_number(h, "h", 0, 1e-2, low_open=True)
    if not model.params:
        raise ValueError("model: expected a model with parameters, got one with none")
    model.check_x(x)
    rng = as_rng(rng)
    work = copy.deepcopy(model).astype(np.float64)  # the tour never touches the caller's model
    x = x.astype(np.float64)
    vae = isinstance(work, VAE)
    labels = {} if y is None else {"y": y}
    if vae:  # the noise held fixed: Gaussian eps, or a vMF sampler's CDF values and directions
        shape = (len(x) * loss_kwargs.get("n_samples", 1),)
        if isinstance(work, HypersphericalVAE):
            work.fixed_noise(rng.random(shape), uniform_sphere(rng, shape, work.latent_dim - 1))
        else:
            loss_kwargs = {"eps": rng.standard_normal((len(x), shape[0] // len(x), work.noise_dim)), **loss_kwargs}
    layers = [leaf for name in work.networks for leaf in _leaves(work.children[name], name)]
    record = {name: {} for name, _ in layers}
    originals = []
    for name, layer in layers:  # record each layer's output and the gradient reaching it
        forward, backward = layer.forward, layer.backward

        def fwd(inp, forward=forward, name=name, layer=layer):
            out = forward(inp)
            record[name].update(shape=list(out.shape[1:]), _x=np.array(inp), **_stats(out, _activation_of(layer)))
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

    grads = {k: g.copy() for k, g in work.grads.items()}
    report = []
    for name, layer in reversed(layers):
        entry = {"layer": name, "type": type(layer).__name__,
                 **{k: v for k, v in record[name].items() if not k.startswith("_")}}
        checks = _layer_check(layer, record[name]["_x"], record[name]["_dy"], rng, fd_entries, h)
        entry["input"] = checks.pop("input")
        entry["params"] = {pname: {"grad_norm": _norm(grads[f"{name}.{pname}"]), "param_norm": _norm(p),
                                   "grad_to_param": (_norm(grads[f"{name}.{pname}"]) / _norm(p) if _norm(p) > 0
                                                     else None),  # none for a zero parameter
                                   **checks[pname]} for pname, p in layer.params.items()}
        report.append(entry)
    rows = [e["input"] for e in report] + [s for e in report for s in e["params"].values()]
    result = {"loss": float(loss), "batch": len(x), "layers": report, "threshold": THRESHOLD,
              "all_passed": all(r["pass"] for r in rows), "skipped_at_kinks": sum(r["skipped_at_kinks"] for r in rows)}
    if vae and not isinstance(work, (TwoLayerVAE, HypersphericalVAE)):  # a Gaussian q(z|x)'s own KL share
        last_encoder_layer = [name for name, _ in _leaves(work.encoder, "encoder")][-1]
        result["encoder_output_split"] = _split(work, record[last_encoder_layer]["_dy"], loss_kwargs, x, labels)
    return result


def _layer_check(layer, x, dy, rng, entries, h):
    """The layer's own backward at the (x, dy) it saw, against central differences of
    L = sum(layer(x) * dy) on ``entries`` sampled entries of x ("input") and of each
    parameter: per array its relative error (``gradcheck.compare``), whether it passes,
    and how many entries were skipped at a kink."""
    work = copy.deepcopy(layer)
    if isinstance(work, BayesianLinear):  # the noise the pass drew, held fixed
        work.noise = layer.last_noise
    work.zero_grad()
    work.forward(x)
    analytic = {"input": work.backward(dy), **work.grads}
    arrays = {"input": x.copy(), **work.params}

    def loss():
        return float(np.sum(work.forward(arrays["input"]) * dy))

    def at(a, i, value):
        old, a[i] = a[i], value
        try:
            return loss()
        finally:
            a[i] = old

    base, out = loss(), {}
    for name, a in arrays.items():
        smooth, numeric = [], []
        sampled = {tuple(int(rng.integers(0, s)) for s in a.shape) for _ in range(min(entries, a.size))}
        for i in sorted(sampled):
            plus, minus, plus2, minus2 = (at(a, i, a[i] + step) for step in (h, -h, 2 * h, -2 * h))
            right, left = (plus - base) / h, (base - minus) / h
            # The one-sided slopes differ by about h f'' where L is smooth, by a jump that
            # does not shrink with h at a kink: a kink when the gap is large beside the
            # slopes and does not double with the step.
            gap, gap2 = right - left, (plus2 - base) / (2 * h) - (base - minus2) / (2 * h)
            if abs(gap) > KINK * max(abs(right), abs(left)) and abs(gap2 - 2 * gap) > 0.5 * abs(gap):
                continue
            smooth.append(i)
            numeric.append((plus - minus) / (2 * h))
        check = compare(np.array([analytic[name][i] for i in smooth]), np.array(numeric))
        out[name] = {"fd_rel_err": check.rel_err, "pass": check.rel_err <= THRESHOLD,
                     "skipped_at_kinks": len(sampled) - len(smooth)}
    return out


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
    """The tour as a table: per layer (from the loss back) a row for its input's gradient
    (dx) and one per parameter, each with its finite-difference check and pass/fail."""
    head = f"{'layer':<12}{'type':<16}{'output':<14}{'mean':>8}{'std':>8}{'sat/dead':>9}{'|dL/dy|':>10}" \
           f"  {'array':<7}{'|grad|':>10}{'|g|/|p|':>10}{'FD rel err':>11}{'skipped':>8}  check"
    rows = [f"loss {result['loss']:.4f} on a batch of {result['batch']}", head]
    for e in result["layers"]:
        frac = e.get("saturated", e.get("dead"))
        left = f"{e['layer']:<12}{e['type']:<16}{str(tuple(e.get('shape', ()))):<14}{e.get('mean', 0):>8.3f}" \
               f"{e.get('std', 0):>8.3f}{'' if frac is None else f'{frac:.2f}':>9}{e.get('grad_output_norm', 0):>10.3e}"
        for j, (p, s) in enumerate([("dx", e["input"]), *e["params"].items()]):
            grad = "" if p == "dx" else f"{s['grad_norm']:.3e}"
            ratio = "" if p == "dx" or s["grad_to_param"] is None else f"{s['grad_to_param']:.3e}"
            rows.append((left if j == 0 else " " * len(left)) + f"  {p:<7}{grad:>10}{ratio:>10}"
                        f"{s['fd_rel_err']:>11.1e}{s['skipped_at_kinks']:>8}  {'pass' if s['pass'] else 'FAIL'}")
    split = result.get("encoder_output_split")
    if split:
        rows.append(f"at the encoder's output: |reconstruction grad| {split['reconstruction_norm']:.3e}, "
                    f"|KL grad| {split['kl_norm']:.3e}, cosine {split['cosine']:+.3f}")
    failed = sum(not s["pass"] for e in result["layers"] for s in [e["input"], *e["params"].values()])
    rows.append(f"{'every check passed' if not failed else f'{failed} checks FAILED'}: the hand-derived backward "
                f"against central differences, relative error <= {result['threshold']:.0e}; "
                f"{result['skipped_at_kinks']} sampled entries skipped at a kink within h (|g|/|p|: the "
                f"gradient-to-weight ratio, a plain SGD step's relative size per unit lr)")
    return "\n".join(rows)


def plot_tour(result, path):
    """Three panels, one kind of quantity each, parameters from the loss back: the
    gradient norms, the gradient-to-weight ratio, and the finite-difference error
    against its threshold (failures in red)."""
    names, grad, ratio, err, ok, flow = [], [], [], [], [], []
    for e in result["layers"]:
        for j, (p, s) in enumerate(e["params"].items()):
            flow.append(e.get("grad_output_norm", np.nan) if j == 0 else np.nan)
            names.append(f"{e['layer']}.{p}")
            grad.append(s["grad_norm"])
            ratio.append(np.nan if s["grad_to_param"] is None else s["grad_to_param"])
            err.append(max(s["fd_rel_err"], 1e-16))
            ok.append(s["pass"])
    fig, axes = plt.subplots(3, 1, figsize=(max(8, 0.45 * len(names) + 3), 11), sharex=True)
    pos = np.arange(len(names))
    axes[0].semilogy(pos, grad, "o", label="|dL/dparam|")
    axes[0].semilogy(pos, flow, "^", label="|dL/d(layer output)|")
    axes[0].set(title="gradient norms, from the loss back to the input", ylabel="norm")
    axes[0].legend(fontsize=8)
    axes[1].semilogy(pos, ratio, "s")
    axes[1].set(title="gradient-to-weight ratio |dL/dparam| / |param|", ylabel="ratio")
    axes[2].semilogy(pos, err, "o", color="tab:blue")
    axes[2].semilogy(pos[~np.array(ok, dtype=bool)], np.array(err)[~np.array(ok, dtype=bool)], "o", color="tab:red",
                     label="failed")
    axes[2].axhline(result["threshold"], color="grey", linestyle="--", label=f"threshold {result['threshold']:.0e}")
    axes[2].set(title="each layer's backward against central differences (float64)", ylabel="relative error")
    axes[2].legend(fontsize=8)
    axes[2].set_xticks(pos, names, rotation=60, ha="right", fontsize=8)
    axes[2].set_xlabel("parameter")
    fig.tight_layout()
    return save(fig, path)


def write_tour(result, folder):
    """tour.json and tour.png in ``folder``; returns their paths."""
    json_path, png_path = os.path.join(folder, "tour.json"), os.path.join(folder, "tour.png")
    save_json(json_path, json.loads(json.dumps(result)))
    return json_path, plot_tour(result, png_path)
