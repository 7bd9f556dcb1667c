"""Models: the VAE, the conditional VAE and the plain autoencoder baseline."""

from .autoencoder import Autoencoder
from .networks import mlp
from .vae import VAE, ConditionalVAE

# name -> class, for rebuilding a model from a checkpoint's configuration.
MODELS = {"VAE": VAE, "ConditionalVAE": ConditionalVAE, "Autoencoder": Autoencoder}
