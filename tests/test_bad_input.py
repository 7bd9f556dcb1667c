"""Bad input raises an exception naming the argument, the expected and the actual."""

import numpy as np
import pytest

from npvae import nn


def layers_and_inputs():
    f32 = np.float32
    return [
        (nn.Linear(4, 3), np.zeros((2, 4), f32)),
        (nn.Linear(4, 3, activation="elu"), np.zeros((2, 4), f32)),
        (nn.Conv2d(2, 3, 3), np.zeros((1, 2, 5, 5), f32)),
        (nn.ConvTranspose2d(2, 3, 3, stride=2), np.zeros((1, 2, 4, 4), f32)),
        (nn.ReLU(), np.zeros((2, 4), f32)),
        (nn.Flatten(), np.zeros((2, 3, 4), f32)),
        (nn.Sequential(nn.Linear(4, 3), nn.Tanh()), np.zeros((2, 4), f32)),
    ]


@pytest.mark.parametrize("layer,x", layers_and_inputs())
def test_float16_and_int_inputs_are_refused(layer, x):
    for bad in (x.astype(np.float16), x.astype(np.int64)):
        with pytest.raises(TypeError, match=r"x: expected dtype float32 or float64, got (float16|int64)"):
            layer.forward(bad)


@pytest.mark.parametrize("layer,x", layers_and_inputs())
def test_nan_and_inf_inputs_are_refused(layer, x):
    for value in (np.nan, np.inf):
        bad = x.copy()
        bad.flat[-1] = value
        with pytest.raises(ValueError, match="x: expected finite values, got NaN or inf"):
            layer.forward(bad)


@pytest.mark.parametrize("layer,x", layers_and_inputs())
def test_backward_before_forward(layer, x):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("layer,x", layers_and_inputs())
def test_dy_must_match_the_output(layer, x):
    y = layer.forward(x)
    with pytest.raises(ValueError, match=r"dy: expected shape"):
        layer.backward(np.zeros(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))


def test_linear_wrong_feature_count_and_rank():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\), got \(2, 5\)"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"x: expected a 2-D array of shape \(N, 4\), got shape \(4,\)"):
        layer.forward(np.zeros(4, np.float32))


def test_linear_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match=r"activation: expected one of \['elu', .*\], got 'gelu'"):
        nn.Linear(4, 3, activation="gelu")


def test_dtype_must_match_parameters():
    with pytest.raises(TypeError, match="x: expected dtype float32 .* got float64"):
        nn.Linear(4, 3).forward(np.zeros((2, 4)))


def test_conv_wrong_channels_rank_and_size():
    conv = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2, N, N\), got \(1, 3, 5, 5\)"):
        conv.forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"x: expected a 4-D array"):
        conv.forward(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"x: spatial size \(2, 5\) too small for kernel \(3, 3\)"):
        conv.forward(np.zeros((1, 2, 2, 5), np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_features: expected an integer >= 1, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="stride: expected an integer >= 1, got 0"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="padding: expected an integer >= 0, got -1"):
        nn.Conv2d(1, 1, 3, padding=-1)
    with pytest.raises(ValueError, match="kernel_size: expected an int or a pair of ints"):
        nn.Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match=r"output_padding: expected each < stride \(2, 2\), got \(2, 2\)"):
        nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"activation: expected one of \['elu', .*\], got 'gelu'"):
        nn.MaskedConv2d(1, 1, 3, activation="gelu")
    with pytest.raises(ValueError, match="init: expected one of"):
        nn.Linear(2, 2, init="zeros")
    with pytest.raises(TypeError, match="rng: expected None, an int seed or a numpy.random.Generator"):
        nn.Linear(2, 2, rng="seed")
    with pytest.raises(ValueError, match="shape: expected (a tuple of positive ints|an integer >= 1)"):
        nn.Reshape((0, 3))


def test_more_bad_arguments_name_themselves():
    import npvae
    from npvae import plots
    from npvae.models import VAE

    layer = nn.Linear(3, 2, rng=0).astype(np.float64)
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"h: expected a finite number in \(0, inf\), got 0"):
        npvae.check_module(layer, x, h=0)
    with pytest.raises(ValueError, match="n_cols: expected an integer >= 1, got 0"):
        plots.tile(np.zeros((4, 784)), 0)
    with pytest.raises(ValueError, match=r"z, labels: expected \(N, d\) points and N labels, got shapes \(5, 1\), \(4,\)"):
        plots.latent_scatter(np.zeros(5), np.zeros(4), "unused.png")
    with pytest.raises(ValueError, match="rng: expected a seed >= 0 .* got -1"):
        VAE.mlp(4, (3,), 2, rng=-1)
    model = VAE.mlp(4, (3,), 2, rng=0)
    with pytest.raises(ValueError, match=r"x: expected at least one example, got an empty array of shape \(0, 4\)"):
        model.encode(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        model.log_likelihood(np.zeros((2, 4), np.float32), k=2, batch_size=0)
