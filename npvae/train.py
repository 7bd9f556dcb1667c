"""The training loop: shuffled minibatches from one seeded generator, KL schedules,
clipping, per-epoch train and validation ELBO, checkpoints, resume."""

import os
import time

import numpy as np

from . import io
from .checks import check_positive_int
from .datasets import binarize_dynamic
from .diagnostics import collapse_report
from .distributions import kl_standard_normal
from .objectives import SCHEDULES, check_mae_weights
from .optim import OPTIMIZERS, clip_by_global_norm, clip_by_value


def _generator_from_state(state):
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def evaluate(model, x, y=None, batch_size=500, seed=0):
    """Mean ELBO, log p(x|z) and KL over ``x`` (one z per example, a fixed seed so
    that epochs are compared on the same noise)."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(3)
    for s in range(0, len(x), batch_size):
        xb, yb = x[s : s + batch_size], None if y is None else y[s : s + batch_size]
        if hasattr(model, "elbo"):
            mean, logvar = model.encode(xb, yb)
            kl = kl_standard_normal(mean, logvar).sum(axis=1)
            elbo = model.elbo(xb, yb, rng=rng)
            totals += [elbo.sum(), (elbo + kl).sum(), kl.sum()]
        else:
            log_px = model.likelihood.log_prob(xb.reshape(len(xb), -1), model.decode(model.encode(xb)))
            totals += [log_px.sum(), log_px.sum(), 0.0]
    elbo, log_px, kl = totals / len(x)
    return {"elbo": float(elbo), "log_px": float(log_px), "kl": float(kl)}


def fit(model, x, x_val=None, *, y=None, y_val=None, optimizer="adam", lr=1e-3, optimizer_kwargs=None,
        epochs=10, batch_size=100, seed=0, estimator="B", objective="elbo", n_samples=1, beta=1.0,
        anneal="constant", anneal_steps=0, free_bits=0.0, weight_decay=0.0, mae_eta=0.0, mae_gamma=0.0,
        clip_value=None, clip_norm=None, binarize=False, diagnostics_every=0, callbacks=(), checkpoint_dir=None,
        checkpoint_every=0, resume=None, log=print):
    """Train ``model`` in place and return the history (lists per epoch).

    optimizer: a key of ``OPTIMIZERS`` with learning rate ``lr``; beta: the KL weight,
    multiplied by the ``anneal`` schedule ("constant", "linear" warm-up over
    ``anneal_steps`` steps, or "cyclical" with period ``anneal_steps``);
    binarize: draw every pixel as Bernoulli(grey level) afresh each epoch (dynamic
    binarisation). ``mae_eta``, ``mae_gamma``: the MAE regulariser's weights
    (``objectives.mae_regularizer``). ``diagnostics_every`` = k > 0: every k epochs (and
    at the last) the history gets the active units and the mutual information of q on
    ``x_val`` (``npvae.diagnostics``; None in the other epochs). ``callbacks``:
    functions ``f(epoch, history)``; one returning True
    stops training. Checkpoints go to ``checkpoint_dir/checkpoint.npz`` every
    ``checkpoint_every`` epochs and at the end; ``resume`` is a checkpoint to go on
    from (``epochs`` counts from the start of the original run). The same seed and
    backend give the same result bit for bit, resumed or not.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if anneal not in SCHEDULES:
        raise ValueError(f"anneal: expected one of {sorted(SCHEDULES)}, got {anneal!r}")
    epochs, batch_size = check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")
    model.check_x(x)
    if x_val is not None:
        model.check_x(x_val)
    check_mae_weights(mae_eta, mae_gamma)
    diagnostics_every = check_positive_int(diagnostics_every, "diagnostics_every", 0)
    if diagnostics_every and (x_val is None or not hasattr(model, "elbo")):
        raise ValueError("diagnostics_every: the diagnostics need a VAE and x_val (the data they are measured on)")
    opt = OPTIMIZERS[optimizer](model.params, model.grads, lr, **(optimizer_kwargs or {}))
    schedule = SCHEDULES[anneal]
    history = {k: [] for k in ("epoch", "beta", "train_elbo", "train_log_px", "train_kl",
                               "val_elbo", "val_log_px", "val_kl", "seconds")}
    if diagnostics_every:
        history.update(active_units=[], mutual_information=[])
    rng, start = np.random.default_rng(seed), 0
    if resume is not None:
        params, optim_state, meta = io.load_checkpoint(resume)
        io.load_params(model, params, f"checkpoint {resume}")
        opt.load_state_dict(optim_state)
        history, start = meta["state"]["history"], meta["state"]["epoch"]
        rng = _generator_from_state(meta["state"]["rng"])
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "checkpoint.npz")

    def checkpoint(epoch):
        if path is not None:
            io.save_checkpoint(path, model, opt, {"epoch": epoch, "history": history, "rng": rng.bit_generator.state})

    t0 = time.perf_counter()
    n = len(x)
    for epoch in range(start + 1, epochs + 1):
        order = rng.permutation(n)
        sums, beta_t = np.zeros(3), beta
        for step, s in enumerate(range(0, n, batch_size)):
            idx = order[s : s + batch_size]
            xb = x[idx]
            if binarize:
                xb = binarize_dynamic(xb, rng)
            beta_t = beta * (schedule(opt.t, anneal_steps) if anneal != "constant" else 1.0)
            loss, stats = model.loss_and_grad(
                xb, **({} if y is None else {"y": y[idx]}), rng=rng, estimator=estimator, objective=objective,
                n_samples=n_samples, beta=beta_t, free_bits=free_bits, weight_decay_lambda=weight_decay,
                **({"mae_eta": mae_eta, "mae_gamma": mae_gamma} if mae_eta or mae_gamma else {}))
            if not np.isfinite(loss):
                where = f"; the last good checkpoint is {path}" if path and os.path.exists(path) else ""
                raise FloatingPointError(f"loss became non-finite ({loss}) at epoch {epoch}, step {step + 1}{where}")
            if clip_value is not None:
                clip_by_value(model.grads, clip_value)
            if clip_norm is not None:
                clip_by_global_norm(model.grads, clip_norm)
            opt.step()
            sums += len(idx) * np.array([stats.get("elbo", stats["log_px"]), stats["log_px"], stats.get("kl", 0.0)])
        train = sums / n
        val = evaluate(model, x_val, y_val) if x_val is not None else {"elbo": None, "log_px": None, "kl": None}
        elapsed = time.perf_counter() - t0
        for k, v in (("epoch", epoch), ("beta", beta_t), ("train_elbo", train[0]), ("train_log_px", train[1]),
                     ("train_kl", train[2]), ("val_elbo", val["elbo"]), ("val_log_px", val["log_px"]),
                     ("val_kl", val["kl"]), ("seconds", elapsed)):
            history[k].append(v if v is None or k == "epoch" else float(v))
        if diagnostics_every:
            due = epoch % diagnostics_every == 0 or epoch == epochs
            report = collapse_report(model, x_val, y_val, rng=seed) if due else None
            history["active_units"].append(report and report["active_units"])
            history["mutual_information"].append(report and report["mutual_information"])
        if log:
            eta = elapsed / (epoch - start) * (epochs - epoch)
            val_text = "" if val["elbo"] is None else f"  val elbo {val['elbo']:9.3f}"
            log(f"epoch {epoch:3d}/{epochs}  train elbo {train[0]:9.3f}  kl {train[2]:7.3f}{val_text}"
                f"  {elapsed:7.1f}s elapsed  eta {eta:6.1f}s")
        stop = any(cb(epoch, history) for cb in callbacks)
        if checkpoint_every and epoch % checkpoint_every == 0 or epoch == epochs or stop:
            checkpoint(epoch)
        if stop:
            break
    return history
