"""npvae's estimators in scikit-learn's machinery: its own estimator checks pass on
the EM baselines and the VAE transformer; clone, Pipeline and GridSearchCV work with
each; the not-fitted error is scikit-learn's when scikit-learn is loaded; and importing
npvae imports no scikit-learn."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from npvae.em import PPCA, GaussianMixture, NotFittedError
from npvae.transformer import VAETransformer

ESTIMATORS = {
    "gmm": lambda: GaussianMixture(2, random_state=0),
    "ppca": lambda: PPCA(1),
    "ppca_em": lambda: PPCA(1, method="em", random_state=0),
    "vae": lambda: VAETransformer(epochs=2, hidden=(8,), random_state=0),
}
# The one check scikit-learn itself skips here, saying why: the array API is off unless
# SCIPY_ARRAY_API=1, and none of these estimators claims array-API support in its tags.
SKIPPED_BY_SKLEARN = {"check_array_api_input"}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_check_passes(name):
    results = check_estimator(ESTIMATORS[name](), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert not failed, failed
    assert skipped <= SKIPPED_BY_SKLEARN, skipped
    assert len(results) > 35


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 0]])
    labels = rng.integers(0, 3, n)
    return centres[labels] + rng.normal(size=(n, 4)), labels


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_clone_keeps_the_parameters_and_drops_the_fit(name):
    X, _ = blobs()
    fitted = ESTIMATORS[name]().fit(X)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(copy))
    assert repr(copy).startswith(type(fitted).__name__ + "(")
    with pytest.raises(ValueError, match="has no parameters \\['n_clusters'\\]"):
        copy.set_params(n_clusters=3)


def test_grid_search_chooses_the_number_of_components_by_likelihood():
    X, _ = blobs(300)
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3).fit(X)
    assert search.best_params_ == {"n_components": 3}
    search = GridSearchCV(PPCA(1), {"n_components": [1, 2]}, cv=3).fit(X)
    assert search.best_params_["n_components"] in (1, 2) and np.isfinite(search.best_score_)


def test_pipelines_scale_then_fit_and_classify_on_codes():
    X, y = blobs(300)
    pipe = make_pipeline(StandardScaler(), PPCA(2)).fit(X)
    assert pipe.transform(X).shape == (300, 2) and np.isfinite(pipe.score(X))
    vae = VAETransformer(latent_dim=2, hidden=(16,), epochs=60, batch_size=20, lr=3e-3, random_state=0)
    clf = make_pipeline(StandardScaler(), vae, LogisticRegression()).fit(X[:200], y[:200])
    assert clf.score(X[200:], y[200:]) > 0.9  # three well-separated blobs: the 2-D codes keep them apart


def test_the_not_fitted_error_is_npvaes_and_sklearns():
    X, _ = blobs()
    for estimator in (GaussianMixture(2), PPCA(1), VAETransformer()):
        method = estimator.transform if hasattr(estimator, "transform") else estimator.predict
        with pytest.raises(NotFittedError, match="not fitted yet") as caught:
            method(X)
        assert isinstance(caught.value, (SklearnNotFittedError, ValueError, AttributeError))


def test_vae_transformer_outputs_and_inverse_transform():
    X, _ = blobs()
    vae = VAETransformer(latent_dim=2, hidden=(8,), epochs=2, random_state=0).fit(X)
    mean = vae.transform(X)
    both = vae.set_params(output="mean_logvar").transform(X)
    np.testing.assert_array_equal(both[:, :2], mean)
    samples = vae.set_params(output="sample").transform(X)
    assert samples.shape == mean.shape and not np.allclose(samples, mean)
    assert vae.inverse_transform(mean).shape == X.shape
    with pytest.raises(ValueError, match="output: expected one of"):
        VAETransformer(output="logits").fit(X)
    with pytest.raises(ValueError, match="Z has 3 features, but VAETransformer is expecting 2"):
        vae.inverse_transform(X[:, :3])


def test_ppca_em_transforms_rows_with_missing_entries():
    """NaN is a missing value for method="em": the code and density of a row with a
    missing entry are those of its observed entries, as the full-data formulas give
    when the missing feature is dropped from the model."""
    X, _ = blobs(200)
    ppca = PPCA(2, method="em", random_state=0).fit(X)
    row = X[:1].copy()
    row[0, 3] = np.nan
    W, mu, s2 = ppca.W_[:3], ppca.mean_[:3], ppca.noise_variance_
    M = W.T @ W + s2 * np.eye(2)
    np.testing.assert_allclose(ppca.transform(row)[0], np.linalg.solve(M, W.T @ (X[0, :3] - mu)), rtol=1e-10)
    C = W @ W.T + s2 * np.eye(3)
    d = X[0, :3] - mu
    log_p = -0.5 * (3 * np.log(2 * np.pi) + np.linalg.slogdet(C)[1] + d @ np.linalg.solve(C, d))
    np.testing.assert_allclose(ppca.score_samples(row)[0], log_p, rtol=1e-10)


def test_importing_npvae_imports_no_sklearn():
    code = ("import sys, npvae, npvae.em, npvae.train, npvae.transformer, npvae.cli; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'sklearn'], 'sklearn imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
