"""Optimisers and gradient clipping on the flat dotted-name dicts of a model.

Each optimiser holds ``params`` and ``grads`` (the model's dicts: the arrays are
updated in place) and per-parameter state. Conventions follow PyTorch's
(``torch.optim``), so a step can be compared with it number for number.
"""

import numpy as np

from . import kernels
from .checks import check_number


def _zeros_like(params):
    """Zeros shaped like each parameter, by name, where the parameters are: on the GPU
    for device arrays, packed into one buffer (one launch updates them all)."""
    zeros = [np.zeros(p.shape, p.dtype) for p in params.values()]
    if any(kernels.is_device(p) for p in params.values()):
        zeros = kernels.ops.pack(zeros)
    return dict(zip(params, zeros))


class Optimizer:
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, grads, lr):
        self.lr = check_number(lr, "lr", 0, low_open=True)
        if set(grads) != set(params) or any(grads[k].shape != p.shape for k, p in params.items()):
            raise ValueError(f"grads: expected an array shaped like each parameter ({sorted(params)[:3]}...), "
                             f"missing {sorted(set(params) - set(grads))}, unexpected {sorted(set(grads) - set(params))}"
                             f"{'' if set(grads) != set(params) else ', or a shape differs'}; pass model.grads")
        self.params, self.grads = params, grads
        self.t = 0  # steps taken
        self.state = {s: _zeros_like(params) for s in self.slots}

    def step(self):
        self.t += 1
        for k, p in self.params.items():
            self.update(k, p, self.grads[k])

    def update(self, name, p, g):
        raise NotImplementedError

    def state_dict(self):
        """Arrays ``"<slot>/<param name>"`` plus the step count, for checkpoints."""
        arrays = {f"{s}/{k}": v for s, d in self.state.items() for k, v in d.items()}
        arrays["t"] = np.array(self.t)
        return arrays

    def load_state_dict(self, arrays):
        expected = set(self.state_dict())
        if set(arrays) != expected:
            raise ValueError(
                f"optimizer state: expected arrays {sorted(expected)[:4]}..., got {sorted(arrays)[:4]}... "
                f"(a checkpoint of another optimiser or model)"
            )
        # Everything is checked before anything is written, so a refused state leaves this one whole.
        for key, own in self.state_dict().items():
            got = np.asarray(arrays[key])
            if key == "t":
                if got.shape != () or not np.issubdtype(got.dtype, np.integer) or got < 0:
                    raise ValueError(f"optimizer state: t: expected a step count >= 0, got {got!r}")
            elif got.shape != own.shape or got.dtype != own.dtype:
                raise ValueError(f"optimizer state: {key}: expected {own.dtype} of shape {own.shape}, "
                                 f"got {got.dtype} of shape {got.shape}")
            elif not np.isfinite(got).all():
                raise ValueError(f"optimizer state: {key}: expected finite values, got NaN or inf")
        for s, d in self.state.items():
            for k in d:
                d[k][...] = arrays[f"{s}/{k}"]
        self.t = int(arrays["t"])


class SGD(Optimizer):
    """v <- mu v + g;  p <- p - lr v  (or, Nesterov, p <- p - lr (g + mu v)).
    With momentum 0 this is plain gradient descent."""

    slots = ("velocity",)

    def __init__(self, params, grads, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(params, grads, lr)
        momentum = check_number(momentum, "momentum", 0, 1, high_open=True)
        if nesterov and momentum == 0:
            raise ValueError("nesterov: needs a momentum > 0, got momentum=0")
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, name, p, g):
        if self.momentum == 0:
            p -= self.lr * g
            return
        v = self.state["velocity"][name]
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v if self.nesterov else v)


class Adagrad(Optimizer):
    """s <- s + g^2;  p <- p - lr g / (sqrt(s) + eps). The optimiser of Kingma & Welling."""

    slots = ("sum_sq",)

    def __init__(self, params, grads, lr=0.01, eps=1e-10):
        super().__init__(params, grads, lr)
        self.eps = check_number(eps, "eps", 0)

    def update(self, name, p, g):
        s = self.state["sum_sq"][name]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """s <- alpha s + (1 - alpha) g^2;  p <- p - lr g / (sqrt(s) + eps)."""

    slots = ("mean_sq",)

    def __init__(self, params, grads, lr=0.01, alpha=0.99, eps=1e-8):
        super().__init__(params, grads, lr)
        self.alpha = check_number(alpha, "alpha", 0, 1, high_open=True)
        self.eps = check_number(eps, "eps", 0)

    def update(self, name, p, g):
        s = self.state["mean_sq"][name]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr m_hat / (sqrt(v_hat) + eps), with the bias corrections
    m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t) (the moments start at 0)."""

    slots = ("m", "v")

    def __init__(self, params, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, grads, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.b1, self.b2 = (check_number(b, f"betas[{i}]", 0, 1, high_open=True) for i, b in enumerate(betas))
        self.eps = check_number(eps, "eps", 0)
        # (p, g, m, v) as four lists in one order, for one kernel call over all of them
        self.arrays = [[d[k] for k in params] for d in (params, grads, self.state["m"], self.state["v"])]

    def step(self):
        # One call for all parameters (kernels/reference/optim.py's adam_update has the
        # formula): on the Numba backend a fused pass per array, and the call's fixed
        # cost paid once a step rather than once per array.
        self.t += 1
        kernels.ops.adam_update(*self.arrays, self.lr, self.b1, self.b2, self.eps, self.t)


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}


# ------------------------------------------------------------------ learning-rate schedules
# A schedule is data (JSON, so that a checkpoint carries it): {"name": ..., its arguments}.
LR_SCHEDULES = {"constant": (), "stages": ("epochs", "factor"), "exponential": ("gamma",), "cosine": ("lr_min",)}


def iwae_stages(n_stages=8, passes=None):
    """The IWAE paper's schedule (Burda et al. 2015, section 5): stage i = 0..7 runs 3^i
    passes at lr 1e-3 * 10^(-i/7), 3,280 passes in all; ``passes`` gives other stage
    lengths (a compressed budget keeps the structure)."""
    return {"name": "stages", "epochs": list(passes or [3**i for i in range(n_stages)]), "factor": 10 ** (-1 / 7)}


def lr_schedule(schedule):
    """``schedule`` as the dict it means: None or "constant"; "iwae" (:func:`iwae_stages`);
    "cosine" (to 0 over the run; a resume that extends the run keeps the first run's
    span and stays at the end value after it); or a dict {"name": ..., arguments} (``"stages"``:
    ``epochs`` per stage and the ``factor`` from one to the next; ``"exponential"``:
    lr gamma^step; ``"cosine"``: from lr to ``lr_min``)."""
    if schedule is None or schedule == "constant":
        return {"name": "constant"}
    if schedule == "iwae":
        return iwae_stages()
    if schedule == "cosine":
        return {"name": "cosine", "lr_min": 0.0}
    if not isinstance(schedule, dict) or schedule.get("name") not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: expected None, 'constant', 'iwae', 'cosine' or a dict with a name in "
                         f"{sorted(LR_SCHEDULES)}, got {schedule!r}")
    expected = set(LR_SCHEDULES[schedule["name"]]) | {"name"}
    if set(schedule) != expected:
        raise ValueError(f"lr_schedule: a {schedule['name']!r} schedule takes {sorted(expected)}, got {sorted(schedule)}")
    if schedule["name"] == "stages":
        if not schedule["epochs"] or any(not isinstance(e, int) or e < 1 for e in schedule["epochs"]):
            raise ValueError(f"lr_schedule: stages' epochs: expected a list of integers >= 1, got {schedule['epochs']!r}")
        check_number(schedule["factor"], "lr_schedule: factor", 0, low_open=True)
    if schedule["name"] == "exponential":
        check_number(schedule["gamma"], "lr_schedule: gamma", 0, 1, low_open=True)
    if schedule["name"] == "cosine":
        check_number(schedule["lr_min"], "lr_schedule: lr_min", 0)
    return dict(schedule)


def scheduled_lr(lr, schedule, epoch, step, total_steps):
    """The learning rate in 1-based ``epoch`` at the optimiser's 0-based ``step`` of
    ``total_steps``, a pure function of them, so a resumed run continues it exactly."""
    name = schedule["name"]
    if name == "stages":  # the stage that holds this epoch; after the last, the last
        stage = int(np.searchsorted(np.cumsum(schedule["epochs"]), epoch))
        return lr * schedule["factor"] ** min(stage, len(schedule["epochs"]) - 1)
    if name == "exponential":
        return lr * schedule["gamma"] ** step
    if name == "cosine":
        return schedule["lr_min"] + 0.5 * (lr - schedule["lr_min"]) * (1 + np.cos(np.pi * min(step / total_steps, 1)))
    return lr


def clip_by_value(grads, clip_value):
    """Clamp every gradient entry to [-clip_value, clip_value] in place."""
    check_number(clip_value, "clip_value", 0, low_open=True)
    kernels.ops.clip_all(list(grads.values()), clip_value)


def clip_by_global_norm(grads, clip_norm):
    """Scale all gradients by min(1, clip_norm / ||g||), ||g|| the norm of all of them
    together, in place. Returns ||g|| before clipping."""
    check_number(clip_norm, "clip_norm", 0, low_open=True)
    norm = float(np.sqrt(kernels.ops.squared_norm(list(grads.values()))))
    if norm > clip_norm:
        kernels.ops.scale_all(list(grads.values()), clip_norm / norm)
    return norm
