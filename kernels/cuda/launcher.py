"""How this backend launches a kernel: numba-cuda's own launch, or a thinner path that
works out once what numba-cuda works out on every call.

``kernel[grid, block](*args)`` makes, on every call, a launch configuration (and a
stream object for it), finds each argument's numba type and the compiled overload for
them, converts each argument through numba-cuda's extension hooks into the flat list the
kernel's parameters take (an array is its meminfo and parent, 0 and 0, then its size,
item size, data pointer, shape and strides in bytes), and makes a ``cuda.core``
``LaunchConfig``. The thin path keeps, per kernel, launch size and argument types, the
compiled function, the ``LaunchConfig``, the stream and one converter per parameter; a
call then reads each array's pointer, shape and strides and calls ``cuda.core.launch``.

It reads numba-cuda internals (a kernel's ``overloads``, a compiled kernel's
``argument_types`` and code library, ``_Kernel._prepare_args``), which change between
versions. So it is on only for the numba-cuda versions in ``PINNED`` (the ``cuda``
extra installs the first), never in the simulator (which has a launcher of its own),
and each new key is checked: its first launch goes the plain way (compiling if needed),
then the converters must give exactly the list numba-cuda's ``_prepare_args`` gives for
those arguments; where they do not, or anything read is missing, or an argument is not
a numba-cuda device array or a plain scalar, that launch goes the plain way.
``use_thin(False)`` sends every launch the plain way.
"""

import ctypes
import functools

import numpy as np
from numba import config

PINNED = ("0.30.4",)


def _version():
    try:
        import numba_cuda
        return numba_cuda.__version__
    except (ImportError, AttributeError):  # pragma: no cover - depends on the install
        return None


AVAILABLE = not config.ENABLE_CUDASIM and _version() in PINNED
if AVAILABLE:
    from cuda.core import launch as _core_launch
_thin = AVAILABLE
_prepared = {}  # (kernel, grid, block, argument keys) -> (function, LaunchConfig, stream, converters) or False


def use_thin(on):
    """Launch through the thin path (where ``AVAILABLE``) or always the plain way; returns
    the previous setting. The prepared keys are kept."""
    global _thin
    if not isinstance(on, bool):
        raise TypeError(f"on: expected a bool, got {type(on).__name__}")
    previous, _thin = _thin, on and AVAILABLE
    return previous


def configure(kernel, grid, block):
    """What ``kernel[grid, block]`` is: a callable taking the kernel's arguments."""
    if _thin:
        return functools.partial(_launch, kernel, grid, block)
    return kernel[grid, block]


def stats():
    """How many keys launch the thin way and how many the plain way (after a failed check)."""
    thin = sum(1 for p in _prepared.values() if p)
    return {"thin": thin, "plain": len(_prepared) - thin}


class _Plain(Exception):
    """An argument the thin path leaves to numba-cuda."""


def argument_key(a):
    """What selects ``a``'s compiled overload. A device array: its dtype, dimensions and
    layout by numba-cuda's rule (C if C-contiguous, else F if F-contiguous, else A; its
    flags call a zero stride neither), read from its flags rather than from its
    ``_numba_type_``, which is built once per array object and costs more than the rest
    of a launch when the array is a view made for the call. A scalar: its type (a Python
    int is int64 in int64's range, uint64 past it: only the first is taken)."""
    if getattr(a, "__cuda_memory__", False):
        flags = a.flags
        return a.dtype, a.ndim, "C" if flags["C_CONTIGUOUS"] else "F" if flags["F_CONTIGUOUS"] else "A"
    kind = type(a)
    if kind is int:
        if -(2**63) <= a < 2**63:
            return int
    elif kind is float or kind is bool or isinstance(a, np.generic):
        return kind
    raise _Plain


def _launch(kernel, grid, block, *args):
    try:
        key = (kernel, grid, block, *map(argument_key, args))
    except _Plain:
        kernel[grid, block](*args)
        return
    prepared = _prepared.get(key)
    if prepared:
        function, launch_config, stream, converters = prepared
        packed = [value for convert, a in zip(converters, args) for value in convert(a)]
        _core_launch(stream, launch_config, function, *packed)
        return
    kernel[grid, block](*args)  # a new key (compiled here if need be), or one that failed its check
    if prepared is None:
        _prepared[key] = prepare(kernel, grid, block, args) or False


# ------------------------------------------------------------------ converters
def array_parameters(a):
    """A device array as the kernel's parameters: meminfo and parent (none: 0, 0), size,
    item size, data pointer, shape, strides in bytes."""
    return (0, 0, a.size, a.dtype.itemsize, a.device_ctypes_pointer.value, *a.shape, *a.strides)


def converter(numba_type):
    """The function from an argument of ``numba_type`` to its parameters, or None where
    the thin path leaves the type to numba-cuda (records, tuples, complex, half)."""
    from numba.cuda import types

    if isinstance(numba_type, types.Array):
        return array_parameters
    if isinstance(numba_type, types.Integer):
        c_type = getattr(ctypes, f"c_{numba_type}")
        return lambda v: (c_type(v),)
    c_type = {types.float32: ctypes.c_float, types.float64: ctypes.c_double}.get(numba_type)
    if c_type is not None:
        return lambda v: (c_type(v),)
    if numba_type == types.boolean:
        return lambda v: (v,)
    return None


def comparable(parameters):
    """Parameters as (type name, value) pairs: a ctypes scalar compares by identity."""
    return [(type(p).__name__, getattr(p, "value", p)) for p in parameters]


def prepare(kernel, grid, block, args):
    """What the thin path keeps for launching ``kernel[grid, block]`` on arguments like
    ``args`` (after one plain launch of them, so their overload is compiled), or None
    where its converters do not give numba-cuda's own parameters or anything differs."""
    try:
        configured = kernel[grid, block]
        if configured.pre_launch_callbacks or kernel._select_launch_config_dispatcher(configured) is not kernel:
            return None
        if kernel.specialized:
            compiled = next(iter(kernel.overloads.values()))
        else:
            compiled = kernel.overloads[tuple(kernel.typeof_pyval(a) for a in args)]
        if compiled.debug or compiled.cooperative:
            return None
        converters = tuple(converter(t) for t in compiled.argument_types)
        if None in converters or len(converters) != len(args):
            return None
        theirs = []
        for numba_type, a in zip(compiled.argument_types, args):
            compiled._prepare_args(numba_type, a, configured.stream, [], theirs)
        ours = [value for convert, a in zip(converters, args) for value in convert(a)]
        if comparable(ours) != comparable(theirs):
            return None
        from cuda.core import LaunchConfig

        launch_config = LaunchConfig(grid=configured.griddim, block=configured.blockdim,
                                     shmem_size=configured.sharedmem)
        return compiled._codelibrary.get_cufunc().kernel, launch_config, configured.stream, converters
    except Exception:  # noqa: BLE001  (internals that differ: this key launches the plain way)
        return None
