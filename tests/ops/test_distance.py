"""The exact squared distance transform against scipy's `distance_transform_edt` and brute
force, on random and adversarial features, 1-D to 3-D, with batch and class axes, eager
and compiled, under the active backend."""

import numpy as np
import pytest
from scipy import ndimage

from tests.conftest import BACKEND, compiled, to_numpy
from voxelmetrics.ops.distance import distances_at, squared_distance_transform

ANISOTROPIC = {1: (1.3,), 2: (0.7, 2.3), 3: (1.5, 0.8, 0.8)}


def scipy_squared(features: np.ndarray, spacing) -> np.ndarray:
    """`distance_transform_edt(~f, sampling) ** 2` per volume (leading axes), inf if empty."""
    k = len(spacing)
    out = np.full(features.shape, np.inf)
    for index in np.ndindex(features.shape[: features.ndim - k]):
        if features[index].any():
            out[index] = ndimage.distance_transform_edt(~features[index], sampling=spacing) ** 2
    return out


def brute_squared(features: np.ndarray, spacing) -> np.ndarray:
    """Every voxel against every feature voxel, float64 (small volumes only)."""
    k = len(spacing)
    spatial = features.shape[features.ndim - k :]
    grid = np.indices(spatial).reshape(k, -1).T * np.asarray(spacing)
    out = np.full(features.shape, np.inf)
    for index in np.ndindex(features.shape[: features.ndim - k]):
        points = np.argwhere(features[index]) * np.asarray(spacing)
        if len(points):
            d2 = ((grid[:, None] - points[None]) ** 2).sum(-1).min(1)
            out[index] = d2.reshape(spatial)
    return out


def assert_equal_up_to_float32(ours, expected) -> None:
    ours = to_numpy(ours)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-6, atol=1e-6)


def adversarial(spatial) -> np.ndarray:
    """`[7, *spatial]`: a single voxel, a corner, the opposite corner, every voxel, none,
    two far-apart stray voxels, a one-voxel-thin plane."""
    f = np.zeros((7, *spatial), bool)
    middle = tuple(n // 2 for n in spatial)
    f[(0, *middle)] = True
    f[(1,) + (0,) * len(spatial)] = True
    f[(2,) + (-1,) * len(spatial)] = True
    f[3] = True
    f[(5,) + (0,) * len(spatial)] = f[
        (5,) + tuple(n - 1 for n in spatial[:1]) + (0,) * (len(spatial) - 1)
    ] = True
    f[6, ..., spatial[-1] // 3] = True
    return f


SPATIAL = {1: (37,), 2: (13, 17), 3: (9, 11, 8)}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("isotropic", [True, False])
def test_random_against_scipy(rng, dims, isotropic):
    """Batch and class axes `[N, C, *spatial]`, dense to sparse; some volumes empty."""
    spacing = (1.0,) * dims if isotropic else ANISOTROPIC[dims]
    for density in (0.3, 0.02, 0.002):
        features = rng.random((3, 2, *SPATIAL[dims])) < density
        features[0, 1] = False
        assert_equal_up_to_float32(
            squared_distance_transform(features, spacing), scipy_squared(features, spacing)
        )


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("spacing", ["unit", "isotropic", "anisotropic"])
def test_adversarial_against_brute_force(dims, spacing):
    spacing = {"unit": (1.0,) * dims, "isotropic": (0.6,) * dims}.get(spacing) or ANISOTROPIC[dims]
    features = adversarial(SPATIAL[dims])
    ours = squared_distance_transform(features, spacing)
    assert_equal_up_to_float32(ours, brute_squared(features, spacing))
    assert np.isinf(to_numpy(ours)[4]).all() and (to_numpy(ours)[3] == 0).all()


def test_unit_spacing_is_exact_integers(rng):
    """Voxel units: the squared distances are integers, equal to brute force bit for bit,
    also far from the only feature (a long axis, features at one end)."""
    features = rng.random((2, 6, 70, 5)) < 0.01
    features[1] = False
    features[1, 0, 0, 0] = True
    ours = to_numpy(squared_distance_transform(features, (1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(ours, brute_squared(features, (1.0, 1.0, 1.0)))


def test_far_stray_voxels_on_every_axis(rng):
    """An object in one corner and stray voxels at the far ends of each axis."""
    features = np.zeros((1, 40, 33, 29), bool)
    features[0, :4, :4, :4] = rng.random((4, 4, 4)) < 0.5
    features[0, 39, 16, 0] = features[0, 0, 32, 28] = features[0, 20, 0, 28] = True
    spacing = ANISOTROPIC[3]
    assert_equal_up_to_float32(
        squared_distance_transform(features, spacing), scipy_squared(features, spacing)
    )


def traced(fn, spatial):
    """`fn` compiled as the backend compiles: `jax.jit`; `tf.function` with an unknown
    batch size; torch as it is (eager)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, input_signature=[tf.TensorSpec([None, *spatial], tf.bool)] * 2)
    return compiled(fn)


@pytest.mark.parametrize("dims", [2, 3])
def test_compiled_distances_at(rng, dims):
    """`distances_at` compiled: the transform at the queries, 0 off them, inf without a
    feature."""
    spacing = ANISOTROPIC[dims]
    spatial = SPATIAL[dims]
    features = rng.random((4, *spatial)) < 0.05
    features[2] = False
    queries = rng.random((4, *spatial)) < 0.5
    fn = traced(lambda f, q: distances_at(f, q, spacing), spatial)
    expected = np.where(queries, scipy_squared(features, spacing), 0.0)
    assert_equal_up_to_float32(fn(features, queries), expected)
