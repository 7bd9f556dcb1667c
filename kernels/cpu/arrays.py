"""What every module of the Numba CPU backend shares: the compile options, the test
for calls left to the reference, and array layouts; and the reference's array ops,
which are NumPy already."""

import numpy as np

from ..reference.arrays import (  # noqa: F401  (taken as they are)
    add, binarize, clear, clear_all, concat_columns, pack, repeat_rows, scale_rows, standard_normal,
    take_columns, take_rows, to_device, workspace,
)

# Compile options of every loop: no ZeroDivisionError checks (they stop
# vectorisation) and the fast-math flags that keep NaN/inf semantics.
JIT = dict(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "reassoc"})


REALS = (np.dtype(np.float32), np.dtype(np.float64))


def mixed(*arrays):
    """Whether the arrays' dtypes differ or are not float32/64: such calls go to the
    reference, whose NumPy promotes them (these kernels' outputs take one input's dtype)."""
    return arrays[0].dtype not in REALS or any(a.dtype != arrays[0].dtype for a in arrays)


def flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def channels_last(a):
    """Whether ``a`` is an image batch laid out channels-last, as this backend's conv outputs are."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous

