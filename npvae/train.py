"""The training loop: shuffled minibatches from one seeded generator, KL schedules,
clipping, per-epoch train and validation ELBO, checkpoints, resume. The settings are
checked against ``npvae.settings.TRAINING``; the run's bookkeeping is ``npvae.run.Run``."""

import contextlib
import json
import os

import numpy as np

from . import io, kernels
from .datasets import corrupt
from .diagnostics import collapse_report
from .models import VAE, ConditionalVAE, HypersphericalVAE, TwoLayerVAE
from .models.device import device_refusal
from .objectives import SCHEDULES
from .optim import OPTIMIZERS, clip_by_global_norm, clip_by_value, scheduled_lr
from .run import Run, deferred_interrupt
from .settings import RESUMABLE, TRAINING, check_training, optimizer_arguments, shared_settings


def evaluate(model, x, y=None, batch_size=500, seed=0):
    """Mean ELBO, log p(x|z) and KL over ``x`` (one z per example, a fixed seed so
    that epochs are compared on the same noise); an autoencoder's ELBO is its log p(x|z)."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(3)
    for s in range(0, len(x), batch_size):
        xb, yb = x[s : s + batch_size], None if y is None else y[s : s + batch_size]
        if isinstance(model, VAE):
            totals += [t.sum() for t in model.elbo_terms(xb, yb, rng=rng)]
        else:
            log_px = model.likelihood.log_prob(xb.reshape(len(xb), -1), model.decode(model.encode(xb)))
            totals += [log_px.sum(), log_px.sum(), 0.0]
    elbo, log_px, kl = totals / len(x)
    return {"elbo": float(elbo), "log_px": float(log_px), "kl": float(kl)}


def fit(model, x, x_val=None, *, y=None, y_val=None, callbacks=(), checkpoint_dir=None, resume=None, log=print,
        **settings):
    """Train ``model`` in place on ``x`` (labels ``y`` for a ConditionalVAE) and return
    the history (lists per epoch: train and validation ELBO, log p(x|z), KL, lr, beta,
    seconds). ``settings``: the entries of ``npvae.settings.TRAINING``, listed below.

    ``callbacks``: functions ``f(epoch, history)``; one returning True stops training.
    Checkpoints go to ``checkpoint_dir/checkpoint.npz`` every ``checkpoint_every``
    epochs and at the end, and on Ctrl-C (after the step in progress; then the
    KeyboardInterrupt goes on); ``resume`` is a checkpoint to go on from, at the step
    it was written, with the same settings (``epochs`` may grow; the history's
    ``seconds`` count from the start of the original run). The same seed and backend
    give the same result bit for bit, resumed or not. Every argument is checked before
    any work; a run whose loss, parameters or optimiser state stop being finite, or whose
    loss grows to ``run.DIVERGED`` times the first step's, stops with a FloatingPointError
    naming the step and the last checkpoint, which is never overwritten by a non-finite
    state.
    """
    s = check_fit_arguments(model, x, x_val, y, y_val, settings)
    refusal = device_refusal(model, s["optimizer"], s["corruption"] != "none")
    if kernels.backend == "cuda" and refusal and log:
        log(f"backend cuda: {refusal}: training with NumPy arrays, each op copying them to the GPU and back")
    resident = kernels.backend == "cuda" and refusal is None
    if resident:  # the parameters, and then the optimiser's state, on the GPU; the training set uploaded once
        model.to_device()
    opt = OPTIMIZERS[s["optimizer"]](model.params, model.grads, s["lr"], **optimizer_arguments(s))
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "checkpoint.npz")
    run = Run(model, opt, np.random.default_rng(s["seed"]), s, path, log)
    position = None
    if resume is not None:
        run, position = resumed(run, resume)
    x_fit = kernels.ops.to_device(x) if resident else x
    n, batch_size, epochs = len(x), s["batch_size"], s["epochs"]
    steps_per_epoch = -(-n // batch_size)
    run.horizon = run.horizon or epochs * steps_per_epoch  # a resumed run keeps its first run's
    with deferred_interrupt() as interrupted, _back_to_host(model, resident):
        for epoch in range(run.start + 1, epochs + 1):
            order, done, sums = (run.rng.permutation(n), 0, np.zeros(3)) if position is None else (
                np.asarray(position["order"]), position["steps"], np.asarray(position["sums"]))
            position, beta = None, s["beta"]
            # The epoch's examples in its order, gathered once: a minibatch is a slice of
            # them (on the GPU: the order uploaded once an epoch, no launch per step).
            x_epoch = kernels.ops.take_rows(x_fit, order)
            for step, start in enumerate(range(done * batch_size, n, batch_size), start=done + 1):
                idx, xb = order[start : start + batch_size], x_epoch[start : start + batch_size]
                anneal = SCHEDULES[s["anneal"]](opt.t, s["anneal_steps"]) if s["anneal"] != "constant" else 1.0
                beta = s["beta"] * anneal
                opt.lr = scheduled_lr(s["lr"], run.schedule, epoch, opt.t, run.horizon)
                with kernels.ops.workspace(model.workspaces, "fit"):  # the step's binarised copy, kept for the next
                    xb = kernels.ops.binarize(xb, run.rng) if s["binarize"] else xb
                    xb_corrupted = None if s["corruption"] == "none" else corrupt(
                        xb, s["corruption"], corruption_level(s, opt.t, run.horizon), run.rng)
                    stats = train_step(run, epoch, step, xb, None if y is None else y[idx], beta, xb_corrupted)
                sums += len(idx) * np.array([stats.get("elbo", stats["log_px"]), stats["log_px"], stats.get("kl", 0.0)])
                if interrupted():
                    run.checkpoint(epoch - 1, step, {"order": order.tolist(), "steps": step, "sums": sums.tolist()})
                    raise KeyboardInterrupt(f"stopped at epoch {epoch}, step {step}" + (f"; checkpoint {path}" if path
                                                                                           else ""))
            run.check_finite(epoch, step)
            val = evaluate(model, x_val, y_val) if x_val is not None else {"elbo": None, "log_px": None, "kl": None}
            due = s["diagnostics_every"] and (epoch % s["diagnostics_every"] == 0 or epoch == epochs)
            run.record(epoch, opt.lr, beta, sums / n, val, collapse_report(model, x_val, y_val, rng=s["seed"]) if due
                       else None)
            stop = any(cb(epoch, run.history) for cb in callbacks)
            if s["checkpoint_every"] and epoch % s["checkpoint_every"] == 0 or epoch == epochs or stop:
                run.checkpoint(epoch, steps_per_epoch)
            if stop:
                break
    return run.history


def corruption_level(s, step, horizon):
    """The corruption level at optimiser step ``step`` of ``horizon``: constant, or
    scheduled linearly from ``corruption_level`` to ``corruption_final``."""
    if s["corruption_final"] is None:
        return s["corruption_level"]
    return s["corruption_level"] + (s["corruption_final"] - s["corruption_level"]) * min(1.0, step / horizon)


def train_step(run, epoch, step, xb, yb, beta, xb_corrupted=None):
    """One step: the loss and its gradients (the encoder fed ``xb_corrupted`` when
    given), the divergence checks, clipping, the optimiser's update. Returns the step's
    stats. A model on the GPU has its update queued before its loss is read (one
    synchronisation a step, and the GPU never idle waiting for the host): there a
    divergence is found after the update that followed it, and reported at the same step."""
    model, s = run.model, run.settings
    kwargs = dict(weight_decay_lambda=s["weight_decay"], reduction=s["reduction"], x_corrupted=xb_corrupted)
    deferred = isinstance(model, VAE) and model.on_device
    if isinstance(model, VAE):
        kwargs.update(rng=run.rng, estimator=s["estimator"], objective=s["objective"], n_samples=s["n_samples"],
                      beta=beta, free_bits=s["free_bits"], mae_eta=s["mae_eta"], mae_gamma=s["mae_gamma"],
                      check_input=False, **({"deferred": True} if deferred else {}))  # x was checked whole
    try:
        result = model.loss_and_grad(xb, **({} if yb is None else {"y": yb}), **kwargs)
    except ValueError:  # a layer refusing a non-finite input: the parameters, not the data
        if run.params_finite():
            raise
        raise run.diverged(epoch, step, "the parameters are no longer finite") from None
    if deferred:
        run.opt.step()
        loss, stats = result()
        run.check_loss(epoch, step, loss)
        return stats
    loss, stats = result
    run.check_loss(epoch, step, loss)
    if s["clip_value"] is not None:
        clip_by_value(model.grads, s["clip_value"])
    if s["clip_norm"] is not None:
        clip_by_global_norm(model.grads, s["clip_norm"])
    run.opt.step()
    return stats


def resumed(run, checkpoint):
    """``run`` continued from ``checkpoint``: the model's parameters, the optimiser's
    state, the history and the random generator as they were written; the settings must
    be the run's own (``settings.RESUMABLE`` may change). Returns ``(run, position)``."""
    params, optim_state, meta = io.load_checkpoint(checkpoint)
    state = meta["state"] if isinstance(meta.get("state"), dict) else {}
    missing = [k for k in ("epoch", "history", "rng") if k not in state]
    if missing:
        raise ValueError(f"resume: {checkpoint} holds no training state ({', '.join(missing)} missing); it was "
                         f"written by io.save_checkpoint, not by fit: load it with io.load_model instead")
    history = state["history"]
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()) \
            or not isinstance(history.get("seconds"), list):
        raise ValueError(f"resume: {checkpoint}: expected the history as lists by name, got {type(history).__name__}")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"resume: {checkpoint}: expected the epochs done as an integer >= 0, got {epoch!r}")
    if epoch > run.settings["epochs"]:
        raise ValueError(f"epochs: the checkpoint's run has done {epoch} epochs; expected epochs >= {epoch} to go on "
                         f"from it, got {run.settings['epochs']}")
    schedule = json.loads(json.dumps(run.schedule))  # as the checkpoint holds it (a tuple comes back a list)
    if state.get("lr_schedule", schedule) != schedule:
        raise ValueError(f"lr_schedule: the checkpoint's run used {state['lr_schedule']}, got {run.schedule}")
    ours, theirs = shared_settings(run.settings), state.get("settings") or {}
    changed = sorted(k for k, v in theirs.items() if k in ours and ours[k] != v)
    if changed:
        was = ", ".join(f"{k}={theirs[k]!r}" for k in changed)
        got = ", ".join(f"{k}={ours[k]!r}" for k in changed)
        raise ValueError(f"resume: the checkpoint's run used {was}; got {got} (only {', '.join(RESUMABLE)} may change)")
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"resume: {checkpoint}: its random generator's state is not one numpy can take") from None
    horizon = state.get("lr_horizon")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise ValueError(f"resume: {checkpoint}: expected the schedule's horizon as an integer >= 1, got {horizon!r}")
    run.opt.load_state_dict(optim_state)  # both checked before the model changes: a refused resume changes nothing
    io.load_params(run.model, params, f"checkpoint {checkpoint}")
    resumed_run = Run(run.model, run.opt, rng, run.settings, run.path, run.log, state["history"], state["epoch"],
                      horizon)
    return resumed_run, state.get("position")


@contextlib.contextmanager
def _back_to_host(model, resident):
    """A device-resident model comes back to NumPy arrays however training ends."""
    try:
        yield
    finally:
        if resident:
            model.to_host()


def check_fit_arguments(model, x, x_val=None, y=None, y_val=None, settings=None):
    """The checks :func:`fit` makes before any work, alone (the CLI runs them before it
    writes a file): the settings (``settings.check_training``), then the data. Returns
    the checked settings with their defaults."""
    s = check_training(settings or {})
    shared_settings(s)  # JSON-able, or refused now rather than at the first checkpoint
    for data, labels, name in ((x, y, "x"), (x_val, y_val, "x_val")):
        label_name = "y" if name == "x" else "y_val"
        if data is None:
            if labels is not None:
                raise ValueError(f"{label_name}: labels without data ({name} is None)")
            continue
        model.check_x(data, name)  # also refuses an empty array
        if labels is not None or isinstance(model, ConditionalVAE):
            model.check_labels(labels, len(data), label_name)
    if s["diagnostics_every"] and (x_val is None or not isinstance(model, VAE)
                                   or isinstance(model, (TwoLayerVAE, HypersphericalVAE))):
        raise ValueError("diagnostics_every: the diagnostics need a one-layer Gaussian VAE (they measure q(z|x) "
                         "against N(0, I); for a TwoLayerVAE call diagnostics.active_units_per_layer, for a "
                         "HypersphericalVAE diagnostics.active_units) and x_val (the data they are measured on)")
    return s


fit.__doc__ += "\n    Settings (``npvae.settings.TRAINING``):\n\n" + "\n".join(
    f"    * ``{t.name}``: {t.describe()}" for t in TRAINING)
