"""Numba CPU backend: the reference's ops with the same signatures, selected by
``npvae.kernels.use("numba")`` or ``NPVAE_BACKEND=numba``.

Where the time goes and what this backend does about it (figures from
``benchmarks/kernels.py`` and ``benchmarks/mlp_vae.py`` on the README's 2-core machine):

* Convolutions are im2col + one BLAS product, as in the reference, but channels-last
  inside, where a receptive field is kh runs of kw*C consecutive numbers: im2col
  copies runs and col2im adds runs (conv2's 12.8 MB of fields in 0.8 ms, against
  2.4 ms for a gather through index tables), reading and writing the unpadded image.
  Conv outputs keep channels-last memory under their NCHW shape, so the next layer and
  the backward pass read them without a transposing copy (``benchmarks/conv_vae.py``:
  47 -> 33 ms per conv-VAE step).
* Matrix products stay in BLAS. A hand-tiled Numba matmul reaches about a third of
  BLAS on these shapes (shared/BENCHMARKING.md: 48-62 against 139-177 GFLOP/s on
  128x784 @ 784x400). The kernels call NumPy's own OpenBLAS gemm themselves, so a
  dense layer's forward or backward is one call, with its activation (or its
  derivative) inside, except that the forward leaves f of tanh, sigmoid, softplus and
  ELU to a pass of its own (tanh's is NumPy's, see below). Weight gradients accumulate
  with beta = 1, small batches take a faster route to ``dx``, and the first layer
  skips ``dx`` (its input is data). Batches of at most 32 rows run their products on
  one BLAS thread, which keeps a small step's data in one core's cache
  (:data:`SERIAL_ROWS`: an IWAE-net step at batch 20 took 1.06 ms steadily, against
  1.0-2.4 ms on two threads).
* What NumPy cannot do is fuse: ``x @ W + b``, ``dy * (1 - y * y)``, Adam's ten
  operators, the Bernoulli log-likelihood and its gradient each make several passes
  over memory and a temporary per operator. Here each is one loop.
* Numba has no vectorised exp/log/tanh here (no Intel SVML), so a scalar libm call
  costs 5-15 ns per element, where NumPy's SIMD ufuncs take under 1 ns. The
  kernels therefore take ``exp``/``log1p``/``tanh`` from NumPy's ufuncs (into
  preallocated buffers) and fuse everything around them; only the float32 Bernoulli
  kernel, the hottest, computes its own exp and log1p with polynomials that vectorise.
* The loops are serial and compiled with ``error_model="numpy"`` (a division does
  not test for zero, so LLVM can vectorise the loop) and fast-math flags that allow
  reassociation and FMA but keep NaN and inf semantics. With ``parallel=True``
  Numba's worker threads and OpenBLAS's (which spin for a while after each product)
  fought over the 2 cores: an epoch of the 784-400-20 VAE took 10x longer.

Every kernel is compiled with ``cache=True``, so only the first run on a machine pays
the compilation; each is tested against ``reference.py``.

One module per concern, the same names as the CUDA backend's: ``dense``,
``activations``, ``conv``, ``elbo``, ``optim``, ``arrays``.
"""

from ..reference import LOG_2PI, conv_output_size, matmul  # noqa: F401  (ops taken as they are)
from .activations import KINDS, activation_backward, activation_forward, all_finite  # noqa: F401
from .arrays import (  # noqa: F401
    binarize, clear, clear_all, concat_columns, pack, scale_rows, standard_normal, take_rows, to_device,
)
from .conv import (  # noqa: F401
    col2im, conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward, im2col,
)
from .dense import linear_backward, linear_forward  # noqa: F401
from .elbo import (  # noqa: F401
    bernoulli_log_prob, bernoulli_log_prob_grad, gaussian_log_prob_grad, log_pz_minus_log_qz, mae_penalty,
    reparameterize_kl, reparameterize_kl_backward,
)
from .optim import adam_update  # noqa: F401
