"""CUDA backend (numba-cuda): the reference's ops with the same signatures, selected by
``npvae.kernels.use("cuda")`` or ``NPVAE_BACKEND=cuda``; ``pip install -e '.[cuda]'``
brings numba-cuda. ``NUMBA_ENABLE_CUDASIM=1`` runs every kernel in numba-cuda's
simulator on the CPU (slowly: the tests use tiny shapes).

One module per concern, the same names as the Numba CPU backend's:

* ``dense``: the dense layer's forward and backward, each one or two products; a
  Bayesian layer's local noise and its weights' KL.
* ``activations``: elementwise activations, the finite check, column sums.
* ``conv``: im2col / col2im and the convolution ops on the product (masked ones
  too), a PixelCNN's per-example bias maps, label planes.
* ``elbo``: reparameterisation with the KL, the log-ratios (to N(0, I) and to a prior
  per sample), the Bernoulli and Gaussian likelihoods, the batch means, the running
  log-sum-exp, the MAE regulariser.
* ``optim``: Adam; clipping and scaling every gradient at once.
* ``arrays``: moving arrays between host and device, launches and the counts,
  workspaces; the models' array ops (rows, columns, sums, noise).

and, this backend's own, ``gemm``: the tiled matrix product, generated as source per
tile and variant, with the bias and activation in its epilogue, dy * f'(h) read on
load, the bias gradient as a row of ones, and split K; ``counters``: the kernels of the
device's counter-based noise; ``launcher``: how a kernel is launched (on a GPU, a thin
path that prepares once per kernel and argument types what numba-cuda works out on
every launch).

Every op takes NumPy arrays or device arrays: given device arrays its results stay on
the device; given NumPy arrays it copies them up and its results back. A model moved
with ``model.to_device()`` (``fit`` does it) holds its parameters and gradients as
views of one device buffer each (``arrays.pack``); its minibatches (slices of the
epoch's rows, gathered once), noise and activations stay on the device, in workspaces
that keep them from one step to the next (``arrays.workspace``: a steady step makes no
new device array), and the step's only read is the three batch means of its terms
(``elbo.batch_means``), after the update is queued. ``npvae.kernels.COUNTS`` counts the
launches, new device arrays and synchronisations. A model that keeps NumPy arrays
still trains on this backend, paying one round trip per op.
"""

try:
    from numba import cuda
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("backend cuda: numba-cuda is not installed; pip install -e '.[cuda]'") from e

if not cuda.is_available():
    raise RuntimeError("backend cuda: no CUDA GPU is available (numba.cuda.is_available() is False); "
                       "use backend 'numba' or 'numpy', or set NUMBA_ENABLE_CUDASIM=1 for the simulator")

from .activations import activation_backward, activation_forward, add_column_sums, all_finite  # noqa: E402,F401
from .arrays import (  # noqa: E402,F401
    add, binarize, clear, clear_all, concat_columns, is_device, pack, repeat_rows, scale_rows, standard_normal,
    take_columns, take_rows, to_device, to_host, workspace,
)
from .conv import (  # noqa: E402,F401
    col2im, conv2d_backward, conv2d_forward, conv_output_size, conv_transpose2d_backward, conv_transpose2d_forward,
    im2col, masked_conv2d_backward, masked_conv2d_forward, add_channel_bias, append_channels, channel_sums,
)
from .dense import (  # noqa: E402,F401
    gaussian_weight_kl, linear_backward, linear_forward, local_reparam_backward, local_reparam_forward, matmul,
)
from .elbo import (  # noqa: E402,F401
    batch_means, bernoulli_log_prob, bernoulli_log_prob_grad, gaussian_log_prob_grad, log_pz_minus_log_qz,
    log_pz_minus_log_qz_backward, log_prior_minus_log_qz, log_prior_minus_log_qz_backward, log_sum_exp_rows,
    mae_penalty, reparameterize_kl, reparameterize_kl_backward,
)
from .optim import adam_update, add_scaled, clip_all, scale_all, squared_norm  # noqa: E402,F401
