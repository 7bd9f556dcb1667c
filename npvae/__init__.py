"""npvae: variational autoencoders from scratch in NumPy, every gradient derived by hand."""

from . import kernels, nn  # noqa: F401  (the public subpackages)
from .gradcheck import check_function, check_module, check_params

__version__ = "0.1.0"
