"""The variational autoencoder, and the nodes of its objective.

A training step is a chain of nodes, each a ``*_forward`` returning its output and a
cache, and a ``*_backward`` taking the loss's gradient in that output and the cache
(as CS231n's ``layers.py``):

    x -> encoder -> (mean, logvar) -> latent -> (z, kl) -> decoder -> likelihood -> log p(x|z)
                                         \\-> log_ratio: log p(z) - log q(z|x)

``VAE.loss_and_grad`` runs them forward in that order, asks an estimator (B, A or IWAE)
for the weight of each term in the objective, and runs them backward in reverse. The
encoder and decoder are ``nn.Sequential`` stacks; the likelihoods are in
``npvae.distributions``; the fused kernels the nodes call are specified, in NumPy, in
``npvae.kernels.reference``.
"""

import math
from collections import namedtuple

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_number, check_positive_int
from ..objectives import check_mae_weights, importance_weights, kl_penalty, log_mean_exp, mae_regularizer, weight_decay
from .base import LatentModel, check_reduction, summed
from .device import device_refusal

ESTIMATORS = ("A", "B")
OBJECTIVES = ("elbo", "iwae")


# ------------------------------------------------------------------ the latent node
def latent_forward(mean, logvar, eps):
    """The reparameterised sample and the analytic KL of q(z|x) = N(mean, exp(logvar))
    from N(0, I), for ``mean``, ``logvar`` (N, d) and noise ``eps`` (N, L, d)::

        z[n, l]  = mean[n] + exp(logvar[n] / 2) * eps[n, l]                (N, L, d)
        kl[n, j] = 1/2 (exp(logvar) + mean^2 - 1 - logvar)[n, j]             (N, d)

    Returns ``(z, kl), cache`` (one fused kernel, ``kernels.ops.reparameterize_kl``)."""
    return kernels.ops.reparameterize_kl(mean, logvar, eps), (eps, mean, logvar)


def latent_backward(dloss_dz, dloss_dkl, cache):
    """``(dloss_dmean, dloss_dlogvar)`` from dloss/dz (N, L, d) and dloss/dkl (N, d, or
    a scalar). With sigma = exp(logvar / 2), dz/dmean = 1 and dz/dlogvar = sigma eps / 2;
    dkl/dmean = mean and dkl/dlogvar = (sigma^2 - 1) / 2. Each sample adds its share::

        dloss_dmean   = sum_l dloss_dz + dloss_dkl * mean
        dloss_dlogvar = sum_l dloss_dz * eps * sigma / 2 + dloss_dkl * (sigma^2 - 1) / 2
    """
    eps, mean, logvar = cache
    return kernels.ops.reparameterize_kl_backward(dloss_dz, eps, mean, logvar, dloss_dkl)


# ------------------------------------------------------------- the log-ratio node
def log_ratio_forward(z, eps, logvar):
    """log p(z) - log q(z|x) per sample (N, L): the density terms of estimator A and the
    IWAE bound. Since (z - mean)^2 / var = eps^2, the log 2 pi terms cancel::

        log p(z) - log q(z|x) = -1/2 sum_j [z_j^2 - logvar_j - eps_j^2]

    Returns ``log_ratio, cache``."""
    return kernels.ops.log_pz_minus_log_qz(z, eps, logvar), z


def log_ratio_backward(dloss_dlog_ratio, cache):
    """``(dloss_dz, dloss_dlogvar)`` from dloss/dlog_ratio (N, L), with eps held fixed
    (the reparameterisation) and z an input of its own::

        log p(z)   = -1/2 sum_j [log 2 pi + z_j^2]                 -> d/dz_j = -z_j
        log q(z|x) = -1/2 sum_j [log 2 pi + logvar_j + eps_j^2]    -> d/dlogvar_j = -1/2

    so dloss_dz = -z dloss_dlog_ratio per sample and dloss_dlogvar = +1/2 sum_l
    dloss_dlog_ratio. z's own dependence on (mean, logvar) reaches them through
    ``latent_backward``, which takes this dloss_dz added to the decoder's."""
    return kernels.ops.log_pz_minus_log_qz_backward(dloss_dlog_ratio, cache)


# -------------------------------------------------------------------- the estimators
# Each returns dJ/dterm for every term (log_px (N, L); log_ratio (N, L) or None; kl
# (N, d) or 0), as one number where it is the same for every entry, and the batch
# objective J (nats per example, to maximise) as a function of the terms' batch means
# (``kernels.ops.batch_means``: log p(x|z), KL, log-ratio), so that a device step reads
# those three numbers once, after its update, and nothing before.
Weights = namedtuple("Weights", "objective log_px log_ratio kl")


def estimator_b(log_px, kl, log_ratio, beta, free_bits):
    """Kingma & Welling's estimator B: J = mean_n [mean_l log p(x_n|z_nl)] - beta * KL,
    the KL analytic (with free bits: ``objectives.kl_penalty``, on the host)."""
    n, n_samples = log_px.shape
    if not free_bits:
        return Weights(lambda means: means[0] - beta * means[1], 1.0 / (n * n_samples), None, -beta / n)
    penalty, dpenalty_dkl = kl_penalty(kernels.to_host(kl), free_bits)
    return Weights(lambda means: means[0] - beta * penalty, 1.0 / (n * n_samples), None, -beta * dpenalty_dkl)


def estimator_a(log_px, kl, log_ratio, beta, free_bits):
    """Estimator A: J = mean_n mean_l [log p(x_n|z_nl) + beta (log p(z_nl) - log q(z_nl|x_n))],
    every term sampled."""
    n, n_samples = log_px.shape
    weight = 1.0 / (n * n_samples)
    return Weights(lambda means: means[0] + beta * means[2], weight, beta * weight, 0.0)


def iwae_bound(log_px, kl, log_ratio, beta, free_bits):
    """Burda et al.'s bound: J = mean_n log mean_l w_nl, log w = log p(x|z) + log_ratio.
    Its gradient in log w_nl is the normalised weight softmax_l(log w_n)_l / N (the
    log-weights read on the host)."""
    log_w = kernels.to_host(log_px).astype(np.float64) + kernels.to_host(log_ratio)
    weight = importance_weights(log_w, axis=1) / len(log_w)
    objective = float(np.mean(log_mean_exp(log_w, axis=1)))
    return Weights(lambda means: objective, weight, weight, 0.0)


def weights_per_sample(w, shape, means):
    """``w`` with J a number (at the batch ``means``) and the sample weights (N, L)
    arrays: for a model whose own backward indexes them (the hyperspherical VAE)."""
    def per_sample(v):
        return None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), shape)
    return Weights(float(w.objective(kernels.to_host(means))), per_sample(w.log_px), per_sample(w.log_ratio), w.kl)


ESTIMATOR_OF = {("elbo", "B"): estimator_b, ("elbo", "A"): estimator_a, ("iwae", "A"): iwae_bound,
                ("iwae", "B"): iwae_bound}


def check_objective_terms(estimator, objective, beta, free_bits, mae_eta, mae_gamma):
    """The terms an objective takes: free bits act on estimator B's analytic KL; the IWAE
    bound takes no beta, free bits or MAE (it is a bound on log p(x), not a weighted ELBO)."""
    if free_bits and estimator == "A":
        raise ValueError("free_bits: applies to the analytic KL of estimator B; with estimator A use free_bits=0")
    if objective == "iwae" and (beta != 1 or free_bits or mae_eta or mae_gamma):
        raise ValueError(f"beta, free_bits, mae_eta, mae_gamma: the IWAE bound takes none of them, got beta={beta}, "
                         f"free_bits={free_bits}, mae_eta={mae_eta}, mae_gamma={mae_gamma}")


class VAE(LatentModel):
    """q(z|x) = N(mean, exp(logvar)) from ``encoder`` (outputs [mean, logvar], 2 d
    values), p(x|z) from ``decoder`` and ``likelihood``, p(z) = N(0, I).

    ``data_shape`` is the shape of one example (``(784,)`` for an MLP on MNIST,
    ``(1, 28, 28)`` for a conv net). Parameters are named ``"encoder.0.W"``,
    ``"decoder.1.b"``, ``"likelihood.logvar"``. ELBOs are nats per example.
    """

    codes_per_latent = 2
    device_path = True  # whether ``device_refusal`` may keep its training steps on the GPU

    def _labels(self, y, n):
        """One-hot labels to join the networks' inputs (none for a plain VAE)."""
        self.check_labels(y, n)
        return None

    # ---------------------------------------------------------------- the networks
    def encode(self, x, y=None):
        """``(mean, logvar)`` of q(z|x), each (N, latent_dim)."""
        self.check_x(x)
        mean, logvar = self._encode(self.placed(x), self._labels(y, len(x)))
        return kernels.to_host(mean), kernels.to_host(logvar)

    def _encoder_input(self, x, onehot):
        return x

    def _decoder_input(self, z, onehot):
        return z

    def _encode(self, x, onehot):
        h = self._check_output("encoder", self.encoder.forward(self._encoder_input(x, onehot)), 2 * self.latent_dim)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z, y=None):
        """The likelihood's parameters (the decoder's raw output, flattened per example)."""
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        return kernels.to_host(self._decode(self.placed(z), self._labels(y, len(z))))

    def _decode(self, z, onehot, x=None):
        """The decoder's output for codes ``z``; ``x``, the examples scored, is for a
        decoder that reads them (an autoregressive one), and unused here."""
        out = self.decoder.forward(self._decoder_input(z, onehot)).reshape(len(z), -1)
        return self._check_output("decoder", out, self.likelihood.out_features(math.prod(self.data_shape)))

    def reconstruct(self, x, y=None):
        """The likelihood's mean at z = the posterior mean: x -> E[x | z = mean(x)]."""
        mean, _ = self.encode(x, y)
        return self.likelihood.mean(self.decode(mean, y)).reshape(x.shape)

    def sample(self, n, rng, mean=False, y=None):
        """n examples from the model. ``mean=False``: ancestral sampling, z ~ p(z) then
        x ~ p(x|z). ``mean=True``: the decoder's mean E[x|z] (what most implementations
        show; not a sample of p(x))."""
        n, rng = check_positive_int(n, "n"), as_rng(rng)
        z = rng.standard_normal((n, self.latent_dim)).astype(self.dtype)
        out = self.decode(z, y)
        x = self.likelihood.mean(out) if mean else self.likelihood.sample(out, rng)
        return x.reshape(n, *self.data_shape)

    @property
    def on_device(self):
        """Whether the parameters are on the GPU (after ``to_device()`` on the CUDA backend)."""
        return kernels.is_device(next(iter(self.encoder.params.values())))

    def placed(self, x):
        """``x`` where the parameters are: uploaded once for a device-resident model."""
        return kernels.ops.to_device(x) if self.on_device else x

    # ---------------------------------------------------------------- the objective
    @property
    def noise_dim(self):
        """Standard normal numbers a sample of the latents takes (d; more with more layers)."""
        return self.latent_dim

    def _draw_eps(self, x, n_samples, rng, eps):
        """The noise (N, L, noise_dim) for the examples ``x``, drawn where x is, unless given."""
        shape = (len(x), check_positive_int(n_samples, "n_samples"), self.noise_dim)
        if eps is None:
            return kernels.ops.standard_normal(as_rng(rng), shape, self.dtype, like=x)
        return check_array(eps, "eps", shape=shape, dtype=self.dtype)

    def _forward(self, x, onehot, eps, grad_scale=None, log_ratio=True, x_corrupted=None, posterior=None):
        """The forward nodes in order, for noise ``eps`` (N, L, d), the encoder fed
        ``x_corrupted`` when given. Returns a dict of every array a backward pass reads
        (with a number ``grad_scale``, ``dlog_px_dout``: log p(x|z)'s gradient in the
        decoder's output, times it); arrays stay where ``x`` is. ``posterior``: the
        encoder's output for x, when known (an evaluation's chunks of samples share it)."""
        n, n_samples = eps.shape[:2]
        mean, logvar = posterior or self._encode(x if x_corrupted is None else x_corrupted, onehot)
        (z, kl), latent_cache = latent_forward(mean, logvar, eps)
        onehot_per_sample = None if onehot is None else np.repeat(onehot, n_samples, axis=0)
        x_per_sample = x.reshape(n, -1)
        if n_samples > 1:  # each example once per sample, rows in (n, l) order
            x_per_sample = kernels.ops.repeat_rows(x_per_sample, n_samples)
        out = self._decode(z.reshape(n * n_samples, self.latent_dim), onehot_per_sample, x_per_sample)
        log_px, dlog_px_dout = (self.likelihood.log_prob_and_grad(x_per_sample, out, grad_scale)
                                if grad_scale is not None else (self.likelihood.log_prob(x_per_sample, out), None))
        f = dict(mean=mean, logvar=logvar, z=z, kl=kl, latent_cache=latent_cache, dlog_px_dout=dlog_px_dout,
                 log_px=log_px.reshape(n, n_samples), log_ratio=None, log_ratio_cache=None)
        if log_ratio:
            f["log_ratio"], f["log_ratio_cache"] = log_ratio_forward(z, eps, logvar)
        return f

    def elbo(self, x, y=None, rng=None, n_samples=1, estimator="B", eps=None):
        """ELBO per example (nats, positive-is-better), averaged over ``n_samples`` draws."""
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
        if estimator == "B":
            return self.elbo_terms(x, y, rng, n_samples, eps)[0]
        self.check_x(x)
        x = self.placed(x)
        f = self._forward(x, self._labels(y, len(x)), self._draw_eps(x, n_samples, rng, eps))
        return np.mean(kernels.to_host(f["log_px"]) + kernels.to_host(f["log_ratio"]), axis=1)

    def elbo_terms(self, x, y=None, rng=None, n_samples=1, eps=None):
        """Estimator B's ELBO per example and its two terms, ``(elbo, log_px, kl)``, each
        (N,): log p(x|z) averaged over ``n_samples`` draws, and the analytic KL."""
        self.check_x(x)
        x = self.placed(x)
        f = self._forward(x, self._labels(y, len(x)), self._draw_eps(x, n_samples, rng, eps), log_ratio=False)
        log_px, kl = np.mean(kernels.to_host(f["log_px"]), axis=1), kernels.to_host(f["kl"]).sum(axis=1)
        return log_px - kl, log_px, kl

    def log_likelihood(self, x, y=None, k=5000, batch_size=100, rng=None, chunk=None, progress=None):
        """Importance-sampled estimate of log p(x) per example, with q(z|x) as proposal:
        log (1/k) sum_l p(x|z_l) p(z_l) / q(z_l|x). Its expectation is a lower bound
        that tightens to log p(x) as k grows (Burda et al.). Evaluated ``batch_size``
        examples and ``chunk`` samples at a time, so memory stays bounded: by default
        50,000 decoder passes at once for flat data, 2,000 for images (a conv net's
        feature maps are far larger than an MLP's hidden layers). ``progress``: a
        function ``(examples done, total)`` called after each batch."""
        self.check_x(x)
        self._labels(y, len(x))  # every label checked against x before the first batch
        if progress is not None and not callable(progress):
            raise TypeError(f"progress: expected a function (examples done, total) or None, got "
                            f"{type(progress).__name__}")
        k, batch_size = check_positive_int(k, "k"), check_positive_int(batch_size, "batch_size")
        if chunk is None:
            chunk = max(1, (2_000 if len(self.data_shape) == 3 else 50_000) // batch_size)
        chunk, rng = check_positive_int(chunk, "chunk"), as_rng(rng)
        result = np.empty(len(x))
        for s in range(0, len(x), batch_size):
            xb = self.placed(x[s : s + batch_size])
            onehot = self._labels(None if y is None else y[s : s + batch_size], len(xb))
            with kernels.ops.workspace(self.workspaces, "log_likelihood"):
                posterior, running = self._encode(xb, onehot), None  # the encoder once for all k samples
                for c in range(0, k, chunk):
                    f = self._forward(xb, onehot, self._draw_eps(xb, min(chunk, k - c), rng, None), posterior=posterior)
                    running = kernels.ops.log_sum_exp_rows(f["log_px"], f["log_ratio"], running)
                m, total = kernels.to_host(running).T  # the batch's one read
            result[s : s + len(xb)] = m + np.log(total) - np.log(k)
            if progress is not None:
                progress(s + len(xb), len(x))
        return result

    def loss_and_grad(self, x, y=None, rng=None, eps=None, estimator="B", objective="elbo", n_samples=1,
                      beta=1.0, free_bits=0.0, weight_decay_lambda=0.0, mae_eta=0.0, mae_gamma=0.0,
                      reduction="mean", check_input=True, x_corrupted=None, deferred=False):
        """The loss -J (J: the objective, nats per example of the batch) after zeroing
        and filling every parameter's gradient. Returns ``(loss, stats)``, ``stats`` the
        batch means of the ELBO (analytic KL, beta = 1), log p(x|z) and KL (and ``iwae``,
        ``mae`` when they apply).

        Forward: encoder, latent, decoder, likelihood, log_ratio (estimator A and IWAE).
        The estimator (``estimator_b``, ``estimator_a``, ``iwae_bound``) gives dJ/dterm
        and J; the loss's gradient in each term is minus that. Backward, in reverse:
        likelihood, decoder, log_ratio, latent, encoder; the MAE regulariser
        (``mae_eta``, ``mae_gamma``; not with IWAE) and weight decay add their own.

        ``reduction="sum"``: the loss and every gradient are N times the mean's, as in
        the IWAE paper's code (SGD's lr scales by N; Adam's steps are unchanged with its
        eps scaled by N). ``check_input=False`` skips the checks of ``x``, as
        scikit-learn's ``check_input``: for ``fit``, which checks the data whole.
        ``x_corrupted``: the encoder's input when it is a corrupted copy of ``x`` (a
        denoising VAE, Im, Ahn, Memisevic & Bengio 2017); log p(x|z) scores the clean x.
        ``deferred=True`` returns a function that reads ``(loss, stats)`` instead: the
        gradients are complete (queued, on the GPU) and the numbers are read when it is
        called, so that ``fit`` queues the update first and the GPU never waits for the host.
        """
        self._check_loss_settings(estimator, objective, beta, free_bits, mae_eta, mae_gamma, weight_decay_lambda,
                                  reduction)
        if check_input:
            self.check_x(x)
            self.check_corrupted(x, x_corrupted)
        x, onehot, n = self.placed(x), self._labels(y, len(x)), len(x)
        # Estimators B and A weigh every sample's log p(x|z) alike, by 1 / (N L): the
        # likelihood's kernel then writes the loss's gradient in the decoder's output as it
        # computes it. IWAE's weights need every log-weight first; they scale the rows after.
        alike = objective == "elbo"
        with kernels.ops.workspace(self.workspaces, "loss_and_grad"):
            f = self._forward(x, onehot, self._draw_eps(x, n_samples, rng, eps),
                              grad_scale=-1.0 / (n * n_samples) if alike else 1.0,
                              log_ratio=(objective, estimator) != ("elbo", "B"), x_corrupted=x_corrupted)
            means = kernels.ops.batch_means(f["log_px"], f["kl"], f["log_ratio"])
            w = ESTIMATOR_OF[objective, estimator](f["log_px"], f["kl"], f["log_ratio"], beta, free_bits)

            self.zero_grad()
            penalty = weight_decay(self.params, self.grads, weight_decay_lambda)
            weight = 1.0 if alike else -w.log_px.astype(self.dtype).ravel()  # 1: scaled by the likelihood already
            dloss_dout = self.likelihood.backward(f["dlog_px_dout"], weight)
            dloss_dz = self._decoder_grad_z(self.decoder.backward(dloss_dout.reshape(self.decoder.out_shape)))
            dloss_dz = dloss_dz.reshape(f["z"].shape)
            if w.log_ratio is not None:  # estimator A, IWAE: log p(z) - log q(z|x) reaches z and logvar too
                dloss_dz_ratio, dloss_dlogvar_ratio = log_ratio_backward(-w.log_ratio, f["log_ratio_cache"])
                dloss_dz = kernels.ops.add(dloss_dz, dloss_dz_ratio)
            dloss_dmean, dloss_dlogvar = latent_backward(dloss_dz, -w.kl, f["latent_cache"])
            if w.log_ratio is not None:
                dloss_dlogvar = kernels.ops.add(dloss_dlogvar, dloss_dlogvar_ratio)
            extra = {}
            if mae_eta or mae_gamma:
                mae, dmae_dmean, dmae_dlogvar, pair_kl_mean, pair_kl_std = mae_regularizer(f["mean"], f["logvar"],
                                                                                           mae_eta, mae_gamma)
                penalty += mae
                dloss_dmean, dloss_dlogvar = kernels.ops.add(dloss_dmean, dmae_dmean), kernels.ops.add(dloss_dlogvar,
                                                                                                 dmae_dlogvar)
                extra = {"mae": mae, "posterior_kl_mean": float(pair_kl_mean.sum()), "posterior_kl_std": pair_kl_std}
            self.encoder.backward(kernels.ops.concat_columns(dloss_dmean, dloss_dlogvar), need_dx=False)
            if reduction == "sum":
                summed(self, 0.0, n)

        def read():
            m = kernels.to_host(means)
            loss = (-w.objective(m) + penalty) * (n if reduction == "sum" else 1)
            stats = {"elbo": float(m[0] - m[1]), "log_px": float(m[0]), "kl": float(m[1]), **extra,
                     **({"iwae": w.objective(m)} if objective == "iwae" else {})}
            return float(loss), stats

        return read if deferred else read()

    def _decoder_grad_z(self, dloss_dinput):
        """dloss/dz from the gradient in the decoder's input (labels, if any, dropped)."""
        return dloss_dinput

    def _check_loss_settings(self, estimator, objective, beta, free_bits, mae_eta, mae_gamma, weight_decay_lambda,
                             reduction):
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        check_mae_weights(mae_eta, mae_gamma)
        check_reduction(reduction)
        check_number(beta, "beta", 0)
        check_number(weight_decay_lambda, "weight_decay_lambda", 0)
        check_objective_terms(estimator, objective, beta, check_number(free_bits, "free_bits", 0), mae_eta, mae_gamma)
        if self.on_device:
            refusal = device_refusal(self)
            if refusal:
                raise ValueError(f"model: its parameters are on the GPU, and {refusal}; call model.to_host() first")
