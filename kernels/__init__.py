"""Compute kernels behind npvae's layers (installed as ``npvae.kernels``).

The layers never call NumPy for their heavy lifting directly: they call
``kernels.ops.<op>(...)``, and ``ops`` is whichever backend module was chosen
with :func:`use` (or the ``NPVAE_BACKEND`` environment variable at import).

``reference.py`` is the readable specification of every op in plain NumPy; the
other backends implement the same signatures and are tested against it.
"""

import importlib
import os

# name -> module implementing the ops.
BACKENDS = {"numpy": "npvae.kernels.reference", "numba": "npvae.kernels.cpu", "cuda": "npvae.kernels.cuda"}

ops = None  # the active backend module, set by use()
backend = None  # its name


def use(name):
    """Select the backend ``name`` (one of ``BACKENDS``) for every later op call."""
    global ops, backend
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got {name!r}")
    ops = importlib.import_module(BACKENDS[name])
    backend = name
    return ops


use(os.environ.get("NPVAE_BACKEND", "numpy"))
