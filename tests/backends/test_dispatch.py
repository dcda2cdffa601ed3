"""Backend dispatch: the backend's own bincount, the generic path and numpy agree."""

import keras
import numpy as np
import pytest
from keras import ops

from tests.conftest import BACKEND, compiled, to_numpy
from voxelmetrics.backends import bincount, compile_kernel, is_concrete

LENGTH = 7


def generic_bincount(ids, length, weights=None):
    """The path every backend could take: `keras.ops.segment_sum` of ones (or weights)."""
    data = ops.ones_like(ids, dtype="int32") if weights is None else weights
    return ops.segment_sum(data, ids, num_segments=length)


@pytest.fixture
def ids(rng):
    ids = rng.integers(0, LENGTH, 500).astype(np.int32)
    ids[:3] = LENGTH - 1  # the last bin is never empty; bin 2 always is
    return np.where(ids == 2, 3, ids).astype(np.int32)


def test_bincount_equals_generic_path_and_numpy(ids):
    counts = to_numpy(bincount(ops.convert_to_tensor(ids), LENGTH))
    assert "int32" in str(counts.dtype)
    np.testing.assert_array_equal(counts, np.bincount(ids, minlength=LENGTH))
    generic = to_numpy(generic_bincount(ops.convert_to_tensor(ids), LENGTH))
    np.testing.assert_array_equal(counts, generic)


def test_weighted_bincount_equals_generic_path_and_numpy(rng, ids):
    weights = rng.random(ids.shape).astype(np.float32)
    counts = to_numpy(bincount(ops.convert_to_tensor(ids), LENGTH, weights=weights))
    assert counts.dtype == np.float32
    expected = np.bincount(ids, weights=weights, minlength=LENGTH)
    np.testing.assert_allclose(counts, expected, rtol=1e-5)
    generic = generic_bincount(ops.convert_to_tensor(ids), LENGTH, ops.convert_to_tensor(weights))
    np.testing.assert_allclose(counts, to_numpy(generic), rtol=1e-5)


def test_compiled_bincount_equals_eager(ids):
    traced = compiled(lambda ids: bincount(ids, LENGTH))(ops.convert_to_tensor(ids))
    np.testing.assert_array_equal(to_numpy(traced), np.bincount(ids, minlength=LENGTH))


def test_is_concrete_outside_and_inside_a_compiled_function():
    assert is_concrete(np.zeros(3))
    assert is_concrete(0.5)
    assert is_concrete(ops.zeros(3))
    assert not is_concrete(keras.KerasTensor((None, 3)))
    seen = []

    def probe(x):
        seen.append(is_concrete(x))
        return x + 1

    compiled(probe)(ops.zeros(3))
    # Values of a traced input cannot be read; torch has no traced mode here.
    assert seen == [BACKEND == "torch"]


def test_compile_kernel_gives_the_kernel_result():
    def kernel(x, *, scale):
        return ops.sum(x, axis=0) * scale

    fast = compile_kernel(kernel, static_argnames=("scale",))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(to_numpy(fast(x, scale=2)), x.sum(0) * 2)
    np.testing.assert_array_equal(to_numpy(fast(x, scale=3)), x.sum(0) * 3)
    traced = compiled(lambda x: fast(x, scale=2))(x)
    np.testing.assert_array_equal(to_numpy(traced), x.sum(0) * 2)
