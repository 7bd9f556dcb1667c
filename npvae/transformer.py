"""A VAE as a scikit-learn transformer: ``fit`` trains an MLP VAE with ``train.fit``,
``transform`` gives each example's posterior code, ``inverse_transform`` decodes codes.
It follows scikit-learn's conventions (``npvae.estimator``) without importing it, so a
VAE can stand in a ``Pipeline`` before a classifier, or in a ``GridSearchCV``."""

import numpy as np

from .checks import as_rng
from .estimator import Estimator, data_matrix
from .models import VAE
from .train import fit

OUTPUTS = ("mean", "mean_logvar", "sample")


class VAETransformer(Estimator):
    """An MLP VAE (``VAE.mlp``) trained on X by ``fit``; ``transform`` returns ``output``:
    "mean", the posterior means E[z|x] (n_samples, latent_dim), the code to classify on;
    "mean_logvar", the means and log-variances side by side (2 latent_dim columns);
    "sample", one z ~ q(z|x) per row, from ``random_state``.

    ``likelihood`` "gaussian" (fixed sigma = 1) takes any real data; "bernoulli" wants
    values in [0, 1] (grey levels, binarised afresh each epoch when ``binarize``). The
    other arguments are ``VAE.mlp``'s and ``train.fit``'s (Adam). ``dtype`` "float64"
    (the default) makes a row's code the same whatever batch it comes in, as
    scikit-learn expects; "float32" trains faster, its codes equal to about 1e-7.
    Fitted attributes: ``model_`` (the VAE), ``history_`` (``fit``'s), ``n_features_in_``.
    """

    transformer = True

    def __init__(self, latent_dim=2, hidden=(200,), activation="tanh", likelihood="gaussian", epochs=20,
                 batch_size=100, lr=1e-3, beta=1.0, binarize=False, output="mean", dtype="float64",
                 random_state=None):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.binarize = binarize
        self.output = output
        self.dtype = dtype
        self.random_state = random_state

    def fit(self, X, y=None):
        """Build the VAE for X's features and train it; returns self. Every argument is
        checked before any training (by ``VAE.mlp`` and ``train.fit``)."""
        if self.output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {self.output!r}")
        X = data_matrix(X, self)
        seed = int(as_rng(self.random_state).integers(2**31))
        model = VAE.mlp(X.shape[1], tuple(self.hidden), self.latent_dim, self.activation, self.likelihood, rng=seed,
                        dtype=self.dtype)
        self.history_ = fit(model, X.astype(model.dtype), epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                            beta=self.beta, binarize=self.binarize, seed=seed, log=None)
        self.model_, self.n_features_in_ = model, X.shape[1]
        return self

    def transform(self, X):
        """The code of each row, as ``output`` says, in float64."""
        self._check_is_fitted("model_")
        X = data_matrix(X, self, n_features=self.n_features_in_).astype(self.model_.dtype)
        mean, logvar = self.model_.encode(X)
        if self.output == "mean_logvar":
            return np.hstack([mean, logvar]).astype(np.float64)
        if self.output == "sample":
            eps = as_rng(self.random_state).standard_normal(mean.shape)
            return (mean + np.exp(0.5 * logvar) * eps).astype(np.float64)
        return mean.astype(np.float64)

    def fit_transform(self, X, y=None):
        """``fit(X)``, then ``transform(X)``."""
        return self.fit(X, y).transform(X)

    def inverse_transform(self, Z):
        """The decoder's mean E[x|z] for codes ``Z`` (n_samples, latent_dim), float64."""
        self._check_is_fitted("model_")
        Z = data_matrix(Z, self, n_features=self.latent_dim, name="Z").astype(self.model_.dtype)
        return self.model_.likelihood.mean(self.model_.decode(Z)).astype(np.float64)
