"""The host's work in preparing one CUDA launch, numba-cuda's own path against the
backend's thin path (kernels/cuda/launcher.py), without a GPU: both sides stop short of
the driver call they share (``cuda.core.launch``). numba-cuda's side is the part of
``kernel[grid, block](*args)`` written in Python: the launch configuration, each
argument's numba type (``typeof_pyval``, which its C dispatcher calls for a device
array), the conversion of each (``_Kernel._prepare_args``) and the ``LaunchConfig``; it
leaves out the C dispatcher's overload lookup, so it is a floor of that side. The thin
side is the backend's launch itself, its key already prepared, with ``cuda.core.launch``
replaced by a function that returns. The arrays are numba-cuda's own device arrays over
made-up addresses (nothing is launched), the same objects every call or, with
``--fresh``, new ones every call (as the backend's views of a workspace array are).

    python benchmarks/launch_host.py [--repeats 3] [--arrays 1,4,8] [--fresh]

One JSON line per argument count: microseconds per launch of each side and their ratio.
"""

import common

threads = common.setup_threads()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # numba-cuda's real launch classes, not the simulator's
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402

from test_launcher import device_array, load_launcher  # noqa: E402  (arrays without a GPU; launcher.py alone)


def sides(launcher, kernel, n):
    """numba-cuda's side and the thin side, each a function of the argument list."""
    from cuda.core import LaunchConfig
    from numba.cuda.dispatcher import _Kernel

    numbas = _Kernel.__new__(_Kernel)  # its conversion, on no compiled code
    numbas.extensions = []

    def numba_cuda(args):
        configured = kernel[1, 32]
        types = [kernel.typeof_pyval(a) for a in args]
        packed = []
        for t, a in zip(types, args):
            numbas._prepare_args(t, a, configured.stream, [], packed)
        LaunchConfig(grid=configured.griddim, block=configured.blockdim, shmem_size=configured.sharedmem)

    sample = arrays(n)
    types = [kernel.typeof_pyval(a) for a in sample]
    key = (kernel, 1, 32, *map(launcher.argument_key, sample))
    launcher._prepared[key] = (None, LaunchConfig(grid=(1, 1, 1), block=(32, 1, 1), shmem_size=0), None,
                               tuple(launcher.converter(t) for t in types))
    launcher._core_launch = lambda *a: None

    def thin(args):
        launcher.configure(kernel, 1, 32)(*args)

    return {"numba_cuda": numba_cuda, "npvae_thin": thin}


def arrays(n):
    return [device_array((128, 400), (1600, 4), np.float32, address=(1 << 20) + (i << 20)) for i in range(n)]


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--arrays", default="1,4,8", help="array arguments per launch")
    parser.add_argument("--fresh", action="store_true", help="new array objects every call")
    parser.add_argument("--calls", type=int, default=2000, help="launches per timed run")
    args = common.parse(parser)
    warnings.simplefilter("ignore")  # numba-cuda's warning of a small grid, made once per configuration
    from numba import cuda

    launcher = load_launcher()
    if not launcher.AVAILABLE:
        raise SystemExit("the installed numba-cuda is not one of launcher.PINNED: the thin path is off")
    for n in map(int, args.arrays.split(",")):
        kernel = cuda.jit(lambda *a: None)
        fns = sides(launcher, kernel, n)
        same = arrays(n)
        calls = [arrays(n) if args.fresh else same for _ in range(args.calls)]
        seconds = {}
        for name, fn in fns.items():
            fn(same)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for call in calls:
                    fn(call)
                times.append(time.perf_counter() - t0)
                calls = [arrays(n) if args.fresh else same for _ in range(args.calls)]
            seconds[name] = common.median(times) / args.calls
        common.emit("launch_host", threads, arrays=n, fresh=args.fresh, calls=args.calls, repeats=args.repeats,
                    **{f"{k}_us": round(v * 1e6, 2) for k, v in seconds.items()},
                    ratio=round(seconds["npvae_thin"] / seconds["numba_cuda"], 3))


if __name__ == "__main__":
    main()
