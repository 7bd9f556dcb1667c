"""What the VAE and the plain autoencoder share: an encoder, a decoder, a likelihood,
and the builders that make the networks (``mlp``, ``conv``)."""

import math

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_float_dtype, check_positive_int
from ..distributions import make_likelihood
from ..nn.module import Container
from .networks import conv_decoder, conv_encoder, mlp, torch_default_biases


REDUCTIONS = ("mean", "sum")


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def _sizes(values, name):
    """Layer sizes as a tuple of ints >= 1 (an empty tuple: no hidden layer)."""
    if not isinstance(values, (tuple, list)):
        raise ValueError(f"{name}: expected a tuple of integers >= 1, got {values!r}")
    return tuple(check_positive_int(v, name) for v in values)


def _check_extra(extra):
    """A builder's extra arguments: ``n_classes`` alone (a ConditionalVAE's)."""
    unknown = sorted(set(extra) - {"n_classes"})
    if unknown:
        raise TypeError(f"unexpected arguments {unknown}; a builder's extra argument is n_classes (ConditionalVAE)")
    if "n_classes" in extra:
        check_positive_int(extra["n_classes"], "n_classes", 2)


def summed(model, loss, n):
    """The batch mean's loss and gradients as the batch sum's: each times n."""
    kernels.ops.scale_all(list(model.grads.values()), n)
    return loss * n


class LatentModel(Container):
    """``encoder`` maps x to the latent side, ``decoder`` maps z to the parameters of
    ``likelihood`` p(x|z). ``data_shape`` is one example's shape. ``codes_per_latent``:
    encoder outputs per latent dimension (a VAE's mean and log-variance: 2)."""

    codes_per_latent = 1
    networks = ("encoder", "decoder")  # the networks, in the order a forward pass runs them
    device_path = False  # a model whose training steps may stay on the GPU says so (``device.device_refusal``)

    def __init__(self, encoder, decoder, likelihood, latent_dim, data_shape):
        super().__init__({"encoder": encoder, "decoder": decoder, "likelihood": likelihood})
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.data_shape = tuple(check_positive_int(s, "data_shape") for s in data_shape)

    @classmethod
    def encoder_outputs(cls, latent_dim):
        """How many numbers the encoder gives per example for ``latent_dim`` latents."""
        return cls.codes_per_latent * latent_dim

    @property
    def dtype(self):
        return next(iter(self.encoder.params.values())).dtype

    @property
    def workspaces(self):
        """The device arrays each entry point (``loss_and_grad``) keeps between its calls,
        by name (``kernels.ops.workspace``); let go by ``to_host``."""
        return self.__dict__.setdefault("_workspaces", {})

    def to_host(self):
        self.__dict__.pop("_workspaces", None)
        return super().to_host()

    def check_x(self, x, name="x"):
        """x must be (N, *data_shape) in the parameters' dtype, finite, and in the
        likelihood's support (e.g. [0, 1] for a Bernoulli)."""
        check_array(x, name, shape=(None, *self.data_shape), dtype=self.dtype, finite=False)
        if len(x) == 0:
            raise ValueError(f"{name}: expected at least one example, got an empty array of shape {x.shape}")
        return self.likelihood.check_data(x, name)  # finiteness, and the support

    def check_corrupted(self, x, x_corrupted):
        """A denoising step's encoder input: None, or an array shaped as ``x`` in its
        dtype and finite (it may leave the likelihood's support: Gaussian noise does)."""
        if x_corrupted is not None:
            check_array(x_corrupted, "x_corrupted", shape=x.shape, dtype=self.dtype)

    def check_labels(self, y, n, name="y"):
        """Labels are for a ConditionalVAE: anything else takes none."""
        if y is not None:
            raise ValueError(f"{name}: this model takes no labels (use ConditionalVAE), got an array")

    def _repr_sizes(self):
        return f"latent_dim={self.latent_dim}, data_shape={self.data_shape}"

    def __repr__(self):
        def indented(module):
            return repr(module).replace("\n", "\n  ")
        networks = "".join(f"  {name}={indented(self.children[name])},\n" for name in self.networks)
        return f"{type(self).__name__}({self._repr_sizes()},\n{networks}  likelihood={self.likelihood!r})"

    def _check_output(self, name, out, features):
        if out.shape[1:] != (features,):
            raise ValueError(f"{name}: expected {features} outputs per example, got shape {out.shape}")
        return out

    # ---------------------------------------------------------------- builders
    @classmethod
    def mlp(cls, input_dim, hidden=(500,), latent_dim=20, activation="tanh", likelihood="bernoulli",
            likelihood_kwargs=None, rng=None, dtype="float32", encoder_hidden=None, decoder_hidden=None, init=None,
            data_mean=None, **extra):
        """MLP encoder input-hidden...-(2 x) latent and decoder latent-hidden...-output,
        ``activation`` between layers; ``encoder_hidden`` / ``decoder_hidden`` give
        each its own sizes (default: ``hidden`` for both). Kingma & Welling's MNIST
        net is ``VAE.mlp(784, (500,), 20, "tanh", "bernoulli")``. ``init``: a key of
        ``nn.INITIALIZERS`` for every layer (default: Glorot-uniform for tanh and
        sigmoid, He-normal for the ReLU family; "torch_default" draws the biases too).
        ``data_mean`` (input_dim,): the decoder's output bias starts at the training
        mean (its logit for a Bernoulli decoder, as Burda et al. do), so training starts
        from the mean image. ``extra``: ``n_classes`` for a ConditionalVAE (one-hot
        labels join both inputs)."""
        dtype, rng = check_float_dtype(dtype), as_rng(rng)
        input_dim = check_positive_int(input_dim, "input_dim")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        _check_extra(extra)
        enc = _sizes(hidden if encoder_hidden is None else encoder_hidden,
                     "hidden" if encoder_hidden is None else "encoder_hidden")
        dec = _sizes(hidden if decoder_hidden is None else decoder_hidden,
                     "hidden" if decoder_hidden is None else "decoder_hidden")
        lik = make_likelihood(likelihood, input_dim, **(likelihood_kwargs or {}))
        n_labels = extra.get("n_classes", 0)
        encoder = mlp([input_dim + n_labels, *enc, cls.encoder_outputs(latent_dim)], activation, rng, init)
        decoder = mlp([latent_dim + n_labels, *dec, lik.out_features(input_dim)], activation, rng, init)
        if init == "torch_default":
            torch_default_biases(encoder, rng), torch_default_biases(decoder, rng)
        if data_mean is not None:
            data_mean = np.asarray(data_mean, dtype=np.float64)
            if data_mean.shape != (input_dim,) or not np.isfinite(data_mean).all():
                raise ValueError(f"data_mean: expected {input_dim} finite values, got shape {data_mean.shape}")
            if likelihood == "bernoulli":
                p = np.clip(data_mean, 1e-4, 1 - 1e-4)
                data_mean = np.log(p) - np.log1p(-p)
            decoder[-1].params["b"][:input_dim] = data_mean
        return cls(encoder, decoder, lik, latent_dim, (input_dim,), **extra).astype(dtype)

    @classmethod
    def conv(cls, image_shape=(1, 28, 28), channels=(32, 64), kernel_size=4, latent_dim=20, activation="relu",
             likelihood="bernoulli", likelihood_kwargs=None, rng=None, dtype="float32", init=None, **extra):
        """Conv encoder: one Conv2d per ``channels`` entry (stride 2, padding
        (k-1)//2, ``activation`` after each), then Linear to (2 x) ``latent_dim``.
        Decoder, its mirror: Linear (with ``activation``), Reshape, ConvTranspose2d
        back to ``image_shape`` (C, H, W), any size the strides leave at least 1 x 1
        (odd sizes come back exactly through output_padding). The default is the
        network of ``benchmarks/conv_vae.py``: Conv 1-32-64, kernel 4, stride 2, pad 1.
        ``kernel_size``: one for all, or one per layer. A ConditionalVAE's labels enter
        the encoder as ``n_classes`` constant channels and the decoder beside z.
        ``init`` as for :meth:`mlp`."""
        dtype, rng = check_float_dtype(dtype), as_rng(rng)
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
            raise ValueError(f"image_shape: expected (channels, height, width), got {image_shape!r}")
        latent_dim = check_positive_int(latent_dim, "latent_dim")
        _check_extra(extra)
        channels = _sizes(channels, "channels")  # how many: conv_encoder's to check
        for k in kernel_size if isinstance(kernel_size, (tuple, list)) else [kernel_size]:
            check_positive_int(k, "kernel_size", 2)
        c, h, w = image_shape = tuple(check_positive_int(s, "image_shape") for s in image_shape)
        lik = make_likelihood(likelihood, math.prod(image_shape), **(likelihood_kwargs or {}))
        n_labels = extra.get("n_classes", 0)
        encoder = conv_encoder((c + n_labels, h, w), tuple(channels), kernel_size, activation,
                               cls.encoder_outputs(latent_dim), rng, init)
        decoder = conv_decoder(latent_dim + n_labels, image_shape, tuple(channels), kernel_size, activation,
                               lik.out_features(c), rng, init)
        if init == "torch_default":
            torch_default_biases(encoder, rng), torch_default_biases(decoder, rng)
        return cls(encoder, decoder, lik, latent_dim, image_shape, **extra).astype(dtype)
