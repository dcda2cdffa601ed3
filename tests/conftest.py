"""Shared test helpers: a seeded random generator, backend-neutral conversion, compilation.

Each backend runs in its own process (`KERAS_BACKEND=... pytest`); tests use `BACKEND` only
to pick the backend's own way of compiling a graph, never to skip one.
"""

from collections.abc import Callable

import keras
import numpy as np
import pytest
from hypothesis import strategies as st
from keras import ops

BACKEND = keras.backend.backend()


def to_numpy(x) -> np.ndarray:
    """Any backend tensor (or array, or number) as a numpy array."""
    return np.asarray(ops.convert_to_numpy(x))


def compiled(fn: Callable) -> Callable:
    """`fn` as the active backend compiles a graph: `jax.jit`, `tf.function(jit_compile=True)`.

    Inside, inputs are tracers / symbolic tensors, so value checks cannot run. PyTorch has no
    graph mode that Keras' ops trace through; there `fn` runs eagerly, as it is.
    """
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    return fn


def jax_jitted_update(metric) -> Callable:
    """`metric.update_state` as JAX compiles it: the stateless update under `jax.jit`, its
    new state assigned back to the metric's variables (eager; inside, tracers only)."""
    import jax

    step = jax.jit(metric.stateless_update_state)

    def update(*args):
        new = step([v.value for v in metric.variables], *args)
        for v, value in zip(metric.variables, new, strict=True):
            v.assign(value)

    return update


def unit_floats() -> st.SearchStrategy[float]:
    """float32 values in [0, 1] for hypothesis, without subnormals.

    XLA and TensorFlow's CPU kernels flush subnormals to zero, so `1e-45 >= 1e-45` and
    `0 >= 1e-45` can both hold there; no score or threshold of interest is subnormal.
    """
    return st.floats(0, 1, width=32, allow_subnormal=False)


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test: data are random but reproducible."""
    return np.random.default_rng(20261125)
