"""The VAE with an autoregressive (PixelCNN) decoder: where posterior collapse really happens."""

import numpy as np

from ..checks import as_rng, check_array, check_positive_int
from ..distributions import Bernoulli
from ..nn.pixelcnn import PixelCNN
from .networks import conv_encoder
from .vae import VAE


class PixelCNNVAE(VAE):
    """A VAE whose decoder is a :class:`npvae.nn.PixelCNN`: p(x|z) = prod_i p(x_i | x_<i, z)
    on binary images (N, C, H, W), Bernoulli logits. Training, the ELBO, the IWAE bound
    and the importance-sampled log p(x) are the VAE's own, with the decoder reading x
    itself (teacher forcing): each pixel's logit depends on z and on the pixels before
    it, so log p(x|z) is still a sum of per-pixel terms, exact. Only sampling differs: a
    pixel can be drawn only once those before it are, so :meth:`sample` and
    :meth:`reconstruct` run the decoder once per pixel, on the window of the image its
    receptive field covers.

    Chen et al. ("Variational Lossy Autoencoder", 2017) argue that such a decoder, when
    it can model x alone, is best off ignoring z: the KL then goes to 0. The decoder's
    depth and kernels (``n_layers``, ``kernel_size``) turn how strongly.
    """

    @classmethod
    def build(cls, image_shape=(1, 28, 28), latent_dim=32, encoder_channels=(32, 64), encoder_kernel=4,
              channels=32, n_layers=4, kernel_size=5, first_kernel_size=7, activation="relu", rng=None,
              dtype="float32", z_bias="channel"):
        """A conv encoder (``VAE.conv``'s: stride-2 convolutions, then a linear map to
        [mean, logvar]) and a PixelCNN decoder of ``n_layers`` masked layers, both with
        ``activation``; z enters the decoder's layers as a bias per channel or per pixel
        (``z_bias``, see :class:`npvae.nn.PixelCNN`)."""
        rng = as_rng(rng)
        encoder = conv_encoder(tuple(image_shape), tuple(encoder_channels), encoder_kernel, activation,
                               2 * latent_dim, rng)
        decoder = PixelCNN(latent_dim, image_shape[0], channels, n_layers, kernel_size, first_kernel_size, activation,
                           rng, z_bias=z_bias, image_size=tuple(image_shape[1:]))
        return cls(encoder, decoder, Bernoulli(), latent_dim, tuple(image_shape)).astype(dtype)

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape):
        if not isinstance(decoder, PixelCNN) or not isinstance(likelihood, Bernoulli) or len(data_shape) != 3:
            raise ValueError(f"decoder, likelihood, data_shape: a PixelCNNVAE takes a PixelCNN decoder, a Bernoulli "
                             f"likelihood and images (C, H, W), got {type(decoder).__name__}, "
                             f"{type(likelihood).__name__}, {tuple(data_shape)}")
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)

    def _decode(self, z, onehot, x=None):
        """Logits (N, D) of every pixel given z and the pixels before it in ``x`` (N, D)
        or (N, C, H, W); None stands for the all-zero image."""
        x = np.zeros((len(z), *self.data_shape), z.dtype) if x is None else x.reshape(len(z), *self.data_shape)
        return self.decoder.forward((z, x)).reshape(len(z), -1)

    def decode(self, z, y=None, x=None):
        """Bernoulli logits of each pixel of ``x`` given z and the pixels of ``x`` before
        it (teacher forcing; ``x`` None: the all-zero image)."""
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        self.check_labels(y, len(z))
        if x is not None:
            check_array(x, "x", shape=(len(z), *self.data_shape), dtype=self.dtype)
        return self._decode(z, None, x)

    def sample_given(self, z, rng, shared_noise=False):
        """x ~ p(x | z) pixel by pixel in raster order, for each row of ``z`` (N, d):
        pixel (i, j) drawn from its logit given z and the pixels already drawn.
        ``shared_noise``: every row uses the same uniform numbers, so that rows differ
        only by what their z does (for interpolations). Each pass runs the decoder on
        the window of rows i - r to i and columns j - r to j + r only, r =
        ``rows_above()`` (a pixel reads nothing below its row, and nothing further than
        its receptive field, which reaches as far sideways as up), so a sample costs H W
        passes over a window of at most (r + 1) x (2 r + 1) pixels; z's biases are
        computed once, before the first."""
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        if not isinstance(shared_noise, bool):
            raise TypeError(f"shared_noise: expected True or False, got {shared_noise!r}")
        rng = as_rng(rng)
        c, h, w = self.data_shape
        x = np.zeros((len(z), c, h, w), self.dtype)
        reach = self.decoder.rows_above()
        biases = self.decoder.z_biases(z)
        for i in range(h):
            top = max(0, i - reach)
            for j in range(w):
                left, right = max(0, j - reach), min(w, j + reach + 1)
                window = x[:, :, top : i + 1, left:right]
                logits = self.decoder.window_logits(biases, window, top, left)[:, :, i - top, j - left]
                u = rng.random((1, c) if shared_noise else logits.shape)
                x[:, :, i, j] = u < 1 / (1 + np.exp(-logits))
        return x

    def sample(self, n, rng, mean=False, y=None):
        """n images by ancestral sampling: z ~ p(z), then x ~ p(x|z) pixel by pixel
        (:meth:`sample_given`). ``mean`` has no meaning for an autoregressive decoder (the
        pixels' means depend on the pixels drawn before them) and is refused."""
        if mean:
            raise ValueError("mean: a PixelCNN decoder has no mean image to show; draw samples instead (mean=False; on "
                             "the command line, without --mean)")
        n, rng = check_positive_int(n, "n"), as_rng(rng)
        self.check_labels(y, n)
        return self.sample_given(rng.standard_normal((n, self.latent_dim)).astype(self.dtype), rng)

    def reconstruct(self, x, y=None, rng=0):
        """A fresh sample of p(x | z) at z = the posterior mean of each image: what z
        keeps of x (an image that ignores z comes back as an unrelated digit)."""
        mean, _ = self.encode(x, y)
        return self.sample_given(mean, rng)
