"""Linear autoencoders, PCA and probabilistic PCA on grey-level MNIST.

Two claims, both about q = 10 latent dimensions:

1. A linear autoencoder trained with squared error spans the principal subspace (the
   autoencoder study, section 1; Baldi & Hornik, "Neural networks and principal
   component analysis: learning from examples without local minima", 1989): its
   decoder's columns span the top-q eigenvectors of the data covariance, but any
   invertible mix of them does as well, so the columns are not the components
   themselves. Trained by SGD with momentum against PCA (an SVD of the centred data)
   and against npvae's pPCA (closed form and EM): the principal angles between the
   subspaces and the test reconstruction error beside PCA's, which is the least any
   rank-q linear map can reach.
2. A linear VAE with sigma fixed at pPCA's maximum-likelihood value recovers pPCA's
   maximum-likelihood decoder (Tipping & Bishop, "Probabilistic Principal Component
   Analysis", 1999) up to rotation, and the rotation is not free: the diagonal posterior
   is exact only when W^T W is diagonal, so the VAE's columns turn to the principal
   directions themselves (Lucas, Tucker, Grosse & Norouzi, "Don't Blame the ELBO!",
   2019). Measured: the principal angles to pPCA's span, the relative error of W W^T
   (which a rotation leaves unchanged), and how far W^T W is from diagonal, for the VAE
   and for the autoencoder.

What the full run shows (numbers, date, machine and command in ``docs/results.md``):
the autoencoder's subspace is within 0.7-1.3 degrees of PCA's and its test error within
0.04% of PCA's, while its columns stay a non-orthogonal mix (largest |cos| 0.38); the
linear VAE's subspace is within 1.6-4.3 degrees of pPCA's (a plateau set by Adam's
noise), its W W^T within 16% of pPCA's, and its columns nearly orthogonal (largest |cos|
0.08), as Lucas et al. predict. Both claims hold, the second to within the noise of
stochastic training.
"""

import common
import numpy as np
from scipy.linalg import subspace_angles

from npvae import plots
from npvae.em import PPCA
from npvae.models import VAE, Autoencoder
from npvae.train import fit

SETTINGS = {
    "full": dict(n_train=50000, n_test=10000, q=10, epochs=50),
    "quick": dict(n_train=10000, n_test=2000, q=10, epochs=10),
    "smoke": dict(n_train=300, n_test=100, q=3, epochs=2),
}


def angles(W, basis):
    """The principal angles between span(W) and span(basis), degrees, smallest first."""
    return np.sort(np.degrees(subspace_angles(W, basis)))


def off_diagonal(W):
    """How far the columns of W are from orthogonal: the largest |cosine| between two."""
    G = W.T @ W
    cos = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    return float(np.abs(cos - np.eye(len(G))).max())


def test_error(model, x):
    """Mean squared error per image of the decoder's mean at the code of x."""
    code = model.encoder.forward(x)[:, : model.latent_dim]
    mean = model.likelihood.mean(model.decode(code))
    return float(((mean - x) ** 2).sum(axis=1).mean())


def train(model, x, cfg, seed, target, **settings):
    """``model`` trained on ``x``; returns the principal angles to ``target`` (D, q)
    before training and after each epoch, (epochs + 1, q)."""
    history = [angles(common.affine_decoder(model)[0], target)]
    record = lambda epoch, h: history.append(angles(common.affine_decoder(model)[0], target)) and False  # noqa: E731
    fit(model, x, epochs=cfg["epochs"], batch_size=100, seed=seed, callbacks=(record,), log=None, **settings)
    return np.array(history)


def main():
    args, cfg = common.setup("linear_autoencoder", __doc__, SETTINGS)
    x, _, x_test, _ = common.mnist(cfg["n_train"], cfg["n_test"], binarize=False)
    x, x_test, q = x.astype(np.float64), x_test.astype(np.float64), cfg["q"]
    mean = x.mean(axis=0)
    _, s, Vt = np.linalg.svd(x - mean, full_matrices=False)
    pca = Vt[:q].T  # (D, q), the top-q principal directions
    pca_error = float((((x_test - mean) - (x_test - mean) @ pca @ pca.T) ** 2).sum(axis=1).mean())
    closed, em = PPCA(q).fit(x), PPCA(q, method="em", random_state=args.seed, tol=1e-8).fit(x)
    sigma = float(np.sqrt(closed.noise_variance_))

    ae = Autoencoder.mlp(784, (), q, "tanh", "gaussian", {"sigma": 1.0}, rng=args.seed, dtype="float64")
    ae_angles = train(ae, x, cfg, args.seed, pca, optimizer="sgd", lr=1e-3, momentum=0.9)
    vae = VAE.mlp(784, (), q, "tanh", "gaussian", {"sigma": sigma}, rng=args.seed, dtype="float64")
    vae_angles = train(vae, x, cfg, args.seed, closed.W_, optimizer="adam", lr=1e-3)

    W_ae, W_vae, W_ppca = common.affine_decoder(ae)[0], common.affine_decoder(vae)[0], closed.W_
    gram_error = lambda W: float(np.linalg.norm(W @ W.T - W_ppca @ W_ppca.T) / np.linalg.norm(W_ppca @ W_ppca.T))  # noqa: E731,E501
    em_angles = angles(em.W_, closed.W_)
    results = {
        "pca_test_error": pca_error, "eigenvalue_ratio_q_to_q_plus_1": float((s[q - 1] / s[q]) ** 2),
        "autoencoder": {"angles_to_pca": ae_angles[-1].tolist(), "test_error": test_error(ae, x_test),
                        "columns_largest_cosine": off_diagonal(W_ae),
                        "median_angle_over_training": np.median(ae_angles, axis=1).tolist()},
        "vae": {"angles_to_ppca": vae_angles[-1].tolist(), "ww_relative_error": gram_error(W_vae),
                "columns_largest_cosine": off_diagonal(W_vae), "test_error": test_error(vae, x_test),
                "median_angle_over_training": np.median(vae_angles, axis=1).tolist()},
        "ppca": {"sigma2": float(closed.noise_variance_), "em_angles_to_closed_form": em_angles.tolist(),
                 "em_ww_relative_error": gram_error(em.W_), "columns_largest_cosine": off_diagonal(W_ppca)},
    }
    print(f"PCA test error {pca_error:.2f} (eigenvalue q / q+1: {results['eigenvalue_ratio_q_to_q_plus_1']:.3f}); "
          f"autoencoder {results['autoencoder']['test_error']:.2f}, principal angles to PCA "
          f"{np.array2string(ae_angles[-1], precision=1)} deg, largest |cos| between its columns "
          f"{off_diagonal(W_ae):.2f}")
    print(f"linear VAE (sigma^2 = {sigma**2:.4f}): test error {results['vae']['test_error']:.2f}, principal angles to "
          f"pPCA {np.array2string(vae_angles[-1], precision=1)} deg, |WW^T - pPCA's| / |pPCA's| = "
          f"{results['vae']['ww_relative_error']:.3f}, largest |cos| between columns {off_diagonal(W_vae):.3f}; "
          f"pPCA by EM against closed form: largest angle {em_angles[-1]:.2e} deg")
    epochs, index = np.arange(cfg["epochs"] + 1), np.arange(1, q + 1)
    plots.line_panels([
        ("principal angles to the target subspace", {
            "autoencoder vs PCA: median": (epochs, np.median(ae_angles, axis=1)),
            "autoencoder vs PCA: largest": (epochs, ae_angles[:, -1]),
            "VAE vs pPCA: median": (epochs, np.median(vae_angles, axis=1)),
            "VAE vs pPCA: largest": (epochs, vae_angles[:, -1])}),
        ("every principal angle at the end", {"autoencoder vs PCA": (index, ae_angles[-1]),
                                              "VAE vs pPCA": (index, vae_angles[-1]),
                                              "pPCA by EM vs closed form": (index, em_angles)})],
        common.out(args, "angles.png"), ["epoch", "angle, smallest first"], "degrees", n_cols=2, size=5.0)
    by_norm = lambda W: (W / np.abs(W).max(axis=0))[:, np.argsort(-np.linalg.norm(W, axis=0))].T  # noqa: E731
    scaled = lambda W: 0.5 + 0.5 * by_norm(W)  # noqa: E731  (a signed direction: grey is 0)
    plots.image_panels([("PCA: top components", 0.5 + 0.5 * pca.T / np.abs(pca).max(axis=0)[:, None]),
                        ("pPCA (closed form): W's columns", scaled(W_ppca)),
                        ("linear autoencoder: decoder columns", scaled(W_ae)),
                        ("linear VAE: decoder columns", scaled(W_vae))],
                       common.out(args, "components.png"), n_cols=q, panels_per_row=2,
                       title="decoder columns by norm (grey 0, white +, black -): the VAE's nearly orthogonal, "
                             "the autoencoder's a non-orthogonal mix of the principal directions")
    common.finish(args, results)


if __name__ == "__main__":
    main()
