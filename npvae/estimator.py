"""What makes an npvae model a scikit-learn estimator, without npvae importing it.

scikit-learn's machinery (``clone``, ``Pipeline``, ``GridSearchCV``, ``check_estimator``)
asks an estimator for ``get_params``/``set_params`` and ``__sklearn_tags__``, expects
a fitted-state error it recognises, and reads the messages of refused input. All of it is
here in plain Python: scikit-learn is imported only inside ``__sklearn_tags__``, which
only scikit-learn calls, and the not-fitted error takes scikit-learn's class as a base
only when scikit-learn is loaded already. ``import npvae`` never imports it.
"""

import inspect
import sys

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """An estimator used before ``fit`` (scikit-learn's convention: both a ValueError
    and an AttributeError). While scikit-learn is loaded, the error raised is also an
    instance of ``sklearn.exceptions.NotFittedError``."""


_SKLEARN_FLAVOURED = {}


def not_fitted(name):
    """The error for estimator ``name`` used before ``fit``."""
    cls = NotFittedError
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is not None:  # scikit-learn is in use: be its NotFittedError too
        if "cls" not in _SKLEARN_FLAVOURED:
            _SKLEARN_FLAVOURED["cls"] = type("NotFittedError", (NotFittedError, sklearn_exceptions.NotFittedError), {})
        cls = _SKLEARN_FLAVOURED["cls"]
    return cls(f"This {name} instance is not fitted yet; call fit(X) first")


def data_matrix(X, estimator, n_features=None, allow_nan=False, min_samples=1, name="X"):
    """``X`` as a float64 (n_samples, n_features) array, refused in the words that
    scikit-learn's conventions look for: sparse and complex input, 1-D input, empty
    input, fewer than ``min_samples`` rows, non-finite values (NaN allowed with
    ``allow_nan``: missing values), and a number of features other than ``n_features``
    (the fit's). ``name``: the argument's name in the messages."""
    what = type(estimator).__name__
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name}: {what} does not support sparse input; pass a dense array (X.toarray())")
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an array of numbers, got {type(X).__name__} ({e})") from None
    if np.iscomplexobj(X):
        raise ValueError(f"{name}: Complex data not supported by {what}, got {X.dtype}")
    try:
        X = X.astype(np.float64, copy=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an array of numbers, got {type(X).__name__} ({e})") from None
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}; Reshape "
                         f"your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample")
    if X.shape[1] == 0:
        raise ValueError(f"{name}: Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                         f"required by {what}.")
    if X.shape[0] < min_samples:
        raise ValueError(f"{name}: Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
                         f"{min_samples} is required by {what}.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, but {what} is expecting {n_features} features as input")
    if not np.isfinite(X.sum()) and (np.isinf(X).any() or (not allow_nan and np.isnan(X).any())):
        raise ValueError(f"{name}: expected finite values{' (NaN marks a missing value)' if allow_nan else ''}, got "
                         f"{'inf' if np.isinf(X).any() else 'NaN'}")
    return X


class Estimator:
    """scikit-learn's estimator protocol: the parameters are exactly ``__init__``'s
    arguments, stored unchanged (checked in ``fit``, as scikit-learn does); fitted
    attributes end in ``_``. Subclasses set ``estimator_type`` and ``allow_nan``."""

    estimator_type = None
    allow_nan = False
    transformer = False  # has transform: keeps float64

    @classmethod
    def _parameter_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments, by name (``deep`` is accepted for
        scikit-learn's sake: these estimators hold no estimators)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params):
        """Set constructor arguments by name (checked at the next ``fit``); returns self."""
        names = self._parameter_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ValueError(f"set_params: {type(self).__name__} has no parameters {unknown}; expected some of {names}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = {k: v for k, v in self.get_params().items() if not _same(v, defaults.get(k))}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def __sklearn_tags__(self):
        """scikit-learn's tags (called by scikit-learn only, so it is loaded already):
        dense float input, NaN as missing values where ``allow_nan``, no target."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=self.estimator_type, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64"]) if self.transformer else None,
                    input_tags=InputTags(allow_nan=self.allow_nan, sparse=False))

    def _check_is_fitted(self, attribute):
        if not hasattr(self, attribute):
            raise not_fitted(type(self).__name__)


def _same(a, b):
    """Whether a parameter value equals its default (arrays compared as arrays)."""
    try:
        return bool(np.all(a == b)) if a is not None and b is not None else a is b
    except (TypeError, ValueError):
        return False
