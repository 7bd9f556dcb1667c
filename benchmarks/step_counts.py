"""What one steady training step asks of the GPU, counted by the CUDA backend
(``npvae.kernels.COUNTS``): kernel launches, new device arrays, synchronisations, and
the new device array objects (views, ``arrays_made``); with how many of the kernels'
launch keys go the thin and the plain way (launcher.py; on a GPU). The counts depend on
the network's topology, not its widths, so this runs small networks of the 784-400-20
VAE's, the IWAE net's, the two-layer IWAE net's and ``VAE.conv``'s shapes, in
numba-cuda's simulator when no GPU is there. One JSON line per network and setting:

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/step_counts.py
"""

import json
import warnings

import numpy as np

import npvae
from npvae.models import VAE, TwoLayerVAE
from npvae.train import fit

NETWORKS = {"784-400-20": lambda: VAE.mlp(12, (8,), 3, "relu", "bernoulli", rng=0),
            "iwae_net": lambda: VAE.mlp(12, (8, 8), 3, "tanh", "bernoulli", rng=0),
            "iwae_two_layer_net": lambda: TwoLayerVAE.mlp(12, (8, 8), 3, (8, 8), 2, "tanh", "bernoulli", rng=0),
            "conv_vae": lambda: VAE.conv((1, 8, 8), (2, 4), 4, 3, "relu", "bernoulli", rng=0)}


VIEWS = [0]


def count_views():
    """Count every new device array object in ``VIEWS`` (a steady step allocates no
    memory, so these are views: each costs the host a Python object of numba-cuda's
    and, at its first launch, its numba type), by wrapping the array class's
    ``__init__``: the simulator's or numba-cuda's."""
    from numba import config

    if config.ENABLE_CUDASIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as array_class
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArrayBase as array_class
    init = array_class.__init__

    def counted(self, *args, **kwargs):
        VIEWS[0] += 1
        init(self, *args, **kwargs)

    array_class.__init__ = counted


def counts(build, binarize):
    """The counts of the first and of a steady step of ``fit``, from one
    ``loss_and_grad`` call to the next (so the update and the loss's read are inside)."""
    model, marks = build(), []
    x = (np.random.default_rng(0).random((16, *model.data_shape)) < 0.3).astype(np.float32)
    loss_and_grad = model.loss_and_grad

    def counted(*args, **kwargs):
        marks.append({**npvae.kernels.COUNTS, "arrays_made": VIEWS[0]})
        return loss_and_grad(*args, **kwargs)

    model.loss_and_grad = counted
    fit(model, x, epochs=1, batch_size=4, log=None, binarize=binarize)
    steps = [{k: b[k] - a[k] for k in a} for a, b in zip(marks, marks[1:])]
    return steps[0], steps[-1]


def main():
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)  # the simulator's hash wraps, as meant
    npvae.kernels.use("cuda")
    count_views()
    from npvae.kernels.cuda import launcher  # the keys launching the thin and the plain way (on a GPU)
    for name, build in NETWORKS.items():
        for binarize in (False, True):
            first, steady = counts(build, binarize)
            print(json.dumps({"bench": "step_counts", "network": name, "binarize": binarize, "first_step": first,
                              "steady_step": steady, "launch_keys": launcher.stats()}))


if __name__ == "__main__":
    main()
