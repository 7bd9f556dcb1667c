"""Models: the VAE, the conditional VAE and the plain autoencoder baseline."""

from .autoencoder import Autoencoder
from .conditional import ConditionalVAE
from .networks import mlp
from .vae import VAE

# name -> class, for rebuilding a model from a checkpoint's configuration.
MODELS = {"VAE": VAE, "ConditionalVAE": ConditionalVAE, "Autoencoder": Autoencoder}
