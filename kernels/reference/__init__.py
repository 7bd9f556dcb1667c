"""Plain-NumPy reference of every op the layers call: the readable specification.

Every other backend implements these signatures and is tested against them. Arrays
keep their dtype (float32 in, float32 out). One module per concern, the same names as
the Numba CPU backend's (``cpu/``) and the CUDA backend's (``cuda/``): ``dense``,
``activations``, ``conv``, ``elbo``, ``optim``, ``arrays``; an op is in the module of
the same name in each.
"""

from .activations import (  # noqa: F401
    all_finite, ACTIVATIONS, activation_forward, activation_backward, add_column_sums, OUTPUT_DERIVATIVES,
    check_joined_activation, activation_backward_from_output,
)
from .arrays import (  # noqa: F401
    to_device, workspace, clear, clear_all, pack, take_rows, repeat_rows, check_times, add, take_columns,
    concat_columns,
    check_rows_weights, refuse_shapes, scale_rows, standard_normal, binarize, GOLDEN, splitmix64, counter_uniform,
    counter_normal,
)
from .conv import (  # noqa: F401
    conv_output_size, im2col, col2im, conv2d_forward, conv2d_backward, masked_conv2d_forward,
    masked_conv2d_backward, check_mask, conv_transpose2d_forward, conv_transpose2d_backward, add_channel_bias,
    channel_sums, append_channels,
)
from .dense import (  # noqa: F401
    check_dense, matmul, linear_forward, linear_backward, check_local_reparam, local_reparam_forward,
    local_reparam_backward, gaussian_weight_kl,
)
from .elbo import (  # noqa: F401
    check_latent, check_likelihood, reparameterize_kl, reparameterize_kl_backward,
    log_pz_minus_log_qz, log_pz_minus_log_qz_backward, check_prior, log_prior_minus_log_qz,
    log_prior_minus_log_qz_backward, bernoulli_log_prob_grad, bernoulli_log_prob,
    gaussian_log_prob_grad, scaled, batch_means, log_sum_exp_rows,
    check_log_weights, pairwise_kl, mae_penalty,
)
from .optim import (  # noqa: F401
    check_adam_arrays, adam_update, clip_all, squared_norm, scale_all, add_scaled,
)

# The op table: what every backend exports, with these signatures and layouts (the
# rest above are the helpers the backends share: shape checks, the activation table,
# the counter-based random numbers). Every backend exports ``workspace`` too (a context,
# not an op: only the CUDA backend's keeps arrays).
OPS = (
    "matmul", "linear_forward", "linear_backward", "local_reparam_forward", "local_reparam_backward",
    "gaussian_weight_kl",
    "activation_forward", "activation_backward", "all_finite",
    "conv_output_size", "im2col", "col2im", "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward",
    "conv_transpose2d_backward", "masked_conv2d_forward", "masked_conv2d_backward", "add_channel_bias",
    "channel_sums", "append_channels",
    "reparameterize_kl", "reparameterize_kl_backward", "log_pz_minus_log_qz", "log_pz_minus_log_qz_backward",
    "log_prior_minus_log_qz", "log_prior_minus_log_qz_backward",
    "bernoulli_log_prob", "bernoulli_log_prob_grad", "gaussian_log_prob_grad", "batch_means", "log_sum_exp_rows",
    "mae_penalty",
    "adam_update", "clip_all", "squared_norm", "scale_all", "add_scaled",
    "to_device", "clear", "clear_all", "pack", "take_rows", "repeat_rows", "add", "add_column_sums", "take_columns",
    "concat_columns",
    "scale_rows", "standard_normal", "binarize",
)
