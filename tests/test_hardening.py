"""Bad input to the entry points added since the first hardening pass gets a clear error
naming the argument, before any work, and a refused call changes nothing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae import io
from npvae.diagnostics import active_units, collapse_report, mutual_information
from npvae.models import VAE, Autoencoder, ConditionalVAE
from npvae.objectives import mae_regularizer
from npvae.optim import clip_by_global_norm, clip_by_value
from npvae.plots import image_grid
from npvae.testing import assert_gradcheck
from npvae.tour import tour
from npvae.train import fit


def data(n=20, d=6, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.5).astype(np.float32)


@pytest.mark.parametrize("kwargs, error", [
    (dict(beta=-1.0), r"beta: expected a finite number in \[0, inf\), got -1.0"),
    (dict(free_bits=-0.5), r"free_bits: expected a finite number in \[0, inf\), got -0.5"),
    (dict(free_bits=0.1, estimator="A"), "free_bits: applies to the analytic KL of estimator B"),
    (dict(weight_decay_lambda=float("nan")), "weight_decay_lambda: expected a finite number"),
])
def test_loss_and_grad_refuses_what_fit_refuses(kwargs, error):
    model = VAE.mlp(6, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=error):
        model.loss_and_grad(data(), rng=0, **kwargs)


def test_a_resume_that_would_train_nothing_or_holds_a_bad_epoch_is_refused(tmp_path):
    fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=2, checkpoint_dir=tmp_path, log=None)
    model = VAE.mlp(6, (4,), 2, rng=1)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="epochs: the checkpoint's run has done 2 epochs; expected epochs >= 2"):
        fit(model, data(), epochs=1, resume=tmp_path / "checkpoint.npz", log=None)
    params, optim, meta = io.load_checkpoint(tmp_path / "checkpoint.npz")
    meta["state"]["epoch"] = -4
    forged = VAE.mlp(6, (4,), 2, rng=0)
    io.save_checkpoint(tmp_path / "forged.npz", io.load_params(forged, params), state=meta["state"])
    with pytest.raises(ValueError, match=r"forged.npz: expected the epochs done as an integer >= 0, got -4"):
        fit(model, data(), epochs=3, resume=tmp_path / "forged.npz", log=None)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


def test_small_functions_name_their_bad_arguments(tmp_path):
    grads = {"W": np.ones(3)}
    with pytest.raises(ValueError, match=r"clip_value: expected a finite number in \(0, inf\), got 0"):
        clip_by_value(grads, clip_value=0)
    with pytest.raises(ValueError, match=r"clip_norm: expected a finite number in \(0, inf\), got -1"):
        clip_by_global_norm(grads, clip_norm=-1)
    with pytest.raises(ValueError, match="n_cols: expected an integer >= 1, got 0"):
        image_grid(np.zeros((4, 784)), tmp_path / "g.png", n_cols=0)
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(TypeError, match="result: expected a GradcheckResult"):
        assert_gradcheck(None)
    mean = np.zeros((4, 2))
    with pytest.raises(ValueError, match="mean: expected finite values"):
        mae_regularizer(np.full((4, 2), np.nan), mean, 1.0, 0.5)
    with pytest.raises(TypeError, match="mean: expected dtype float32 or float64, got int64"):
        mae_regularizer(np.zeros((4, 2), int), mean, 1.0, 0.5)
    with pytest.raises(TypeError, match="mean: expected a numpy.ndarray, got list"):
        mae_regularizer([[0.0, 0.0]], mean, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"mean, logvar: expected shapes \(B, d\), \(B, d\)"):
        mae_regularizer(mean, np.zeros((3, 2)), 1.0, 0.5)


def test_the_diagnostics_and_the_evaluation_refuse_before_any_work():
    x = data()
    autoencoder = Autoencoder.mlp(6, (4,), 2, rng=0)
    for diagnostic in (active_units, mutual_information, collapse_report):
        with pytest.raises(TypeError, match="posterior q\\(z\\|x\\), and Autoencoder has none; expected a VAE"):
            diagnostic(autoencoder, x)
    model = VAE.mlp(6, (4,), 2, rng=0)
    with pytest.raises(TypeError, match="progress: expected a function"):
        model.log_likelihood(x, k=2, progress="yes")
    cvae = ConditionalVAE.mlp(6, (4,), 2, rng=0, n_classes=3)
    with pytest.raises(ValueError, match=r"y: expected 8 integer labels \(one per example\), got shape \(10,\)"):
        cvae.log_likelihood(x[:8], y=np.zeros(10, int), k=2, batch_size=4)
    with pytest.raises(ValueError, match=r"h: expected a finite number in \(0, 0.01\], got 0"):
        tour(model, x, h=0)


def test_a_checkpoint_cannot_ask_for_more_memory_or_recursion_than_it_holds(tmp_path):
    import json

    model = VAE.mlp(6, (4,), 2, rng=0)
    io.save_checkpoint(tmp_path / "c.npz", model)
    params, _, meta = io.load_checkpoint(tmp_path / "c.npz")

    def forged(edit, text=None):
        spec = json.loads(json.dumps(meta["spec"]))
        edit(spec)
        arrays = {f"param/{k}": v for k, v in params.items()}
        text = text or json.dumps({**meta, "spec": spec})
        arrays["meta"] = np.frombuffer(text.encode(), dtype=np.uint8)
        np.savez(tmp_path / "f.npz", **arrays)
        return tmp_path / "f.npz"

    huge = forged(lambda s: s["encoder"]["layers"][0].update(out_features=2**28))
    with pytest.raises(ValueError, match=r"encoder.0 \(Linear\): expected at most 100,000,000 parameters in a layer"):
        io.load_model(huge)
    more = forged(lambda s: s["encoder"]["layers"][0].update(out_features=4000))
    with pytest.raises(ValueError, match="expected at most .* parameters left of those the file holds"):
        io.load_model(more)
    image = forged(lambda s: s.update(data_shape=[1, 10**5, 10**5]))
    with pytest.raises(ValueError, match=r"spec.data_shape: expected at most 10,000,000 numbers an example"):
        io.load_model(image)

    def nest(s, depth):
        for _ in range(depth):
            s["encoder"] = {"layer": "Sequential", "layers": [s["encoder"]]}
    with pytest.raises(ValueError, match="Sequentials nested deeper than 8"):
        io.load_model(forged(lambda s: nest(s, 20)))
    deep = json.dumps({**meta, "spec": None}).replace('"spec": null', '"spec": ' + '[' * 100_000 + ']' * 100_000)
    with pytest.raises(ValueError, match="is not an npvae checkpoint|nested too deep"):
        io.load_model(forged(lambda s: None, text=deep))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_flipped_byte_or_a_cut_gives_npvaes_own_error_or_the_intact_model(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("flip")
    model = VAE.mlp(6, (4,), 2, rng=0)
    io.save_checkpoint(folder / "c.npz", model)
    raw = bytearray((folder / "c.npz").read_bytes())
    if data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        i = data.draw(st.integers(0, len(raw) - 1), label="position")
        raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    (folder / "bad.npz").write_bytes(bytes(raw))
    try:
        loaded = io.load_model(folder / "bad.npz")
    except ValueError as e:
        assert "checkpoint" in str(e), e
    else:  # a flip the format cannot see (in padding or a stored value): a model all the same
        assert set(loaded.params) == set(model.params)


@pytest.mark.parametrize("build, error", [
    (lambda: VAE.conv(channels=None), "channels: expected a tuple of integers >= 1, got None"),
    (lambda: VAE.conv(kernel_size=2.5), "kernel_size: expected an integer >= 2, got 2.5"),
    (lambda: VAE.conv(image_shape=None), r"image_shape: expected \(channels, height, width\), got None"),
    (lambda: VAE.conv(latent_dim=0), "latent_dim: expected an integer >= 1, got 0"),
    (lambda: VAE.mlp(4, (3,), 0), "latent_dim: expected an integer >= 1, got 0"),
    (lambda: VAE.mlp(4, None, 2), "hidden: expected a tuple of integers >= 1, got None"),
    (lambda: ConditionalVAE.mlp(4, (3,), 2, n_classes=-1), "n_classes: expected an integer >= 2, got -1"),
])
def test_the_builders_name_the_bad_argument(build, error):
    with pytest.raises(ValueError, match=error):
        build()


def test_layer_and_likelihood_arguments_of_the_wrong_type_are_refused():
    from npvae import nn
    from npvae.distributions import make_likelihood

    with pytest.raises(ValueError, match="shape: expected an integer >= 1, got 2.5"):
        nn.Reshape([2.5, 3])
    with pytest.raises(ValueError, match="alpha: expected a finite number"):
        nn.LeakyReLU(float("nan"))
    with pytest.raises(ValueError, match="logvar_floor: expected a finite number"):
        make_likelihood("gaussian_learned_var", 4, logvar_floor=float("nan"))


def test_a_stages_schedule_given_as_a_tuple_resumes(tmp_path):
    schedule = {"name": "stages", "epochs": (1, 1), "factor": 0.5}
    fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=1, lr_schedule=schedule, checkpoint_dir=tmp_path, log=None)
    history = fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=2, lr_schedule=schedule, checkpoint_dir=tmp_path,
                  resume=tmp_path / "checkpoint.npz", log=None)
    assert history["lr"] == [1e-3, 5e-4]


def test_an_extended_cosine_run_continues_its_schedule_instead_of_jumping_back(tmp_path):
    first = fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=4, batch_size=10, lr_schedule="cosine",
                checkpoint_dir=tmp_path, log=None)
    history = fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=6, batch_size=10, lr_schedule="cosine",
                  checkpoint_dir=tmp_path, resume=tmp_path / "checkpoint.npz", log=None)
    assert history["lr"][:4] == first["lr"] and first["lr"] == sorted(first["lr"], reverse=True)
    assert history["lr"][4:] == [0.0, 0.0]  # at lr_min after the first run's span, not back up


def test_an_autoencoders_log_calls_its_term_log_px():
    lines = []
    fit(Autoencoder.mlp(6, (4,), 2, rng=0), data(), epochs=1, log=lines.append)
    assert "train log p(x|z)" in lines[0] and "elbo" not in lines[0] and " kl " not in lines[0]


def test_a_resumed_command_refuses_a_changed_setting_and_a_config_list_where_a_number_belongs(tmp_path, capsys):
    from npvae.cli import main

    run = ["train", "--hidden", "8", "--latent", "2", "--train-size", "100", "--epochs", "1", "--out", str(tmp_path)]
    assert main(run) == 0
    before = (tmp_path / "run.json").read_bytes()
    assert main([*run[:-4], "--epochs", "2", "--batch-size", "50", "--out", str(tmp_path), "--resume"]) == 2
    assert "--batch-size: the run in" in capsys.readouterr().err and (tmp_path / "run.json").read_bytes() == before
    config = tmp_path / "c.json"
    config.write_text('{"lr": [0.1, 0.2]}')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "other")]) == 2
    assert "argument --lr: expected a number > 0, got '0.1,0.2'" in capsys.readouterr().err


def test_the_tour_refuses_a_bare_layer_and_a_bad_covariance_is_named():
    from npvae import nn
    from npvae.datasets import gaussian_mixture_sample

    with pytest.raises(TypeError, match="model: the tour follows a model's loss .* got Linear"):
        tour(nn.Linear(6, 2), data())
    with pytest.raises(ValueError, match="covariances: expected symmetric positive-definite"):
        gaussian_mixture_sample(10, [1.0], [[0.0, 0.0]], [-np.eye(2)])


def test_a_schedule_holding_a_numpy_scalar_is_refused_before_the_first_epoch(tmp_path):
    model = VAE.mlp(6, (4,), 2, rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="settings: expected JSON-able values"):
        fit(model, data(), epochs=1, lr_schedule={"name": "exponential", "gamma": np.float32(0.9)},
            checkpoint_dir=tmp_path, log=None)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
    import os
    assert not os.listdir(tmp_path)


# Malformed specs and schedules, drawn: the only outcome is npvae's own ValueError (or
# TypeError for a value of the wrong type) naming where, never another exception.
json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=True)
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_malformed_spec_gives_npvaes_own_error(data):
    from npvae.spec import build_model, model_spec

    spec = model_spec(VAE.mlp(6, (4,), 2, rng=0))
    path = data.draw(st.sampled_from([("encoder",), ("decoder", "layers", 0), ("encoder", "layers", 1),
                                      ("likelihood",), ("latent_dim",), ("data_shape",), ("dtype",), ("model",),
                                      ("decoder", "layers", 0, "in_features"), ("encoder", "layers", 0, "layer")]))
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(json_values)
    try:
        build_model(spec, rng=0, max_parameters=10**4)
    except (ValueError, TypeError) as e:
        assert str(e), e


@settings(max_examples=40, deadline=None)
@given(json_values)
def test_a_malformed_schedule_gives_npvaes_own_error(schedule):
    try:
        fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=1, lr_schedule=schedule, log=None)
    except (ValueError, TypeError) as e:
        assert "lr_schedule" in str(e) or "settings" in str(e), e


@pytest.mark.parametrize("key, value, error", [
    ("history", [1, 2], "expected the history as lists by name, got list"),
    ("rng", {"bit_generator": "nonsense"}, "its random generator's state is not one numpy can take"),
    ("lr_horizon", -1, "expected the schedule's horizon as an integer >= 1, got -1"),
])
def test_a_tampered_training_state_is_refused_and_the_model_left_alone(tmp_path, key, value, error):
    fit(VAE.mlp(6, (4,), 2, rng=0), data(), epochs=1, checkpoint_dir=tmp_path, log=None)
    params, _, meta = io.load_checkpoint(tmp_path / "checkpoint.npz")
    meta["state"][key] = value
    io.save_checkpoint(tmp_path / "t.npz", io.load_params(VAE.mlp(6, (4,), 2, rng=0), params), state=meta["state"])
    model = VAE.mlp(6, (4,), 2, rng=1)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=error):
        fit(model, data(), epochs=2, resume=tmp_path / "t.npz", log=None)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
