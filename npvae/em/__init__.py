"""The models the VAE grows out of, fitted by EM with closed-form E and M steps:
the Gaussian mixture and probabilistic PCA (scikit-learn's estimator conventions)."""

from ..estimator import NotFittedError
from .gmm import ConvergenceWarning, GaussianMixture
from .ppca import PPCA

__all__ = ["ConvergenceWarning", "GaussianMixture", "NotFittedError", "PPCA"]
