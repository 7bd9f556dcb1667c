"""What a training run keeps beside its loop: the history, the log line with its ETA,
the divergence checks and the checkpoints (``fit`` in ``npvae.train`` drives it)."""

import contextlib
import os
import signal
import threading
import time

import numpy as np

from . import io, kernels
from .models import VAE
from .optim import lr_schedule
from .settings import lr_schedule_argument, shared_settings

# A loss this many times the first step's (in magnitude) means the run diverged, even
# while every number is still finite (plain SGD at a learning rate of 1 gets there).
DIVERGED = 1e6

HISTORY_KEYS = ("epoch", "lr", "beta", "train_elbo", "train_log_px", "train_kl", "val_elbo", "val_log_px", "val_kl",
                "seconds")


class Run:
    """One run of ``fit``: ``model`` and its optimiser ``opt``, the random generator
    ``rng``, the checked ``settings``, checkpoints at ``path`` (None: none), ``log`` a
    function taking a line (None: silent). A checkpoint carries what a bit-for-bit
    resume needs: the history, the generator's state, the schedule and its span, the
    settings; ``start`` is the epochs a resumed run had done."""

    def __init__(self, model, opt, rng, settings, path=None, log=print, history=None, start=0, horizon=None):
        self.model, self.opt, self.rng, self.settings, self.path, self.log = model, opt, rng, settings, path, log
        self.horizon = horizon  # the steps a schedule spans: the first run's, kept when a resume extends it
        self.schedule = lr_schedule(lr_schedule_argument(settings))
        self.start = start
        self.history = history or {k: [] for k in HISTORY_KEYS}
        if settings["diagnostics_every"]:
            self.history.setdefault("active_units", [])
            self.history.setdefault("mutual_information", [])
        self.first_loss, self.t0, self.first_epoch_seconds = None, time.perf_counter(), None
        self.seconds_before = self.history["seconds"][-1] if self.history["seconds"] else 0.0  # a resumed clock

    # ---------------------------------------------------------------- divergence
    def diverged(self, epoch, step, what):
        where = f"; the last good checkpoint is {self.path}" if self.path and os.path.exists(self.path) else ""
        return FloatingPointError(f"training diverged at epoch {epoch}, step {step}: {what} (lower the learning "
                                  f"rate or clip the gradients){where}")

    def check_loss(self, epoch, step, loss):
        """A non-finite loss, or one ``DIVERGED`` times the first step's, stops the run."""
        if not np.isfinite(loss):
            raise self.diverged(epoch, step, f"the loss is {loss}")
        self.first_loss = loss if self.first_loss is None else self.first_loss
        if abs(loss) > DIVERGED * max(abs(self.first_loss), 1.0):  # finite, but no model learns this way
            raise self.diverged(epoch, step, f"the loss is {loss:.3g}, {DIVERGED:.0e} times the first step's "
                                             f"({self.first_loss:.3g})")

    def params_finite(self):
        return all(kernels.ops.all_finite(kernels.to_host(p)) for p in self.model.params.values())

    def check_finite(self, epoch, step):
        """Parameters and optimiser state finite (Adam's moments can overflow while the
        loss stays finite); never checkpoint a state that is not."""
        for name, arrays in (("the parameters are", self.model.params), ("the optimiser's state is",
                                                                         self.opt.state_dict())):
            if not all(kernels.ops.all_finite(kernels.to_host(a).astype(float)) for a in arrays.values()):
                raise self.diverged(epoch, step, f"{name} no longer finite" + (" (nothing checkpointed)" if self.path
                                                                                else ""))

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self, epoch, step, position=None):
        """Write the model, the optimiser and the run's state (``position``: mid-epoch,
        the epoch's order, steps done and running sums)."""
        if self.path is not None:
            self.check_finite(epoch, step)
            io.save_checkpoint(self.path, self.model, self.opt, {
                "epoch": epoch, "history": self.history, "rng": self.rng.bit_generator.state, "position": position,
                "lr_schedule": self.schedule, "lr_horizon": self.horizon, "settings": shared_settings(self.settings)})

    # ---------------------------------------------------------------- history and log
    def record(self, epoch, lr, beta, train, val, diagnostics=None):
        """One epoch's numbers into the history, and its log line with the ETA."""
        elapsed = time.perf_counter() - self.t0
        row = {"epoch": epoch, "lr": lr, "beta": beta, "train_elbo": train[0], "train_log_px": train[1],
               "train_kl": train[2], "val_elbo": val["elbo"], "val_log_px": val["log_px"], "val_kl": val["kl"],
               "seconds": self.seconds_before + elapsed}
        for k, v in row.items():
            self.history.setdefault(k, []).append(v if v is None or k == "epoch" else float(v))
        if self.settings["diagnostics_every"]:
            for k in ("active_units", "mutual_information"):
                self.history[k].append(diagnostics and diagnostics[k])
        self.first_epoch_seconds = self.first_epoch_seconds or elapsed
        if self.log:
            self.log(self._line(epoch, train, val, elapsed))

    def _line(self, epoch, train, val, elapsed):
        # the first epoch pays for compilation: the ETA uses the later ones when there are any
        epochs, done = self.settings["epochs"], epoch - self.start
        rate = elapsed / done if done == 1 else (elapsed - self.first_epoch_seconds) / (done - 1)
        # a model without a posterior has no ELBO: its number is log p(x|z) (the history's train_elbo)
        term = "elbo" if isinstance(self.model, VAE) else "log p(x|z)"
        val_text = "" if val["elbo"] is None else f"  val {term} {val['elbo']:9.3f}"
        kl_text = f"  kl {train[2]:7.3f}" if isinstance(self.model, VAE) else ""
        return (f"epoch {epoch:3d}/{epochs}  train {term} {train[0]:9.3f}{kl_text}{val_text}"
                f"  {self.seconds_before + elapsed:7.1f}s elapsed  eta {rate * (epochs - epoch):6.1f}s")


@contextlib.contextmanager
def deferred_interrupt():
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
