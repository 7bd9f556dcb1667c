"""Architectures as data: every layer's spec round trip, random stacks, whole models
through save -> load_model -> eval on both CPU backends, the builders, old checkpoints
and every kind of bad spec."""

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npvae
from npvae.testing import seeds
from npvae import io, nn
from npvae.distributions import Bernoulli, GaussianDecoderVar
from npvae.models import VAE, Autoencoder, ConditionalVAE
from npvae.spec import LAYERS, build_layer, build_model, layer_spec, model_spec

DATA = os.path.join(os.path.dirname(__file__), "data")
ACTIVATION_NAMES = sorted(nn.activations.ACTIVATIONS)


def roundtrip(layer, x, rng=1):
    """The layer rebuilt from its spec (through JSON text) with the original's weights:
    same spec, same output bit for bit."""
    spec = json.loads(json.dumps(layer_spec(layer)))
    copy = build_layer(spec, rng=rng).astype(x.dtype)
    assert layer_spec(copy) == spec
    io.load_params(copy, layer.params)
    if isinstance(layer, nn.BayesianLinear):  # the same weights and the same noise
        copy.noise = layer.noise
    np.testing.assert_array_equal(copy.forward(x), layer.forward(x))
    return spec


EVERY_LAYER = [  # (layer, input shape): one of each class, arguments away from their defaults
    (nn.Linear(5, 3, activation="elu"), (2, 5)),
    (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 2, 5, 4)),
    (nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 3, 4)),
    (nn.MaskedConv2d(2, 3, (3, 5), "A"), (2, 2, 4, 5)),
    (nn.Flatten(), (2, 2, 3)),
    (nn.BayesianLinear(5, 3, prior_std=0.5, init_logsigma=-2.0, local_reparam=False), (2, 5)),
    (nn.Reshape((2, 3)), (2, 6)),
    (nn.LeakyReLU(0.2), (2, 4)),
    (nn.ELU(0.5), (2, 4)),
    *((nn.activations.ACTIVATIONS[a](), (2, 4)) for a in ACTIVATION_NAMES if a not in ("leaky_relu", "elu")),
]


@pytest.mark.parametrize("layer, shape", EVERY_LAYER, ids=lambda v: type(v).__name__ if hasattr(v, "params") else "")
def test_every_layer_round_trips(layer, shape):
    layer.astype(np.float64)
    if isinstance(layer, nn.BayesianLinear):
        layer.noise = (np.full(layer.params["W"].shape, 0.5), np.full(3, -1.0))
    spec = roundtrip(layer, np.random.default_rng(0).standard_normal(shape))
    assert spec["layer"] == type(layer).__name__


def test_every_layer_class_is_covered():
    """PixelCNN takes a pair (z, x): tests/test_pixelcnn.py round-trips it in its model."""
    assert {type(layer).__name__ for layer, _ in EVERY_LAYER} | {"PixelCNN"} == set(LAYERS)


# ----------------------------------------------------------------------------- random stacks
@st.composite
def stacks(draw):
    """A random Sequential with its input shape, valid by construction: an MLP part,
    or conv layers of random geometry, Flatten, Linear, Reshape and a transposed conv."""
    rng = np.random.default_rng(draw(seeds))
    act = lambda: nn.activations.ACTIVATIONS[draw(st.sampled_from(ACTIVATION_NAMES))]()  # noqa: E731
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(a, b, rng=rng, activation=draw(st.sampled_from(ACTIVATION_NAMES))))
            if draw(st.booleans()):
                layers.append(act())
        return nn.Sequential(*layers), (3, sizes[0])
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 7)), draw(st.integers(3, 7))
    k, s, p = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    conv = nn.Conv2d(c, 2, k, s, p, rng=rng)
    ho, wo = conv.output_shape((h, w))
    kt, st_ = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    layers = [conv, act(), nn.Flatten(), nn.Linear(2 * ho * wo, 4, rng=rng), nn.Reshape((1, 2, 2)),
              nn.ConvTranspose2d(1, 2, kt, st_, 0, draw(st.integers(0, st_ - 1)), rng=rng)]
    return nn.Sequential(*layers), (3, c, h, w)


@given(stacks(), st.sampled_from(["float32", "float64"]))
def test_random_stacks_round_trip(stack, dtype):
    layer, shape = stack
    layer.astype(dtype)
    roundtrip(layer, np.random.default_rng(0).standard_normal(shape).astype(dtype))


# ----------------------------------------------------------------------------- whole models
def hand_built_vae():
    """A hand-made Sequential VAE using layers no builder makes."""
    rng = np.random.default_rng(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 8, rng=rng), nn.LeakyReLU(0.1), nn.Linear(8, 4, rng=rng))
    decoder = nn.Sequential(nn.Linear(2, 8, rng=rng, activation="softplus"), nn.ELU(0.7), nn.Linear(8, 24, rng=rng),
                            nn.Reshape((2, 3, 4)))
    return VAE(encoder, decoder, GaussianDecoderVar(logvar_floor=-6.0, mean_activation="sigmoid"), 2, (1, 3, 4))


MODELS = {
    "conv VAE": (lambda: VAE.conv((1, 9, 7), (3, 4), 3, 2, rng=0), (1, 9, 7), False),
    "hand-built VAE": (hand_built_vae, (1, 3, 4), False),
    "conditional conv VAE": (lambda: ConditionalVAE.conv((1, 8, 8), (3,), 4, 2, "elu", "gaussian_learned_var",
                                                        rng=0, n_classes=3), (1, 8, 8), True),
    "conv autoencoder": (lambda: Autoencoder.conv((2, 6, 5), (3,), 3, 2, "tanh", "gaussian", {"sigma": 0.5}, rng=0),
                         (2, 6, 5), False),
    "MLP VAE": (lambda: VAE.mlp(6, latent_dim=2, encoder_hidden=(5, 4), decoder_hidden=(3,), rng=0), (6,), False),
}


def outputs(model, x, y):
    labels = {"y": y} if isinstance(model, ConditionalVAE) else {}
    if isinstance(model, Autoencoder):
        return [model.reconstruct(x)]
    eps = np.random.default_rng(3).standard_normal((len(x), 2, model.latent_dim)).astype(model.dtype)
    return [*model.encode(x, **labels), model.reconstruct(x, **labels),
            model.elbo(x, eps=eps, n_samples=2, **labels)]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_model_eval_is_bit_identical(tmp_path, name, backend):
    make, shape, conditional = MODELS[name]
    npvae.kernels.use(backend)
    try:
        model = make()
        model.params[next(iter(model.params))][...] *= 1.5  # weights the builder would not make again
        rng = np.random.default_rng(1)
        x, y = rng.random((4, *shape)).astype(model.dtype), rng.integers(0, 3, 4)
        io.save_checkpoint(tmp_path / "model.npz", model)
        loaded = io.load_model(tmp_path / "model.npz")
        assert type(loaded) is type(model) and model_spec(loaded) == model_spec(model)
        for a, b in zip(outputs(model, x, y), outputs(loaded, x, y)):
            np.testing.assert_array_equal(a, b)
    finally:
        npvae.kernels.use("numpy")


def test_old_mlp_checkpoints_still_load():
    """Fixtures written by the MLP-only format 1 (the builder's arguments, no spec)."""
    path = os.path.join(DATA, "vae_mlp_format1.npz")
    model = io.load_model(path)
    state = io.load_checkpoint(path)[2]["state"]
    mean, logvar = model.encode(np.array(state["x"]))
    np.testing.assert_array_equal(mean, state["mean"])
    np.testing.assert_array_equal(logvar, state["logvar"])
    cvae = io.load_model(os.path.join(DATA, "cvae_mlp_format1.npz"))
    assert isinstance(cvae, ConditionalVAE) and cvae.n_classes == 3 and len(cvae.encoder) == 3


class Doubling(nn.Module):
    def forward(self, x):
        return 2 * x

    def backward(self, dy, need_dx=True):
        return 2 * dy


class MyLinear(nn.Linear):
    pass


def with_first_layer(own, seed=0):
    """A VAE built by hand whose encoder starts with ``own``."""
    base = VAE.mlp(4, (4,), 2, rng=seed)
    return VAE(nn.Sequential(own, *base.encoder), base.decoder, base.likelihood, 2, (4,))


@pytest.mark.parametrize("own", [Doubling(), MyLinear(4, 4)])
def test_a_users_own_layer_is_named_in_the_file_and_rebuilt_from_the_callers_class(tmp_path, own):
    model = with_first_layer(own)
    assert model_spec(model)["encoder"]["layers"][0]["layer"] == type(own).__name__
    io.save_checkpoint(tmp_path / "c.npz", model)
    with pytest.raises(ValueError, match=rf"encoder.0: expected a layer, .* got '{type(own).__name__}'; a layer of "
                                         rf"your own: pass its class, layers=\[{type(own).__name__}\]"):
        io.load_model(tmp_path / "c.npz")
    loaded = io.load_model(tmp_path / "c.npz", layers=[type(own)])
    assert type(loaded.encoder[0]) is type(own)
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.encode(x)[0], model.encode(x)[0])
    rebuilt = with_first_layer(Doubling() if isinstance(own, Doubling) else MyLinear(4, 4), seed=1)
    io.load_params(rebuilt, tmp_path / "c.npz")  # a path, as well as a dict
    np.testing.assert_array_equal(rebuilt.encode(x)[0], model.encode(x)[0])


def test_a_class_that_takes_an_npvae_name_or_a_model_of_the_users_own_is_saved_with_parameters_only(tmp_path):
    Linear = type("Linear", (nn.Linear,), {})  # noqa: N806  (a user's class named as npvae's)
    model = with_first_layer(Linear(4, 4))
    with pytest.raises(TypeError, match="encoder.0: Linear shares the name of one of npvae's classes"):
        model_spec(model)
    with pytest.warns(UserWarning, match="parameters only, no architecture"):
        io.save_checkpoint(tmp_path / "c.npz", model)
    with pytest.raises(ValueError, match=r"holds parameters only \(encoder.0: Linear shares the name.*io.load_params"):
        io.load_model(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="layers: Linear takes the name of one of npvae's classes"):
        io.load_model(tmp_path / "c.npz", layers=[Linear])
    with pytest.raises(TypeError, match="params: expected a dict of arrays or a checkpoint's path, got list"):
        io.load_params(model, [1, 2])


# ----------------------------------------------------------------------------- the builders
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 28, 20), (1, 27, 27), (3, 13, 9), (1, 5, 5)])
@pytest.mark.parametrize("kernel_size", [3, 4, 5, 6])
def test_conv_builder_reaches_every_image_shape(shape, kernel_size):
    model = VAE.conv(shape, (2, 3), kernel_size, latent_dim=2, rng=0)
    x = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    assert model.reconstruct(x).shape == x.shape
    assert model.decoder.forward(model.encode(x)[0]).shape == (2, *shape)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian_learned_var", "gaussian_decoder_var"])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_conv_builder_takes_every_likelihood_and_activation(likelihood, activation):
    model = ConditionalVAE.conv((1, 8, 6), (2,), 4, 2, activation, likelihood, rng=0, n_classes=2)
    x, y = np.random.default_rng(0).random((3, 1, 8, 6)).astype(np.float32), np.array([0, 1, 1])
    loss, _ = model.loss_and_grad(x, y, rng=0)
    assert np.isfinite(loss) and model.encoder[0].in_channels == 3  # the image's channel and 2 label channels
    assert model.sample(2, 0, y=1).shape == (2, 1, 8, 6)


def test_conv_builder_default_is_the_benchmark_network():
    model = VAE.conv()
    assert [layer_spec(m)["layer"] for m in model.encoder] == ["Conv2d", "Conv2d", "Flatten", "Linear"]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.activation)
            for m in model.encoder[0:2]] == [(1, 32, (4, 4), (2, 2), (1, 1), "relu"), (32, 64, (4, 4), (2, 2), (1, 1), "relu")]
    assert model.encoder[3].out_features == 40 and model.decoder[1].shape == (64, 7, 7)
    assert [m.activation for m in model.decoder[2:]] == ["relu", "identity"]
    assert model.decoder[-1].out_channels == 1 and model.dtype == np.float32


def test_mlp_builder_takes_encoder_and_decoder_sizes():
    model = VAE.mlp(10, (7,), 3, encoder_hidden=(9, 8), rng=0)
    assert [m.out_features for m in model.encoder] == [9, 8, 6]
    assert [m.out_features for m in model.decoder] == [7, 10]
    ae = Autoencoder.mlp(10, latent_dim=3, decoder_hidden=(4,), hidden=(5,))
    assert [m.out_features for m in ae.encoder] == [5, 3] and [m.out_features for m in ae.decoder] == [4, 10]


@pytest.mark.parametrize("kwargs, error", [
    (dict(image_shape=(1, 4, 4), channels=(2, 2, 2, 2)), r"image_shape: \(1, 4, 4\) is too small for 4 stride-2"),
    (dict(image_shape=(28, 28)), r"image_shape: expected \(channels, height, width\), got \(28, 28\)"),
    (dict(channels=()), "channels: expected at least one"),
    (dict(channels=(8, 0)), r"channels: expected an integer >= 1, got 0"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size: expected an int or one per conv layer \(2\)"),
    (dict(kernel_size=1), r"kernel_size: expected an integer >= 2, got 1"),
    (dict(activation="swish"), r"activation: expected one of \["),
    (dict(likelihood="poisson"), r"likelihood: expected one of \["),
])
def test_conv_builder_refuses_bad_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        VAE.conv(**kwargs)


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex64"])
def test_builders_refuse_dtypes_the_kernels_do_not_compute_in(dtype):
    with pytest.raises(TypeError, match=rf"dtype: expected float32 or float64, got '{dtype}'"):
        VAE.mlp(4, dtype=dtype)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64"):
        VAE.conv(dtype=dtype)


# ----------------------------------------------------------------------------- bad specs
def good_spec():
    return model_spec(VAE.conv((1, 8, 8), (2,), 4, 2, rng=0))


def edited(path, value=None, delete=False):
    spec = good_spec()
    node = spec
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return spec


@pytest.mark.parametrize("spec, error", [
    (edited(["encoder", "layers", 0, "layer"], value="Conv3d"), r"encoder.0: expected a layer, one of .*got 'Conv3d'"),
    (edited(["encoder", "layers", 0, "dilation"], value=2), r"encoder.0 \(Conv2d\): missing \[\], unknown \['dilation'\]"),
    (edited(["encoder", "layers", 0, "in_channels"], delete=True), r"encoder.0 \(Conv2d\): missing \['in_channels'\]"),
    (edited(["encoder", "layers", 0, "out_channels"], value=-3), r"encoder.0 \(Conv2d\): out_channels: expected an int"),
    (edited(["encoder", "layers", 0, "stride"], value="two"), r"encoder.0 \(Conv2d\): stride: expected an int"),
    (edited(["encoder", "layers"], value=[]), r"encoder.layers: expected a non-empty list"),
    (edited(["decoder", "layers", 1, "shape"], value=[2, 5, 4]), r"spec: decoder does not fit .*: layer 1 \(Reshape\): x: expected shape \(N, 40\), got \(1, 32\)"),
    (edited(["latent_dim"], value=3), r"spec: encoder does not fit .*: encoder: expected 6 outputs per example, got shape \(1, 4\)"),
    (edited(["data_shape"], value=[1, 8, 9]), r"spec: decoder does not fit the data shape \[1, 8, 9\] .*: decoder: expected 72 outputs per example, got "
     r"shape \(1, 64\)"),
    (edited(["data_shape"], value="28x28"), r"spec.data_shape: expected a list of positive ints"),
    (edited(["likelihood", "name"], value="poisson"), r"spec.likelihood: likelihood: expected one of"),
    (edited(["likelihood", "sigma"], value=1.0), r"spec.likelihood: .*unexpected keyword argument 'sigma'"),
    (edited(["model"], value="GAN"), r"spec.model: expected one of \['Autoencoder', 'BayesianDecoderVAE', "
                                     r"'ConditionalVAE', 'HypersphericalVAE', 'PixelCNNVAE', 'TwoLayerVAE', 'VAE'\]"),
    (edited(["dtype"], value="float16"), r"spec.dtype: expected one of \('float32', 'float64'\), got 'float16'"),
    (edited(["decoder"], delete=True), r"spec: missing \['decoder'\], unknown \[\]"),
    ([1, 2], r"spec: expected a JSON object, got list"),
])
def test_a_bad_spec_is_refused_naming_what_is_wrong(spec, error):
    with pytest.raises(ValueError, match=error):
        build_model(spec)


def rewrite_meta(path, edit):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    edit(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_a_checkpoint_whose_spec_and_arrays_disagree_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    io.save_checkpoint(path, VAE.conv((1, 8, 8), (2,), 4, 2, rng=0))
    rewrite_meta(path, lambda meta: meta["spec"]["encoder"]["layers"][0].update(kernel_size=[3, 3]))  # same sizes
    with pytest.raises(ValueError, match=r"checkpoint .*c.npz: parameter encoder.0.W: expected float32 of shape "
                                         r"\(2, 1, 3, 3\), got float32 of shape \(2, 1, 4, 4\)"):
        io.load_model(path)
    rewrite_meta(path, lambda meta: meta["spec"].update(likelihood={"name": "gaussian_learned_var", "dim": 64}))
    with pytest.raises(ValueError, match=r"parameters do not match the model: missing \['likelihood.logvar'\]"):
        io.load_model(path)
    rewrite_meta(path, lambda meta: meta["spec"]["encoder"]["layers"].insert(0, {"layer": "Eval"}))
    with pytest.raises(ValueError, match=r"c.npz: spec: encoder.0: expected a layer, one of .*got 'Eval'"):
        io.load_model(path)


def test_a_builder_model_is_a_plain_module_stack():
    """What the builders make is what a user could write by hand: the same spec."""
    rng = np.random.default_rng(0)
    hand = VAE(nn.Sequential(nn.Conv2d(1, 2, 4, 2, 1, rng=rng, activation="relu"), nn.Flatten(), nn.Linear(32, 4, rng=rng)),
               nn.Sequential(nn.Linear(2, 32, rng=rng, activation="relu"), nn.Reshape((2, 4, 4)),
                             nn.ConvTranspose2d(2, 1, 4, 2, 1, rng=rng)), Bernoulli(), 2, (1, 8, 8))
    assert model_spec(hand) == good_spec()
