"""Boundary metrics against a brute-force numpy reference (pairwise distances between
boundary voxels) and against MONAI's `compute_hausdorff_distance`,
`compute_average_surface_distance` and `compute_surface_dice`, on random and adversarial
masks, under the active backend."""

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)

from tests.conftest import compiled, to_numpy
from tests.reference import (
    ref_assd,
    ref_hausdorff,
    ref_nsd,
    reference_surface,
)
from voxelmetrics.ops import (
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_distances,
)

SHAPE = (2, 12, 10, 9, 3)  # (N, *spatial, C)
ANISOTROPIC = (0.8, 1.0, 2.5)


# ----------------------------------------------------------------------------- references


def monai(fn, t: np.ndarray, p: np.ndarray, *args, **kwargs) -> np.ndarray:
    """A MONAI metric on channels-first torch copies (default arguments, background kept)."""
    to_torch = lambda x: torch.tensor(np.moveaxis(x, -1, 1).astype(np.float32))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(to_torch(p), to_torch(t), *args, include_background=True, **kwargs).numpy()


# ----------------------------------------------------------------------------- inputs


def random_masks(rng, shape=SHAPE, density=0.3):
    return rng.random(shape) < density, rng.random(shape) < density


def blob_masks(rng, shape=SHAPE):
    """Smooth ellipsoids, the prediction shifted: distances of several voxels."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape[1:-1]], indexing="ij"), -1)
    out = np.zeros((2, *shape), bool)
    for k, n, c in np.ndindex(2, shape[0], shape[-1]):
        centre = np.asarray(shape[1:-1]) * (0.3 + 0.4 * rng.random(3)) + 2 * k
        radii = np.asarray(shape[1:-1]) * (0.1 + 0.3 * rng.random(3))
        out[k, n, ..., c] = (((grid - centre) / radii) ** 2).sum(-1) <= 1
    return out[0], out[1]


def adversarial_masks():
    """Single voxels, border-touching masks, one-voxel-thin structures, empty masks."""
    t = np.zeros(SHAPE, bool)
    p = np.zeros(SHAPE, bool)
    t[0, 0, 0, 0, 0] = True  # a single voxel in a corner...
    p[0, -1, -1, -1, 0] = True  # ...against one in the opposite corner
    t[0, :, 4, 4, 1] = True  # a one-voxel-thin line through the volume
    p[0, 3, :, :, 1] = True  # a one-voxel-thin plane across it
    t[0, ..., 2] = True  # the whole volume (all border)
    p[0, 2:-2, 2:-2, 2:-2, 2] = True  # an inner block
    t[1, 5, 5, 5, 0] = True  # truth only: prediction empty
    p[1, 2:4, 0, :, 1] = True  # prediction only: truth empty
    return t, p  # [1, ..., 2]: both empty


CASES = {
    "random": lambda rng: random_masks(rng),
    "sparse": lambda rng: random_masks(rng, density=0.02),
    "blobs": blob_masks,
    "adversarial": lambda rng: adversarial_masks(),
}


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spacing", [None, ANISOTROPIC])
def test_against_brute_force(rng, case, spacing):
    t, p = CASES[case](rng)
    s = (1.0, 1.0, 1.0) if spacing is None else spacing
    checks = [
        (hausdorff_distance(t, p, spacing=spacing), ref_hausdorff()),
        (hausdorff_distance(t, p, percentile=95, spacing=spacing), ref_hausdorff(95)),
        (
            hausdorff_distance(t, p, percentile=50, directed=True, spacing=spacing),
            ref_hausdorff(50, directed=True),
        ),
        (average_surface_distance(t, p, spacing=spacing), ref_assd),
        (normalized_surface_dice(t, p, 1.5, spacing=spacing), ref_nsd(1.5)),
    ]
    for ours, fn in checks:
        np.testing.assert_allclose(to_numpy(ours), reference_surface(t, p, s, fn), rtol=2e-6)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spacing", [None, ANISOTROPIC])
def test_against_monai(rng, case, spacing):
    t, p = CASES[case](rng)
    hd = monai(compute_hausdorff_distance, t, p, spacing=spacing)
    hd95 = monai(compute_hausdorff_distance, t, p, percentile=95, spacing=spacing)
    assd = monai(compute_average_surface_distance, t, p, symmetric=True, spacing=spacing)
    asd = monai(compute_average_surface_distance, t, p, spacing=spacing)
    nsd = monai(compute_surface_dice, t, p, [1.0, 2.0, 3.0], spacing=spacing)
    # MONAI's HD95 is NaN where exactly one mask is empty (torch.quantile of infs); ours
    # is inf, as its plain HD is.
    one_empty = np.isinf(hd) & np.isnan(hd95)
    hd95[one_empty] = np.inf
    rtol = 2e-6
    np.testing.assert_allclose(to_numpy(hausdorff_distance(t, p, spacing=spacing)), hd, rtol)
    np.testing.assert_allclose(
        to_numpy(hausdorff_distance(t, p, percentile=95, spacing=spacing)), hd95, rtol
    )
    np.testing.assert_allclose(
        to_numpy(average_surface_distance(t, p, spacing=spacing)), assd, rtol
    )
    np.testing.assert_allclose(
        to_numpy(average_surface_distance(t, p, symmetric=False, spacing=spacing)), asd, rtol
    )
    np.testing.assert_allclose(
        to_numpy(normalized_surface_dice(t, p, [1.0, 2.0, 3.0], spacing=spacing)), nsd, rtol
    )


def test_empty_rules():
    """Both empty: NaN; exactly one empty: inf (HD, ASSD) and 0 (NSD); never a silent 0."""
    t, p = adversarial_masks()
    for ours in (
        hausdorff_distance(t, p),
        hausdorff_distance(t, p, percentile=95),
        average_surface_distance(t, p),
    ):
        values = to_numpy(ours)
        assert np.isnan(values[1, 2]) and np.isinf(values[1, 0]) and np.isinf(values[1, 1])
    nsd = to_numpy(normalized_surface_dice(t, p, 1.0))
    assert np.isnan(nsd[1, 2]) and nsd[1, 0] == 0 and nsd[1, 1] == 0


def test_far_outlier_widens_the_window():
    """A false positive farther than every ladder radius but the last is still exact."""
    t = np.zeros((1, 40, 3, 3, 1), bool)
    p = np.zeros((1, 40, 3, 3, 1), bool)
    t[0, 0, 1, 1, 0] = True
    p[0, 0, 1, 1, 0] = p[0, 39, 1, 1, 0] = True
    np.testing.assert_allclose(to_numpy(hausdorff_distance(t, p)), [[39.0]])


def test_input_forms_agree(rng):
    """Label maps with num_classes, channels-first, scores with a threshold, compiled."""
    labels_t = rng.integers(0, 3, SHAPE[:-1])
    labels_p = rng.integers(0, 3, SHAPE[:-1])
    t, p = np.eye(3, dtype=bool)[labels_t], np.eye(3, dtype=bool)[labels_p]
    expected = to_numpy(hausdorff_distance(t, p, percentile=95))
    from_maps = hausdorff_distance(labels_t, labels_p, percentile=95, num_classes=3)
    first = hausdorff_distance(np.moveaxis(t, -1, 1), np.moveaxis(p, -1, 1), percentile=95, axis=1)
    scores = np.where(p, 0.7, 0.2).astype(np.float32)
    thresholded = hausdorff_distance(labels_t, scores, percentile=95, threshold=0.6)
    jitted = compiled(lambda a, b: hausdorff_distance(a, b, percentile=95))(t, p)
    for other in (from_maps, first, thresholded, jitted):
        np.testing.assert_array_equal(to_numpy(other), expected)


def test_two_dimensional_and_distance_maps(rng):
    t, p = random_masks(rng, (2, 9, 11, 2))
    maps = surface_distances(t, p, spatial_dims=2, spacing=(1.0, 3.0))
    assert to_numpy(maps.pred_to_true).shape == (2, 2, 9, 11)
    expected = reference_surface(t, p, (1.0, 3.0), ref_hausdorff())
    np.testing.assert_allclose(
        to_numpy(hausdorff_distance(t, p, spatial_dims=2, spacing=(1.0, 3.0))), expected, 2e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": (1.0, 2.0)}, "one positive number per spatial axis"),
        ({"spacing": -1.0}, "positive"),
        ({"threshold": 1.5}, r"threshold must lie in \[0, 1\]"),
        ({"spatial_dims": 2}, "expected \\(N, \\*spatial, C\\) with 2 spatial axes"),
        ({"percentile": 101}, r"percentile must lie in \[0, 100\]"),
    ],
)
def test_bad_input_says_what_was_expected(kwargs, message):
    t = np.zeros(SHAPE, bool)
    with pytest.raises(ValueError, match=message):
        hausdorff_distance(t, t, **kwargs)


def test_bad_tolerance_and_label_map_without_classes():
    t = np.zeros(SHAPE, bool)
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        normalized_surface_dice(t, t, [1.0, 2.0])
    with pytest.raises(ValueError, match="pass num_classes"):
        hausdorff_distance(np.zeros(SHAPE[:-1], int), np.zeros(SHAPE[:-1], int))
