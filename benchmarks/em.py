"""EM baselines against scikit-learn, side by side in one process.

GaussianMixture: 60,000 x 50 drawn from a 10-component mixture, K = 10, full and diag
covariances, 100 EM iterations with tol = 0, the same initial parameters on both sides
(k-means++ seeds as means_init, equal weights, the data's precision). PPCA: the closed
form against sklearn.decomposition.PCA(svd_solver="covariance_eigh") on MNIST's 60,000
x 784 training images (float64 on both sides). One JSON line per case.

    python benchmarks/em.py [--threads N] [--repeats 3] [--iterations 100]
"""

import warnings

import common

threads = common.setup_threads()

import numpy as np  # noqa: E402

from npvae.datasets import gaussian_mixture_sample, load_mnist  # noqa: E402
from npvae.em import PPCA, GaussianMixture  # noqa: E402
from npvae.em.gmm import kmeans_plusplus  # noqa: E402


def mixture_data(seed=0, n=60000, d=50, K=10):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 2, (K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    X, _ = gaussian_mixture_sample(n, np.full(K, 1 / K), means, A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d), seed=seed)
    return X


def bench_gmm(X, covariance_type, iterations, repeats):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    K = 10
    precision = np.linalg.inv(np.cov(X.T))
    start = dict(covariance_type=covariance_type, tol=0, max_iter=iterations, weights_init=np.full(K, 1 / K),
                 means_init=X[kmeans_plusplus(X, K, np.random.default_rng(0))],
                 precisions_init=np.array([precision] * K) if covariance_type == "full"
                 else np.tile(np.diag(precision), (K, 1)))
    fitted = {}

    def run(name, cls):
        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tol = 0: "did not converge" by design
                fitted[name] = cls(K, **start).fit(X)
        return fit

    times, other = common.alternate({"npvae": run("npvae", GaussianMixture), "sklearn": run("sklearn", SkGaussianMixture)},
                                    repeats, warmup=False)
    ours, theirs = (common.median(times[s]) / iterations for s in ("npvae", "sklearn"))
    common.emit("em", threads, model=f"GaussianMixture(covariance_type={covariance_type!r})", shape=list(X.shape),
                n_components=K, iterations=iterations, repeats=repeats, npvae_s_per_iter=ours,
                sklearn_s_per_iter=theirs, ratio=ours / theirs,
                npvae_lower_bound=fitted["npvae"].lower_bound_, sklearn_lower_bound=fitted["sklearn"].lower_bound_,
                max_other_cores=round(other, 2))


def bench_ppca(repeats, q=50):
    from sklearn.decomposition import PCA

    X = load_mnist("train", dtype=np.float64)[0]
    fitted = {}
    sides = {"npvae": lambda: fitted.__setitem__("npvae", PPCA(q).fit(X)),
             "sklearn": lambda: fitted.__setitem__("sklearn", PCA(q, svd_solver="covariance_eigh").fit(X))}
    times, other = common.alternate(sides, repeats)
    ours, theirs = common.median(times["npvae"]), common.median(times["sklearn"])
    common.emit("em", threads, model=f"PPCA({q}, method='closed_form') vs PCA({q}, svd_solver='covariance_eigh')",
                shape=list(X.shape), repeats=repeats, npvae_s=ours, sklearn_s=theirs, ratio=ours / theirs,
                npvae_score=fitted["npvae"].score(X), sklearn_score=fitted["sklearn"].score(X),
                max_other_cores=round(other, 2))


def main():
    parser = common.argument_parser(__doc__, threads)
    parser.add_argument("--iterations", type=int, default=100)
    args = common.parse(parser)
    X = mixture_data()
    for covariance_type in ("full", "diag"):
        bench_gmm(X, covariance_type, args.iterations, args.repeats)
    bench_ppca(args.repeats)


if __name__ == "__main__":
    main()
