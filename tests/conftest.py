import os

# The CUDA backend's tests run in numba-cuda's simulator unless NPVAE_TEST_GPU=1 asks for
# the real GPU; the switch must be set before anything imports numba.cuda.
if os.environ.get("NPVAE_TEST_GPU") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

from hypothesis import HealthCheck, settings

# Finite differences are slow-ish and CI has 2 cores: a fixed, modest budget, no deadline.
settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
