"""The VAE with two stochastic layers (Burda, Grosse & Salakhutdinov, "Importance
Weighted Autoencoders", 2015, their second MNIST architecture): the simplest
hierarchical VAE.

    generative:  z2 ~ N(0, I)  ->  prior net  ->  z1 ~ N(mean_p, exp(logvar_p))  ->  decoder  ->  x ~ p(x|z1)
    recognition: x  ->  encoder  ->  z1 ~ N(mean1, exp(logvar1))  ->  encoder2  ->  z2 ~ N(mean2, exp(logvar2))

Each network is an MLP whose last layer gives a Gaussian's [mean, logvar]. Burda et
al.'s sizes: x - 200 - 200 - z1 (100) - 100 - 100 - z2 (50), tanh, and the generative
side the mirror; their code makes sigma = exp(a linear output), which is logvar =
2 x that output: the same family, parameterised as npvae's other Gaussians.

One sample is a pair (z1, z2) drawn top-down in q, its log-weight

    log w = log p(x|z1) + [log p(z1|z2) - log q(z1|x)] + [log p(z2) - log q(z2|z1)]
          = log_px       + ratio1                        + ratio2

(``ratio2`` is minus a KL whose expectation over z2 is analytic given z1; ``ratio1``
has no closed form, since p(z1|z2) moves with z2). Estimator B keeps the analytic
KL(q(z2|z1) || p(z2)) and samples ratio1; estimator A and the IWAE bound sample
everything. The noise of one sample is one vector eps = [eps1, eps2] of d1 + d2
numbers, so that ``eps`` arrays, seeds and ``fit`` work as for the one-layer VAE.
"""

from collections import namedtuple

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_positive_int
from ..objectives import kl_penalty, weight_decay
from .base import _sizes, summed
from .networks import mlp, torch_default_biases
from .vae import VAE, estimator_a, iwae_bound, latent_backward, latent_forward, log_ratio_backward, log_ratio_forward


# ------------------------------------------------------------ the estimators' weights
TwoLayerWeights = namedtuple("TwoLayerWeights", "objective log_px ratio1 ratio2 kl2")


def two_layer_weights(objective, estimator, log_px, ratio1, ratio2, kl2, beta, free_bits):
    """dJ/dterm for the terms of a two-layer sample, ``log_px``, ``ratio1``, ``ratio2``
    (N, L) and ``kl2`` (N L, d2), each one number where it is the same for every entry
    (None: the term has weight 0), and J (nats per example) as a function of the batch
    means of (log_px, kl2, ratio1) (``kernels.ops.batch_means``), or as a number.

    * IWAE and estimator A: the one-layer estimators with log_ratio = ratio1 + ratio2
      (dJ/dratio1 = dJ/dratio2; no KL term; A's J from the means of log_px and the sum).
    * B: J = mean_nl [log_px + beta ratio1] - beta penalty(mean_l kl2), the penalty with
      free bits on the mean over samples (``objectives.kl_penalty``, on the host);
      without them penalty = the mean KL, a batch mean like the others.
    """
    n, n_samples = log_px.shape
    if objective == "iwae" or estimator == "A":
        log_ratio = kernels.ops.add(ratio1, ratio2)
        w = (iwae_bound if objective == "iwae" else estimator_a)(log_px, None, log_ratio, beta, 0.0)
        if objective == "iwae":
            g = w.log_px.reshape(n, n_samples)
            return TwoLayerWeights(w.objective, g, g, g, None)
        ratio_means = kernels.ops.batch_means(log_px, kl2, log_ratio)
        return TwoLayerWeights(lambda means: w.objective(kernels.to_host(ratio_means)), w.log_px, w.log_ratio,
                               w.log_ratio, None)
    weight = 1.0 / (n * n_samples)
    if not free_bits:
        return TwoLayerWeights(lambda means: means[0] + beta * means[2] - beta * means[1], weight, beta * weight,
                               None, -beta * weight)
    d2 = kl2.shape[1]
    penalty, dpenalty = kl_penalty(kernels.to_host(kl2).reshape(n, n_samples, d2).mean(axis=1), free_bits)
    dkl2 = np.repeat(-beta * dpenalty / n_samples, n_samples, axis=0)  # row n L + l: example n's
    return TwoLayerWeights(lambda means: means[0] + beta * means[2] - beta * penalty, weight, beta * weight, None,
                           dkl2)


class TwoLayerVAE(VAE):
    """q(z1|x) q(z2|z1), p(z2) = N(0, I), p(z1|z2) Gaussian, p(x|z1) from ``decoder`` and
    ``likelihood``. ``encoder`` (x -> [mean1, logvar1], 2 d1 values), ``encoder2`` (z1 ->
    [mean2, logvar2], 2 d2), ``prior`` (z2 -> [mean_p, logvar_p] of p(z1|z2), 2 d1),
    ``decoder`` (z1 -> the likelihood's parameters). ``latent_dim`` is d1, the layer the
    decoder reads; ``latent2_dim`` is d2. Build Burda et al.'s with :meth:`mlp`."""

    networks = ("encoder", "encoder2", "prior", "decoder")

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape, encoder2, prior, latent2_dim):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)
        self.latent2_dim = check_positive_int(latent2_dim, "latent2_dim")
        self.encoder2, self.prior = encoder2, prior
        self.children = {"encoder": encoder, "encoder2": encoder2, "prior": prior, "decoder": decoder,
                         "likelihood": likelihood}

    @classmethod
    def mlp(cls, input_dim, hidden=(200, 200), latent_dim=100, hidden2=(100, 100), latent2_dim=50, activation="tanh",
            likelihood="bernoulli", likelihood_kwargs=None, rng=None, dtype="float32", init=None, data_mean=None):
        """Burda et al.'s two-layer net by default: x - ``hidden`` - z1 (``latent_dim``) -
        ``hidden2`` - z2 (``latent2_dim``), each generative network the mirror of its
        recognition one, ``activation`` between layers; ``init`` and ``data_mean`` as for
        :meth:`VAE.mlp`."""
        rng = as_rng(rng)
        one = VAE.mlp(input_dim, hidden, latent_dim, activation, likelihood, likelihood_kwargs, rng, dtype, init=init,
                      data_mean=data_mean)
        sizes, latent2_dim = _sizes(hidden2, "hidden2"), check_positive_int(latent2_dim, "latent2_dim")
        encoder2 = mlp([latent_dim, *sizes, 2 * latent2_dim], activation, rng, init)
        prior = mlp([latent2_dim, *reversed(sizes), 2 * latent_dim], activation, rng, init)
        if init == "torch_default":
            torch_default_biases(encoder2, rng), torch_default_biases(prior, rng)
        return cls(one.encoder, one.decoder, one.likelihood, latent_dim, (input_dim,), encoder2, prior,
                   latent2_dim).astype(dtype)

    def _repr_sizes(self):
        return f"{super()._repr_sizes()}, latent2_dim={self.latent2_dim}"

    @property
    def noise_dim(self):
        return self.latent_dim + self.latent2_dim

    # ---------------------------------------------------------------- the networks
    def _gaussian(self, network, name, inputs, d):
        h = self._check_output(name, network.forward(inputs), 2 * d)
        return h[:, :d], h[:, d:]

    def encode2(self, z1):
        """``(mean2, logvar2)`` of q(z2|z1), each (N, latent2_dim)."""
        check_array(z1, "z1", shape=(None, self.latent_dim), dtype=self.dtype)
        return self._gaussian(self.encoder2, "encoder2", z1, self.latent2_dim)

    def prior_z1(self, z2):
        """``(mean_p, logvar_p)`` of p(z1|z2), each (N, latent_dim)."""
        check_array(z2, "z2", shape=(None, self.latent2_dim), dtype=self.dtype)
        return self._gaussian(self.prior, "prior", z2, self.latent_dim)

    def sample(self, n, rng, mean=False, y=None, z2=None):
        """n examples by ancestral sampling: z2 ~ N(0, I) (or the given ``z2``, (n, d2)),
        z1 ~ p(z1|z2), then x ~ p(x|z1) (``mean``: the decoder's mean E[x|z1])."""
        n, rng = check_positive_int(n, "n"), as_rng(rng)
        self.check_labels(y, n)
        z2 = rng.standard_normal((n, self.latent2_dim)).astype(self.dtype) if z2 is None else z2
        mean_p, logvar_p = self.prior_z1(check_array(z2, "z2", shape=(n, self.latent2_dim), dtype=self.dtype))
        z1 = mean_p + np.exp(0.5 * logvar_p) * rng.standard_normal(mean_p.shape).astype(self.dtype)
        out = self.decode(z1)
        return (self.likelihood.mean(out) if mean else self.likelihood.sample(out, rng)).reshape(n, *self.data_shape)

    # ---------------------------------------------------------------- the objective
    def _forward(self, x, onehot, eps, grad_scale=None, log_ratio=True, x_corrupted=None, posterior=None):
        """The forward nodes for noise ``eps`` (N, L, d1 + d2): z1 from q(z1|x), z2 from
        q(z2|z1) at each z1 (N L rows), p(z1|z2) at each z2, log p(x|z1). Returns the
        dict a backward pass reads (arrays where ``x`` is); ``log_ratio`` is ratio1 +
        ratio2, so that ``log_likelihood`` is the VAE's own, with the joint proposal
        q(z1|x) q(z2|z1)."""
        n, n_samples = eps.shape[:2]
        d1, d2, rows = self.latent_dim, self.latent2_dim, n * n_samples
        eps_rows = eps.reshape(rows, d1 + d2)
        eps1 = kernels.ops.take_columns(eps_rows, 0, d1).reshape(n, n_samples, d1)
        eps2 = kernels.ops.take_columns(eps_rows, d1, d1 + d2).reshape(rows, 1, d2)
        mean1, logvar1 = posterior or self._encode(x if x_corrupted is None else x_corrupted, onehot)
        (z1, _), latent1_cache = latent_forward(mean1, logvar1, eps1)
        mean2, logvar2 = self._gaussian(self.encoder2, "encoder2", z1.reshape(rows, d1), d2)
        (z2, kl2), latent2_cache = latent_forward(mean2, logvar2, eps2)
        prior = self._check_output("prior", self.prior.forward(z2.reshape(rows, d2)), 2 * d1)  # [mean_p, logvar_p]
        ratio1 = kernels.ops.log_prior_minus_log_qz(z1, eps1, logvar1, prior)  # log p(z1|z2) - log q(z1|x)
        ratio2, ratio2_cache = log_ratio_forward(z2, eps2, logvar2)  # log p(z2) - log q(z2|z1), (N L, 1)
        x_per_sample = x.reshape(n, -1)
        if n_samples > 1:
            x_per_sample = kernels.ops.repeat_rows(x_per_sample, n_samples)
        out = self._decode(z1.reshape(rows, d1), None, x_per_sample)
        log_px, dlog_px_dout = (self.likelihood.log_prob_and_grad(x_per_sample, out, grad_scale)
                                if grad_scale is not None else (self.likelihood.log_prob(x_per_sample, out), None))
        ratio2 = ratio2.reshape(n, n_samples)
        return dict(mean=mean1, logvar=logvar1, z1=z1, prior=prior, kl2=kl2, latent1_cache=latent1_cache,
                    latent2_cache=latent2_cache, ratio2_cache=ratio2_cache, dlog_px_dout=dlog_px_dout,
                    log_px=log_px.reshape(n, n_samples), ratio1=ratio1, ratio2=ratio2,
                    log_ratio=kernels.ops.add(ratio1, ratio2) if log_ratio else None)

    def elbo_terms(self, x, y=None, rng=None, n_samples=1, eps=None):
        """Estimator B's ELBO per example and its terms ``(elbo, log_px, kl)``, averaged
        over ``n_samples`` draws of (z1, z2): kl = KL(q(z2|z1) || p(z2)) - ratio1, the
        estimate of KL(q(z1, z2 | x) || p(z1, z2)) that estimator B takes."""
        self.check_x(x)
        self.check_labels(y, len(x))
        x = self.placed(x)
        f = self._forward(x, None, self._draw_eps(x, n_samples, rng, eps), log_ratio=False)
        n = len(x)
        kl2 = kernels.to_host(f["kl2"]).reshape(n, n_samples, -1).sum(axis=2)
        log_px, kl = kernels.to_host(f["log_px"]).mean(axis=1), np.mean(kl2 - kernels.to_host(f["ratio1"]), axis=1)
        return log_px - kl, log_px, kl

    def loss_and_grad(self, x, y=None, rng=None, eps=None, estimator="B", objective="elbo", n_samples=1,
                      beta=1.0, free_bits=0.0, weight_decay_lambda=0.0, mae_eta=0.0, mae_gamma=0.0,
                      reduction="mean", check_input=True, x_corrupted=None, deferred=False):
        """The loss -J and every parameter's gradient, as :meth:`VAE.loss_and_grad`
        (``stats``: the batch means of the ELBO of estimator B at beta = 1, log p(x|z1),
        and KL = log q(z1, z2 | x) - log p(z1, z2) as estimator B takes it; ``deferred``
        as there). The MAE regulariser acts on a one-layer posterior and is refused.

        Backward, in reverse. With the loss's weights g_px, g1, g2 (N, L) on log_px,
        ratio1, ratio2 and g_kl (N L, d2) on KL(q(z2|z1) || p(z2)):

        1. decoder: dloss/dz1 += decoder.backward(likelihood's gradient x g_px).
        2. ratio1 = log p(z1|z2) - log q(z1|x), p(z1|z2) = N(mean_p(z2), exp(logvar_p(z2))),
           eps1 fixed (``kernels.ops.log_prior_minus_log_qz_backward``): with u = (z1 -
           mean_p) / var_p,
           dloss/dz1 += -g1 u                                            (z1 directly)
           dloss/d[mean_p, logvar_p] = g1 [u, (u (z1 - mean_p) - 1) / 2]
           dloss/dz2 = prior.backward(that)                              (the top network)
           dloss/dlogvar1 += sum_l g1 / 2                                (-log q(z1|x))
        3. ratio2 = log p(z2) - log q(z2|z1): dloss/dz2 += -z2 g2, dloss/dlogvar2 += g2 / 2.
        4. z2 = mean2(z1) + exp(logvar2(z1) / 2) eps2: ``latent_backward`` gives
           dloss/d[mean2, logvar2] from dloss/dz2 and g_kl (the analytic KL's own), and
           dloss/dz1 += encoder2.backward(them). This is how the gradient of log p(z1|z2)
           reaches q(z1|x) a second time: through z2's reparameterisation, whose mean and
           scale are functions of z1.
        5. z1 = mean1 + exp(logvar1 / 2) eps1: ``latent_backward`` from dloss/dz1 (steps
           1, 2 and 4), then encoder.backward.
        """
        self._check_loss_settings(estimator, objective, beta, free_bits, mae_eta, mae_gamma, weight_decay_lambda,
                                  reduction)
        if mae_eta or mae_gamma:
            raise ValueError(f"mae_eta, mae_gamma: the MAE regulariser acts on a one-layer VAE's posteriors, got "
                             f"{mae_eta}, {mae_gamma} for a TwoLayerVAE; use 0")
        if check_input:
            self.check_x(x)
            self.check_corrupted(x, x_corrupted)
        self.check_labels(y, len(x))
        x, n = self.placed(x), len(x)
        x_corrupted = None if x_corrupted is None else self.placed(x_corrupted)
        rows, d1, d2 = n * n_samples, self.latent_dim, self.latent2_dim
        alike = objective == "elbo"  # every log p(x|z1) weighs 1 / (N L): the likelihood's kernel scales it
        with kernels.ops.workspace(self.workspaces, "loss_and_grad"):
            f = self._forward(x, None, self._draw_eps(x, n_samples, rng, eps),
                              grad_scale=-1.0 / rows if alike else 1.0, log_ratio=False, x_corrupted=x_corrupted)
            means = kernels.ops.batch_means(f["log_px"], f["kl2"], f["ratio1"])
            w = two_layer_weights(objective, estimator, f["log_px"], f["ratio1"], f["ratio2"], f["kl2"], beta,
                                  free_bits)
            self.zero_grad()
            penalty = weight_decay(self.params, self.grads, weight_decay_lambda)

            # the loss's weights: numbers, or (IWAE) one array of N L importance weights for
            # every term, uploaded once
            per_sample = None if alike else kernels.ops.to_device(-np.asarray(w.log_px, self.dtype).reshape(rows))

            def minus(g, shape):
                return -g if per_sample is None else per_sample.reshape(shape)

            # 1. the decoder
            dloss_dout = self.likelihood.backward(f["dlog_px_dout"], 1.0 if alike else per_sample)
            dloss_dz1 = self.decoder.backward(dloss_dout.reshape(self.decoder.out_shape)).reshape(rows, d1)
            # 2. log p(z1|z2) - log q(z1|x), back to z1, logvar1 and through the prior network to z2
            dz1, dloss_dlogvar1, dprior = kernels.ops.log_prior_minus_log_qz_backward(minus(w.ratio1, (n, n_samples)),
                                                                                      f["z1"], f["prior"])
            dloss_dz1 = kernels.ops.add(dloss_dz1, dz1.reshape(rows, d1))
            dloss_dz2 = self.prior.backward(dprior).reshape(rows, 1, d2)
            # 3. log p(z2) - log q(z2|z1) (estimator A, IWAE)
            if w.ratio2 is not None:
                dz2, dloss_dlogvar2_ratio = log_ratio_backward(minus(w.ratio2, (rows, 1)), f["ratio2_cache"])
                dloss_dz2 = kernels.ops.add(dloss_dz2, dz2)
            # 4. z2's reparameterisation and its analytic KL, back through encoder2 to z1
            dloss_dmean2, dloss_dlogvar2 = latent_backward(dloss_dz2, 0.0 if w.kl2 is None else -w.kl2,
                                                           f["latent2_cache"])
            if w.ratio2 is not None:
                dloss_dlogvar2 = kernels.ops.add(dloss_dlogvar2, dloss_dlogvar2_ratio)
            dloss_dz1 = kernels.ops.add(dloss_dz1, self.encoder2.backward(kernels.ops.concat_columns(dloss_dmean2,
                                                                                                     dloss_dlogvar2)))
            # 5. z1's reparameterisation, back through the encoder
            dloss_dmean1, dloss_dlogvar = latent_backward(dloss_dz1.reshape(n, n_samples, d1), 0.0,
                                                          f["latent1_cache"])
            self.encoder.backward(kernels.ops.concat_columns(dloss_dmean1, kernels.ops.add(dloss_dlogvar,
                                                                                           dloss_dlogvar1)),
                                  need_dx=False)
            if reduction == "sum":
                summed(self, 0.0, n)

        def read():
            m = kernels.to_host(means)
            objective_value = w.objective(m) if callable(w.objective) else w.objective
            loss = (-objective_value + penalty) * (n if reduction == "sum" else 1)
            kl = float(m[1] - m[2])
            stats = {"elbo": float(m[0]) - kl, "log_px": float(m[0]), "kl": kl,
                     **({"iwae": objective_value} if objective == "iwae" else {})}
            return float(loss), stats

        return read if deferred else read()

    # ---------------------------------------------------------------- per layer
    def layer_means(self, x, rng=0, batch_size=500):
        """The posterior means of each layer as Burda et al.'s code measures them, for
        the active units of each layer: [E_q[z1|x], E_q[z2|z1]] with z1 ~ q(z1|x) drawn
        once per example, (N, d1) and (N, d2), float64."""
        self.check_x(x)
        rng, batch_size = as_rng(rng), check_positive_int(batch_size, "batch_size")
        means1, means2 = [], []
        for s in range(0, len(x), batch_size):
            mean1, logvar1 = map(kernels.to_host, self._encode(self.placed(x[s : s + batch_size]), None))
            z1 = mean1 + np.exp(0.5 * logvar1) * rng.standard_normal(mean1.shape).astype(self.dtype)
            mean2 = self._gaussian(self.encoder2, "encoder2", self.placed(z1), self.latent2_dim)[0]
            means1.append(mean1), means2.append(kernels.to_host(mean2))
        return [np.concatenate(means1).astype(np.float64), np.concatenate(means2).astype(np.float64)]

