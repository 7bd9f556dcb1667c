"""Finite-difference gradient checks, for the tests and for your own layers.

Central differences in float64: for each entry ``a[i]`` of each array,
``(L(a[i] + h) - L(a[i] - h)) / 2h`` has error O(h^2) from truncation and
O(u |L| / h) from rounding (u ~ 1e-16), so the default h = 1e-5 leaves errors near 1e-10.

Checking a layer of your own::

    import numpy as np
    from npvae import nn, check_module

    layer = nn.Linear(5, 3, rng=0).astype(np.float64)    # parameters in float64
    x = np.random.default_rng(1).standard_normal((4, 5))  # input in float64
    result = check_module(layer, x)   # L = sum(layer(x) * dy), dy random
    print(result)                     # one row per array: errors and worst index
    assert result.ok

``check_function(f, x, grad)`` does the same for a plain function ``f(x) -> scalar``
and its claimed gradient; ``check_params(loss, arrays, grads)`` for any loss that
reads several arrays (a whole model: perturb its ``params`` in place). A loss that
draws random numbers must draw the same ones on every call (fix ``eps``).
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_number


@dataclass
class ArrayReport:
    """How one array's analytic gradient compares with the finite differences."""

    max_abs_err: float  # max_i |analytic_i - numeric_i|
    rel_err: float  # max_abs_err / max_i max(|analytic_i|, |numeric_i|): relative to the array's scale
    worst_index: tuple  # the entry where the two differ most
    ok: bool  # rel_err <= rtol or max_abs_err <= atol
    analytic: float = 0.0  # the backward's value at worst_index
    numeric: float = 0.0  # the finite difference there
    entry_rel_err: np.ndarray = None  # per entry: |analytic - numeric| / max(|analytic|, |numeric|, atol)

    @property
    def ratio(self):
        """analytic / numeric at the worst entry (1 when they agree; 0 or 2 is typical of
        a term left out or counted twice)."""
        return self.analytic / self.numeric if self.numeric else float("inf") if self.analytic else 1.0


@dataclass
class GradcheckResult:
    arrays: dict  # name -> ArrayReport

    @property
    def ok(self):
        return all(r.ok for r in self.arrays.values())

    def __str__(self):
        """One row per array: the largest error, relative to the array's largest entry
        (``rel err``), where it is, the analytic and numeric values there, their ratio."""
        rows = [f"{'array':<16}{'max abs err':>12}{'rel err':>10}  {'worst index':<12}{'analytic':>11}{'numeric':>11}"
                f"{'ratio':>8}  ok"]
        for name, r in self.arrays.items():
            rows.append(f"{name:<16}{r.max_abs_err:>12.3e}{r.rel_err:>10.2e}  {str(r.worst_index):<12}"
                        f"{r.analytic:>11.4g}{r.numeric:>11.4g}{r.ratio:>8.3g}  {r.ok}")
        return "\n".join(rows)


def numerical_gradient(loss, a, h=1e-5, entries=None):
    """dL/da by central differences, perturbing ``a`` in place (restored after); with
    ``entries`` (a list of index tuples), only those, as a 1-D array in their order."""
    indices = list(np.ndindex(a.shape)) if entries is None else entries
    values = np.zeros(len(indices))
    for j, i in enumerate(indices):
        old = a[i]
        a[i] = old + h
        plus = loss()
        a[i] = old - h
        minus = loss()
        a[i] = old
        values[j] = (plus - minus) / (2 * h)
    return values.reshape(a.shape).astype(a.dtype, copy=False) if entries is None else values


def compare(analytic, numeric, rtol=1e-6, atol=1e-8):
    """Compare two gradients of one array.

    The relative error is taken against the array's largest gradient entry, not
    entry by entry: finite-difference noise is absolute (about u |L| / h), so an
    entry of 1e-9 cannot be checked to 1e-6 of itself, while a wrong backward
    is off by a sizeable fraction of the gradient's scale.
    """
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient: expected shape {numeric.shape}, got {analytic.shape}")
    if analytic.size == 0:
        return ArrayReport(0.0, 0.0, (), True)
    err = np.abs(analytic - numeric)
    worst = np.unravel_index(np.argmax(err), err.shape)
    max_abs = float(err[worst])
    scale = float(max(np.abs(analytic).max(), np.abs(numeric).max()))
    rel = max_abs / scale if scale > 0 else 0.0
    entry = err / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), max(atol, np.finfo(float).tiny))
    return ArrayReport(max_abs, rel, tuple(int(i) for i in worst), rel <= rtol or max_abs <= atol,
                       float(analytic[worst]), float(numeric[worst]), entry)


def _check_steps(h, rtol, atol):
    check_number(h, "h", 0, low_open=True)
    check_number(rtol, "rtol", 0)
    check_number(atol, "atol", 0)


def _require_float64(arrays):
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(
                f"{name}: gradcheck needs float64 arrays, got {got}; finite differences in float32 "
                f"are meaningless: pass x.astype(np.float64) and call module.astype(np.float64)"
            )


def check_params(loss, arrays, grads, h=1e-5, rtol=1e-6, atol=1e-8):
    """Check claimed gradients ``grads[name]`` of the scalar ``loss()`` with respect
    to each array ``arrays[name]`` (which ``loss`` must read, and which are perturbed
    in place and restored)."""
    _check_steps(h, rtol, atol)
    _require_float64(arrays)
    missing = set(arrays) - set(grads)
    if missing:
        raise ValueError(f"grads: expected a gradient for every array, missing {sorted(missing)}")
    return GradcheckResult(
        {name: compare(np.asarray(grads[name]), numerical_gradient(loss, a, h), rtol, atol) for name, a in arrays.items()}
    )


def check_function(f, x, grad, h=1e-5, rtol=1e-6, atol=1e-8):
    """Check that ``grad`` is the gradient of the scalar function ``f`` at ``x``."""
    return check_params(lambda: float(f(x)), {"x": x}, {"x": grad}, h, rtol, atol)


def check_module(module, x, dy=None, rng=0, h=1e-5, rtol=1e-6, atol=1e-8):
    """Check a module's backward: input gradient and every parameter gradient of
    ``L = sum(module.forward(x) * dy)``, with ``dy`` standard normal unless given."""
    _check_steps(h, rtol, atol)
    _require_float64({"x": x, **module.params})
    y = module.forward(x)
    if dy is None:
        dy = np.random.default_rng(rng).standard_normal(y.shape)
    module.zero_grad()
    module.forward(x)
    analytic = {"x": module.backward(dy), **{k: g.copy() for k, g in module.grads.items()}}
    return check_params(lambda: float(np.sum(module.forward(x) * dy)), {"x": x, **module.params}, analytic, h, rtol, atol)
