"""Models: the VAE, the conditional VAE, the VAE with a PixelCNN decoder, the VAE with
two stochastic layers, the VAE with a Bayesian decoder (full variational Bayes), the
hyperspherical (von Mises-Fisher) VAE and the plain autoencoder baseline."""

from .autoencoder import Autoencoder
from .bayesian import BayesianDecoderVAE
from .conditional import ConditionalVAE
from .hyperspherical import HypersphericalVAE
from .networks import mlp
from .pixelcnn import PixelCNNVAE
from .two_layer import TwoLayerVAE
from .vae import VAE

# name -> class, for rebuilding a model from a checkpoint's configuration.
MODELS = {"VAE": VAE, "ConditionalVAE": ConditionalVAE, "Autoencoder": Autoencoder, "PixelCNNVAE": PixelCNNVAE,
          "TwoLayerVAE": TwoLayerVAE,
          "BayesianDecoderVAE": BayesianDecoderVAE, "HypersphericalVAE": HypersphericalVAE}
