"""Numba CPU backend: the reference's ops with the same signatures, selected by
``npvae.kernels.use("numba")`` or ``NPVAE_BACKEND=numba``.

What this backend does, and why (the measurements behind each choice, with their
commands, are in ``benchmarks/README.md``, "Why the CPU kernels are shaped as they are"):

* Convolutions are im2col + one BLAS product, as in the reference, but channels-last
  inside, where a receptive field is kh runs of kw*C consecutive numbers, so im2col
  copies runs and col2im adds runs, reading and writing the unpadded image. Conv
  outputs keep channels-last memory under their NCHW shape, so the next layer and the
  backward pass read them without a transposing copy.
* Matrix products stay in BLAS, which a hand-tiled Numba product does not approach.
  The kernels call NumPy's own OpenBLAS gemm themselves, so a dense layer's forward or
  backward is one call with its activation (or its derivative) around it. Weight
  gradients accumulate with beta = 1, and the first layer skips ``dx`` (its input is
  data). Batches of at most :data:`SERIAL_ROWS` rows run their products on one BLAS
  thread, which keeps a small step's data in one core's cache.
* What NumPy cannot do is fuse: ``x @ W + b``, ``dy * (1 - y * y)``, Adam's ten
  operators, the Bernoulli log-likelihood and its gradient each make several passes
  over memory and a temporary per operator. Here each is one loop.
* Numba has no vectorised exp/log/tanh here (no Intel SVML), and a scalar libm call
  per element is far slower than NumPy's SIMD ufuncs; so the kernels take
  ``exp``/``log1p``/``tanh`` from NumPy's ufuncs (into preallocated buffers) and fuse
  everything around them. Only the float32 Bernoulli kernel, the hottest, computes its
  own exp and log1p with polynomials that vectorise.
* The loops are serial and compiled with ``error_model="numpy"`` (a division does not
  test for zero, so LLVM can vectorise the loop) and fast-math flags that allow
  reassociation and FMA but keep NaN and inf semantics. With ``parallel=True``,
  Numba's worker threads and OpenBLAS's would compete for the same cores.

Every kernel is compiled with ``cache=True``, so only the first run on a machine pays
the compilation; each is tested against the reference.

One module per concern, the same names as the CUDA backend's: ``dense``,
``activations``, ``conv``, ``elbo``, ``optim``, ``arrays``.
"""

from .activations import KINDS, activation_backward, activation_forward, add_column_sums, all_finite  # noqa: F401
from .arrays import (  # noqa: F401
    add, binarize, clear, clear_all, concat_columns, pack, repeat_rows, scale_rows, standard_normal,
    take_columns, take_rows, to_device, workspace,
)
from .conv import (  # noqa: F401
    col2im, conv2d_backward, conv2d_forward, conv_output_size, conv_transpose2d_backward, conv_transpose2d_forward,
    im2col, masked_conv2d_backward, masked_conv2d_forward, add_channel_bias, append_channels, channel_sums,
)
from .dense import (  # noqa: F401
    gaussian_weight_kl, linear_backward, linear_forward, local_reparam_backward, local_reparam_forward, matmul,
)
from .elbo import (  # noqa: F401
    batch_means, bernoulli_log_prob, bernoulli_log_prob_grad, gaussian_log_prob_grad, log_pz_minus_log_qz,
    log_pz_minus_log_qz_backward, log_prior_minus_log_qz, log_prior_minus_log_qz_backward, log_sum_exp_rows,
    mae_penalty, reparameterize_kl, reparameterize_kl_backward,
)
from .optim import adam_update, add_scaled, clip_all, scale_all, squared_norm  # noqa: F401
