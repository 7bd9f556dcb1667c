"""Shared test strategies and helpers."""

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)


def away_from_kinks(x, margin=1e-2):
    """Move entries off 0, where ReLU-like activations are not differentiable."""
    x = x.copy()
    x[np.abs(x) < margin] += 3 * margin
    return x


def assert_gradcheck(result):
    assert result.ok, f"gradient check failed:\n{result}"
