"""The conditional VAE: the VAE with a one-hot label joining both networks' inputs."""

import numpy as np

from .. import kernels
from ..checks import check_positive_int
from .vae import VAE


class ConditionalVAE(VAE):
    """q(z|x, y), p(x|z, y): a one-hot label concatenated to the encoder's input and to
    the decoder's input. Every method takes ``y`` (N,) ints in [0, n_classes). Build MLP
    ones with ``ConditionalVAE.mlp(..., n_classes=10)``; a conv encoder takes the label
    as ``n_classes`` constant channels."""

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape, n_classes=10):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)
        self.n_classes = check_positive_int(n_classes, "n_classes", 2)

    def _repr_sizes(self):
        return f"{super()._repr_sizes()}, n_classes={self.n_classes}"

    def check_labels(self, y, n, name="y"):
        """``y`` as n integer labels in [0, n_classes)."""
        if y is None:
            raise ValueError(f"{name}: a ConditionalVAE needs labels, got None")
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name}: expected {n} integer labels (one per example), got shape {y.shape}, "
                             f"dtype {y.dtype}")
        if n and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"{name}: expected labels in [0, {self.n_classes}), got range [{y.min()}, {y.max()}]")
        return y

    def _labels(self, y, n):
        return np.eye(self.n_classes, dtype=self.dtype)[self.check_labels(y, n)]

    def _encoder_input(self, x, onehot):
        """x with the labels appended: as features of flat data, as ``n_classes``
        constant channels of images (N, C, H, W)."""
        if len(self.data_shape) == 3:
            return kernels.ops.append_channels(x, onehot)
        return kernels.ops.concat_columns(x.reshape(len(x), -1), onehot)

    def _decoder_input(self, z, onehot):
        return kernels.ops.concat_columns(z, onehot)

    def _decoder_grad_z(self, dloss_dinput):
        return kernels.ops.take_columns(dloss_dinput, 0, self.latent_dim)

    def sample(self, n, rng, mean=False, y=None):
        """Samples given labels ``y`` (an int for all n, or n ints)."""
        return super().sample(n, rng, mean, np.broadcast_to(np.asarray(y), (n,)) if y is not None else None)
