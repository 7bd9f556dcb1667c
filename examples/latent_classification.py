"""Supervised learning on the latent codes (Beaulac, "Variational AutoEncoders: Theory,
implementation and unanswered questions", 2019, section 3.2.1): which codes carry the
digit's label?

Every representation is learned without labels on the training images; then a
logistic-regression classifier (scikit-learn) is trained on the first N labelled ones
(N = 100 to all) and scored on the test digits. The representations: raw pixels, PCA
and pPCA codes (npvae's ``PPCA``, 20 dimensions), a plain autoencoder's code, the
posterior means of VAEs with latent sizes 2 to 50 (``npvae.transformer.VAETransformer``:
Bernoulli decoder, dynamic binarisation), a beta-VAE (beta = 4) and a VAE trained with
the MAE regulariser (Ma et al. 2019), the last three at latent size 20. Each code is
standardised before the classifier (L2 penalty C = 0.1, the same for every code), in a
scikit-learn ``Pipeline``.

What the full run shows (its table, date, machine and command are in ``docs/results.md``):
for a linear classifier, no 20-dimensional code beats the raw pixels once labels are
plentiful; codes pay off with few labels, a 2-dimensional latent does not carry the label,
and a larger beta makes the codes more linearly separable while MAE leaves them as they
were. Needs scikit-learn (``pip install -e '.[examples]'``).
"""

import common
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from npvae import plots
from npvae.datasets import binarize_static, load_mnist
from npvae.em import PPCA
from npvae.models import VAE, Autoencoder
from npvae.train import fit
from npvae.transformer import VAETransformer

SETTINGS = {
    "full": dict(n_train=60000, n_test=10000, epochs=30, hidden=500, latents=(2, 5, 10, 20, 50),
                 labelled=(100, 1000, 10000, 60000), code=20),
    "quick": dict(n_train=10000, n_test=2000, epochs=5, hidden=256, latents=(2, 10, 20),
                  labelled=(100, 1000, 10000), code=20),
    "smoke": dict(n_train=300, n_test=100, epochs=1, hidden=16, latents=(2,), labelled=(50, 300), code=4),
}


def vae(latent, cfg, seed, beta=1.0):
    return VAETransformer(latent_dim=latent, hidden=(cfg["hidden"],), likelihood="bernoulli", binarize=True,
                          epochs=cfg["epochs"], beta=beta, dtype="float32", random_state=seed)


def codes(cfg, x, x_test, seed):
    """name -> (train codes, test codes) for every representation. The linear ones see
    grey levels; the networks train on images binarised afresh each epoch and encode
    images binarised once (the training images with one seed, the test images with
    another), as every MNIST VAE here is evaluated."""
    q = cfg["code"]
    out = {"raw pixels": (x, x_test)}
    for name, reducer in ((f"PCA {q}", PCA(q, random_state=seed)), (f"pPCA {q}", PPCA(q))):
        out[name] = (reducer.fit_transform(x), reducer.transform(x_test))
    grey = x.astype(np.float32)
    train, test = binarize_static(grey, seed=1), binarize_static(x_test, seed=2).astype(np.float32)
    autoencoder = Autoencoder.mlp(784, (cfg["hidden"],), q, "tanh", "bernoulli", rng=seed)
    fit(autoencoder, grey, epochs=cfg["epochs"], binarize=True, seed=seed, log=None)
    out[f"autoencoder {q}"] = (autoencoder.encode(train), autoencoder.encode(test))
    for latent in cfg["latents"]:
        model = vae(latent, cfg, seed).fit(grey)
        out[f"VAE {latent}"] = (model.transform(train), model.transform(test))
        print(f"VAE {latent}: test ELBO {model.model_.elbo(test, rng=seed).mean():.1f} nats")
    beta_vae = vae(q, cfg, seed, beta=4.0).fit(grey)
    out[f"beta-VAE {q} (beta 4)"] = (beta_vae.transform(train), beta_vae.transform(test))
    mae = VAE.mlp(784, (cfg["hidden"],), q, "tanh", "bernoulli", rng=seed)
    fit(mae, grey, epochs=cfg["epochs"], binarize=True, seed=seed, mae_eta=1.0, mae_gamma=0.5, log=None)
    out[f"MAE VAE {q}"] = (mae.encode(train)[0], mae.encode(test)[0])
    return out


def main():
    args, cfg = common.setup("latent_classification", __doc__, SETTINGS)
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    order = np.random.default_rng(args.seed).permutation(len(x))[: cfg["n_train"]]
    x, y = x[order].astype(np.float64), y[order]
    x_test, y_test = x_test[: cfg["n_test"]].astype(np.float64), y_test[: cfg["n_test"]]
    accuracy = {}
    for name, (train, test) in codes(cfg, x, x_test, args.seed).items():
        accuracy[name] = {}
        for n in cfg["labelled"]:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)).fit(train[:n], y[:n])
            accuracy[name][n] = float(clf.score(test, y_test))
        print(f"{name:24s} test accuracy " + "  ".join(f"{n:,}: {a:.3f}" for n, a in accuracy[name].items()))
    labelled = list(cfg["labelled"])
    curves = lambda names: {k: (labelled, [accuracy[k][n] for n in labelled]) for k in names}  # noqa: E731
    vaes = [k for k in accuracy if k.startswith("VAE ")]
    others = [k for k in accuracy if k not in vaes or k == f"VAE {cfg['code']}"]
    plots.line_panels([("the representations", curves(others)),
                       ("VAE posterior means by latent size", curves(vaes))],
                      common.out(args, "accuracy.png"), "labelled training digits", "test accuracy", n_cols=2,
                      logx=True, size=5.0)
    common.finish(args, {"labelled": labelled, "accuracy": accuracy, "settings": {k: v for k, v in cfg.items()}})


if __name__ == "__main__":
    main()
