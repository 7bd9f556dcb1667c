"""The MNIST log-likelihoods of Burda, Grosse & Salakhutdinov (2015, "Importance
Weighted Autoencoders", Table 1, one and two stochastic layers), as a command.

The recipe: 784-200-200-50 tanh encoder and decoder (``--stochastic-layers 2``: their
second architecture, 784-200-200-100-100-100-50 with a Gaussian z1 of 100 and z2 of 50
dimensions, ``npvae.models.TwoLayerVAE``), Bernoulli decoder whose output bias
starts at the logit of the training mean, batch 20, Adam(beta 0.9, 0.999, eps 1e-4) on
the summed loss, the 60,000 training images binarised afresh every minibatch, and the
stage-wise schedule: stage i = 0..7 runs 3^i passes at lr 1e-3 * 10^(-i/7) (3,280
passes). Evaluation: the test NLL by importance sampling with k = 5000 on the 10,000
test images (binarised once, fixed seed), the test ELBO and the active units.

Where the original code differs: it trains on 59,600 images (a validation split),
uses beta1 = 0.9 with its own initialisation (here PyTorch's default, on both sides of
``--peer torch``).

Rows: VAE k=1, VAE k=5 and k=50 (the ELBO averaged over k samples), IWAE k=5 and
k=50. The paper: 86.76, 86.47, 86.35, 85.54, 84.78 nats with one stochastic layer,
85.33, 85.01, 84.78, 83.89, 82.90 with two.

    python examples/iwae_table.py --rows vae1 iwae5                  # the full schedule
    python examples/iwae_table.py --rows vae1 --budget-minutes 40 --peer torch
    python examples/iwae_table.py --stochastic-layers 2 --rows vae1 iwae5 --budget-minutes 40 --peer torch --beside
    python examples/iwae_table.py --quick

What these commands gave, with the date, the machine and the exact command of each run,
is in ``docs/results.md``.

``--budget-minutes M`` compresses the schedule to M minutes of training, planned as
training goes so that a machine that slows down or speeds up still ends on time: the
same eight stages, stage 0 one pass, each later stage its share 3^i / sum_{j>=i} 3^j of
the passes that the time left allows at the last stage's pace (at least one), and the
last stage runs until the next pass would end after the budget. ``--peer torch`` runs
PyTorch with the same recipe, data and planning after npvae, or with ``--beside`` at the
same time in a second process (one core each, so that both see the same machine and its
noise; set OMP_NUM_THREADS=1). ``--stage-passes`` gives both sides one plan (a budget
run's ``stage_passes``: the same passes), and ``--resume`` continues a full-schedule
run from its checkpoint, written every pass into ``--out``/<row>-npvae/.
"""

import math
import multiprocessing
import os
import sys
import time

import common
import numpy as np

from npvae import diagnostics, io
from npvae.datasets import binarize_static, load_mnist
from npvae.files import save_json
from npvae.models import VAE, TwoLayerVAE
from npvae.optim import iwae_stages
from npvae.plots import plt, save, tile
from npvae.train import fit

ROWS = {"vae1": ("elbo", 1), "vae5": ("elbo", 5), "vae50": ("elbo", 50), "iwae5": ("iwae", 5), "iwae50": ("iwae", 50)}
PAPER = {1: {"vae1": 86.76, "vae5": 86.47, "vae50": 86.35, "iwae5": 85.54, "iwae50": 84.78},
         2: {"vae1": 85.33, "vae5": 85.01, "vae50": 84.78, "iwae5": 83.89, "iwae50": 82.90}}
SETTINGS = {
    "full": dict(n_train=60000, n_test=10000, k_eval=5000, passes=[3**i for i in range(8)]),
    "quick": dict(n_train=2000, n_test=500, k_eval=100, passes=[1, 1]),
    "smoke": dict(n_train=200, n_test=40, k_eval=5, passes=[1, 1]),
}
BATCH, LR, EPS, FACTOR = 20, 1e-3, 1e-4, 10 ** (-1 / 7)


def planned_passes(schedule, stage, seconds_left, seconds_per_pass):
    """Passes for ``stage`` of ``schedule`` (passes per stage) compressed: its share of
    the passes that ``seconds_left`` allow at ``seconds_per_pass`` (3^i / sum_{j>=i} 3^j
    for the IWAE stages), at least one and at most the schedule's own."""
    share = schedule[stage] / sum(schedule[stage:])
    return min(schedule[stage], max(1, round(share * seconds_left / seconds_per_pass)))


def run_stages(train_stage, schedule, budget_seconds=None):
    """Train ``schedule`` (passes per stage) through ``train_stage(stage, passes,
    deadline)``, which runs up to ``passes`` passes at stage ``stage``'s learning rate
    (stopping once the next pass would end after ``deadline``, when given) and returns
    (training seconds so far, passes run). Without a budget every stage runs its passes.
    With one, the plan is made as training goes, from the pace of the stage before:
    stage 0 runs its first pass, each later stage gets its share of the time left, and
    the last stage runs until the budget is spent. Returns the passes per stage."""
    seconds, pace, passes = 0.0, None, []
    for stage in range(len(schedule)):
        last = stage == len(schedule) - 1
        if budget_seconds is None or last:
            n = schedule[stage]
        else:
            n = 1 if pace is None else planned_passes(schedule, stage, budget_seconds - seconds, pace)
        before = seconds
        seconds, done = train_stage(stage, n, budget_seconds if budget_seconds is not None and last else None)
        pace = (seconds - before) / done
        passes.append(done)
    return passes


def past_deadline(seconds, stage_start, passes_in_stage, deadline):
    """Whether one more pass at this stage's pace would end after ``deadline``."""
    return deadline is not None and seconds + (seconds - stage_start) / passes_in_stage > deadline


def npvae_model(x, seed, layers):
    if layers == 2:
        return TwoLayerVAE.mlp(784, (200, 200), 100, (100, 100), 50, "tanh", "bernoulli", rng=seed,
                               init="torch_default", data_mean=x.mean(axis=0))
    return VAE.mlp(784, (200, 200), 50, "tanh", "bernoulli", rng=seed, init="torch_default",
                   data_mean=x.mean(axis=0))


def npvae_row(x, x_test, objective, k, cfg, seed, budget, folder, resume=False, layers=1):
    """Train and evaluate npvae's row. The full schedule is one ``fit`` with the stage
    schedule, checkpointed every pass into ``folder`` (``resume`` goes on from there); a
    budget runs each stage as its own ``fit`` at the stage's rate, the checkpoint carrying
    Adam's state from one to the next."""
    model, path = npvae_model(x, seed, layers), os.path.join(folder, "checkpoint.npz")
    kwargs = dict(optimizer="adam", optimizer_kwargs={"eps": EPS}, reduction="sum", batch_size=BATCH, seed=seed,
                  objective=objective, n_samples=k, binarize=True, checkpoint_dir=folder,
                  log=lambda line: print(f"  npvae: {line}", flush=True))
    if budget is None:
        passes = cfg["passes"]
        history = fit(model, x, lr=LR, lr_schedule=iwae_stages(passes=passes), epochs=sum(passes), checkpoint_every=1,
                      resume=path if resume else None, **kwargs)
    else:
        runs = []

        def train_stage(stage, passes, deadline):
            done = len(runs[-1]["epoch"]) if runs else 0
            stage_start = runs[-1]["seconds"][-1] if runs else 0.0
            stop = lambda epoch, h: past_deadline(h["seconds"][-1], stage_start, epoch - done, deadline)  # noqa: E731
            runs.append(fit(model, x, lr=LR * FACTOR**stage, epochs=done + passes, callbacks=[stop],
                            resume=path if runs else None, **kwargs))
            return runs[-1]["seconds"][-1], len(runs[-1]["epoch"]) - done

        passes = run_stages(train_stage, cfg["passes"], budget)
        history = runs[-1]
    if layers == 2:
        layers_figure(model, x_test, os.path.join(folder, "layers.png"), seed)
    t0 = time.perf_counter()
    nll = -model.log_likelihood(x_test, k=cfg["k_eval"], rng=seed, progress=_progress("npvae"))
    eval_seconds = time.perf_counter() - t0
    units = ([diagnostics.active_units(model, x_test)[0]] if layers == 1 else
             [count for count, _ in diagnostics.active_units_per_layer(model, x_test, rng=seed)])
    return {"test_nll": float(nll.mean()), "test_elbo": float(model.elbo(x_test, rng=seed).mean()),
            "active_units": units, "passes": sum(passes),
            "stage_passes": passes, "train_seconds": history["seconds"][-1], "eval_seconds": eval_seconds,
            "eval_ms_per_image": 1e3 * eval_seconds / len(x_test)}


def layers_figure(model, x_test, path, seed=0, n=8):
    """What each layer of a TwoLayerVAE encodes: (left) each row one z2 ~ p(z2), its
    columns z1 ~ p(z1 | z2) drawn afresh; (middle) each row one draw of z1's noise eps1,
    its columns z2 ~ p(z2) drawn afresh, z1 = mean_p(z2) + sigma_p(z2) eps1; both shown
    as the decoder's means E[x | z1]; (right) the variance over the test set of each
    unit's posterior mean, sorted, per layer, with Burda et al.'s threshold 0.01."""
    rng, d1, d2 = np.random.default_rng(seed), model.latent_dim, model.latent2_dim

    def images(z2, eps1):
        mean_p, logvar_p = model.prior_z1(z2.astype(model.dtype))
        return model.likelihood.mean(model.decode((mean_p + np.exp(0.5 * logvar_p) * eps1).astype(model.dtype)))

    z2_fixed = images(np.repeat(rng.standard_normal((n, d2)), n, axis=0), rng.standard_normal((n * n, d1)))
    eps1_fixed = images(rng.standard_normal((n * n, d2)), np.repeat(rng.standard_normal((n, d1)), n, axis=0))
    units = diagnostics.active_units_per_layer(model, x_test, rng=seed)
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.6), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for ax, grid, title in ((axes[0], z2_fixed, "z2 fixed along a row, z1 ~ p(z1 | z2) resampled"),
                            (axes[1], eps1_fixed, "z1's noise fixed along a row, z2 ~ p(z2) resampled")):
        ax.imshow(tile(grid, n), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=11)
        ax.set_xticks([]), ax.set_yticks([])
    for (count, variances), name, dim in zip(units, ("z1", "z2"), (d1, d2)):
        axes[2].plot(np.sort(variances)[::-1], marker="o", markersize=3, label=f"{name}: {count} of {dim} active")
    axes[2].axhline(0.01, color="k", linestyle="--", linewidth=1, label="threshold 0.01")
    axes[2].set(yscale="log", xlabel="unit (sorted by variance)", ylabel="Var_x of the unit's posterior mean",
                title="active units per layer (test set)")
    axes[2].legend()
    fig.suptitle("What each stochastic layer encodes (decoder means E[x | z1])", fontsize=13)
    save(fig, path)
    return [count for count, _ in units]


def _progress(label):
    def report(done, total):
        if done == total or done % max(1, total // 10) < 100:
            print(f"  {label}: importance sampling {done:,}/{total:,}", flush=True)
    return report


# ----------------------------------------------------------------------------- the peer
def torch_row(x, x_test, objective, k, cfg, seed, budget, layers=1):
    """The same recipe in PyTorch (CPU): the network (one or two stochastic layers),
    init, output bias, Adam, summed loss, dynamic binarisation, stages (planned by the
    same ``run_stages``) and evaluation."""
    import torch
    from torch import nn

    def net(*sizes):
        parts = [m for a, b in zip(sizes[:-2], sizes[1:-1]) for m in (nn.Linear(a, b), nn.Tanh())]
        return nn.Sequential(*parts, nn.Linear(sizes[-2], sizes[-1]))

    def gaussian(h, d, eps):  # the sample and log N(z; mean, var) + d/2 log 2 pi (the constants cancel in log w)
        mean, logvar = h[..., :d], h[..., d:]
        return mean + torch.exp(0.5 * logvar) * eps, logvar

    torch.manual_seed(seed)
    d1 = 50 if layers == 1 else 100
    encoder, decoder = net(784, 200, 200, 2 * d1), net(d1, 200, 200, 784)
    top = [net(100, 100, 100, 100), net(50, 100, 100, 200)] if layers == 2 else []  # q(z2|z1), p(z1|z2)
    p = np.clip(x.mean(axis=0), 1e-4, 1 - 1e-4)
    with torch.no_grad():
        decoder[-1].bias.copy_(torch.from_numpy(np.log(p) - np.log1p(-p)))
    params = [q for m in (encoder, decoder, *top) for q in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, eps=EPS, fused=True)  # at batch 20 twice as fast as the default
    data, test = torch.from_numpy(x), torch.from_numpy(x_test)

    def log_weights(xb, k):
        eps1 = torch.randn(len(xb), k, d1)
        z1, logvar1 = gaussian(encoder(xb)[:, None], d1, eps1)
        logits = decoder(z1)
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, xb[:, None].expand_as(logits), reduction="none").sum(-1)
        log_qz1 = -0.5 * (eps1**2 + logvar1).sum(-1)
        if layers == 1:
            return log_px - 0.5 * (z1**2).sum(-1) - log_qz1  # the log 2 pi terms cancel
        eps2 = torch.randn(len(xb), k, 50)
        z2, logvar2 = gaussian(top[0](z1), 50, eps2)
        h = top[1](z2)
        mean_p, logvar_p = h[..., :d1], h[..., d1:]
        log_pz1 = -0.5 * (logvar_p + (z1 - mean_p) ** 2 * torch.exp(-logvar_p)).sum(-1)
        return log_px + log_pz1 - log_qz1 - 0.5 * (z2**2).sum(-1) + 0.5 * (eps2**2 + logvar2).sum(-1)

    t0, done = time.perf_counter(), 0

    def train_stage(stage, passes, deadline):
        nonlocal done
        for group in opt.param_groups:
            group["lr"] = LR * FACTOR**stage
        stage_start = time.perf_counter() - t0
        for n in range(1, passes + 1):
            for idx in torch.randperm(len(data)).split(BATCH):
                xb = torch.bernoulli(data[idx])
                log_w = log_weights(xb, k)
                bound = torch.logsumexp(log_w, 1) - math.log(k) if objective == "iwae" else log_w.mean(1)
                loss = -bound.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            done += 1
            print(f"  torch: pass {done} (stage {stage}), {time.perf_counter() - t0:.0f} s", flush=True)
            if past_deadline(time.perf_counter() - t0, stage_start, n, deadline):
                break
        return time.perf_counter() - t0, n

    passes = run_stages(train_stage, cfg["passes"], budget)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        nll = []
        for xb in test.split(100):
            chunks = [log_weights(xb, min(500, cfg["k_eval"] - c)) for c in range(0, cfg["k_eval"], 500)]
            nll.append(-(torch.logsumexp(torch.cat(chunks, 1), 1) - math.log(cfg["k_eval"])))
        elbo = log_weights(test, 1).mean()
    eval_seconds = time.perf_counter() - t0
    return {"test_nll": float(torch.cat(nll).mean()), "test_elbo": float(elbo), "passes": sum(passes),
            "stage_passes": passes, "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "eval_ms_per_image": 1e3 * eval_seconds / len(x_test)}


def beside(function, *args):
    """Start ``function(*args)`` in a forked process; returns a function that waits for
    its result (an EOFError if the process died without one)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=lambda: send.send(function(*args)))
    process.start()
    send.close()  # only the child's end stays open, so its death ends the wait

    def result():
        value = receive.recv()
        process.join()
        return value
    return result


def main():
    def flags(p):
        p.add_argument("--rows", nargs="+", choices=sorted(ROWS), help="default: all five (full), vae1 iwae5 (else)")
        p.add_argument("--budget-minutes", type=float, help="compress the schedule to about M minutes of training")
        p.add_argument("--stage-passes", type=int, nargs="+", metavar="N",
                       help="passes per stage instead of 3^i, for both sides (a results.json's stage_passes: "
                            "the same passes as another run)")
        p.add_argument("--peer", choices=("torch",), help="run PyTorch with the same recipe, data and budget")
        p.add_argument("--beside", action="store_true",
                       help="run the peer at the same time in a second process (one core each: both see the same "
                            "machine, noise included; set OMP_NUM_THREADS=1)")
        p.add_argument("--stochastic-layers", type=int, choices=(1, 2), default=1,
                       help="Burda et al.'s first architecture (one Gaussian latent of 50) or second (100 and 50)")
        p.add_argument("--figure", metavar="CHECKPOINT",
                       help="only draw the per-layer figure of a two-layer run's checkpoint into --out")
        p.add_argument("--resume", action="store_true",
                       help="go on with each row's npvae run from its checkpoint in --out (full schedule only)")

    args, cfg = common.setup("iwae_table", __doc__, SETTINGS, flags)
    if args.figure:
        model = io.load_model(args.figure)
        if not isinstance(model, TwoLayerVAE):
            print(f"iwae_table.py: --figure: expected a two-layer run's checkpoint, got a {type(model).__name__}",
                  file=sys.stderr)
            sys.exit(2)
        x_test = binarize_static(load_mnist("test")[0][: cfg["n_test"]], seed=2)
        units = layers_figure(model, x_test, common.out(args, "layers.png"), args.seed)
        print(f"active units: z1 {units[0]}, z2 {units[1]}; wrote {common.out(args, 'layers.png')}")
        return
    rows = args.rows or (["vae1", "iwae5"] if args.mode != "full" else list(ROWS))
    budget = None if args.budget_minutes is None else 60 * args.budget_minutes
    if args.stage_passes and (budget is not None or min(args.stage_passes) < 1):
        print(f"iwae_table.py: --stage-passes: expected integers >= 1 and no --budget-minutes, got "
              f"{args.stage_passes} with --budget-minutes {args.budget_minutes}", file=sys.stderr)
        sys.exit(2)
    cfg = {**cfg, "passes": args.stage_passes or cfg["passes"]}
    tag = "" if args.stochastic_layers == 1 else "two-layer-"
    folders = {row: common.out(args, f"{tag}{row}-npvae") for row in rows}
    if args.resume:
        missing = [f for f in folders.values() if not os.path.exists(os.path.join(f, "checkpoint.npz"))]
        if budget is not None or missing:
            print("iwae_table.py: --resume: " + ("a budget run starts afresh" if budget is not None else
                  f"no checkpoint in {', '.join(missing)} (run without --resume first)"), file=sys.stderr)
            sys.exit(2)
    x = load_mnist("train")[0][: cfg["n_train"]]
    x_test = binarize_static(load_mnist("test")[0][: cfg["n_test"]], seed=2)
    peer = args.peer
    if peer:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("--peer torch: PyTorch is not installed (pip install torch==2.13.0); npvae alone")
            peer = None
    results = {}
    for row in rows:
        objective, k = ROWS[row]
        print(f"{row}: {objective} with k = {k}" + (f", {args.budget_minutes:g} minutes of training" if budget else ""),
              flush=True)
        # the peer: the same recipe, and the same wall-clock budget planned by the same rule
        layers = args.stochastic_layers
        peer_args = (x, x_test, objective, k, cfg, args.seed, budget, layers)
        peer_result = beside(torch_row, *peer_args) if peer and args.beside else None
        results[row] = {"npvae": npvae_row(x, x_test, objective, k, cfg, args.seed, budget, folders[row], args.resume,
                                           layers), "paper": PAPER[layers][row], "stochastic_layers": layers}
        if peer:
            results[row]["torch"] = peer_result() if peer_result else torch_row(*peer_args)
        save_json(common.out(args, f"{tag}{row}.json"), results[row])
    lines = [f"{'row':<8}{'paper':>8}" + "".join(f"{s + ' NLL':>12}{'passes':>8}" for s in ("npvae", "torch")
                                                 if any(s in r for r in results.values()))]
    for row, r in results.items():
        cells = "".join(f"{r[s]['test_nll']:>12.2f}{r[s]['passes']:>8}" for s in ("npvae", "torch") if s in r)
        lines.append(f"{row:<8}{r['paper']:>8.2f}{cells}")
    print("\n".join(lines))
    common.finish(args, {"rows": results, "settings": cfg, "budget_minutes": args.budget_minutes,
                         "backend": os.environ.get("NPVAE_BACKEND", "numpy")})


if __name__ == "__main__":
    main()
