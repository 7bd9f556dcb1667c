"""The hyperspherical VAE (S-VAE): a von Mises-Fisher posterior on S^{d-1} and the
uniform prior (Davidson, Falorsi, De Cao, Kipf & Tomczak, "Hyperspherical Variational
Auto-Encoders", UAI 2018)."""

import numpy as np

from .. import hyperspherical as vmf
from .. import kernels
from ..checks import as_rng, check_positive_int
from ..objectives import weight_decay
from .base import summed
from .vae import VAE, estimator_b, weights_per_sample


class HypersphericalVAE(VAE):
    """q(z|x) = vMF(mu(x), kappa(x)) on the unit sphere S^{d-1} in R^d (d =
    ``latent_dim`` >= 2), p(z) uniform on it. The encoder gives d + 1 numbers per
    example: h, normalised to mu = h / |h|, and a, with kappa = 1 + softplus(a) (the
    authors' code adds the 1: it keeps q(z|x) off the uniform, kappa = 0, which a
    short or unlucky start can otherwise fall into, every unit inactive). The KL to the
    uniform prior is analytic and depends on kappa alone; the sample's gradient reaches
    mu through the Householder reflection and kappa through the implicit
    reparameterisation of w (``npvae.hyperspherical``). Trained with the ELBO of
    estimator B; the importance-sampled log p(x) uses the vMF proposal. A uniform prior has
    no mode for every posterior to collapse onto: a posterior equal to the prior is kappa
    = 0, which the KL reaches only by giving up the direction mu altogether.

    On the GPU (the device path) the networks and the likelihood stay on the device; the
    vMF sampler, a rejection sampler drawing as many numbers as it needs, runs on the
    host in float64: a step reads the encoder's output, log p(x|z) and z's gradient, and
    uploads z and the encoder's output gradient (five synchronisations, each of at most
    N L (d + 1) numbers).
    """

    @classmethod
    def encoder_outputs(cls, latent_dim):
        return latent_dim + 1

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape):
        super().__init__(encoder, decoder, likelihood, latent_dim, data_shape)
        check_positive_int(latent_dim, "latent_dim", 2)  # S^0 is two points: no direction to learn
        self._fixed = None  # (cdf, v) held fixed by the tests' finite differences

    # ---------------------------------------------------------------- the networks
    def _encode(self, x, onehot):
        """``(mu, kappa, cache)``: mu (N, d) on the sphere, kappa (N,) = 1 + softplus(a)."""
        h = self._check_output("encoder", self.encoder.forward(self._encoder_input(x, onehot)), self.latent_dim + 1)
        h = kernels.to_host(h).astype(np.float64)  # the sampler's side: the host, float64
        direction, a = h[:, : self.latent_dim], h[:, self.latent_dim]
        norm = np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-30)  # h = 0: any direction
        return direction / norm, 1 + np.logaddexp(0, a), (norm, a)

    def encode(self, x, y=None):
        """``(mu, kappa)`` of q(z|x): (N, d) unit vectors and (N,) concentrations."""
        self.check_x(x)
        self.check_labels(y, len(x))
        mu, kappa, _ = self._encode(self.placed(x), None)
        return mu, kappa

    def sample(self, n, rng, mean=False, y=None):
        """z uniform on the sphere, then x ~ p(x|z) (``mean``: E[x|z])."""
        n, rng = check_positive_int(n, "n"), as_rng(rng)
        self.check_labels(y, n)
        out = self.decode(vmf.uniform_sphere(rng, (n,), self.latent_dim).astype(self.dtype))
        return (self.likelihood.mean(out) if mean else self.likelihood.sample(out, rng)).reshape(n, *self.data_shape)

    def reconstruct(self, x, y=None):
        mu, _ = self.encode(x, y)
        return self.likelihood.mean(self.decode(mu.astype(self.dtype))).reshape(x.shape)

    # ---------------------------------------------------------------- the objective
    def _draw_eps(self, x, n_samples, rng, eps):
        """The sampler's randomness is drawn in ``_forward`` (a rejection sampler takes
        as many numbers as it needs); this keeps the generator and the sample count."""
        if eps is not None:
            raise ValueError("eps: a vMF sample is not a Gaussian's eps; hold the sampler fixed with fixed_noise")
        return as_rng(rng), check_positive_int(n_samples, "n_samples")

    def fixed_noise(self, cdf, v):
        """Hold the sampler's randomness fixed (None, None: draw afresh): w's CDF values
        ``cdf`` (N L,) and the tangent directions ``v`` (N L, d - 1), so that the loss is a
        differentiable function of the parameters (for finite differences)."""
        if cdf is not None and (np.ndim(cdf) != 1 or np.shape(v) != (len(cdf), self.latent_dim - 1)):
            raise ValueError(f"cdf, v: expected (N L,) CDF values and (N L, {self.latent_dim - 1}) directions, got "
                             f"shapes {np.shape(cdf)}, {np.shape(v)}")
        self._fixed = None if cdf is None else (np.asarray(cdf, np.float64), np.asarray(v, np.float64))

    def _forward(self, x, onehot, eps, grad_scale=None, log_ratio=True, x_corrupted=None, posterior=None):
        rng, n_samples = eps
        n, d = len(x), self.latent_dim
        mu, kappa, encoder_cache = posterior or self._encode(x if x_corrupted is None else x_corrupted, onehot)
        rows = np.repeat(np.arange(n), n_samples)  # sample l of example i is row i L + l
        cdf, v = self._fixed or (None, None)
        z, sample_cache = vmf.sample(mu[rows], kappa[rows], rng, cdf, v)
        kl, dkl_dkappa = vmf.kl_to_uniform(d, kappa)
        x_per_sample = x.reshape(n, -1) if n_samples == 1 else kernels.ops.repeat_rows(x.reshape(n, -1), n_samples)
        out = self._decode(self.placed(z.astype(self.dtype)), None, x_per_sample)
        log_px, dlog_px_dout = (self.likelihood.log_prob_and_grad(x_per_sample, out, grad_scale)
                                if grad_scale is not None else (self.likelihood.log_prob(x_per_sample, out), None))
        f = dict(mean=mu, kappa=kappa, kl=kl[:, None], dkl_dkappa=dkl_dkappa, encoder_cache=encoder_cache, z=z,
                 sample_cache=sample_cache, dlog_px_dout=dlog_px_dout, log_px=log_px.reshape(n, n_samples),
                 log_ratio=None)
        if log_ratio:  # log p(z) - log q(z|x), the uniform density minus the vMF's, placed beside log p(x|z)
            f["log_ratio"] = self.placed((-vmf.log_sphere_area(d) - vmf.log_prob(z, mu[rows], kappa[rows]))
                                         .reshape(n, n_samples))
        return f

    def loss_and_grad(self, x, y=None, rng=None, eps=None, estimator="B", objective="elbo", n_samples=1,
                      beta=1.0, free_bits=0.0, weight_decay_lambda=0.0, mae_eta=0.0, mae_gamma=0.0,
                      reduction="mean", check_input=True, x_corrupted=None, deferred=False):
        """-ELBO (estimator B: the analytic KL, beta times) and every gradient (``deferred``:
        returned as a function, as :meth:`VAE.loss_and_grad`'s; here read already). Backward:
        the decoder gives dL/dz; ``vmf.sample_backward`` takes it to mu (through the
        Householder reflection) and kappa (through w's implicit gradient); the KL adds
        beta dKL/dkappa; then kappa = 1 + softplus(a) gives dL/da = dL/dkappa sigmoid(a), and
        mu = h / |h| gives dL/dh = (dL/dmu - mu (mu . dL/dmu)) / |h|."""
        self._check_loss_settings(estimator, objective, beta, free_bits, mae_eta, mae_gamma, weight_decay_lambda,
                                  reduction)
        if (objective, estimator) != ("elbo", "B") or free_bits or mae_eta or mae_gamma:
            raise ValueError(f"objective, estimator, free_bits, mae_eta, mae_gamma: a HypersphericalVAE trains on the "
                             f"ELBO with its analytic KL (objective 'elbo', estimator 'B', no free bits or MAE), got "
                             f"{objective!r}, {estimator!r}, {free_bits}, {mae_eta}, {mae_gamma}")
        if check_input:
            self.check_x(x)
            self.check_corrupted(x, x_corrupted)
        self.check_labels(y, len(x))
        n = len(x)
        x, x_corrupted = self.placed(x), None if x_corrupted is None else self.placed(x_corrupted)
        # every sample's log p(x|z) weighs 1 / (N L): the likelihood's kernel scales its gradient
        f = self._forward(x, None, self._draw_eps(x, n_samples, rng, eps), grad_scale=-1.0 / (n * n_samples),
                          log_ratio=False, x_corrupted=x_corrupted)
        log_px = kernels.to_host(f["log_px"])
        w = weights_per_sample(estimator_b(log_px, f["kl"], None, beta, 0.0), log_px.shape,
                               kernels.ops.batch_means(log_px, f["kl"]))
        stats = {"elbo": float(log_px.mean() - f["kl"].mean()), "log_px": float(log_px.mean()),
                 "kl": float(f["kl"].mean())}
        self.zero_grad()
        loss = -w.objective + weight_decay(self.params, self.grads, weight_decay_lambda)
        dloss_dout = self.likelihood.backward(f["dlog_px_dout"], 1.0)
        dloss_dz = kernels.to_host(self.decoder.backward(dloss_dout.reshape(self.decoder.out_shape))).astype(np.float64)
        dmu_rows, dkappa_rows = vmf.sample_backward(dloss_dz.reshape(len(f["z"]), -1), f["sample_cache"])
        dloss_dmu = dmu_rows.reshape(n, -1, self.latent_dim).sum(axis=1)
        dloss_dkappa = dkappa_rows.reshape(n, -1).sum(axis=1) - w.kl * f["dkl_dkappa"]
        norm, a = f["encoder_cache"]
        mu = f["mean"]
        dloss_dh = (dloss_dmu - mu * np.sum(mu * dloss_dmu, axis=1, keepdims=True)) / norm
        dloss_da = dloss_dkappa / (1 + np.exp(-a))
        self.encoder.backward(self.placed(np.concatenate([dloss_dh, dloss_da[:, None]], axis=1).astype(self.dtype)),
                              need_dx=False)
        result = (summed(self, loss, n) if reduction == "sum" else loss, stats)
        return (lambda: result) if deferred else result
