"""Checking a layer against the layer contract (``npvae.nn.module``), property by
property: the checks behind ``npvae.testing.assert_layer_contract``.

Finite differences alone pass layers that break the contract in ways a model feels
later: a backward that assigns its gradients instead of adding them (fine alone, wrong
when a model sums two passes), one that changes ``dy`` or ``x`` in place, a float64
result leaking into a float32 network, a derivative that is right only at the
initial parameters (a LayerNorm's dx without gamma passes at gamma = 1). So the
parameters are drawn at random first, and each property is checked on its own.
"""

import copy

import numpy as np

from .gradcheck import check_params
from .nn.module import Module

PROPERTIES = (
    "backward matches finite differences",
    "backward adds into grads",
    "forward leaves x unchanged",
    "backward leaves dy and x unchanged",
    "need_dx=False returns no dx",
    "out_shape is recorded",
    "float32 in, float32 out",
)


class ContractReport:
    """``failed``: property -> what went wrong (empty when the layer keeps the
    contract); ``gradients``: the finite-difference comparison (``GradcheckResult``,
    with per-entry errors in each array's ``entry_rel_err``)."""

    def __init__(self, failed, gradients):
        self.failed, self.gradients = failed, gradients

    @property
    def ok(self):
        return not self.failed

    def __str__(self):
        rows = [f"{'ok  ' if p not in self.failed else 'FAIL'} {p}" + (f": {self.failed[p]}" if p in self.failed
                                                                       else "") for p in PROPERTIES]
        rows += ["", "finite differences (rel err: the largest error over the array's largest entry; ratio: "
                     "analytic / numeric at that entry):", str(self.gradients)]
        return "\n".join(rows)


def _randomised(layer, dtype, rng):
    """A copy of ``layer`` in ``dtype`` with every parameter drawn from N(0, 1), away
    from any special value of its initialisation (a gamma of 1, a bias of 0)."""
    work = copy.deepcopy(layer).astype(dtype)
    for k, p in work.params.items():
        p[...] = rng.standard_normal(p.shape).astype(dtype)
    return work


def check_layer_contract(layer, x, rng=0, h=1e-5, rtol=1e-6, atol=1e-8):
    """Every property of ``PROPERTIES`` for ``layer`` on input ``x``, on copies of
    ``layer`` with random parameters (the caller's layer and ``x`` are not touched).
    Returns a :class:`ContractReport`."""
    if not isinstance(layer, Module):
        raise TypeError(f"layer: expected an npvae.nn.Module, got {type(layer).__name__}")
    rng = np.random.default_rng(rng)
    failed = {}
    work = _randomised(layer, np.float64, rng)
    x64 = np.array(x, dtype=np.float64)
    x_before = x64.copy()
    y = work.forward(x64)
    if not np.array_equal(x64, x_before):
        failed["forward leaves x unchanged"] = "forward changed its input in place"
    if work.out_shape != y.shape:
        failed["out_shape is recorded"] = (f"out_shape is {work.out_shape}, the output's shape {y.shape}: end "
                                           f"forward with return self.save_for_backward(cache, y)")
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    work.zero_grad()
    dx = work.backward(dy)
    if not np.array_equal(dy, dy_before) or not np.array_equal(x64, x_before):
        failed["backward leaves dy and x unchanged"] = "backward changed dy or x in place"
    once = {k: g.copy() for k, g in work.grads.items()}
    work.backward(dy_before.copy())
    doubled = [k for k, g in work.grads.items() if not np.allclose(g, 2 * once[k], rtol=1e-12, atol=0)]
    if doubled:
        failed["backward adds into grads"] = (f"after two backward passes {doubled} are not twice one pass's: "
                                              f"add into grads (+=), never assign")
    try:
        no_dx = work.backward(dy_before.copy(), need_dx=False)
        if no_dx is not None:
            failed["need_dx=False returns no dx"] = f"returned {type(no_dx).__name__}"
    except TypeError as e:
        failed["need_dx=False returns no dx"] = f"backward does not take need_dx ({e})"
    fresh, x_fd = copy.deepcopy(work), x_before.copy()  # the same random parameters, the input as it was
    gradients = check_params(lambda: float(np.sum(fresh.forward(x_fd) * dy_before)), {"x": x_fd, **fresh.params},
                             {"x": np.zeros_like(x_fd) if dx is None else dx, **once}, h, rtol, atol)
    if not gradients.ok:
        bad = [k for k, r in gradients.arrays.items() if not r.ok]
        failed["backward matches finite differences"] = f"{bad} differ (table below)"
    _check_float32(layer, x, rng, failed)
    return ContractReport(failed, gradients)


def _check_float32(layer, x, rng, failed):
    work = _randomised(layer, np.float32, rng)
    y = work.forward(np.asarray(x, dtype=np.float32))
    work.zero_grad()
    dx = work.backward(np.ones_like(y))
    leaks = [f"{name} {a.dtype}" for name, a in (("y", y), ("dx", dx), *work.grads.items())
             if a is not None and a.dtype != np.float32]
    if leaks:
        failed["float32 in, float32 out"] = f"{', '.join(leaks)} from float32 parameters and input"
