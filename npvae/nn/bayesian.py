"""A fully connected layer with a Gaussian posterior over its weights (variational
Bayes over the generative parameters: Kingma & Welling, "Auto-Encoding Variational
Bayes", 2014, appendix F)."""

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_number, check_positive_int
from .init import initializer
from .module import Module


class BayesianLinear(Module):
    """``y = x @ W + b`` with W and b drawn from the mean-field posterior
    q(W_ij) = N(W_ij, exp(W_logsigma_ij)^2), q(b_j) = N(b_j, exp(b_logsigma_j)^2), and
    the prior N(0, ``prior_std``^2) on every entry. Parameters: ``W``, ``W_logsigma``,
    ``b``, ``b_logsigma`` (log sigma: its gradient is sigma times sigma's, and any real
    value is a valid sigma). ``init_logsigma``: every log sigma's start (small: the
    layer starts near the point estimate).

    ``local_reparam=True`` (Kingma, Salimans & Welling, "Variational Dropout and the
    Local Reparameterization Trick", 2015): since y_nj = sum_i x_ni W_ij + b_j is a sum
    of independent Gaussians given x, it is itself Gaussian, with

        mean_nj = sum_i x_ni W_ij + b_j,  var_nj = sum_i x_ni^2 sigma_ij^2 + sigma_bj^2,

    and is drawn as y = mean + sqrt(var) xi, xi ~ N(0, 1) per example and output. This is
    the same distribution of each y_n as one weight draw gives, at N times fewer numbers
    drawn, but the examples' outputs become independent: with one W shared by the batch
    the gradient's noise is correlated across its examples and does not average out as
    1/N; with local noise it does, so the variance of the minibatch gradient falls as
    1/N. ``local_reparam=False``: one (W, b) drawn per forward pass, shared by its rows.

    The noise comes from ``rng`` (set it per step: ``npvae.models.BayesianDecoderVAE``
    gives it the step's generator); ``noise``, when set, is used instead (held fixed, for
    finite differences): (N, out) with local noise, else a pair (eps_W, eps_b).
    ``last_noise``: the noise of the last forward pass (the gradient tour holds it).
    With local noise the layer is two ops (``kernels.ops.local_reparam_forward`` and its
    backward) and runs on the GPU's device path; one weight draw per pass is NumPy's.
    """

    @property
    def on_device(self):
        return self.local_reparam

    def __init__(self, in_features, out_features, prior_std=1.0, init_logsigma=-5.0, local_reparam=True, rng=None,
                 init="glorot_uniform", dtype=np.float32):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.prior_std = check_number(prior_std, "prior_std", 0, low_open=True)
        self.init_logsigma = check_number(init_logsigma, "init_logsigma")
        if not isinstance(local_reparam, bool):
            raise TypeError(f"local_reparam: expected True or False, got {local_reparam!r}")
        self.local_reparam, self.rng, self.noise, self.last_noise = local_reparam, as_rng(rng), None, None
        shape = (self.in_features, self.out_features)
        self.add_param("W", initializer(init)(self.rng, shape, shape[0], shape[1], dtype))
        self.add_param("W_logsigma", np.full(shape, self.init_logsigma, dtype=dtype))
        self.add_param("b", np.zeros(self.out_features, dtype=dtype))
        self.add_param("b_logsigma", np.full(self.out_features, self.init_logsigma, dtype=dtype))

    def _draw(self, shape, dtype, like=None):
        return kernels.ops.standard_normal(self.rng, shape, dtype, like=like)

    def forward(self, x):
        p = self.params
        check_array(x, "x", shape=(None, self.in_features), dtype=p["W"].dtype)
        if self.local_reparam:
            xi = (self._draw((len(x), self.out_features), x.dtype, like=x) if self.noise is None
                  else np.asarray(self.noise, x.dtype))
            xi = kernels.ops.to_device(xi) if kernels.is_device(x) else xi
            self.last_noise = xi
            y, std = kernels.ops.local_reparam_forward(x, p["W"], p["b"], p["W_logsigma"], p["b_logsigma"], xi)
            return self.save_for_backward((x, xi, std), y)
        var_W, var_b = np.exp(2 * p["W_logsigma"]), np.exp(2 * p["b_logsigma"])
        eps_W, eps_b = ((np.asarray(e, x.dtype) for e in self.noise) if self.noise is not None
                        else (self._draw(p["W"].shape, x.dtype), self._draw(p["b"].shape, x.dtype)))
        self.last_noise = (eps_W, eps_b)
        W = p["W"] + np.sqrt(var_W) * eps_W
        y = x @ W + p["b"] + np.sqrt(var_b) * eps_b
        return self.save_for_backward((x, W, eps_W, eps_b, var_W, var_b), y)

    def backward(self, dy, need_dx=True):
        """Local noise, y = mean + std xi, std = sqrt(var)::

            dL/dmean = dy;   dL/dvar = dy xi / (2 std)                      (N, out)
            dL/dW = x^T dy,  dL/db = sum_n dy
            dL/dW_logsigma = 2 sigma_W^2 (x^2)^T dL/dvar    (dvar/dlogsigma = 2 sigma^2 x^2)
            dL/db_logsigma = 2 sigma_b^2 sum_n dL/dvar
            dL/dx = dy W^T + 2 x (dL/dvar sigma_W^2^T)

        One weight draw, W~ = W + sigma_W eps_W (and b~ alike), y = x W~ + b~::

            dL/dW = x^T dy,  dL/dW_logsigma = (x^T dy) sigma_W eps_W,  dL/dx = dy W~^T
        """
        g, p = self.grads, self.params
        if self.local_reparam:
            x, xi, std = self.saved_for_backward(dy)
            return kernels.ops.local_reparam_backward(x, p["W"], p["W_logsigma"], p["b_logsigma"], xi, std, dy, g["W"],
                                                      g["b"], g["W_logsigma"], g["b_logsigma"], need_dx)
        x, W, eps_W, eps_b, var_W, var_b = self.saved_for_backward(dy)
        dW, db = x.T @ dy, dy.sum(axis=0)
        g["W"] += dW
        g["b"] += db
        g["W_logsigma"] += dW * np.sqrt(var_W) * eps_W
        g["b_logsigma"] += db * np.sqrt(var_b) * eps_b
        return dy @ W.T if need_dx else None

    def kl(self, scale=None):
        """KL(q || p) of every weight and bias, summed (nats), and, with ``scale``, scale
        x dKL added into ``grads`` in the same pass (``kernels.ops.gaussian_weight_kl``)::

            KL = sum [log(prior_std / sigma) + (sigma^2 + mean^2) / (2 prior_std^2) - 1/2]
            dKL/dmean = mean / prior_std^2,   dKL/dlogsigma = sigma^2 / prior_std^2 - 1
        """
        p, g = self.params, self.grads
        grads = lambda name: (None, None) if scale is None else (g[name], g[f"{name}_logsigma"])  # noqa: E731
        return sum(kernels.ops.gaussian_weight_kl(p[name], p[f"{name}_logsigma"], self.prior_std, scale or 0.0,
                                                  *grads(name)) for name in ("W", "b"))

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "prior_std": self.prior_std,
                "init_logsigma": self.init_logsigma, "local_reparam": self.local_reparam}

    def __repr__(self):
        return (f"BayesianLinear({self.in_features}, {self.out_features}, prior_std={self.prior_std:g}, "
                f"local_reparam={self.local_reparam})")
