"""Davidson, Falorsi, De Cao, Kipf & Tomczak ("Hyperspherical Variational Auto-Encoders",
UAI 2018), Table 1: on dynamically binarised MNIST, the Gaussian VAE (N-VAE: q(z|x)
Gaussian, p(z) = N(0, I)) against the hyperspherical one (S-VAE: q(z|x) von Mises-Fisher
on S^{d-1}, p(z) uniform; ``npvae.models.HypersphericalVAE``) at small latent sizes.

The recipe, as theirs: encoder 784-256-128 and decoder 128-256-784, ReLU, Adam 1e-3,
batch 64, each minibatch binarised afresh; the test log-likelihood by importance
sampling (their k = 500, the vMF proposal for the S-VAE), the test ELBO, and the
collapse diagnostics (active units; the KL, per dimension for the N-VAE). Their
numbers (log-likelihood, N-VAE / S-VAE): d = 2: -135.73 / -132.50, 5: -110.21 /
-108.43, 10: -93.84 / -93.16, 20: -88.90 / -89.02, 40: -88.93 / -90.87: the sphere
wins in low dimensions and loses at 40, where the vMF's concentration saturates. They
train with early stopping on a validation set; this example trains a fixed number of
epochs and says how many.

Figures: the test log-likelihood against d beside theirs (``log_likelihood.png``), and
at d = 3 the test codes coloured by digit, the S-VAE's posterior directions mu on the
sphere against the N-VAE's posterior means in R^3 (``codes_d3.png``).

    python examples/hyperspherical.py          # the full run (docs/results.md has what it gave)
    python examples/hyperspherical.py --quick
"""

import common

from npvae import diagnostics
from npvae.models import VAE, HypersphericalVAE
from npvae.plots import plt, save
from npvae.train import fit

SETTINGS = {
    "full": dict(dims=[2, 3, 5, 10, 20, 40], n_train=50000, n_test=10000, epochs=30, k=500),
    "quick": dict(dims=[2, 3, 5], n_train=2000, n_test=500, epochs=3, k=20),
    "smoke": dict(dims=[2, 3], n_train=100, n_test=40, epochs=1, k=3),
}
PAPER = {"N-VAE": {2: -135.73, 5: -110.21, 10: -93.84, 20: -88.90, 40: -88.93},
         "S-VAE": {2: -132.50, 5: -108.43, 10: -93.16, 20: -89.02, 40: -90.87}}


def run(kind, d, x, x_test, cfg, seed):
    cls = HypersphericalVAE if kind == "S-VAE" else VAE
    model = cls.mlp(784, latent_dim=d, activation="relu", rng=seed, encoder_hidden=(256, 128),
                    decoder_hidden=(128, 256))
    history = fit(model, x, lr=1e-3, epochs=cfg["epochs"], batch_size=64, binarize=True, seed=seed, log=None)
    elbo, log_px, kl = model.elbo_terms(x_test, rng=seed)
    result = {"test_elbo": float(elbo.mean()), "test_kl": float(kl.mean()),
              "test_log_likelihood": float(model.log_likelihood(x_test, k=cfg["k"], rng=seed).mean()),
              "active_units": diagnostics.active_units(model, x_test)[0], "seconds": history["seconds"][-1]}
    if kind == "N-VAE":
        result["kl_per_dimension"] = diagnostics.kl_per_dimension(model, x_test).tolist()
    print(f"d = {d:2d} {kind}: test LL {result['test_log_likelihood']:8.2f}  ELBO {result['test_elbo']:8.2f}  KL "
          f"{result['test_kl']:6.2f}  active units {result['active_units']}/{d}  (paper LL "
          f"{PAPER[kind].get(d, float('nan')):.2f})")
    return result, model


def likelihood_figure(results, cfg, path):
    """The test log-likelihood against d, each kind beside Davidson et al.'s."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, kind in enumerate(results):
        dims = sorted(results[kind])
        ax.plot(dims, [results[kind][d]["test_log_likelihood"] for d in dims], "o-", color=f"C{i}",
                label=f"{kind} (npvae, {cfg['epochs']} epochs)")
        ax.plot(list(PAPER[kind]), list(PAPER[kind].values()), "s--", color=f"C{i}", alpha=0.6,
                label=f"{kind} (Davidson et al.)")
    ax.set(xscale="log", xlabel="latent dimensions d", ylabel=f"test log p(x), nats (k = {cfg['k']})",
           title="MNIST: Gaussian against von Mises-Fisher latents")
    ax.minorticks_off()
    ax.set_xticks(cfg["dims"], [str(d) for d in cfg["dims"]])
    ax.legend(fontsize=8)
    save(fig, path)


def codes_figure(models, x_test, y_test, path):
    """The d = 3 test codes: the S-VAE's mu on the sphere, the N-VAE's means in R^3."""
    fig = plt.figure(figsize=(14, 6.5))
    for i, (kind, model) in enumerate(models.items()):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        z = model.encode(x_test)[0]
        points = ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=y_test, cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        what = "posterior directions mu on S^2" if kind == "S-VAE" else "posterior means in R^3"
        ax.set(title=f"{kind}: {what}", xlabel="z1", ylabel="z2", zlabel="z3")
        if kind == "S-VAE":
            ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
            ax.set_box_aspect((1, 1, 1))
    fig.colorbar(points, ax=fig.axes, ticks=range(10), label="digit", shrink=0.6)
    save(fig, path)


def main():
    args, cfg = common.setup("hyperspherical", __doc__, SETTINGS)
    x, _, x_test, y_test = common.mnist(cfg["n_train"], cfg["n_test"])
    results, d3 = {"N-VAE": {}, "S-VAE": {}}, {}
    for d in cfg["dims"]:
        for kind in results:
            results[kind][d], model = run(kind, d, x, x_test, cfg, args.seed)
            if d == 3:
                d3[kind] = model
    likelihood_figure(results, cfg, common.out(args, "log_likelihood.png"))
    if len(d3) == 2:
        codes_figure(d3, x_test, y_test, common.out(args, "codes_d3.png"))
    common.finish(args, {"runs": {kind: {str(d): r for d, r in rs.items()} for kind, rs in results.items()},
                         "paper": PAPER, "settings": cfg})


if __name__ == "__main__":
    main()
