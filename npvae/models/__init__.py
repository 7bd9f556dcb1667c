"""Models: the VAE, the conditional VAE, the VAE with a PixelCNN decoder, the VAE with
two stochastic layers and the plain autoencoder baseline."""

from .autoencoder import Autoencoder
from .conditional import ConditionalVAE
from .networks import mlp
from .pixelcnn import PixelCNNVAE
from .two_layer import TwoLayerVAE
from .vae import VAE

# name -> class, for rebuilding a model from a checkpoint's configuration.
MODELS = {"VAE": VAE, "ConditionalVAE": ConditionalVAE, "Autoencoder": Autoencoder, "PixelCNNVAE": PixelCNNVAE,
          "TwoLayerVAE": TwoLayerVAE}
