"""Layers with hand-derived backward passes (the contract: ``docs/design.md``)."""

from .activations import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .bayesian import BayesianLinear
from .conv import Conv2d, ConvTranspose2d, MaskedConv2d
from .init import INITIALIZERS
from .linear import Linear
from .module import Container, Module
from .pixelcnn import PixelCNN
from .sequential import Sequential
from .shape import Flatten, Reshape

__all__ = [
    "Module", "Container", "Sequential", "Linear", "BayesianLinear", "Conv2d", "ConvTranspose2d", "MaskedConv2d", "PixelCNN", "Flatten", "Reshape",
    "Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "ELU", "INITIALIZERS",
]
