"""The CUDA backend's thin launch path (kernels/cuda/launcher.py) held to numba-cuda's own
argument conversion (``_Kernel._prepare_args`` of the installed numba-cuda).

The simulator replaces numba-cuda's launch classes, so the check runs in a process of its
own outside it, where no GPU is needed as long as nothing is compiled or launched: device
arrays are numba-cuda's own over a made-up address, and the compiled overload, its
function handle and the two launches (numba-cuda's and ``cuda.core``'s) are stood in for.
On a GPU (NPVAE_TEST_GPU=1) every CUDA test launches through the thin path, and
test_device_training.py holds a fit through it to one launched the plain way, bit for bit.
"""

import ctypes
import functools
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest


def test_the_thin_launch_path_gives_numba_cudas_own_parameters():
    if os.environ.get("NPVAE_TEST_GPU") == "1":
        pytest.skip("outside the simulator only where there is no GPU (on a GPU the CUDA tests run the path itself)")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_the_simulator_launches_the_plain_way():
    import npvae.kernels.cuda.launcher as launcher

    assert launcher.AVAILABLE is False  # the simulator's kernels have a launcher of their own
    with pytest.raises(TypeError, match="on: expected a bool, got str"):
        launcher.use_thin("yes")


# ------------------------------------------------------- run outside the simulator
class Memory:
    """What a device array reads of its allocation: the address."""

    def __init__(self, address):
        self.device_ctypes_pointer = ctypes.c_void_p(address)


def device_array(shape, strides, dtype, address=1 << 20):
    """numba-cuda's device array over a made-up address (nothing allocated)."""
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape, strides, dtype, gpu_data=Memory(address))


def load_launcher():
    """kernels/cuda/launcher.py by itself (the package refuses to import without a GPU)."""
    import npvae.kernels

    path = pathlib.Path(npvae.kernels.__file__).parent / "cuda" / "launcher.py"
    spec = importlib.util.spec_from_file_location("launcher", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    from numba.cuda.dispatcher import _Kernel
    from numba.cuda.typing.typeof import Purpose, typeof

    launcher = load_launcher()
    assert launcher.AVAILABLE, "the installed numba-cuda is not in launcher.PINNED: pin the cuda extra to it"
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    arrays = [device_array((3, 4), (16, 4), f32), device_array((3, 4), (8, 24), f64),  # C, F
              device_array((3, 4), (64, 8), f32), device_array((5,), (8,), f64),  # strided (A), 1-d (C and F)
              device_array((2, 3, 4), (4, 8, 24), f32), device_array((2, 3, 4), (48, 16, 4), np.int64),
              device_array((6,), (0,), f64), device_array((1, 4), (0, 4), f32),  # broadcast: A, not C
              device_array((1, 4), (64, 4), f32), device_array((3, 1), (4, 4), f32)]  # a dimension of 1
    scalars = [0, -5, 2**62, -(2**63), 1.5, True, np.float32(0.25), np.float64(-2.0), np.uint64(2**63 + 7),
               np.int32(-3), np.bool_(False)]
    stream = object()  # read by numba-cuda only to copy host arrays, which these are not
    numbas = _Kernel.__new__(_Kernel)
    numbas.extensions = []

    # A key names one numba type: an array's is its dtype, dimensions and layout as
    # numba-cuda types it; a scalar's type gives one numba type whatever its value.
    from numba.cuda.np.numpy_support import from_dtype
    from numba.cuda import types

    for a in arrays:
        dtype, ndim, layout = launcher.argument_key(a)
        assert types.Array(from_dtype(dtype), ndim, layout) == typeof(a, Purpose.argument), (a.strides, layout)
    for kind in {type(v) for v in scalars}:
        assert len({typeof(v, Purpose.argument) for v in scalars if type(v) is kind}) == 1, kind
        assert {launcher.argument_key(v) for v in scalars if type(v) is kind} == {kind}
    # Each argument's parameters as numba-cuda converts it.
    for a in arrays + scalars:
        t = typeof(a, Purpose.argument)
        theirs = []
        numbas._prepare_args(t, a, stream, [], theirs)
        ours = launcher.converter(t)(a)
        assert launcher.comparable(ours) == launcher.comparable(theirs), (t, ours, theirs)
    for refused in (2**63, np.zeros(3), [1.0], 1 + 2j):
        try:
            launcher.argument_key(refused)
            raise AssertionError(f"{refused!r} was given a key")
        except launcher._Plain:
            pass

    # The path itself, with a stand-in kernel whose overload converts by numba-cuda's code.
    launches = []
    launcher._core_launch = lambda stream, config, function, *packed: launches.append(("thin", config, packed))

    class Compiled(_Kernel):
        def __init__(self, argument_types, extensions):
            self.extensions, self.debug, self.cooperative, self.types = list(extensions), False, False, argument_types

        argument_types = property(lambda self: self.types)

        class _codelibrary:
            get_cufunc = staticmethod(lambda: type("CuFunc", (), {"kernel": "function"}))

    class Kernel:
        specialized = False

        def __init__(self, extensions=()):
            self.overloads, self.extensions = {}, extensions

        def __getitem__(self, grid_block):
            kernel = self

            class Configured:
                griddim, blockdim, sharedmem = (grid_block[0], 1, 1), (grid_block[1], 1, 1), 0
                stream, pre_launch_callbacks = "stream", []

                def __call__(self, *args):
                    types = tuple(typeof(a, Purpose.argument) for a in args)
                    kernel.overloads.setdefault(types, Compiled(types, kernel.extensions))
                    launches.append(("plain", args))
            return Configured()

        def _select_launch_config_dispatcher(self, configured):
            return self

        typeof_pyval = staticmethod(lambda a: typeof(a, Purpose.argument))

    kernel = Kernel()
    x, y = arrays[0], arrays[2]
    launch = launcher.configure(kernel, 2, 32)
    launch(x, 1.5, 7)
    launch(y, 2.5, 8)  # float32 2-d as x, but strided (layout A): a key of its own
    launch(x, -1.5, 9)
    other_x = device_array((3, 4), (16, 4), f32, address=5 << 20)  # another array object of x's key
    launcher.configure(kernel, 2, 32)(other_x, 0.5, -1)
    launcher.configure(kernel, 2, 32)(np.zeros(3), 1.0, 1)  # a host array: numba-cuda copies it
    kinds = [entry[0] for entry in launches]
    assert kinds == ["plain", "plain", "thin", "thin", "plain"], kinds
    for (_, config, packed), args in ((launches[2], (x, -1.5, 9)), (launches[3], (other_x, 0.5, -1))):
        expected = []
        for a in args:
            numbas._prepare_args(typeof(a, Purpose.argument), a, stream, [], expected)
        assert launcher.comparable(packed) == launcher.comparable(expected)
        assert (config.grid, config.block, config.shmem_size) == ((2, 1, 1), (32, 1, 1), 0)
    assert launcher.stats() == {"thin": 2, "plain": 0}

    # A conversion that differs from numba-cuda's (here an extension of its own) keeps a key plain.
    class Doubling:
        def prepare_args(self, ty, val, stream, retr):
            return ty, val if hasattr(val, "shape") else val * 2

    launches.clear()
    other = Kernel(extensions=[Doubling()])
    for _ in range(2):
        launcher.configure(other, 1, 32)(x, 3.0, 4)
    assert [entry[0] for entry in launches] == ["plain", "plain"] and launcher.stats() == {"thin": 2, "plain": 1}
    assert launcher.use_thin(False) is True and not isinstance(launcher.configure(kernel, 2, 32), functools.partial)
    print("ok")


if __name__ == "__main__":
    main()
