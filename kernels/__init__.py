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


def to_host(a):
    """``a`` as a NumPy array: a device array copied back, anything else ``np.asarray``'d."""
    return a.copy_to_host() if is_device(a) else np.asarray(a)


use("numpy")
if os.environ.get("NPVAE_BACKEND", "numpy") != "numpy":
    try:
        use(os.environ["NPVAE_BACKEND"])
    except (ValueError, ImportError, RuntimeError) as e:
        # An import must not fail on a variable: say so and keep NumPy (the CLI refuses it).
        warnings.warn(f"NPVAE_BACKEND: {e}; using the numpy backend", RuntimeWarning, stacklevel=2)
