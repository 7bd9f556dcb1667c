"""Compute kernels behind npvae's layers (installed as ``npvae.kernels``).

The layers never call NumPy for their heavy lifting directly: they call
``kernels.ops.<op>(...)``, and ``ops`` is whichever backend module was chosen
with :func:`use` (or the ``NPVAE_BACKEND`` environment variable at import).

``reference/`` is the readable specification of every op in plain NumPy, its op
table ``reference.OPS``; ``cpu/`` (Numba) and ``cuda/`` (numba-cuda) implement the same
ops with the same signatures, each op in the module of the same name in all three
(``dense``, ``activations``, ``conv``, ``elbo``, ``optim``, ``arrays``), and one test
suite (``tests/test_backends.py``) holds every backend to the reference.
"""

import importlib
import os
import warnings

import numpy as np

# name -> module implementing the ops.
BACKENDS = {"numpy": "npvae.kernels.reference", "numba": "npvae.kernels.cpu", "cuda": "npvae.kernels.cuda"}

ops = None  # the active backend module, set by use()
backend = None  # its name


def use(name):
    """Select the backend ``name`` (one of ``BACKENDS``) for every later op call.
    "cuda" raises ImportError without numba-cuda and RuntimeError without a GPU (set
    ``NUMBA_ENABLE_CUDASIM=1`` to run it in numba-cuda's simulator)."""
    global ops, backend
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got {name!r}")
    ops = importlib.import_module(BACKENDS[name])
    backend = name
    return ops


def is_device(a):
    """Whether ``a`` is a device array (numba-cuda's, the simulator's included), on any backend."""
    return hasattr(a, "copy_to_host")


# What the CUDA backend has asked of the device since the counts were last zeroed: kernel
# launches, new device arrays, and the transfers that make the host wait for the GPU
# (a copy back, or a copy up from pageable memory). The other backends leave them at 0.
# The tests hold a steady training step to its budget of each; the benchmarks print them.
COUNTS = {"launches": 0, "allocations": 0, "syncs": 0}


def zero_counts():
    for key in COUNTS:
        COUNTS[key] = 0


def to_host(a):
    """``a`` as a NumPy array: a device array copied back (a synchronisation, counted),
    anything else ``np.asarray``'d."""
    if not is_device(a):
        return np.asarray(a)
    COUNTS["syncs"] += 1
    return a.copy_to_host()


use("numpy")
if os.environ.get("NPVAE_BACKEND", "numpy") != "numpy":
    try:
        use(os.environ["NPVAE_BACKEND"])
    except (ValueError, ImportError, RuntimeError) as e:
        # An import must not fail on a variable: say so and keep NumPy (the CLI refuses it).
        warnings.warn(f"NPVAE_BACKEND: {e}; using the numpy backend", RuntimeWarning, stacklevel=2)
