"""Variants of npvae's own convolution code, A against B in one process (Numba backend;
the side-by-side runs against PyTorch are ``conv_vae.py`` and ``pixelcnn.py``). One JSON
line per kind, each the median seconds of alternating timed runs:

* ``kept_fields``: a ``VAE.conv()`` training step (batch 128) with conv2d's backward
  reading the fields its forward kept, against making them again.
* ``relu_joined``: the same network built by hand with its three conv ReLUs joined to
  the convolutions (``activation="relu"``, as ``VAE.conv()`` builds it), as layers of
  their own, and left out (the floor: what the ReLU passes cost at all).
* ``relu_pass``: the passes themselves, on a 128 x 14 x 14 x 32 float32 conv output
  of fresh half-negative numbers each run (data already through ReLU lets a branchy
  loop predict well and look fast; the copy that refreshes it is timed alone and
  subtracted): bias and ReLU in one pass, the bias's pass then ReLU in place over the
  same array, the bias then ReLU into a new array; and the backward's dh = dy * [y > 0]
  with f' read from y and from h.
* ``masked_split``: a masked convolution's forward and backward (batch 100, 28 x 28, 16
  maps out) as one convolution on W * M, against two unmasked ones over the mask's two
  rectangles (the rows above the centre, the centre row's left part), cropped and added.

    python benchmarks/conv_variants.py [--threads N] [--repeats 6] [--kinds kept_fields,relu_joined,relu_pass,masked_split]
"""

import common

threads = common.setup_threads()

import numpy as np  # noqa: E402

import npvae  # noqa: E402
from npvae import nn  # noqa: E402
from npvae.distributions import Bernoulli  # noqa: E402
from npvae.kernels.cpu import activations, conv  # noqa: E402
from npvae.models import VAE  # noqa: E402
from npvae.nn.conv import causal_mask  # noqa: E402
from npvae.optim import Adam  # noqa: E402

LATENT, BATCH, STEPS = 20, 128, 20


def training(model, x):
    """``STEPS`` Adam steps of ``model`` on consecutive batches of ``x``."""
    opt, rng = Adam(model.params, model.grads, 1e-4), np.random.default_rng(0)

    def run():
        for s in range(STEPS):
            model.loss_and_grad(x[(s % 10) * BATCH : (s % 10 + 1) * BATCH], rng=rng)
            opt.step()
    return run


def kept_fields(x, repeats):
    """Steps with the kept fields, and with ``_kept_fields`` / ``_fields_for_backward``
    swapped for making the fields afresh."""
    model = VAE.conv((1, 28, 28), (32, 64), 4, LATENT, "relu", "bernoulli", rng=0)
    run, kept, back = training(model, x), conv._kept_fields, conv._fields_for_backward

    def afresh(x, kernel, stride, padding, out_hw, widths=None):
        return conv._fields(x, kernel, stride, padding, out_hw, widths=widths)

    def with_kept():
        conv._kept_fields, conv._fields_for_backward = kept, back
        run()

    def without():
        conv._kept_fields, conv._fields_for_backward = afresh, afresh
        try:
            run()
        finally:
            conv._kept_fields, conv._fields_for_backward = kept, back

    return common.alternate({"kept": with_kept, "made_again": without}, repeats)


def hand_built(relu):
    """``VAE.conv()``'s network with its conv ReLUs "joined", as "layers" or "none"."""
    rng, joined = np.random.default_rng(0), ("relu" if relu == "joined" else "identity")

    def act():
        return [nn.ReLU()] if relu == "layers" else []
    encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1, rng=rng, activation=joined), *act(),
                            nn.Conv2d(32, 64, 4, 2, 1, rng=rng, activation=joined), *act(), nn.Flatten(),
                            nn.Linear(3136, 2 * LATENT, rng=rng))
    decoder = nn.Sequential(nn.Linear(LATENT, 3136, rng=rng, activation="relu"), nn.Reshape((64, 7, 7)),
                            nn.ConvTranspose2d(64, 32, 4, 2, 1, rng=rng, activation=joined), *act(),
                            nn.ConvTranspose2d(32, 1, 4, 2, 1, rng=rng))
    return VAE(encoder, decoder, Bernoulli(), LATENT, (1, 28, 28))


def relu_joined(x, repeats):
    """Timed after a check that the joined and the separate ReLUs give one loss and gradient."""
    models = {relu: hand_built(relu) for relu in ("joined", "layers", "none")}
    joined, layers = models["joined"], models["layers"]
    np.testing.assert_allclose(joined.loss_and_grad(x[:BATCH], rng=0)[0], layers.loss_and_grad(x[:BATCH], rng=0)[0],
                               rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in joined.grads.values()]),
                               np.concatenate([g.ravel() for g in layers.grads.values()]), rtol=1e-4, atol=1e-5)
    return common.alternate({relu: training(model, x) for relu, model in models.items()}, repeats)


def relu_pass(repeats):
    """Microseconds per pass, the refreshing copy's own time subtracted."""
    rng = np.random.default_rng(0)
    fresh, y = rng.standard_normal((25088, 32)).astype(np.float32), np.empty((25088, 32), np.float32)
    b, out, zero = rng.standard_normal(32).astype(np.float32), np.empty_like(y), np.float32(0)
    h = rng.standard_normal(y.size).astype(np.float32)
    relu, dy, dh = np.maximum(h, 0), rng.standard_normal(y.size).astype(np.float32), np.empty(y.size, np.float32)
    flat = y.reshape(-1)
    sides = {
        "copy_only": lambda: None,
        "bias_relu_one_pass": lambda: activations._add_bias_relu_rows(y, b),
        "bias_then_relu_in_place": lambda: (activations._add_bias_rows(y, b),
                                            activations._activate_flat(flat, flat, 1, zero)),
        "bias_then_relu_into_new": lambda: (activations._add_bias_rows(y, b),
                                            activations._activate_flat(flat, out.reshape(-1), 1, zero)),
        "dh_from_y": lambda: activations._backward_from_output_flat(dy, relu, dh, 1, zero),
        "dh_from_h": lambda: activations._backward_flat(dy, h, relu, dh, 1, zero),
    }

    def refreshed(fn, runs=100):
        def run():
            for _ in range(runs):
                np.copyto(y, fresh)
                fn()
        return run

    times, other = common.alternate({name: refreshed(fn) for name, fn in sides.items()}, repeats)
    us = {name: common.median(t) / 100 * 1e6 for name, t in times.items()}
    return {f"{name}_us": round(v - us["copy_only"], 1) for name, v in us.items() if name != "copy_only"}, other


def masked_split(repeats):
    """Per layer (3 x 3 mask B over 16 maps, 5 x 5 mask A over the image), one
    convolution on W * M against the two-rectangle split; both checked equal first."""
    ops, rng, results = npvae.kernels.ops, np.random.default_rng(0), {}
    for k, mask_type, c_in in ((3, "B", 16), (5, "A", 1)):
        x = rng.standard_normal((100, c_in, 28, 28)).astype(np.float32)
        mask = causal_mask((k, k), mask_type).astype(np.float32)
        W, b, r = (rng.standard_normal((16, c_in, k, k)) * mask).astype(np.float32), np.zeros(16, np.float32), k // 2
        dy = np.ones((100, 16, 28, 28), np.float32)

        def whole():
            y = ops.conv2d_forward(x, W, b, (1, 1), (r, r))
            dx = ops.conv2d_backward(x, W, dy, np.zeros_like(W), np.zeros_like(b), (1, 1), (r, r))
            return np.asarray(y), dx

        def split():
            W_above = np.ascontiguousarray(W[:, :, :r, :])
            W_left = np.ascontiguousarray(W[:, :, r : r + 1, : r + (mask_type == "B")])
            y_above, y_left = (ops.conv2d_forward(x, W_above, b, (1, 1), (r, r)),
                               ops.conv2d_forward(x, W_left, None, (1, 1), (0, r)))
            y = y_above[:, :, :28, :] + y_left[:, :, :, :28]
            dy_above, dy_left = np.zeros(y_above.shape, np.float32), np.zeros(y_left.shape, np.float32)
            dy_above[:, :, :28, :], dy_left[:, :, :, :28] = dy, dy
            dx = ops.conv2d_backward(x, W_above, dy_above, np.zeros_like(W_above), np.zeros_like(b), (1, 1), (r, r)) \
                + ops.conv2d_backward(x, W_left, dy_left, np.zeros_like(W_left), np.zeros_like(b), (1, 1), (0, r))
            return y, dx

        for ours, ref in zip(split(), whole()):
            np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
        results[f"{k}x{k}_{mask_type}"] = common.alternate({"whole": whole, "split": split}, repeats)
    return results


def main():
    parser = common.argument_parser(__doc__, threads, repeats=6)
    parser.add_argument("--kinds", default="kept_fields,relu_joined,relu_pass,masked_split")
    args = common.parse(parser)
    npvae.kernels.use("numba")
    kinds = args.kinds.split(",")
    x = (np.random.default_rng(0).random((10 * BATCH, 1, 28, 28)) < 0.3).astype(np.float32)
    for kind, a, b in (("kept_fields", "kept", "made_again"), ("relu_joined", "joined", "layers")):
        if kind in kinds:
            times, other = (kept_fields if kind == "kept_fields" else relu_joined)(x, args.repeats)
            seconds = {side: common.median(t) / STEPS for side, t in times.items()}
            common.emit(f"conv_variants_{kind}", threads, steps=STEPS, repeats=args.repeats,
                        **{f"{side}_s_per_step": v for side, v in seconds.items()},
                        ratio=round(seconds[a] / seconds[b], 3), max_other_cores=round(other, 2))
    if "relu_pass" in kinds:
        passes, other = relu_pass(args.repeats)
        common.emit("conv_variants_relu_pass", threads, repeats=args.repeats, shape=[128, 14, 14, 32], **passes,
                    ratio=round(passes["bias_relu_one_pass_us"] / passes["bias_then_relu_in_place_us"], 3),
                    max_other_cores=round(other, 2))
    if "masked_split" in kinds:
        for layer, (times, other) in masked_split(args.repeats).items():
            seconds = {side: common.median(t) for side, t in times.items()}
            common.emit("conv_variants_masked_split", threads, layer=layer, repeats=args.repeats,
                        **{f"{side}_s": v for side, v in seconds.items()},
                        ratio=round(seconds["split"] / seconds["whole"], 3), max_other_cores=round(other, 2))


if __name__ == "__main__":
    main()
