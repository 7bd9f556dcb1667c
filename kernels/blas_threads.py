"""Running one BLAS product on a single thread, for the products OpenBLAS threads badly.

With 2 threads, NumPy's OpenBLAS (0.3.31) takes 240-300 us for the weight gradient
``x.T @ dy`` of a 784-200 layer at batch 20 (784x20 @ 20x200), and 75 us on one
thread: with an inner dimension that short each thread's share is a few microseconds
of work and the hand-over costs more. ``benchmarks/kernels.py`` prints both timings.

OpenBLAS's thread count is a process-wide setting, set here through its C entry point
``openblas_set_num_threads_local`` (it returns the previous count, which is put back
afterwards) in the library NumPy loaded. Where NumPy uses another BLAS, or the
process map cannot be read, :func:`one_thread` changes nothing.
"""

import contextlib
import ctypes


def _find_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` from the library this process loaded, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


_set_threads = None  # looked up on first use, after NumPy has loaded its BLAS


@contextlib.contextmanager
def one_thread():
    """BLAS products inside the block run on one thread."""
    global _set_threads
    if _set_threads is None:
        _set_threads = _find_setter() or (lambda n: n)
    previous = _set_threads(1)
    try:
        yield
    finally:
        _set_threads(previous)
