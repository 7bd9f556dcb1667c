"""The PixelCNN VAE: the whole loss against finite differences (ELBO and IWAE), the
decoder's causality, sampling pixel by pixel on bands of rows, specs and checkpoints,
training and the importance-sampled log p(x)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import check_params, io
from npvae.models import PixelCNNVAE
from npvae.spec import _parameter_count, build_model, model_spec
from npvae.testing import assert_gradcheck, seeds
from npvae.train import fit


def small(rng, dtype="float64", n_layers=2, kernel_size=3, activation="relu", z_bias="channel"):
    return PixelCNNVAE.build((1, 6, 6), latent_dim=2, encoder_channels=(3,), encoder_kernel=2, channels=3,
                             n_layers=n_layers, kernel_size=kernel_size, first_kernel_size=3, activation=activation,
                             rng=rng, dtype=dtype, z_bias=z_bias)


def binary_images(rng, n, size=6):
    return (rng.random((n, 1, size, size)) < 0.4).astype(np.float64)


@settings(max_examples=4)  # each example differentiates ~400 parameters, twice each
@given(seeds, st.sampled_from([dict(), dict(objective="iwae"), dict(estimator="A", beta=0.5)]), st.integers(1, 3),
       st.sampled_from(["tanh", "softplus", "elu"]), st.sampled_from(["channel", "pixel"]))
def test_pixelcnn_vae_loss_gradients(seed, setting, n_samples, activation, z_bias):
    """Every parameter, encoder and decoder (the z maps of every layer included), with
    eps held fixed; the decoder's dz joins the reparameterisation as any decoder's.
    Smooth activations: a z map moves every pixel of its channels, so with ReLU some
    pre-activation among hundreds crosses its kink within a finite-difference step
    (the ReLU's own derivative is tested with the layer)."""
    rng = np.random.default_rng(seed)
    model = small(rng, activation=activation, z_bias=z_bias)
    x = rng.random((3, 1, 6, 6))
    kwargs = dict(x=x, eps=rng.standard_normal((3, n_samples, 2)), n_samples=n_samples, **setting)
    model.loss_and_grad(**kwargs)
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert_gradcheck(check_params(lambda: model.loss_and_grad(**kwargs)[0], model.params, grads))


@given(seeds, st.integers(0, 35), st.sampled_from(["channel", "pixel"]))
def test_a_pixels_logit_reads_only_the_pixels_before_it(seed, pixel, z_bias):
    rng = np.random.default_rng(seed)
    model = small(rng, z_bias=z_bias)
    z, x = rng.standard_normal((2, 2)), binary_images(rng, 2)
    i, j = divmod(pixel, 6)
    logits = model.decode(z, x=x).reshape(2, 6, 6)
    later = x.copy().reshape(2, 36)
    later[:, pixel:] = 1 - later[:, pixel:]  # the pixel itself and every one after it flipped
    assert np.array_equal(model.decode(z, x=later.reshape(x.shape)).reshape(2, 6, 6)[:, i, j], logits[:, i, j])


@pytest.mark.parametrize("n_layers, kernel_size, z_bias", [(1, 3, "pixel"), (3, 3, "channel"), (2, 5, "pixel")])
def test_a_window_gives_a_pixel_the_logit_of_the_whole_image(n_layers, kernel_size, z_bias):
    """What sampling relies on: rows i - r to i, columns j - r to j + r (r = rows_above)
    are all that pixel (i, j) reads (with per-pixel z biases, cut to the window)."""
    rng = np.random.default_rng(0)
    model = small(rng, n_layers=n_layers, kernel_size=kernel_size, z_bias=z_bias)
    z, x = rng.standard_normal((2, 2)), binary_images(rng, 2)
    whole = model.decoder.forward((z, x))
    reach = model.decoder.rows_above()
    for i in range(6):
        for j in range(6):
            top, left = max(0, i - reach), max(0, j - reach)
            window = model.decoder.window_logits(model.decoder.z_biases(z), x[:, :, top : i + 1, left : j + reach + 1],
                                                 top, left)
            np.testing.assert_allclose(window[:, :, i - top, j - left], whole[:, :, i, j], rtol=1e-12, atol=1e-12)


def test_samples_follow_the_teacher_forced_probabilities():
    """Pixel by pixel sampling draws from the distribution log p(x|z) scores: the
    frequencies of the first two pixels' four configurations, over 4,000 samples at one
    z, match p(x_00 | z) p(x_01 | x_00, z) from the teacher-forced logits."""
    rng = np.random.default_rng(0)
    model = small(rng)
    samples = model.sample(5, rng=1)
    assert samples.shape == (5, 1, 6, 6) and set(np.unique(samples)) <= {0.0, 1.0}
    z = np.repeat(rng.standard_normal((1, 2)), 4000, axis=0)
    drawn = model.sample_given(z, rng=2)[:, 0, 0, :2]
    for a in (0, 1):
        for b in (0, 1):
            x = np.zeros((1, 1, 6, 6))
            x[0, 0, 0, :2] = a, b
            p = 1 / (1 + np.exp(-model.decode(z[:1], x=x)[0, :2]))
            expected = (p[0] if a else 1 - p[0]) * (p[1] if b else 1 - p[1])
            frequency = np.mean((drawn[:, 0] == a) & (drawn[:, 1] == b))
            assert abs(frequency - expected) < 4 * np.sqrt(expected * (1 - expected) / 4000) + 1e-3, (a, b)
    twins = model.sample_given(np.repeat(z[:1], 3, axis=0), rng=3, shared_noise=True)
    assert np.array_equal(twins[0], twins[1]) and np.array_equal(twins[0], twins[2])  # the same z, the same noise
    with pytest.raises(ValueError, match="mean"):
        model.sample(2, rng=0, mean=True)


@pytest.mark.parametrize("z_bias", ["channel", "pixel"])
def test_pixelcnn_vae_round_trips_through_specs_and_checkpoints(tmp_path, z_bias):
    rng = np.random.default_rng(0)
    model = small(rng, dtype="float32", z_bias=z_bias)
    spec = model_spec(model)
    assert spec["model"] == "PixelCNNVAE" and spec["decoder"]["layer"] == "PixelCNN"
    decoder_args = {k: v for k, v in spec["decoder"].items() if k != "layer"}
    from npvae import nn
    assert _parameter_count(nn.PixelCNN, decoder_args) == sum(p.size for p in model.decoder.params.values())
    assert type(build_model(spec, rng=1)) is PixelCNNVAE
    x = binary_images(rng, 4).astype(np.float32)
    io.save_checkpoint(tmp_path / "m.npz", model)
    loaded = io.load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.elbo(x, rng=3), model.elbo(x, rng=3))
    assert np.array_equal(loaded.sample(2, rng=4), model.sample(2, rng=4))


def test_pixelcnn_vae_trains_and_estimates_log_px():
    rng = np.random.default_rng(0)
    x = binary_images(rng, 40).astype(np.float32)
    model = small(rng, dtype="float32")
    before = model.elbo(x, rng=0).mean()
    history = fit(model, x, x, epochs=3, batch_size=10, lr=3e-3, log=None)
    assert history["val_elbo"][-1] > before
    log_px = model.log_likelihood(x[:5], k=20, rng=0)
    assert log_px.shape == (5,) and np.all(log_px <= 0) and np.all(log_px >= model.elbo(x[:5], rng=0, n_samples=20) - 5)


def test_the_decoder_and_sampler_refuse_bad_input_with_the_argument_named():
    from npvae import nn

    rng = np.random.default_rng(0)
    model = small(rng)
    z, x = np.zeros((2, 2)), np.zeros((2, 1, 6, 6))
    with pytest.raises(TypeError, match="zx: expected the pair"):
        model.decoder.forward(z)
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        model.decoder.forward((z, x.astype(np.float32)))
    with pytest.raises(ValueError, match="z: "):
        model.decoder.forward((np.full((2, 2), np.nan), x))
    with pytest.raises(TypeError, match="shared_noise"):
        model.sample_given(z, rng=0, shared_noise="yes")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.PixelCNN(2, kernel_size=(3, 3))
    with pytest.raises(ValueError, match="z_bias: expected 'channel' or 'pixel'"):
        nn.PixelCNN(2, z_bias="row")
    with pytest.raises(ValueError, match="image_size: z_bias='pixel' takes"):
        nn.PixelCNN(2, z_bias="pixel")
    pixel = small(rng, z_bias="pixel")
    with pytest.raises(ValueError, match="x: expected shape"):
        pixel.decoder.forward((z, np.zeros((2, 1, 5, 6))))  # the bias maps fix the image size
    biases = pixel.decoder.z_biases(z)
    with pytest.raises(ValueError, match="top, left: a window of"):
        pixel.decoder.window_logits(biases, np.zeros((2, 1, 3, 3)), 4, 0)
    pixel.decoder.window_logits(biases, np.zeros((2, 1, 3, 3)), 3, 3)
    with pytest.raises(ValueError, match="biases: expected z_biases"):
        pixel.decoder.window_logits(biases[:1], np.zeros((2, 1, 3, 3)), 0, 0)
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        pixel.decoder.window_logits(biases, np.zeros((2, 3, 3)), 0, 0)
    with pytest.raises(RuntimeError, match="read a window"):
        pixel.decoder.backward(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="mask"):
        nn.conv.causal_mask((3, 3), "C")


def test_pixelcnn_vae_refuses_a_decoder_that_is_not_autoregressive():
    rng = np.random.default_rng(0)
    model = small(rng)
    with pytest.raises(ValueError, match="PixelCNN decoder"):
        PixelCNNVAE(model.encoder, model.encoder, model.likelihood, 2, (1, 6, 6))


def test_the_command_samples_plots_and_refuses_means_for_a_pixelcnn_checkpoint(tmp_path, capsys):
    from npvae.cli import main

    model = PixelCNNVAE.build((1, 28, 28), 2, encoder_channels=(2,), channels=2, n_layers=1, kernel_size=3,
                              first_kernel_size=3, rng=0)
    io.save_checkpoint(tmp_path / "pc.npz", model)
    assert main(["sample", str(tmp_path / "pc.npz"), "--n", "4", "--out", str(tmp_path / "s.png")]) in (0, None)
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert main(["sample", str(tmp_path / "pc.npz"), "--mean", "--out", str(tmp_path / "m.png")]) == 2
    assert "no mean image" in capsys.readouterr().err and not (tmp_path / "m.png").exists()
