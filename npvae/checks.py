"""Input checks shared by every public entry point.

Each raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape,
NaN/inf, out of range) with a message naming the argument, what was expected and
what was given.
"""

import numpy as np

from . import kernels

FLOAT_DTYPES = (np.float32, np.float64)


def check_array(x, name, shape=None, dtype=None, finite=True):
    """Check that ``x`` is a float32/float64 ndarray and return it.

    A device array of the CUDA backend passes with its shape and dtype checked and
    its values not (``fit`` checks the data before it uploads it).

    shape: expected shape, ``None`` entries match any length (``(None, 784)``).
    dtype: if given, the one dtype accepted (the layer's parameter dtype).
    finite: reject NaN and inf.
    """
    device = kernels.is_device(x)  # the CUDA backend's: its values stay unread (reading them waits for the GPU)
    if not (isinstance(x, np.ndarray) or device):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {np.dtype(dtype)} (the parameters' dtype), got {x.dtype}; "
            f"cast the input with .astype() or the module with .astype()"
        )
    if shape is not None and (x.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, x.shape))):
        pretty = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        if x.ndim != len(shape):
            raise ValueError(f"{name}: expected a {len(shape)}-D array of shape {pretty}, got shape {x.shape}")
        raise ValueError(f"{name}: expected shape {pretty}, got {x.shape}")
    if finite and not device and not kernels.ops.all_finite(x):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return x


def check_unit_interval(x, name, purpose):
    """Check that the float array ``x`` lies in [0, 1] (``purpose`` says why) and return it."""
    check_array(x, name)
    if x.size and not kernels.is_device(x) and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: expected values in [0, 1] {purpose}, got range [{x.min()}, {x.max()}]")
    return x


def check_positive_int(value, name, minimum=1):
    """``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(value, name, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds (open or closed), else a
    ValueError naming ``name``, the interval and the value."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else None
    if ok and np.isfinite(v):
        ok = (low is None or (v > low if low_open else v >= low)) and (high is None or (v < high if high_open else v <= high))
    else:
        ok = False
    if not ok:
        interval = f"{'(' if low_open else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}" \
                   f"{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return v


def check_float_dtype(dtype, name="dtype"):
    """``dtype`` as a ``np.dtype``, float32 or float64 (what every kernel computes in)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.type not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}")
    return dt


def as_rng(rng):
    """A ``np.random.Generator`` from ``None`` (fresh entropy), an int seed or a Generator."""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng: expected a seed >= 0 (or a numpy.random.Generator), got {rng}")
        return np.random.default_rng(rng)
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")
