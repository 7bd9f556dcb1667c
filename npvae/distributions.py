"""The three distributions of a VAE, with their gradients written out.

* q(z|x) = N(z; mean, diag(exp(logvar))): the encoder outputs the log-variance,
  so the variance is ``exp(logvar)`` and the standard deviation ``exp(logvar / 2)``.
* p(z) = N(0, I).
* p(x|z): a likelihood whose parameters the decoder outputs (``Bernoulli``,
  ``ContinuousBernoulli`` for grey levels in [0, 1], ``Gaussian`` with fixed sigma,
  ``GaussianLearnedVar`` with a free per-dimension log-variance, ``GaussianDecoderVar``
  whose log-variance the decoder outputs too).

Log-densities are summed over dimensions and returned per example (nats).
"""

import numpy as np
from scipy.special import expit

from . import kernels
from .checks import check_array, check_number, check_unit_interval
from .constants import LOG_2PI
from .nn.module import Module


# ------------------------------------------------------------------------ q(z|x), p(z)


def reparameterize(mean, logvar, eps=None, rng=None):
    """Draw z ~ q(z|x) as a differentiable function of (mean, logvar):
    ``z = mean + exp(logvar / 2) * eps``, eps ~ N(0, I). Returns ``(z, eps)``.

    ``eps`` may be passed (to hold the noise fixed), else it is drawn from ``rng``.
    """
    if eps is None:
        if rng is None:
            raise ValueError("rng: expected a numpy.random.Generator when eps is not given, got None")
        eps = rng.standard_normal(mean.shape).astype(mean.dtype)
    return mean + np.exp(0.5 * logvar) * eps, eps


def reparameterize_backward(dz, eps, logvar):
    """Given dL/dz for ``z = mean + exp(logvar/2) eps`` (eps held fixed)::

        dL/dmean   = dL/dz
        dL/dlogvar = dL/dz * eps * exp(logvar/2) / 2
    """
    return dz, dz * eps * 0.5 * np.exp(0.5 * logvar)


def gaussian_log_prob(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))), summed over the last axis::

        -1/2 sum_d [log 2 pi + logvar_d + (z_d - mean_d)^2 exp(-logvar_d)]
    """
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mean) ** 2 * np.exp(-logvar), axis=-1)


def gaussian_log_prob_grad(z, mean, logvar):
    """Partial derivatives of :func:`gaussian_log_prob`: ``(d/dz, d/dmean, d/dlogvar)``::

        d/dz = -(z - mean) / var,  d/dmean = (z - mean) / var,
        d/dlogvar = -1/2 + (z - mean)^2 / (2 var)
    """
    inv_var = np.exp(-logvar)
    dmean = (z - mean) * inv_var
    return -dmean, dmean, -0.5 + 0.5 * (z - mean) ** 2 * inv_var


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over the last axis; its gradient in z is ``-z``."""
    return -0.5 * np.sum(LOG_2PI + z * z, axis=-1)


def kl_standard_normal(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per dimension, shape of ``mean``::

        KL_d = 1/2 (exp(logvar_d) + mean_d^2 - 1 - logvar_d)

    Sum over the last axis for the per-example KL.
    """
    return 0.5 * (np.exp(logvar) + mean * mean - 1.0 - logvar)


def kl_standard_normal_grad(mean, logvar):
    """``(dKL/dmean, dKL/dlogvar) = (mean, (exp(logvar) - 1) / 2)``."""
    return mean, 0.5 * (np.exp(logvar) - 1.0)


# ------------------------------------------------------------------------- p(x|z)


class Likelihood(Module):
    """p(x|z) given the decoder's output ``out`` (N, out_features(D)).

    ``log_prob(x, out)`` per example; ``log_prob_and_grad(x, out)`` returns it together
    with ``grad``, its gradient (one fused kernel over the decoder's output);
    ``backward(grad, weight)`` for a loss ``L = sum_n weight_n log_prob_n``: returns
    dL/dout and adds dL/dparam into ``grads`` (for learned parameters);
    ``mean(out)``, ``std(out)``, ``sample(out, rng)``.
    """

    name = "likelihood"

    def out_features(self, d):
        """How many decoder outputs a D-dimensional x needs."""
        return d

    def check_data(self, x, name="x"):
        """x a finite float array in the likelihood's support (here: any real)."""
        return check_array(x, name)

    on_device = False  # whether a device-resident VAE can train with it (``models.device.device_refusal``)

    def backward(self, grad, weight):
        """L = sum_n w_n log p_n, so dL/dout[n] = w_n * dlog p_n/dout[n] = w_n grad[n].
        ``weight`` (N,), or the number 1 for a gradient that ``log_prob_and_grad``
        scaled already (then ``grad`` is returned as it is)."""
        return grad if np.ndim(weight) == 0 and weight == 1 else kernels.ops.scale_rows(grad, weight)


class Bernoulli(Likelihood):
    """p(x|z) = prod_d p_d^x_d (1 - p_d)^(1 - x_d) with p = sigmoid(logits), x in [0, 1]
    (grey levels are allowed: the "continuous Bernoulli" caveat applies).

    log p = sum_d [x_d l_d - softplus(l_d)] (stable: no log(0)), because
    log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l).
    d log p / d l_d = x_d - sigmoid(l_d).
    """

    name = "bernoulli"
    on_device = True

    def check_data(self, x, name="x"):
        return check_unit_interval(x, name, "for a Bernoulli likelihood")

    def log_prob(self, x, logits):
        return kernels.ops.bernoulli_log_prob(x, logits)

    def log_prob_and_grad(self, x, logits, scale=1.0):
        """log p per row, and its gradient in the logits times ``scale`` (one kernel)."""
        return kernels.ops.bernoulli_log_prob_grad(x, logits, scale)

    def mean(self, logits):
        return expit(logits)

    def std(self, logits):
        p = expit(logits)
        return np.sqrt(p * (1 - p))

    def sample(self, logits, rng):
        return (rng.random(logits.shape) < expit(logits)).astype(logits.dtype)


# |logit| below which the continuous Bernoulli's log-normaliser and its derivative use
# their Taylor series: there the closed forms divide two small numbers (0/0 at l = 0),
# while the series' next terms are under 1e-12 of the value.
SERIES_BELOW = 0.03


def cb_log_normaliser(logits):
    """log C for the continuous Bernoulli (Loaiza-Ganem & Cunningham, "The continuous
    Bernoulli: fixing a pervasive error in variational autoencoders", 2019), in logits
    l = log(lambda / (1 - lambda)), in float64. With 1 - 2 lambda = -tanh(l/2) and
    atanh(1 - 2 lambda) = -l/2, their C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda)
    becomes ``C = l / tanh(l/2)``, even in l, with C -> 2 at l = 0; and, u = l/2,
    log(u coth u) = u^2/3 - 7u^4/90 + 62u^6/2835 - ...::

        log C = log 2 + l^2/12 - 7 l^4/1440 + 31 l^6/90720 + O(l^8)   (|l| < SERIES_BELOW)
    """
    a = np.abs(np.asarray(logits, dtype=np.float64))
    small = a < SERIES_BELOW
    safe = np.where(small, 1.0, a)
    l2 = a * a
    series = np.log(2.0) + l2 / 12 - 7 * l2 * l2 / 1440 + 31 * l2**3 / 90720
    return np.where(small, series, np.log(safe) - np.log(np.tanh(safe / 2)))


def cb_log_normaliser_grad(logits):
    """d log C / d l = 1/l - 1/sinh(l) (odd in l), the sinh written with exp(-|l|) so that
    nothing overflows; below SERIES_BELOW, the series' derivative
    l/6 - 7 l^3/360 + 31 l^5/15120."""
    l = np.asarray(logits, dtype=np.float64)
    a = np.abs(l)
    small = a < SERIES_BELOW
    safe = np.where(small, 1.0, a)
    direct = 1 / safe - 2 * np.exp(-safe) / -np.expm1(-2 * safe)
    series = a / 6 - 7 * a**3 / 360 + 31 * a**5 / 15120
    return np.sign(l) * np.where(small, series, direct)


class ContinuousBernoulli(Likelihood):
    """p(x|z) = prod_d C(l_d) lambda_d^x_d (1 - lambda_d)^(1 - x_d) on x in [0, 1] with
    lambda = sigmoid(l): the Bernoulli's kernel made a density on the grey levels by its
    normaliser C (``cb_log_normaliser``), so grey-level data get a proper likelihood::

        log p     = sum_d [x_d l_d - softplus(l_d) + log C(l_d)]
        d/d l_d   = x_d - sigmoid(l_d) + 1/l_d - 1/sinh(l_d)

    Its mean is lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) = sigmoid(l) /
    tanh(l/2) - 1/l (1/2 + l/12 - l^3/720 + l^5/30240 near 0), not lambda; samples come from the
    inverse CDF, x = log(1 + u (e^l - 1)) / l for u ~ U(0, 1), and stay in [0, 1].
    """

    name = "continuous_bernoulli"

    def check_data(self, x, name="x"):
        return check_unit_interval(x, name, "for a continuous Bernoulli likelihood")

    def log_prob(self, x, logits):
        return self.log_prob_and_grad(x, logits)[0]

    def log_prob_and_grad(self, x, logits, scale=1.0):
        check_array(x, "x", shape=logits.shape, dtype=logits.dtype)
        bernoulli, dbernoulli = kernels.ops.bernoulli_log_prob_grad(x, logits)
        log_c = cb_log_normaliser(kernels.to_host(logits))
        log_p = kernels.to_host(bernoulli) + log_c.sum(axis=-1)
        grad = scale * (kernels.to_host(dbernoulli) + cb_log_normaliser_grad(kernels.to_host(logits)))
        return log_p.astype(logits.dtype), grad.astype(logits.dtype)

    def mean(self, logits):
        l = np.asarray(logits, dtype=np.float64)
        small = np.abs(l) < SERIES_BELOW
        safe = np.where(small, 1.0, l)
        direct = expit(safe) / np.tanh(safe / 2) - 1 / safe
        return np.where(small, 0.5 + l / 12 - l**3 / 720 + l**5 / 30240, direct).astype(logits.dtype)

    def std(self, logits):
        """sqrt(Var): Var = lambda (lambda - 1) / (1 - 2 lambda)^2 + 1 / (2 atanh(1 -
        2 lambda))^2 = 1/l^2 - 1/(4 sinh^2(l/2)) (1/12 - l^2/240 + l^4/6048 near 0)."""
        l = np.asarray(logits, dtype=np.float64)
        small = np.abs(l) < SERIES_BELOW
        safe = np.where(small, 1.0, l)
        e = np.exp(-np.abs(safe))  # 1 / (4 sinh^2(l/2)) = e^-|l| / (1 - e^-|l|)^2, which cannot overflow
        var = np.where(small, 1 / 12 - l**2 / 240 + l**4 / 6048, 1 / safe**2 - e / np.expm1(-np.abs(safe)) ** 2)
        return np.sqrt(np.maximum(var, 0)).astype(logits.dtype)

    def sample(self, logits, rng):
        l = np.asarray(logits, dtype=np.float64)
        u = rng.random(l.shape)
        small = np.abs(l) < 1e-6
        safe = np.where(small, 1.0, l)
        # l > 0: log(1 + u (e^l - 1)) = l + log(u + (1 - u) e^-l), which cannot overflow
        x = np.where(safe > 0, 1 + np.log(u + (1 - u) * np.exp(-np.abs(safe))) / safe,
                     np.log1p(u * np.expm1(-np.abs(safe))) / safe)
        return np.clip(np.where(small, u, x), 0, 1).astype(logits.dtype)


class _GaussianBase(Likelihood):
    """N(x; mu, diag(exp(logvar))) with mu from the decoder; subclasses say where
    logvar comes from. ``logvar_floor`` clamps logvar from below: the likelihood is
    unbounded as sigma -> 0 on a data point (the singularity of Gaussian mixtures)."""

    mean_activation = "identity"  # how the decoder's output becomes the mean (GaussianDecoderVar: a choice)

    def __init__(self, logvar_floor=None):
        if logvar_floor is not None:
            logvar_floor = check_number(logvar_floor, "logvar_floor")
        super().__init__()
        self.logvar_floor = logvar_floor

    on_device = property(lambda self: self.logvar_floor is None)  # a floor clamps logvar on the host

    def _clamped(self, logvar):
        return logvar if self.logvar_floor is None else np.maximum(logvar, self.logvar_floor)

    def log_prob(self, x, out):
        mu, logvar = self.split(out)
        if kernels.is_device(mu):  # as Bernoulli.log_prob
            return kernels.ops.gaussian_log_prob_grad(x, mu, logvar)[0]
        return gaussian_log_prob(x, mu, logvar)

    def log_prob_and_grad(self, x, out, scale=1.0):
        """log p, and the gradient that ``_grad`` assembles from (d log p/d mu,
        d log p/d logvar, each times ``scale``), the latter zero where the floor is active."""
        mu, logvar = self.split(out)
        log_p, dmu, dlogvar = kernels.ops.gaussian_log_prob_grad(x, mu, logvar, scale)
        if self.logvar_floor is not None:
            dlogvar = dlogvar * (logvar > self.logvar_floor)
        if self.mean_activation == "sigmoid":  # mu = sigmoid(out): d mu / d out = mu (1 - mu), from mu alone
            dmu = kernels.ops.activation_backward(dmu, mu, mu, "sigmoid")
        return log_p, self._grad(dmu, dlogvar)

    def mean(self, out):
        return self.split(out)[0]

    def std(self, out):
        mu, logvar = self.split(out)
        return np.broadcast_to(np.exp(0.5 * logvar), mu.shape)

    def sample(self, out, rng):
        mu = self.mean(out)
        return mu + self.std(out) * rng.standard_normal(mu.shape).astype(mu.dtype)

    def config(self):
        return {"logvar_floor": self.logvar_floor}


class Gaussian(_GaussianBase):
    """Fixed sigma: log p = -1/2 sum_d [log 2 pi + 2 log sigma + (x_d - mu_d)^2 / sigma^2].

    With sigma = 1 this is the "MSE" objective: log p = -1/2 ||x - mu||^2 - (D/2) log 2 pi,
    i.e. half the summed squared error plus the constant 0.9189... nats per dimension.
    d log p / d mu = (x - mu) / sigma^2.
    """

    name = "gaussian"

    def __init__(self, sigma=1.0):
        super().__init__()
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma: expected a positive finite number, got {sigma!r}")
        self.sigma = float(sigma)

    def split(self, out):
        """The mean, and the log-variances, made once per size and place (uploaded once)."""
        key = (out.shape[out.ndim - 1], out.dtype.str, kernels.is_device(out))
        rows = self.__dict__.setdefault("_logvar_rows", {})
        if key not in rows:
            row = np.full(key[0], 2 * np.log(self.sigma), dtype=out.dtype)
            rows[key] = kernels.ops.to_device(row) if key[2] else row
        return out, rows[key]

    def _grad(self, dmu, dlogvar):
        return dmu

    def config(self):
        return {"sigma": self.sigma}


class GaussianLearnedVar(_GaussianBase):
    """sigma learned per dimension: a free parameter ``logvar`` (D,), shared by all z.

    d log p / d mu = (x - mu) / var;  d log p / d logvar_d = -1/2 + (x_d - mu_d)^2 / (2 var_d),
    summed over the examples, each weighted by ``weight_n``.
    """

    name = "gaussian_learned_var"

    def __init__(self, dim, logvar_floor=None, dtype=np.float32):
        super().__init__(logvar_floor)
        self.add_param("logvar", np.zeros(dim, dtype=dtype))

    def split(self, out):
        return out, self._clamped(self.params["logvar"])

    def _grad(self, dmu, dlogvar):
        return dmu, dlogvar

    def backward(self, grad, weight):
        """The mean is the decoder's output: dL/dout[n] = w_n dmu[n]. The log-variance is
        one parameter shared by every example: dL/dlogvar_d = sum_n w_n dlogvar[n, d]."""
        dmu, dlogvar = grad
        if np.ndim(weight):  # else the number 1: scaled already
            dmu, dlogvar = kernels.ops.scale_rows(dmu, weight), kernels.ops.scale_rows(dlogvar, weight)
        kernels.ops.add_column_sums(dlogvar, self.grads["logvar"])
        return dmu

    def config(self):
        return {"dim": int(self.params["logvar"].shape[0]), "logvar_floor": self.logvar_floor}


class GaussianDecoderVar(_GaussianBase):
    """sigma(z): the decoder outputs [mu, logvar] (2D values per example).

    Gradients as for the learned variance, per example, concatenated: [dmu, dlogvar].
    ``mean_activation="sigmoid"``: mu = sigmoid(the decoder's mean outputs), so the mean
    stays in (0, 1) like grey levels (Kingma & Welling's Frey faces decoder); the
    gradient in those outputs is then dmu * mu (1 - mu).
    """

    name = "gaussian_decoder_var"
    MEAN_ACTIVATIONS = ("identity", "sigmoid")

    def __init__(self, logvar_floor=None, mean_activation="identity"):
        super().__init__(logvar_floor)
        if mean_activation not in self.MEAN_ACTIVATIONS:
            raise ValueError(f"mean_activation: expected one of {self.MEAN_ACTIVATIONS}, got {mean_activation!r}")
        self.mean_activation = mean_activation

    def out_features(self, d):
        return 2 * d

    def split(self, out):
        d = out.shape[out.ndim - 1] // 2  # (the simulator's shapes take no negative index)
        mu, logvar = kernels.ops.take_columns(out, 0, d), kernels.ops.take_columns(out, d, 2 * d)
        return kernels.ops.activation_forward(mu, "sigmoid") if self.mean_activation == "sigmoid" else mu, \
            self._clamped(logvar)

    def config(self):
        return {"logvar_floor": self.logvar_floor, "mean_activation": self.mean_activation}

    def _grad(self, dmu, dlogvar):
        return kernels.ops.concat_columns(dmu, dlogvar)


LIKELIHOODS = {c.name: c for c in (Bernoulli, ContinuousBernoulli, Gaussian, GaussianLearnedVar, GaussianDecoderVar)}


def make_likelihood(name, dim, **kwargs):
    """Build a likelihood by name (a key of ``LIKELIHOODS``) for D = ``dim`` data."""
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood: expected one of {sorted(LIKELIHOODS)}, got {name!r}")
    if name == "gaussian_learned_var":
        kwargs.setdefault("dim", dim)
    return LIKELIHOODS[name](**kwargs)
