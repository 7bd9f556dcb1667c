"""The training loop: shuffled minibatches from one seeded generator, KL schedules,
clipping, per-epoch train and validation ELBO, checkpoints, resume."""

import contextlib
import inspect
import os
import signal
import threading
import time

import numpy as np

from . import io, kernels
from .checks import check_number, check_positive_int
from .diagnostics import collapse_report
from .models.vae import ESTIMATORS, OBJECTIVES
from .distributions import kl_standard_normal
from .objectives import SCHEDULES, check_mae_weights
from .models.base import check_reduction
from .optim import OPTIMIZERS, clip_by_global_norm, clip_by_value, scheduled_lr
from .optim import lr_schedule as lr_schedule_of


# A loss this many times the first step's (in magnitude) means the run diverged, even
# while every number is still finite (SGD at lr 1 reached 6.6e29 nats that way).
DIVERGED = 1e6


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
        lr_schedule=None, reduction="mean", epochs=10, batch_size=100, seed=0, estimator="B", objective="elbo",
        n_samples=1, beta=1.0,
        anneal="constant", anneal_steps=0, free_bits=0.0, weight_decay=0.0, mae_eta=0.0, mae_gamma=0.0,
        clip_value=None, clip_norm=None, binarize=False, diagnostics_every=0, callbacks=(), checkpoint_dir=None,
        checkpoint_every=0, resume=None, log=print):
    """Train ``model`` in place and return the history (lists per epoch).

    optimizer: a key of ``OPTIMIZERS`` with learning rate ``lr``, changed every step by
    ``lr_schedule`` (``optim.lr_schedule``: None, "iwae", "cosine" or a dict);
    ``reduction``: the loss as the batch "mean" or "sum"; beta: the KL weight,
    multiplied by the ``anneal`` schedule ("constant", "linear" warm-up over
    ``anneal_steps`` steps, or "cyclical" with period ``anneal_steps``);
    binarize: draw every pixel as Bernoulli(grey level) afresh each epoch (dynamic
    binarisation). ``mae_eta``, ``mae_gamma``: the MAE regulariser's weights
    (``objectives.mae_regularizer``). ``diagnostics_every`` = k > 0: every k epochs (and
    at the last) the history gets the active units and the mutual information of q on
    ``x_val`` (``npvae.diagnostics``; None in the other epochs). ``callbacks``:
    functions ``f(epoch, history)``; one returning True stops training.

    Checkpoints go to ``checkpoint_dir/checkpoint.npz`` every ``checkpoint_every``
    epochs and at the end, and on Ctrl-C (after the step in progress; then the
    KeyboardInterrupt goes on); ``resume`` is a checkpoint to go on from, at the step
    it was written (``epochs``, and the history's ``seconds`` of training, count from the
    start of the original run). The same seed and backend give the same result bit for
    bit, resumed or not. Every argument is checked before any work; a run whose loss,
    parameters or optimiser state stop being finite, or whose loss grows to ``DIVERGED``
    times the first step's, stops with a FloatingPointError naming the step and the last
    checkpoint, which is never overwritten by a non-finite state.
    """
    check_fit_arguments(**locals())
    schedule = lr_schedule_of(lr_schedule)
    resident = device_resident(model, optimizer, estimator, objective, mae_eta or mae_gamma, weight_decay, reduction,
                               clip_value, clip_norm, log)
    if resident:  # the parameters, and then the optimiser's state, on the GPU; the training set uploaded once
        model.to_device()
    opt = OPTIMIZERS[optimizer](model.params, model.grads, lr, **(optimizer_kwargs or {}))
    x_fit = kernels.ops.to_device(x) if resident else x
    beta_schedule = SCHEDULES[anneal]
    history = {k: [] for k in ("epoch", "lr", "beta", "train_elbo", "train_log_px", "train_kl",
                               "val_elbo", "val_log_px", "val_kl", "seconds")}
    if diagnostics_every:
        history.update(active_units=[], mutual_information=[])
    rng, start, position = np.random.default_rng(seed), 0, None
    if resume is not None:
        params, optim_state, meta = io.load_checkpoint(resume)
        if meta["state"].get("lr_schedule", schedule) != schedule:
            raise ValueError(f"lr_schedule: the checkpoint's run used {meta['state']['lr_schedule']}, got {schedule}")
        opt.load_state_dict(optim_state)  # both checked before the model changes: a refused resume changes nothing
        io.load_params(model, params, f"checkpoint {resume}")
        state = meta["state"]
        history, start, rng = state["history"], state["epoch"], _generator_from_state(state["rng"])
        position = state.get("position")  # mid-epoch: the epoch's order, steps done, running sums
    path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, "checkpoint.npz")
    kwargs = dict(rng=rng, estimator=estimator, objective=objective, n_samples=n_samples, free_bits=free_bits,
                  weight_decay_lambda=weight_decay, reduction=reduction, **(
                      {"mae_eta": mae_eta, "mae_gamma": mae_gamma} if mae_eta or mae_gamma else {}),
                  check_input=False)  # x was checked whole; its minibatches are its rows
    if not hasattr(model, "elbo"):  # the autoencoder has no KL, noise or estimator
        kwargs = {"weight_decay_lambda": weight_decay, "reduction": reduction}

    def diverged(epoch, step, what):
        where = f"; the last good checkpoint is {path}" if path and os.path.exists(path) else ""
        return FloatingPointError(f"training diverged at epoch {epoch}, step {step}: {what} (lower the learning "
                                  f"rate or clip the gradients){where}")

    def check_finite(epoch, step):
        for name, arrays in (("the parameters are", model.params), ("the optimiser's state is", opt.state_dict())):
            if not all(kernels.ops.all_finite(kernels.to_host(a).astype(float)) for a in arrays.values()):
                raise diverged(epoch, step, f"{name} no longer finite" + (" (nothing checkpointed)" if path else ""))

    def checkpoint(epoch, step, position=None):
        if path is not None:
            check_finite(epoch, step)
            io.save_checkpoint(path, model, opt, {"epoch": epoch, "history": history, "rng": rng.bit_generator.state,
                                                  "position": position, "lr_schedule": schedule})

    n, t0, first_epoch_seconds, first_loss = len(x), time.perf_counter(), None, None
    seconds_before = history["seconds"][-1] if history["seconds"] else 0.0  # a resumed run's clock goes on
    total_steps = epochs * -(-n // batch_size)
    with _deferred_interrupt() as interrupted, _back_to_host(model, resident):
        for epoch in range(start + 1, epochs + 1):
            order, done, sums = (rng.permutation(n), 0, np.zeros(3)) if position is None else (
                np.asarray(position["order"]), position["steps"], np.asarray(position["sums"]))
            position, beta_t = None, beta
            for step, s in enumerate(range(done * batch_size, n, batch_size), start=done + 1):
                idx = order[s : s + batch_size]
                xb = kernels.ops.take_rows(x_fit, idx)
                xb = kernels.ops.binarize(xb, rng) if binarize else xb
                beta_t = beta * (beta_schedule(opt.t, anneal_steps) if anneal != "constant" else 1.0)
                opt.lr = scheduled_lr(lr, schedule, epoch, opt.t, total_steps)
                labels = {} if y is None else {"y": y[idx]}
                try:
                    loss, stats = model.loss_and_grad(xb, **labels, **kwargs, **(
                        {"beta": beta_t} if hasattr(model, "elbo") else {}))
                except ValueError:  # a layer refusing a non-finite input: the parameters, not the data
                    if all(kernels.ops.all_finite(kernels.to_host(p)) for p in model.params.values()):
                        raise
                    raise diverged(epoch, step, "the parameters are no longer finite") from None
                if not np.isfinite(loss):
                    raise diverged(epoch, step, f"the loss is {loss}")
                first_loss = loss if first_loss is None else first_loss
                if abs(loss) > DIVERGED * max(abs(first_loss), 1.0):  # finite, but no model learns this way
                    raise diverged(epoch, step, f"the loss is {loss:.3g}, {DIVERGED:.0e} times the first step's "
                                                f"({first_loss:.3g})")
                if clip_value is not None:
                    clip_by_value(model.grads, clip_value)
                if clip_norm is not None:
                    clip_by_global_norm(model.grads, clip_norm)
                opt.step()
                sums += len(idx) * np.array([stats.get("elbo", stats["log_px"]), stats["log_px"],
                                             stats.get("kl", 0.0)])
                if interrupted():
                    checkpoint(epoch - 1, step, {"order": order.tolist(), "steps": step, "sums": sums.tolist()})
                    raise KeyboardInterrupt(f"stopped at epoch {epoch}, step {step}"
                                            + (f"; checkpoint {path}" if path else ""))
            check_finite(epoch, step)  # once an epoch: Adam's moments can overflow while the loss stays finite
            train = sums / n
            val = evaluate(model, x_val, y_val) if x_val is not None else {"elbo": None, "log_px": None, "kl": None}
            elapsed = time.perf_counter() - t0
            for k, v in (("epoch", epoch), ("lr", opt.lr), ("beta", beta_t), ("train_elbo", train[0]), ("train_log_px", train[1]),
                         ("train_kl", train[2]), ("val_elbo", val["elbo"]), ("val_log_px", val["log_px"]),
                         ("val_kl", val["kl"]), ("seconds", seconds_before + elapsed)):
                history.setdefault(k, []).append(v if v is None or k == "epoch" else float(v))
            if diagnostics_every:
                due = epoch % diagnostics_every == 0 or epoch == epochs
                report = collapse_report(model, x_val, y_val, rng=seed) if due else None
                history["active_units"].append(report and report["active_units"])
                history["mutual_information"].append(report and report["mutual_information"])
            first_epoch_seconds = first_epoch_seconds or elapsed
            if log:
                # the first epoch pays for compilation: the ETA uses the later ones when there are any
                done_epochs = epoch - start
                rate = elapsed / done_epochs if done_epochs == 1 else (elapsed - first_epoch_seconds) / (done_epochs - 1)
                val_text = "" if val["elbo"] is None else f"  val elbo {val['elbo']:9.3f}"
                log(f"epoch {epoch:3d}/{epochs}  train elbo {train[0]:9.3f}  kl {train[2]:7.3f}{val_text}"
                    f"  {seconds_before + elapsed:7.1f}s elapsed  eta {rate * (epochs - epoch):6.1f}s")
            stop = any(cb(epoch, history) for cb in callbacks)
            if checkpoint_every and epoch % checkpoint_every == 0 or epoch == epochs or stop:
                checkpoint(epoch, -(-n // batch_size))
            if stop:
                break
    return history


def device_resident(model, optimizer, estimator, objective, mae, weight_decay, reduction, clip_value, clip_norm,
                    log=None):
    """Whether ``fit`` keeps every array of a step on the GPU: on the CUDA backend, for
    Adam without clipping and a step that ``VAE.device_refusal`` accepts. Otherwise
    the model keeps NumPy arrays (on "cuda", each op copies them up and back), and
    ``log`` hears why."""
    if kernels.backend != "cuda":
        return False
    refusal = model.device_refusal(estimator, objective, bool(mae), bool(weight_decay), reduction) if hasattr(
        model, "device_refusal") else "the autoencoder not yet on the device"
    if refusal is None and (optimizer != "adam" or clip_value is not None or clip_norm is not None):
        refusal = "optimisers other than Adam, and clipping, not yet on the device"
    if refusal and log:
        log(f"backend cuda: {refusal}: training with NumPy arrays, each op copying them to the GPU and back")
    return refusal is None


@contextlib.contextmanager
def _back_to_host(model, resident):
    """A device-resident model comes back to NumPy arrays however training ends."""
    try:
        yield
    finally:
        if resident:
            model.to_host()


@contextlib.contextmanager
def _deferred_interrupt():
    """Ctrl-C sets a flag that the loop reads between steps, so that an interrupt never
    lands in the middle of an optimiser's in-place update (a half-updated model).
    Only in the main thread (signals cannot be caught elsewhere)."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.append(signum))
    try:
        yield lambda: bool(flag)
    finally:
        signal.signal(signal.SIGINT, previous)


def check_fit_arguments(model, x, x_val=None, **kwargs):
    """The checks :func:`fit` makes before any work, alone (the CLI runs them before it
    writes a file): a ValueError or TypeError naming the first bad argument."""
    bound = inspect.signature(fit).bind(model, x, x_val, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    y, y_val, optimizer, estimator, anneal = a["y"], a["y_val"], a["optimizer"], a["estimator"], a["anneal"]
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if anneal not in SCHEDULES:
        raise ValueError(f"anneal: expected one of {sorted(SCHEDULES)}, got {anneal!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if a["objective"] not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {a['objective']!r}")
    for name, minimum in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("n_samples", 1), ("checkpoint_every", 0),
                          ("anneal_steps", 0), ("diagnostics_every", 0)):
        check_positive_int(a[name], name, minimum)
    if anneal == "cyclical" and a["anneal_steps"] == 0:
        raise ValueError("anneal_steps: cyclical annealing needs a period of at least 1 step, got 0")
    check_number(a["beta"], "beta", 0)
    check_number(a["weight_decay"], "weight_decay", 0)
    if check_number(a["free_bits"], "free_bits", 0) and estimator == "A":
        raise ValueError("free_bits: applies to the analytic KL of estimator B; with estimator A use free_bits=0")
    for name in ("clip_value", "clip_norm"):
        if a[name] is not None:
            check_number(a[name], name, 0, low_open=True)
    check_mae_weights(a["mae_eta"], a["mae_gamma"])
    lr_schedule_of(a["lr_schedule"])
    check_reduction(a["reduction"])
    OPTIMIZERS[optimizer]({}, {}, a["lr"], **(a["optimizer_kwargs"] or {}))  # its own checks, on no parameters
    for data, labels, name in ((x, y, "x"), (x_val, y_val, "x_val")):
        if data is None:
            if labels is not None:
                raise ValueError(f"{'y' if name == 'x' else 'y_val'}: labels without data ({name} is None)")
            continue
        model.check_x(data, name)  # also refuses an empty array
        if labels is not None or hasattr(model, "n_classes"):
            model.check_labels(labels, len(data), "y" if name == "x" else "y_val")
    if a["diagnostics_every"] and (x_val is None or not hasattr(model, "elbo")):
        raise ValueError("diagnostics_every: the diagnostics need a VAE and x_val (the data they are measured on)")
