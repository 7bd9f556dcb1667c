"""Moving arrays between the host and the GPU, and launch sizes.

Every op of this backend takes NumPy arrays or device arrays (numba-cuda's
``DeviceNDArray``, made by ``to_device``). Given device arrays it leaves its results on
the device; given NumPy arrays it copies them up, runs its kernels and copies the
results back (and, for the ops that update arrays in place, writes them back into
the caller's arrays), so a model that holds NumPy arrays runs unchanged on this
backend, one transfer per op.
"""

import numpy as np
from numba import cuda

THREADS = 256  # threads per block of the one-dimensional (elementwise) kernels


def is_device(a):
    """Whether ``a`` is a device array (the simulator's fake arrays count)."""
    return hasattr(a, "copy_to_host")


def to_device(a):
    """``a`` on the device: a device array as it is, a NumPy array copied (contiguous)."""
    return a if is_device(a) else cuda.to_device(np.ascontiguousarray(a))


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape, dtype):
    """A zeroed device array, filled on the device (no host copy)."""
    out = empty(shape, dtype)
    if out.size:
        fill[blocks(out.size), THREADS](out.reshape(-1), 0)
    return out


def to_host(a):
    """``a`` as a NumPy array (a copy from the device)."""
    return a.copy_to_host() if is_device(a) else a


def write_back(device, host):
    """After an in-place update on ``device`` (made from ``host`` by ``to_device``),
    copy it into the caller's array ``host``, unless that is on the device already."""
    if not is_device(host):
        host[...] = device.copy_to_host().reshape(host.shape)


def blocks(n, threads=THREADS):
    """Blocks of ``threads`` that cover ``n`` elements (at least one)."""
    return max(1, (n + threads - 1) // threads)


@cuda.jit
def fill(out, value):
    """One thread per element: out[i] = value."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = value


_REALS = (np.dtype(np.float32), np.dtype(np.float64))


def mixed(*arrays):
    """Whether the arrays' dtypes differ or are not float32/64: such calls (NumPy
    arrays only) go to the reference, whose NumPy promotes them."""
    return arrays[0].dtype not in _REALS or any(a.dtype != arrays[0].dtype for a in arrays)
