"""The deterministic autoencoder: the VAE's baseline with the same networks and losses."""

import math

import numpy as np

from ..checks import check_array
from ..objectives import weight_decay
from .base import LatentModel, check_reduction, summed


class Autoencoder(LatentModel):
    """x -> code = encoder(x) -> decoder(code) -> the likelihood's parameters.

    Trained by maximising log p(x | code) with the same likelihood as a VAE (so the
    reconstruction losses are the same), with no KL and no noise: the code is a
    point, not a distribution, and nothing makes the code space fit a prior.
    Built by ``Autoencoder.mlp`` / ``.conv`` with ``VAE``'s arguments, the encoder
    giving d outputs (a code) instead of 2 d (a mean and a log-variance).
    """

    def encode(self, x):
        return self._check_output("encoder", self.encoder.forward(self.check_x(x)), self.latent_dim)

    def decode(self, z):
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        out = self.decoder.forward(z).reshape(len(z), -1)
        return self._check_output("decoder", out, self.likelihood.out_features(math.prod(self.data_shape)))

    def reconstruct(self, x):
        return self.likelihood.mean(self.decode(self.encode(x))).reshape(x.shape)

    def loss_and_grad(self, x, weight_decay_lambda=0.0, reduction="mean", x_corrupted=None, **unused):
        """Loss = -mean_n log p(x_n | decoder(encoder(x_n))) (times N with
        ``reduction="sum"``); fills every gradient. Backward: likelihood -> decoder ->
        encoder, the chain rule and nothing else. ``x_corrupted``: the encoder's input
        when it is a corrupted copy of ``x`` (a denoising autoencoder, Vincent et al.
        2008); the likelihood scores the clean x."""
        check_reduction(reduction)
        self.check_x(x)
        self.check_corrupted(x, x_corrupted)  # which may leave the likelihood's support: Gaussian noise does
        code = self.encoder.forward(x if x_corrupted is None else x_corrupted)
        out = self.decode(self._check_output("encoder", code, self.latent_dim))
        x_flat = x.reshape(len(x), -1)
        log_px, dlog_px = self.likelihood.log_prob_and_grad(x_flat, out)
        self.zero_grad()
        loss = -float(log_px.mean()) + weight_decay(self.params, self.grads, weight_decay_lambda)
        weight = np.full(len(x), -1.0 / len(x), dtype=self.dtype)
        dout = self.likelihood.backward(dlog_px, weight)
        self.encoder.backward(self.decoder.backward(dout.reshape(self.decoder.out_shape)), need_dx=False)
        return summed(self, loss, len(x)) if reduction == "sum" else loss, {"log_px": float(log_px.mean())}
