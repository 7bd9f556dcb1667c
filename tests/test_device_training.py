"""Whole models on the CUDA backend against the NumPy reference: one training step of
an MLP and of a conv VAE, a device-resident step and evaluation, what the device path
refuses, and every model trained by ``fit`` with checkpoints that move between
backends. In numba-cuda's simulator unless NPVAE_TEST_GPU=1 (tests/conftest.py)."""

import numpy as np
import pytest

import npvae
from npvae.kernels import cuda as gpu
from npvae.kernels import reference
from npvae.kernels.cuda import arrays, launcher
from npvae.models import VAE
from npvae.train import fit


@pytest.fixture
def cuda_backend():
    npvae.kernels.use("cuda")
    yield
    npvae.kernels.use("numpy")


def _on(backend, fn):
    npvae.kernels.use(backend)
    try:
        return fn()
    finally:
        npvae.kernels.use("numpy")


@pytest.mark.parametrize("dtype", ["float32"])
def test_an_mlp_vae_training_step_is_the_same_on_the_gpu(dtype):
    x = (np.random.default_rng(1).random((6, 10)) < 0.3).astype(dtype)
    eps = np.random.default_rng(2).standard_normal((6, 2, 3)).astype(dtype)

    def step():
        model = VAE.mlp(10, (7,), 3, "tanh", "bernoulli", rng=3, dtype=dtype)
        loss, _ = model.loss_and_grad(x, eps=eps, n_samples=2, objective="iwae")
        return loss, {k: g.copy() for k, g in model.grads.items()}

    (loss, grads), (ref_loss, ref_grads) = _on("cuda", step), _on("numpy", step)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(loss, ref_loss, **tol)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, **tol, err_msg=name)


def test_a_conv_vae_training_step_is_the_same_on_the_gpu():
    from npvae import nn
    from npvae.distributions import Bernoulli

    x = np.random.default_rng(0).random((2, 1, 4, 4))
    eps = np.random.default_rng(1).standard_normal((2, 1, 2))

    def step():
        rng = np.random.default_rng(2)
        encoder = nn.Sequential(nn.Conv2d(1, 2, 4, 2, 1, rng=rng, activation="relu"), nn.Flatten(),
                                nn.Linear(8, 4, rng=rng))
        decoder = nn.Sequential(nn.Linear(2, 8, rng=rng), nn.Reshape((2, 2, 2)),
                                nn.ConvTranspose2d(2, 2, 3, 1, 1, rng=rng, activation="softplus"),
                                nn.ConvTranspose2d(2, 1, 4, 2, 1, rng=rng))
        model = VAE(encoder, decoder, Bernoulli(), 2, (1, 4, 4)).astype(np.float64)
        loss, _ = model.loss_and_grad(x, eps=eps)
        return loss, {k: g.copy() for k, g in model.grads.items()}

    (loss, grads), (ref_loss, ref_grads) = _on("cuda", step), _on("numpy", step)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.fixture
def host_noise(monkeypatch):
    """The CUDA backend's noise drawn as the reference draws it, then uploaded: a
    device-resident model then meets the NumPy backend's numbers."""
    def standard_normal(rng, shape, dtype, like=None):
        eps = reference.standard_normal(rng, shape, dtype)
        return eps if isinstance(like, np.ndarray) else gpu.to_device(eps)

    def binarize(x, rng):
        binary = reference.binarize(gpu.to_host(x), rng)
        return gpu.to_device(binary) if gpu.is_device(x) else binary

    monkeypatch.setattr(gpu, "standard_normal", standard_normal)
    monkeypatch.setattr(gpu, "binarize", binarize)


def test_a_device_resident_step_equals_the_reference(host_noise):
    """Parameters, gradients and the minibatch on the device (a fixed-sigma Gaussian
    likelihood, beta, two samples per example: rows repeated on the device): the loss
    and every gradient as on NumPy. (Other settings and the conv models: below.)"""
    x = (np.random.default_rng(1).random((3, 36)) < 0.4).astype(np.float64)

    def step(resident):
        build = VAE.mlp(36, (5,), 2, likelihood="gaussian", rng=3, dtype="float64")
        model = build.to_device() if resident else build
        loss, stats = model.loss_and_grad(gpu.to_device(x) if resident else x, rng=np.random.default_rng(4),
                                          n_samples=2, beta=0.7)
        if resident:  # every gradient on the device, the views of one buffer
            assert arrays.packed_buffer(list(model.grads.values())) is not None
        return loss, stats, {k: gpu.to_host(g).copy() for k, g in model.grads.items()}

    (loss, stats, grads), (ref_loss, ref_stats, ref_grads) = _on("cuda", lambda: step(True)), _on(
        "numpy", lambda: step(False))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
    np.testing.assert_allclose(stats["kl"], ref_stats["kl"], rtol=1e-10)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_device_resident_model_evaluates_as_on_the_cpu(host_noise):
    """encode, decode, the ELBO and the importance-sampled log p(x) of a model whose
    parameters are on the device: NumPy results, the reference's numbers."""
    x = (np.random.default_rng(0).random((5, 8)) < 0.5).astype(np.float64)

    def evaluate(resident):
        model = VAE.mlp(8, (4,), 2, rng=1, dtype="float64")
        model = model.to_device() if resident else model
        out = (*model.encode(x), model.decode(np.ones((2, 2))), model.elbo(x, rng=2, n_samples=2, estimator="A"),
               model.log_likelihood(x, k=3, batch_size=3, chunk=2, rng=3))
        assert all(isinstance(a, np.ndarray) for a in out)
        return out

    for ours, ref in zip(_on("cuda", lambda: evaluate(True)), _on("numpy", lambda: evaluate(False))):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_a_device_resident_model_refuses_what_the_device_path_lacks(cuda_backend):
    model = VAE.mlp(4, (3,), 2, likelihood="gaussian_learned_var", likelihood_kwargs={"logvar_floor": -5.0}, rng=0,
                    dtype="float64").to_device()
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="likelihood with a logvar floor: outside the device path; call model.to_host"):
        model.loss_and_grad(x, rng=0)
    model.to_host()
    assert not any(gpu.is_device(a) for d in (model.params, model.grads) for a in d.values())


def test_every_model_trains_on_the_gpu_with_the_references_numbers(tmp_path, host_noise):
    """fit for one epoch: VAE and conditional VAE (device-resident) and autoencoder
    (NumPy arrays, each op on the GPU); the same history as
    on NumPy (the device-resident run with the reference's noise); the model comes back
    with NumPy arrays; and a checkpoint written on the GPU evaluates the same on the
    CPU backends."""
    from npvae import io
    from npvae.models import Autoencoder, ConditionalVAE
    from npvae.train import fit

    rng = np.random.default_rng(0)
    x = (rng.random((8, 6)) < 0.5).astype(np.float64)
    builders = {
        "vae": lambda: VAE.mlp(6, (4,), 2, rng=0, dtype="float64"),
        "cvae": lambda: ConditionalVAE.mlp(6, (4,), 2, rng=0, n_classes=3, dtype="float64"),
        "autoencoder": lambda: Autoencoder.mlp(6, (4,), 2, rng=0, dtype="float64"),
    }
    for name, build in builders.items():
        labels = {"y": np.arange(8) % 3} if name == "cvae" else {}
        logged = []

        def train(backend):
            model = build()
            history = fit(model, x, epochs=1, batch_size=4 if name == "vae" else 8, log=logged.append, checkpoint_dir=str(tmp_path / backend),
                          binarize=name == "vae", **labels)
            assert not any(gpu.is_device(p) for p in model.params.values())
            return history["train_elbo"], {k: p.copy() for k, p in model.params.items()}

        (elbo, params), (ref_elbo, ref_params) = _on("cuda", lambda: train("cuda")), _on("numpy", lambda: train("numpy"))
        assert any("outside the device path" in line for line in logged) == (name == "autoencoder"), (name, logged[:2])
        np.testing.assert_allclose(elbo, ref_elbo, rtol=1e-10, err_msg=name)
        for k, p in ref_params.items():
            np.testing.assert_allclose(params[k], p, rtol=1e-9, atol=1e-12, err_msg=f"{name} {k}")
        reloaded = io.load_model(str(tmp_path / "cuda" / "checkpoint.npz"))
        for k, p in params.items():
            np.testing.assert_array_equal(reloaded.params[k], p)


# Each case: a setting of the objective, and a likelihood (the Bernoulli when none is named).
CASES = {"iwae, learned variance": (dict(objective="iwae", n_samples=2), ("gaussian_learned_var", {})),
         "estimator A, weight decay, decoder variance": (
             dict(estimator="A", n_samples=2, beta=0.5, weight_decay_lambda=0.1),
             ("gaussian_decoder_var", {"mean_activation": "sigmoid"})),
         "MAE, free bits, sum": (dict(mae_eta=1.0, mae_gamma=0.5, free_bits=0.2, reduction="sum"), None)}


def test_every_setting_of_the_device_path_equals_the_reference(host_noise):
    """Each objective and regulariser, the Gaussian likelihoods with their own
    parameters, a conditional VAE, the two-layer VAE (estimator B's and the IWAE
    bound's weights), the hyperspherical VAE (its sampler on the host) and the
    Bayesian-decoder VAE (local noise, the weights' KL), device-resident: the
    reference's loss and gradients."""
    from npvae.models import BayesianDecoderVAE, ConditionalVAE, HypersphericalVAE, TwoLayerVAE

    x = (np.random.default_rng(1).random((3, 6)) < 0.4).astype(np.float64)
    cases = {name: (VAE.mlp, {} if lik is None else {"likelihood": lik[0], "likelihood_kwargs": lik[1]}, settings)
             for name, (settings, lik) in CASES.items()}
    cases["conditional"] = (ConditionalVAE.mlp, {"n_classes": 3}, {"y": np.array([0, 2, 1])})
    two_layers = {"hidden2": (3,), "latent2_dim": 2}
    for name, settings in {"two layers, free bits, sum": dict(free_bits=0.2, n_samples=2, reduction="sum"),
                           "two layers, iwae": dict(objective="iwae", n_samples=3)}.items():
        cases[name] = (TwoLayerVAE.mlp, two_layers, settings)
    cases["hyperspherical, sum"] = (HypersphericalVAE.mlp, {}, dict(n_samples=2, reduction="sum"))
    cases["Bayesian decoder"] = (BayesianDecoderVAE.mlp, {"n_train": 40}, dict(n_samples=2))

    def step(resident, build, kwargs, settings):
        model = build(6, (4,), 2, rng=3, dtype="float64", **kwargs)
        model = model.to_device() if resident else model
        loss, _ = model.loss_and_grad(gpu.to_device(x) if resident else x, rng=np.random.default_rng(4), **settings)
        return loss, {k: gpu.to_host(g).copy() for k, g in model.grads.items()}

    for name, case in cases.items():
        (loss, grads), (ref_loss, ref_grads) = _on("cuda", lambda: step(True, *case)), _on(
            "numpy", lambda: step(False, *case))
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10, err_msg=name)
        for param, g in ref_grads.items():
            np.testing.assert_allclose(grads[param], g, rtol=1e-9, atol=1e-12, err_msg=f"{name}: {param}")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator's uint64 hash wraps, as meant
def test_a_steady_device_step_allocates_nothing_and_waits_once(cuda_backend, monkeypatch):
    """The step budget of a device-resident fit on a one-hidden-layer MLP (the shape of
    784-400-20, small): after the first step, no new device array, one synchronisation
    (the loss terms read after the update), at most 18 launches and 12 new array
    objects (views, which cost the host more than a launch does) a step, counted from
    one ``loss_and_grad`` call to the next (so the update and the read are inside)."""
    from numba import config

    if config.ENABLE_CUDASIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as array_class
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArrayBase as array_class
    made, init = [0], array_class.__init__

    def counted_init(self, *args, **kwargs):
        made[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(array_class, "__init__", counted_init)
    x = (np.random.default_rng(0).random((16, 6)) < 0.3).astype(np.float32)
    model, marks = VAE.mlp(6, (4,), 2, "relu", "bernoulli", rng=0), []
    loss_and_grad = model.loss_and_grad

    def counted(*args, **kwargs):
        marks.append({**npvae.kernels.COUNTS, "arrays_made": made[0]})
        return loss_and_grad(*args, **kwargs)

    model.loss_and_grad = counted
    fit(model, x, epochs=1, batch_size=4, log=None)
    steps = [{k: b[k] - a[k] for k in a} for a, b in zip(marks, marks[1:])]
    assert len(steps) == 3 and steps[0]["allocations"] > 0  # the first step fills the workspaces
    for step in steps[1:]:
        assert step["allocations"] == 0 and step["syncs"] == 1 and step["launches"] <= 18, step
        assert step["arrays_made"] <= 12, step


def test_a_device_resident_float32_fit_follows_the_reference(host_noise):
    """Two epochs of a float32 MLP VAE by ``fit`` on the device (workspaces, slices of
    the epoch's gathered rows, the deferred read) against the NumPy backend, on the
    reference's noise: the same history and parameters to float32 rounding. On a GPU,
    the device's fit again with every launch the plain way (launcher.py): the same bits
    as through the thin path (the simulator has only the plain way)."""
    x = (np.random.default_rng(1).random((8, 6)) < 0.4).astype(np.float32)

    def run():
        model = VAE.mlp(6, (4,), 2, "tanh", rng=2)
        history = fit(model, x, epochs=2, batch_size=4, seed=3, binarize=True, log=None)
        return history["train_elbo"], {k: gpu.to_host(p).copy() for k, p in model.params.items()}

    (elbo, params), (ref_elbo, ref_params) = _on("cuda", run), _on("numpy", run)
    if launcher.AVAILABLE:
        thin = launcher.use_thin(False)
        try:
            plain_elbo, plain_params = _on("cuda", run)
        finally:
            launcher.use_thin(thin)
        assert launcher.stats()["thin"] > 0  # the first fit did launch the thin way
        assert plain_elbo == elbo and all(np.array_equal(plain_params[k], p) for k, p in params.items())
    np.testing.assert_allclose(elbo, ref_elbo, rtol=1e-5)
    for name, p in ref_params.items():
        np.testing.assert_allclose(params[name], p, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_the_evaluation_encodes_once_and_reads_once_per_batch(cuda_backend):
    """k = 6 samples in chunks of 2 over 2 batches: the encoder's first layer runs once
    a batch, and a batch costs two synchronisations (its upload and the read of its
    running log-sum-exp), none per chunk."""
    model = VAE.mlp(6, (4,), 2, rng=0).to_device()
    x = (np.random.default_rng(0).random((4, 6)) < 0.5).astype(np.float32)
    first, forwards = model.encoder.children["0"], []
    forward = first.forward
    first.forward = lambda h: (forwards.append(1), forward(h))[1]
    npvae.kernels.zero_counts()
    log_p = model.log_likelihood(x, k=6, batch_size=2, chunk=2, rng=0)
    assert np.all(np.isfinite(log_p)) and len(forwards) == 2
    assert npvae.kernels.COUNTS["syncs"] == 4


def test_device_resident_image_models_equal_the_reference(host_noise):
    """The PixelCNN VAE (masked convolutions masking the weight on the device, z's
    per-pixel bias maps) and the conditional conv VAE (the labels as constant planes
    appended on the device), device-resident: the reference's loss and gradients."""
    from npvae.models import ConditionalVAE, PixelCNNVAE
    from npvae.models.device import device_refusal

    x = (np.random.default_rng(1).random((2, 1, 4, 4)) < 0.4).astype(np.float64)
    builders = {  # z as per-pixel biases (the per-channel ones' ops: tests/test_backends.py)
        "pixelcnn": (lambda: PixelCNNVAE.build((1, 4, 4), 2, (2,), 4, channels=2, n_layers=1, first_kernel_size=3,
                                               rng=3, dtype="float64", z_bias="pixel"), {}),
        "conditional conv": (lambda: ConditionalVAE.conv((1, 4, 4), (2,), 4, 2, n_classes=3, rng=3, dtype="float64"),
                             {"y": np.array([2, 0])}),
    }
    for name, (build, labels) in builders.items():
        assert device_refusal(build()) is None, name

        def step(resident):
            model = build().to_device() if resident else build()
            loss, _ = model.loss_and_grad(gpu.to_device(x) if resident else x, rng=np.random.default_rng(4), **labels)
            return loss, {k: gpu.to_host(g).copy() for k, g in model.grads.items()}

        (loss, grads), (ref_loss, ref_grads) = _on("cuda", lambda: step(True)), _on("numpy", lambda: step(False))
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10, err_msg=name)
        for param, g in ref_grads.items():
            np.testing.assert_allclose(grads[param], g, rtol=1e-9, atol=1e-12, err_msg=f"{name}: {param}")
