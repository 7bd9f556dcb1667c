"""The deterministic autoencoder: the VAE's baseline with the same networks and losses."""

import numpy as np

from ..checks import as_rng, check_array
from ..distributions import make_likelihood
from ..objectives import weight_decay
from .base import LatentModel
from .networks import mlp


class Autoencoder(LatentModel):
    """x -> code = encoder(x) -> decoder(code) -> the likelihood's parameters.

    Trained by maximising log p(x | code) with the same likelihood as a VAE (so the
    reconstruction losses are the same), with no KL and no noise: the code is a
    point, not a distribution, and nothing makes the code space fit a prior.
    """

    @classmethod
    def mlp(cls, input_dim, hidden=(500,), latent_dim=20, activation="tanh", likelihood="bernoulli",
            likelihood_kwargs=None, rng=None, dtype="float32"):
        """The networks of ``VAE.mlp`` with the same arguments, the encoder giving d
        outputs (a code) instead of 2 d (a mean and a log-variance)."""
        rng = as_rng(rng)
        config = cls.mlp_config(cls, input_dim, hidden, latent_dim, activation, likelihood, likelihood_kwargs, dtype)
        lik = make_likelihood(likelihood, input_dim, **(likelihood_kwargs or {}))
        encoder = mlp([input_dim, *hidden, latent_dim], activation, rng)
        decoder = mlp([latent_dim, *hidden, lik.out_features(input_dim)], activation, rng)
        return cls(encoder, decoder, lik, latent_dim, (input_dim,), config).astype(dtype)

    def encode(self, x):
        return self.encoder.forward(self.check_x(x))

    def decode(self, z):
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        return self.decoder.forward(z).reshape(len(z), -1)

    def reconstruct(self, x):
        return self.likelihood.mean(self.decode(self.encode(x))).reshape(x.shape)

    def loss_and_grad(self, x, weight_decay_lambda=0.0, **unused):
        """Loss = -mean_n log p(x_n | decoder(encoder(x_n))); fills every gradient.
        Backward: likelihood -> decoder -> encoder, the chain rule and nothing else."""
        out = self.decode(self.encode(x))
        x_flat = x.reshape(len(x), -1)
        log_px, dlog_px = self.likelihood.log_prob_and_grad(x_flat, out)
        self.zero_grad()
        loss = -float(log_px.mean()) + weight_decay(self.params, self.grads, weight_decay_lambda)
        weight = np.full(len(x), -1.0 / len(x), dtype=self.dtype)
        dout = self.likelihood.backward(dlog_px, weight)
        self.encoder.backward(self.decoder.backward(dout.reshape(self.decoder.out_shape)), need_dx=False)
        return loss, {"log_px": float(log_px.mean())}
