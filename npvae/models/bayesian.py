"""Full variational Bayes: a VAE whose decoder's weights have a posterior too (Kingma &
Welling, "Auto-Encoding Variational Bayes", 2014, appendix F)."""

import numpy as np

from .. import nn
from ..checks import as_rng, check_number, check_positive_int
from ..distributions import make_likelihood
from .base import _sizes
from .networks import _check_activation, mlp
from .vae import VAE


def bayesian_layers(network):
    return [layer for layer in network if isinstance(layer, nn.BayesianLinear)]


class BayesianDecoderVAE(VAE):
    """A VAE whose decoder is made of :class:`npvae.nn.BayesianLinear` layers: the
    generative parameters theta have a mean-field Gaussian posterior q(theta) and a
    Gaussian prior p(theta), and the bound on the training set's log-likelihood is

        L = sum_n ELBO_n(theta ~ q(theta)) - KL(q(theta) || p(theta)),

    estimated by SGVB: theta (or, with local reparameterisation, each layer's outputs)
    drawn afresh each step. Per example, a minibatch's share of the KL is KL / N, N =
    ``n_train`` (the KL is paid once per pass of N / B minibatches: KL / (N / B) per
    minibatch, KL / N per example), times ``weight_kl_weight`` (1: the bound; less while
    it warms up). ``fit`` trains it as any VAE: its parameters are the encoder's phi and
    the decoder's means and log sigmas, nothing else.
    """

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape, n_train):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)
        self.n_train = check_positive_int(n_train, "n_train")
        if not bayesian_layers(decoder):
            raise ValueError("decoder: expected a Sequential with BayesianLinear layers, got none")
        self.weight_kl_weight = 1.0

    @classmethod
    def mlp(cls, input_dim, hidden=(500,), latent_dim=20, n_train=60000, activation="tanh", likelihood="bernoulli",
            likelihood_kwargs=None, prior_std=1.0, init_logsigma=-5.0, local_reparam=True, rng=None,
            dtype="float32"):
        """MLP encoder (as :meth:`VAE.mlp`'s) and a decoder of BayesianLinear layers of
        the same sizes, ``activation`` between them; ``n_train``: the training set's size."""
        rng = as_rng(rng)
        _check_activation(activation)
        sizes = _sizes(hidden, "hidden")
        check_positive_int(input_dim, "input_dim"), check_positive_int(latent_dim, "latent_dim")
        lik = make_likelihood(likelihood, input_dim, **(likelihood_kwargs or {}))
        encoder = mlp([input_dim, *sizes, 2 * latent_dim], activation, rng)
        widths, layers = [latent_dim, *sizes, lik.out_features(input_dim)], []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.BayesianLinear(a, b, prior_std, init_logsigma, local_reparam, rng))
            if i < len(widths) - 2:
                layers.append(nn.activations.ACTIVATIONS[activation]())
        return cls(encoder, nn.Sequential(*layers), lik, latent_dim, (input_dim,), n_train).astype(dtype)

    def _repr_sizes(self):
        return f"{super()._repr_sizes()}, n_train={self.n_train}"

    def _draw_eps(self, x, n_samples, rng, eps):
        """The latent noise, and the decoder's weight noise from the same generator:
        every entry point draws here once, before its forward pass."""
        rng = as_rng(rng)
        for layer in bayesian_layers(self.decoder):
            layer.rng = rng
        return super()._draw_eps(x, n_samples, rng, eps)

    def sample(self, n, rng, mean=False, y=None):
        """n examples by ancestral sampling, the decoder's weight noise from ``rng`` too."""
        rng = as_rng(rng)
        for layer in bayesian_layers(self.decoder):
            layer.rng = rng
        return super().sample(n, rng, mean, y)

    def weight_kl(self):
        """KL(q(theta) || p(theta)) of the decoder's weights (nats, the whole set's)."""
        return sum(layer.kl() for layer in bayesian_layers(self.decoder))

    def loss_and_grad(self, x, y=None, rng=None, eps=None, reduction="mean", deferred=False, **kwargs):
        """:meth:`VAE.loss_and_grad` plus the weights' KL: loss += w KL / N (per
        example; w = ``weight_kl_weight``, N = ``n_train``), its gradient added by each
        layer in the pass that sums it (``BayesianLinear.kl``). ``stats`` gain
        ``weight_kl`` (nats) and ``bound``: the ELBO per example less KL / N."""
        scale = check_number(self.weight_kl_weight, "weight_kl_weight", 0) / self.n_train
        read = super().loss_and_grad(x, y, rng, eps, reduction=reduction, deferred=True, **kwargs)
        scale *= len(x) if reduction == "sum" else 1
        kl = sum(layer.kl(scale) for layer in bayesian_layers(self.decoder))

        def with_kl():
            loss, stats = read()
            stats.update(weight_kl=kl, bound=stats["elbo"] - kl / self.n_train)
            return loss + scale * kl, stats

        return with_kl if deferred else with_kl()

    def decode_with_weights(self, z, draws, rng=None):
        """The decoder's output for each z under ``draws`` draws of the weights (whole
        weight draws, whatever ``local_reparam`` says, so that one draw is one network):
        (draws, N, D)."""
        draws, rng = check_positive_int(draws, "draws"), as_rng(rng)
        layers, outs = bayesian_layers(self.decoder), []
        saved = [(layer.local_reparam, layer.rng) for layer in layers]
        try:
            for _ in range(draws):
                for layer in layers:
                    layer.local_reparam, layer.rng = False, rng
                outs.append(self.decode(z))
        finally:
            for layer, (local, layer_rng) in zip(layers, saved):
                layer.local_reparam, layer.rng = local, layer_rng
        return np.stack(outs)
