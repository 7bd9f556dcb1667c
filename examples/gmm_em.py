"""EM for a Gaussian mixture on a 2-D mixture: the components' 2-sigma ellipses after
several iterations, the log-likelihood per iteration (it never decreases), and BIC
against the number of components K (the true K is 4)."""

import warnings

import common
import matplotlib.pyplot as plt
import numpy as np

from npvae import plots
from npvae.datasets import gaussian_mixture_sample
from npvae.em import ConvergenceWarning, GaussianMixture

SETTINGS = {"full": dict(n=3000, max_k=10), "quick": dict(n=1500, max_k=8), "smoke": dict(n=200, max_k=3)}
SNAPSHOTS = (1, 3, 10, 30, 100)
TRUTH = dict(weights=[0.3, 0.3, 0.2, 0.2], means=[[0, 0], [4, 3], [-3, 4], [3, -4]],
             covariances=[[[1.5, 0.8], [0.8, 1.0]], [[0.5, 0], [0, 2]], [[1, -0.6], [-0.6, 0.8]], [[0.3, 0], [0, 0.3]]])


def ellipse(ax, mean, cov, color):
    """The 2-sigma contour of N(mean, cov)."""
    values, vectors = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, 100)
    pts = mean + 2 * (np.column_stack([np.cos(t), np.sin(t)]) * np.sqrt(values)) @ vectors.T
    ax.plot(pts[:, 0], pts[:, 1], color=color)


def main():
    args, cfg = common.setup("gmm_em", __doc__, SETTINGS)
    X, labels = gaussian_mixture_sample(cfg["n"], **TRUTH, seed=args.seed)
    fig, axes = plt.subplots(1, len(SNAPSHOTS), figsize=(3.2 * len(SNAPSHOTS), 3.2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # stopped early on purpose
        for ax, n_iter in zip(axes, SNAPSHOTS):  # the same start each time: EM is deterministic from there
            gmm = GaussianMixture(4, max_iter=n_iter, tol=0, init_params="random", random_state=args.seed).fit(X)
            ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="tab10", s=2, alpha=0.4, vmin=0, vmax=9)
            for k in range(4):
                ellipse(ax, gmm.means_[k], gmm.covariances_[k], "k")
            ax.set_title(f"after {n_iter} EM iterations", fontsize=9)
    history = gmm.lower_bounds_
    fig.tight_layout()
    plots.save(fig, common.out(args, "ellipses.png"))
    ks = list(range(1, cfg["max_k"] + 1))
    bic = [GaussianMixture(k, n_init=3, random_state=args.seed).fit(X).bic(X) for k in ks]
    plots.line_panels([("log-likelihood per iteration", {"mean log p(x)": (list(range(1, len(history) + 1)),
                                                                            history)}),
                       ("BIC against K", {"BIC": (ks, bic)})], common.out(args, "curves.png"), "", "", n_cols=2)
    common.finish(args, {"log_likelihood_history": history, "bic": dict(zip(map(str, ks), bic)),
                         "best_k_by_bic": ks[int(np.argmin(bic))],
                         "monotone": bool(np.all(np.diff(history) >= -1e-10 * np.abs(history[1:])))})


if __name__ == "__main__":
    main()
