"""The variational autoencoder, and its conditional variant."""

import math

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_positive_int
from ..distributions import reparameterize_kl, reparameterize_kl_backward
from ..objectives import importance_weights, kl_penalty, log_mean_exp, check_mae_weights, mae_regularizer, weight_decay
from .base import LatentModel, check_reduction, summed

ESTIMATORS = ("A", "B")
OBJECTIVES = ("elbo", "iwae")


class VAE(LatentModel):
    """q(z|x) = N(mean, exp(logvar)) from ``encoder`` (outputs [mean, logvar], 2 d
    values), p(x|z) from ``decoder`` and ``likelihood``, p(z) = N(0, I).

    ``data_shape`` is the shape of one example (``(784,)`` for an MLP on MNIST,
    ``(1, 28, 28)`` for a conv net). Parameters are named ``"encoder.0.W"``,
    ``"decoder.1.b"``, ``"likelihood.logvar"``. ELBOs are nats per example.
    """

    codes_per_latent = 2

    # ---------------------------------------------------------------- labels

    def _labels(self, y, n):
        """One-hot labels to concatenate (none for a plain VAE)."""
        self.check_labels(y, n)
        return None

    @staticmethod
    def _with(a, onehot):
        return a if onehot is None else kernels.ops.concat_columns(a, onehot)

    # ---------------------------------------------------------------- the networks

    def encode(self, x, y=None):
        """``(mean, logvar)`` of q(z|x), each (N, latent_dim)."""
        self.check_x(x)
        mean, logvar = self._encode(self.placed(x), self._labels(y, len(x)))
        return kernels.to_host(mean), kernels.to_host(logvar)

    def _encoder_input(self, x, onehot):
        """x with the labels appended: as features of flat data, as ``n_classes``
        constant channels of images (N, C, H, W)."""
        if onehot is None:
            return x
        if len(self.data_shape) == 3:
            planes = np.broadcast_to(onehot[:, :, None, None], (len(x), onehot.shape[1], *self.data_shape[1:]))
            return np.concatenate([x, planes], axis=1)
        return kernels.ops.concat_columns(x.reshape(len(x), -1), onehot)

    def _encode(self, x, onehot):
        h = self._check_output("encoder", self.encoder.forward(self._encoder_input(x, onehot)), 2 * self.latent_dim)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z, y=None):
        """The likelihood's parameters (the decoder's raw output, flattened per example)."""
        check_array(z, "z", shape=(None, self.latent_dim), dtype=self.dtype)
        return kernels.to_host(self._decode(self.placed(z), self._labels(y, len(z))))

    def _decode(self, z, onehot):
        out = self.decoder.forward(self._with(z, onehot)).reshape(len(z), -1)
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

    # ---------------------------------------------------------------- the objectives

    def _terms(self, x, onehot, eps, grad=False, densities=True):
        """Forward pass with noise ``eps`` (N, L, d): every per-sample term, and with
        ``grad`` the likelihood's gradient in the decoder's output (``dlog_px``).
        ``densities``: also log p(z) and log q(z|x), which only estimator A and the
        IWAE bound use (estimator B's KL is analytic): as one term, log p(z) - log q(z|x).
        Arrays stay where ``x`` is (on the GPU for a device-resident model)."""
        n, n_samples = eps.shape[:2]
        mean, logvar = self._encode(x, onehot)
        z, kl = reparameterize_kl(mean, logvar, eps)  # (N, L, d), (N, d)
        rep = None if onehot is None else np.repeat(onehot, n_samples, axis=0)
        out = self._decode(z.reshape(n * n_samples, self.latent_dim), rep)
        x_rep = x.reshape(n, -1)
        if n_samples > 1:  # each example once per sample, rows in (n, l) order
            x_rep = kernels.ops.take_rows(x_rep, np.repeat(np.arange(n), n_samples))
        if grad:
            log_px, dlog_px = self.likelihood.log_prob_and_grad(x_rep, out)
        else:
            log_px, dlog_px = self.likelihood.log_prob(x_rep, out), None
        t = dict(mean=mean, logvar=logvar, z=z, out=out, kl=kl, log_px=log_px.reshape(n, n_samples), dlog_px=dlog_px)
        if densities:
            t["log_pz_minus_log_qz"] = kernels.ops.log_pz_minus_log_qz(z, eps, logvar)
        return t

    def _draw_eps(self, x, n_samples, rng, eps):
        """The noise (N, L, d) for the examples ``x``, drawn where x is (the GPU for a
        device array), unless given."""
        shape = (len(x), check_positive_int(n_samples, "n_samples"), self.latent_dim)
        if eps is None:
            return kernels.ops.standard_normal(as_rng(rng), shape, self.dtype, like=x)
        return check_array(eps, "eps", shape=shape, dtype=self.dtype)

    @property
    def on_device(self):
        """Whether the parameters are on the GPU (after ``to_device()`` on the CUDA backend)."""
        return kernels.is_device(next(iter(self.encoder.params.values())))

    def placed(self, x):
        """``x`` where the parameters are: uploaded once for a device-resident model."""
        return kernels.ops.to_device(x) if self.on_device else x

    def device_refusal(self, estimator="B", objective="elbo", mae=False, weight_decay=False, reduction="mean"):
        """Why a training step with these settings cannot keep its arrays on the GPU
        (a sentence), or None when it can: the device path covers the plain VAE with
        estimator B (any samples, beta, annealing, free bits), a Bernoulli or
        fixed-sigma Gaussian likelihood, and the batch mean. The rest trains on the
        CUDA backend with NumPy arrays, each op copying to the GPU and back."""
        reasons = [(hasattr(self, "n_classes"), "a ConditionalVAE's labels"),
                   (not getattr(self.likelihood, "on_device", False), f"the {self.likelihood.name} likelihood"),
                   (objective != "elbo" or estimator != "B", f"objective {objective!r} with estimator {estimator!r}"),
                   (mae, "the MAE regulariser"), (weight_decay, "weight decay"), (reduction != "mean", "reduction 'sum'")]
        found = [what for refused, what in reasons if refused]
        return f"{', '.join(found)} not yet on the device" if found else None

    def elbo(self, x, y=None, rng=None, n_samples=1, estimator="B", eps=None):
        """ELBO per example (nats, positive-is-better), averaged over ``n_samples`` draws."""
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
        self.check_x(x)
        x = self.placed(x)
        eps = self._draw_eps(x, n_samples, rng, eps)
        t = self._terms(x, self._labels(y, len(x)), eps, densities=estimator == "A")
        log_px = kernels.to_host(t["log_px"])
        if estimator == "A":
            return np.mean(log_px + kernels.to_host(t["log_pz_minus_log_qz"]), axis=1)
        return np.mean(log_px, axis=1) - kernels.to_host(t["kl"]).sum(axis=1)

    def log_likelihood(self, x, y=None, k=5000, batch_size=100, rng=None, chunk=None, progress=None):
        """Importance-sampled estimate of log p(x) per example, with q(z|x) as proposal:
        log (1/k) sum_l p(x|z_l) p(z_l) / q(z_l|x). Its expectation is a lower bound
        that tightens to log p(x) as k grows (Burda et al.). Evaluated ``batch_size``
        examples and ``chunk`` samples at a time, so memory stays bounded: by default
        50,000 decoder passes at once for flat data, 2,000 for images (a conv net's
        feature maps are far larger than an MLP's hidden layers). ``progress``: a
        function ``(examples done, total)`` called after each batch."""
        self.check_x(x)
        k, batch_size = check_positive_int(k, "k"), check_positive_int(batch_size, "batch_size")
        if chunk is None:
            chunk = max(1, (2_000 if len(self.data_shape) == 3 else 50_000) // batch_size)
        chunk, rng = check_positive_int(chunk, "chunk"), as_rng(rng)
        result = np.empty(len(x))
        for s in range(0, len(x), batch_size):
            xb = self.placed(x[s : s + batch_size])
            onehot = self._labels(None if y is None else y[s : s + batch_size], len(xb))
            log_w = []
            for c in range(0, k, chunk):
                eps = self._draw_eps(xb, min(chunk, k - c), rng, None)
                t = self._terms(xb, onehot, eps)
                log_w.append(kernels.to_host(t["log_px"]).astype(np.float64)
                             + kernels.to_host(t["log_pz_minus_log_qz"]))
            result[s : s + len(xb)] = log_mean_exp(np.concatenate(log_w, axis=1), axis=1)
            if progress is not None:
                progress(s + len(xb), len(x))
        return result

    def loss_and_grad(self, x, y=None, rng=None, eps=None, estimator="B", objective="elbo", n_samples=1,
                      beta=1.0, free_bits=0.0, weight_decay_lambda=0.0, mae_eta=0.0, mae_gamma=0.0,
                      reduction="mean", check_input=True):
        """The training loss (a scalar: minus the objective, averaged over the batch)
        after zeroing and filling every parameter's gradient. Returns ``(loss, stats)``
        with ``stats`` the batch means of the ELBO (analytic KL, beta = 1), log p(x|z)
        and KL, and the IWAE bound when that is the objective.

        The gradient, read backward (N examples, L samples, w = d loss / d term):

        * log p(x|z_l), w = -a_nl / N  -> likelihood.backward -> decoder.backward -> dz
        * log p(z_l) - log q(z_l|x), w = -c_nl / N: log p(z) = -|z|^2/2 + const adds
          w * (-z) to dz; with eps fixed, log q(z|x) = -1/2 sum(log 2pi + logvar + eps^2)
          depends on logvar alone, adding w * 1/2 to dlogvar
        * analytic KL (estimator B), weight beta: its gradient in (mean, logvar)
        * dz -> (dmean, dlogvar) through z = mean + exp(logvar/2) eps -> encoder.backward

        where a = c = 1/L (estimator A; c = beta/L), a = 1/L, c = 0 (estimator B), and
        a = c = softmax_l(log w_nl) for the IWAE bound.

        ``mae_eta``, ``mae_gamma`` > 0 add the MAE regulariser of the batch's posteriors
        (``objectives.mae_regularizer``), its gradient joining (dmean, dlogvar); it
        composes with beta, free bits and annealing, not with the IWAE bound.

        ``reduction="sum"``: the loss (and every gradient) is N times the mean's, as
        in the IWAE paper's code. Nothing else changes: SGD's lr scales by N, and
        Adam's steps are the same with eps scaled by N (it divides m by sqrt(v)).

        ``check_input=False`` skips the checks of ``x`` (dtype, shape, finite values,
        the likelihood's support), as scikit-learn's ``check_input``: for ``fit``, which
        checks the whole training set once before its first step.
        """
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        check_mae_weights(mae_eta, mae_gamma)
        check_reduction(reduction)
        if objective == "iwae" and (beta != 1 or free_bits or mae_eta or mae_gamma):
            raise ValueError(f"beta, free_bits, mae_eta, mae_gamma: the IWAE bound takes none of them, got beta={beta}, "
                             f"free_bits={free_bits}, mae_eta={mae_eta}, mae_gamma={mae_gamma}")
        if check_input:
            self.check_x(x)
        if self.on_device:
            refusal = self.device_refusal(estimator, objective, bool(mae_eta or mae_gamma), bool(weight_decay_lambda),
                                          reduction)
            if refusal:
                raise ValueError(f"model: its parameters are on the GPU, and {refusal}; call model.to_host() first")
            x = self.placed(x)
        n = len(x)
        onehot = self._labels(y, n)
        eps = self._draw_eps(x, n_samples, rng, eps)
        t = self._terms(x, onehot, eps, grad=True, densities=objective == "iwae" or estimator == "A")
        # The per-example numbers come to the host (from the GPU: N x L and N x d numbers).
        log_px_n, kl_n = kernels.to_host(t["log_px"]), kernels.to_host(t["kl"])
        log_px, kl = float(log_px_n.mean()), float(kl_n.sum()) / n  # batch means
        stats = {"elbo": log_px - kl, "log_px": log_px, "kl": kl}

        L = n_samples
        if objective == "iwae":
            log_w = log_px_n + t["log_pz_minus_log_qz"]
            a = c = importance_weights(log_w, axis=1)
            stats["iwae"] = float(np.mean(log_mean_exp(log_w, axis=1)))
            objective_value = stats["iwae"]
        elif estimator == "A":
            a, c = np.full((n, L), 1.0 / L), np.full((n, L), beta / L)
            objective_value = float(np.mean(np.sum(a * log_px_n + c * t["log_pz_minus_log_qz"], axis=1)))
        else:
            a, c = np.full((n, L), 1.0 / L), None
            penalty, dkl = kl_penalty(kl_n, free_bits)
            objective_value = log_px - beta * penalty

        self.zero_grad()
        loss = -objective_value
        if weight_decay_lambda:  # (building the flat dicts costs 1% of a small step)
            loss += weight_decay(self.params, self.grads, weight_decay_lambda)
        mae = None
        if mae_eta or mae_gamma:
            mae = mae_regularizer(t["mean"], t["logvar"], mae_eta, mae_gamma)
            loss += mae[0]
            stats.update(mae=mae[0], posterior_kl_mean=float(mae[3].sum()), posterior_kl_std=mae[4])

        dout = self.likelihood.backward(t["dlog_px"], (-a / n).astype(self.dtype).ravel())
        dx = self.decoder.backward(dout.reshape(self.decoder.out_shape))
        dz = (dx if onehot is None else dx[:, : self.latent_dim]).reshape(t["z"].shape)
        if c is None:
            dmean, dlogvar = reparameterize_kl_backward(dz, eps, t["mean"], t["logvar"], beta * dkl)
        else:
            w = (-c / n).astype(self.dtype)[..., None]
            dmean, dlogvar = reparameterize_kl_backward(dz - w * t["z"], eps, t["mean"], t["logvar"], 0.0)
            dlogvar += 0.5 * w.sum(axis=1)
        if mae is not None:
            dmean, dlogvar = dmean + mae[1], dlogvar + mae[2]
        self.encoder.backward(kernels.ops.concat_columns(dmean, dlogvar), need_dx=False)
        return summed(self, loss, n) if reduction == "sum" else loss, stats


class ConditionalVAE(VAE):
    """The VAE with a one-hot label concatenated to the encoder's input and to the
    decoder's input: q(z|x, y), p(x|z, y). Every method takes ``y`` (N,) ints in
    [0, n_classes). Build MLP ones with ``ConditionalVAE.mlp(..., n_classes=10)``."""

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape, n_classes=10):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)
        self.n_classes = check_positive_int(n_classes, "n_classes", 2)

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

    def sample(self, n, rng, mean=False, y=None):
        """Samples given labels ``y`` (an int for all n, or n ints)."""
        return super().sample(n, rng, mean, np.broadcast_to(np.asarray(y), (n,)) if y is not None else None)
