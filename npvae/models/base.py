"""What the VAE and the plain autoencoder share: an encoder, a decoder, a likelihood."""

import numpy as np

from ..checks import check_array, check_positive_int
from ..nn.module import Container


class LatentModel(Container):
    """``encoder`` maps x to the latent side, ``decoder`` maps z to the parameters of
    ``likelihood`` p(x|z). ``data_shape`` is one example's shape. ``config`` records
    how a builder made the model, so that a checkpoint can rebuild it."""

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape, config=None):
        super().__init__({"encoder": encoder, "decoder": decoder, "likelihood": likelihood})
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.data_shape = tuple(data_shape)
        self.config = config

    @property
    def dtype(self):
        return next(iter(self.encoder.params.values())).dtype

    def check_x(self, x):
        """x must be (N, *data_shape) in the parameters' dtype, finite, and in the
        likelihood's support (e.g. [0, 1] for a Bernoulli)."""
        check_array(x, "x", shape=(None, *self.data_shape), dtype=self.dtype, finite=False)
        return self.likelihood.check_data(x)  # finiteness, and the support

    @staticmethod
    def mlp_config(cls, input_dim, hidden, latent_dim, activation, likelihood, likelihood_kwargs, dtype, **extra):
        return dict(model=cls.__name__, input_dim=input_dim, hidden=list(hidden), latent_dim=latent_dim,
                    activation=activation, likelihood=likelihood, likelihood_kwargs=likelihood_kwargs or {},
                    dtype=str(np.dtype(dtype)), **extra)
