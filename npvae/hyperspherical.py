"""The von Mises-Fisher distribution on the sphere S^{d-1} (Davidson, Falorsi, De Cao,
Kipf & Tomczak, "Hyperspherical Variational Auto-Encoders", UAI 2018): sampling,
density, KL to the uniform prior, and the reparameterisation gradient.

    vMF(z; mu, kappa) = C_d(kappa) exp(kappa mu^T z),  |mu| = |z| = 1, kappa >= 0,
    C_d(kappa) = kappa^(d/2 - 1) / ((2 pi)^(d/2) I_{d/2-1}(kappa))

A sample is z = H(mu) [w, sqrt(1 - w^2) v]: w in [-1, 1] the cosine to mu, drawn from its
marginal f(w) ~ exp(kappa w) (1 - w^2)^((d-3)/2) by Wood's (1994) rejection sampler;
v uniform on S^{d-2}; H(mu) the Householder reflection taking e1 to mu.

The gradient. w depends on kappa, and its rejection sampler is not a differentiable map
of fixed noise. Davidson et al. add a score-function correction for the acceptance
step to the accepted sample's gradient; this module takes the implicit
reparameterisation gradient instead (Figurnov, Mohamed & Mnih, "Implicit
Reparameterization Gradients", 2018): hold w's CDF value F(w; kappa) fixed, so that

    dw/dkappa = -(dF/dkappa) / f(w) = int_w^1 (t - A_d(kappa)) f(t) dt / f(w),

since df/dkappa = (t - E[t]) f and E[w] = A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa).
It is exact (no extra variance, no second estimator), needs only a one-dimensional
integral per sample, and makes "the sampler's randomness fixed" mean something a finite
difference can check: w(kappa) = F^{-1}(u; kappa) for a fixed u (:func:`w_from_cdf`).
"""

import math

import numpy as np
from scipy.special import gammaln, ive

# Gauss-Legendre nodes on [0, 1] for the one-dimensional integrals of w's density.
_S, _WEIGHTS = (lambda x, w: ((x + 1) / 2, w / 2))(*np.polynomial.legendre.leggauss(128))


def check_vmf(mu, kappa, name="mu"):
    """``mu`` (N, d >= 2) unit rows and ``kappa`` (N,) finite and >= 0, as float64 arrays,
    else a ValueError naming the argument, expected and actual."""
    mu, kappa = np.asarray(mu, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[1] < 2 or not np.all(np.isfinite(mu)):
        raise ValueError(f"{name}: expected finite (N, d) directions with d >= 2, got shape {mu.shape}")
    if not np.allclose(np.linalg.norm(mu, axis=1), 1, atol=1e-6):
        raise ValueError(f"{name}: expected unit vectors (normalise them: mu / |mu|), got norms "
                         f"{np.linalg.norm(mu, axis=1).min():.3g} to {np.linalg.norm(mu, axis=1).max():.3g}")
    if kappa.shape != (len(mu),) or not np.all(np.isfinite(kappa)) or np.any(kappa < 0):
        raise ValueError(f"kappa: expected {len(mu)} finite concentrations >= 0, got shape {kappa.shape}")
    return mu, kappa


def log_bessel_iv(nu, kappa):
    """log I_nu(kappa), through the exponentially scaled ive (no overflow at large kappa)."""
    return np.log(ive(nu, kappa)) + kappa


def mean_resultant_length(d, kappa):
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T z], in (0, 1)."""
    kappa = np.asarray(kappa, dtype=np.float64)
    return ive(d / 2, kappa) / ive(d / 2 - 1, kappa)


def log_sphere_area(d):
    """log of the area of S^{d-1}: log 2 pi^(d/2) / Gamma(d/2); the uniform prior's log
    density is minus this."""
    return math.log(2) + d / 2 * math.log(math.pi) - gammaln(d / 2)


def log_normaliser(d, kappa):
    """log C_d(kappa) = (d/2 - 1) log kappa - (d/2) log 2 pi - log I_{d/2-1}(kappa)."""
    kappa = np.asarray(kappa, dtype=np.float64)
    return (d / 2 - 1) * np.log(kappa) - d / 2 * math.log(2 * math.pi) - log_bessel_iv(d / 2 - 1, kappa)


def log_prob(z, mu, kappa):
    """log vMF(z; mu, kappa) per row: log C_d(kappa) + kappa mu^T z."""
    return log_normaliser(mu.shape[-1], kappa) + kappa * np.sum(mu * z, axis=-1)


def kl_to_uniform(d, kappa):
    """KL(vMF(mu, kappa) || U(S^{d-1})) and its derivative in kappa (mu does not enter)::

        KL = kappa A_d(kappa) + log C_d(kappa) + log area(S^{d-1})
        dKL/dkappa = A + kappa A' - A = kappa A'(kappa),   A' = 1 - A^2 - (d - 1) A / kappa

    (d log C_d / dkappa = -A, from I_nu' = I_{nu+1} + (nu / kappa) I_nu), so
    dKL/dkappa = kappa (1 - A^2) - (d - 1) A >= 0."""
    kappa = np.asarray(kappa, dtype=np.float64)
    a = mean_resultant_length(d, kappa)
    return kappa * a + log_normaliser(d, kappa) + log_sphere_area(d), kappa * (1 - a * a) - (d - 1) * a


# ------------------------------------------------------------------ the cosine w
def sample_w(d, kappa, rng):
    """Wood's (1994) rejection sampler for w (one per entry of ``kappa``)::

        b = (d - 1) / (2 kappa + sqrt(4 kappa^2 + (d - 1)^2)),  x0 = (1 - b) / (1 + b)
        c = kappa x0 + (d - 1) log(1 - x0^2)
        repeat: e ~ Beta((d-1)/2, (d-1)/2), w = (1 - (1 + b) e) / (1 - (1 - b) e), u ~ U(0, 1)
        until kappa w + (d - 1) log(1 - x0 w) - c >= log u

    (b in that form, not (-2 kappa + sqrt(...)) / (d - 1), which cancels at large kappa)."""
    kappa = np.asarray(kappa, dtype=np.float64)
    b = (d - 1) / (2 * kappa + np.sqrt(4 * kappa * kappa + (d - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (d - 1) * np.log(1 - x0 * x0)
    w, todo = np.empty_like(kappa), np.ones(kappa.shape, bool)
    while todo.any():
        e = rng.beta((d - 1) / 2, (d - 1) / 2, todo.sum())
        bt, kt = b[todo], kappa[todo]
        wt = (1 - (1 + bt) * e) / (1 - (1 - bt) * e)
        accept = kt * wt + (d - 1) * np.log(1 - x0[todo] * wt) - c[todo] >= np.log(rng.random(todo.sum()))
        idx = np.flatnonzero(todo)[accept]
        w[idx], todo[idx] = wt[accept], False
    return w


def _tail(d, kappa, w, moment, upper=True):
    """int_w^1 (``upper``; else int_-1^w) of t^moment exp(kappa (t - 1)) (1 - t^2)^((d-3)/2)
    dt. The substitution 1 - t = (1 - w) s^2 (1 + t = (1 + w) s^2 below w) takes the
    endpoint's factor (1 -+ t)^((d-3)/2) into a smooth s^(d-2), so that Gauss-Legendre
    nodes in s integrate it for every d >= 2::

        = 2 g^((d-1)/2) int_0^1 t^moment exp(kappa (t - 1)) s^(d-2) (1 +- t)^((d-3)/2) ds,  g = 1 -+ w
    """
    sign = 1 if upper else -1
    gap = (1 - sign * w)[..., None]
    t = sign * (1 - gap * _S**2)
    integrand = t**moment * np.exp(kappa[..., None] * (t - 1)) * _S ** (d - 2) * (1 + sign * t) ** ((d - 3) / 2)
    return 2 * gap[..., 0] ** ((d - 1) / 2) * (integrand @ _WEIGHTS)


def dw_dkappa(d, kappa, w):
    """The implicit reparameterisation gradient of w in kappa (the module's docstring):
    int_w^1 (t - A) f(t) dt / f(w), f's normaliser cancelling."""
    kappa, w = np.asarray(kappa, dtype=np.float64), np.asarray(w, dtype=np.float64)
    tail = _tail(d, kappa, w, 1) - mean_resultant_length(d, kappa) * _tail(d, kappa, w, 0)
    log_f_w = kappa * (w - 1) + (d - 3) / 2 * np.log1p(-w * w)
    return tail * np.exp(np.minimum(-log_f_w, 700.0))


def w_from_cdf(d, kappa, u):
    """w = F^{-1}(u; kappa) by bisection on the integrals of its density (each side of 0
    integrated from its own end): w as a smooth function of kappa for a fixed uniform
    u (what the finite-difference tests hold fixed)."""
    kappa, u = np.asarray(kappa, dtype=np.float64), np.asarray(u, dtype=np.float64)
    zero = np.zeros_like(kappa)
    below_zero = _tail(d, kappa, zero, 0, upper=False)
    total = below_zero + _tail(d, kappa, zero, 0)

    def cdf(w):
        return np.where(w < 0, _tail(d, kappa, w, 0, upper=False), total - _tail(d, kappa, w, 0)) / total

    low, high = -np.ones_like(kappa), np.ones_like(kappa)
    for _ in range(48):  # to 2^-47: below a finite difference's resolution
        mid = (low + high) / 2
        above = cdf(mid) > u
        low, high = np.where(above, low, mid), np.where(above, mid, high)
    return (low + high) / 2


# ------------------------------------------------------------------ the direction
def uniform_sphere(rng, shape, d):
    """Points uniform on S^{d-1}: normalised standard normals, ``shape`` + (d,)."""
    g = rng.standard_normal((*shape, d))
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def sample(mu, kappa, rng, cdf=None, v=None):
    """z ~ vMF(mu, kappa) per row of ``mu`` (N, d) and ``kappa`` (N,). ``cdf`` (N,): w's CDF
    values, held fixed (w = F^{-1}(cdf), else Wood's sampler); ``v`` (N, d-1): the
    tangent direction, uniform on S^{d-2} (else drawn). Returns ``z, cache``."""
    mu, kappa = check_vmf(mu, kappa)
    n, d = mu.shape
    if cdf is not None and (np.shape(cdf) != (n,) or not np.all((np.asarray(cdf) > 0) & (np.asarray(cdf) < 1))):
        raise ValueError(f"cdf: expected {n} values in (0, 1), got shape {np.shape(cdf)}")
    if v is not None and (np.shape(v) != (n, d - 1) or not np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-6)):
        raise ValueError(f"v: expected {n} unit vectors of {d - 1} numbers, got shape {np.shape(v)}")
    w = sample_w(d, kappa, rng) if cdf is None else w_from_cdf(d, kappa, cdf)
    v = uniform_sphere(rng, (n,), d - 1) if v is None else v
    y = np.concatenate([w[:, None], np.sqrt(1 - w * w)[:, None] * v], axis=1)  # around e1
    u = -mu.copy()
    u[:, 0] += 1  # u = e1 - mu: H = I - 2 u u^T / |u|^2 reflects e1 onto mu
    u_sq = np.maximum(np.sum(u * u, axis=1, keepdims=True), 1e-30)  # mu = e1: u = 0 and H y = y
    z = y - 2 * u * np.sum(u * y, axis=1, keepdims=True) / u_sq
    return z, (y, u, u_sq, w, v, kappa, d)


def sample_backward(dz, cache):
    """``(dmu, dkappa)`` from dL/dz (N, d), by the chain z = H(mu) y(w), w(kappa)::

        dL/dy = H dL/dz                                   (H is symmetric)
        dL/dw = dL/dy_0 - (w / sqrt(1 - w^2)) dL/dy_{1:} . v
        z = y - 2 u (u.y) / |u|^2:  dL/du = -2 [(u.y) g + (g.u) y] / |u|^2 + 4 (u.y)(g.u) u / |u|^4
        dL/dmu = -dL/du  (u = e1 - mu),   dL/dkappa = dL/dw dw/dkappa
    """
    y, u, u_sq, w, v, kappa, d = cache
    uy, gu = np.sum(u * y, axis=1, keepdims=True), np.sum(u * dz, axis=1, keepdims=True)
    dy = dz - 2 * u * gu / u_sq
    dw = dy[:, 0] - w / np.sqrt(np.maximum(1 - w * w, 1e-300)) * np.sum(dy[:, 1:] * v, axis=1)
    du = -2 * (uy * dz + gu * y) / u_sq + 4 * uy * gu * u / u_sq**2
    return -du, dw * dw_dkappa(d, kappa, w)
