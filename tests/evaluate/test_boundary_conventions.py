"""The host boundary path under each convention against the package that defines it, on
the same arrays: DeepMind `surface-distance` 0.1 (`compute_surface_distances`,
`compute_robust_hausdorff`, `compute_surface_dice_at_tolerance`,
`compute_average_surface_distance`) for `deepmind`, MedPy 0.5 (`hd`, `hd95`, `assd`) for
`medpy`; random and adversarial masks (single voxels, thin structures, masks touching the
border), isotropic and anisotropic spacing, as masks and as label maps."""

import numpy as np
import pytest
from medpy.metric import binary as medpy

from tests.ops.test_surface import ANISOTROPIC, CASES
from voxelmetrics.evaluate.boundary import Side, case_boundary_measures, mask_measures

np.Inf = np.inf  # noqa: NPY201  (surface-distance 0.1 still names np.Inf)
import surface_distance as deepmind  # noqa: E402

TOLERANCE = 1.5


def deepmind_measures(t, p, spacing, percentile):
    d = deepmind.compute_surface_distances(t, p, spacing)
    to_pred, to_truth = deepmind.compute_average_surface_distance(d)
    return {
        "hausdorff": deepmind.compute_robust_hausdorff(
            d, 100 if percentile is None else percentile
        ),
        "average_surface_distance": (to_pred + to_truth) / 2,
        "surface_dice": deepmind.compute_surface_dice_at_tolerance(d, TOLERANCE),
    }


def medpy_measures(t, p, spacing, percentile):
    hd = medpy.hd if percentile is None else medpy.hd95
    return {
        "hausdorff": hd(p, t, voxelspacing=spacing),
        "average_surface_distance": medpy.assd(p, t, voxelspacing=spacing),
    }


REFERENCES = {"deepmind": deepmind_measures, "medpy": medpy_measures}


def pairs(rng, case):
    """The non-empty (truth, pred) pairs of a case (the references refuse or differ on
    empty masks; the empty rule has its own test)."""
    t, p = CASES[case](rng)
    for n, c in np.ndindex(t.shape[0], t.shape[-1]):
        if t[n, ..., c].any() and p[n, ..., c].any():
            yield t[n, ..., c], p[n, ..., c]


@pytest.mark.parametrize("convention", REFERENCES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), ANISOTROPIC])
@pytest.mark.parametrize("percentile", [None, 95.0])
def test_each_convention_equals_its_package(rng, convention, case, spacing, percentile):
    for t, p in pairs(rng, case):
        want = REFERENCES[convention](t, p, spacing, percentile)
        got = mask_measures(
            t, p, spacing=spacing, convention=convention, percentile=percentile, tolerance=TOLERANCE
        )
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_medpy_boundary_counts_the_volume_border():
    """MedPy's own boundary (`binary_erosion` with the face-connected structure) treats
    outside the volume as background, like ours: a mask filling the volume is all border."""
    t = np.ones((5, 6, 4), bool)
    p = np.zeros_like(t)
    p[1:4, 1:5, 1:3] = True
    got = mask_measures(t, p, spacing=(1, 1, 1), convention="medpy", percentile=None)
    assert got["hausdorff"] == pytest.approx(medpy.hd(p, t))
    assert got["average_surface_distance"] == pytest.approx(medpy.assd(p, t))


@pytest.mark.parametrize("convention", ["monai", "deepmind", "medpy"])
def test_label_maps_and_masks_agree_under_every_convention(rng, convention):
    truth = rng.integers(0, 4, (12, 10, 9))
    truth[2:8, 2:8, 2:7] = 4
    pred = np.roll(truth, 1, axis=1)
    pred[rng.random(truth.shape) < 0.03] = 2
    pred[pred == 3] = 0  # class 3 missed
    classes = range(6)  # class 5 absent from both
    spacing = ANISOTROPIC
    got = case_boundary_measures(
        Side(labels=truth),
        Side(labels=pred),
        classes,
        spacing=spacing,
        convention=convention,
        tolerance=TOLERANCE,
    )
    for c in classes:
        want = mask_measures(
            truth == c, pred == c, spacing=spacing, convention=convention, tolerance=TOLERANCE
        )
        for key, value in want.items():
            np.testing.assert_allclose(got[c][key], value, rtol=1e-12, err_msg=f"{c} {key}")
    assert got[3]["missed"] and np.isinf(got[3]["hausdorff"]) and got[3]["surface_dice"] == 0
    assert np.isnan(got[5]["hausdorff"]) and not got[5]["missed"]
    if convention == "deepmind":
        t, p = truth == 1, pred == 1
        want = deepmind_measures(t, p, spacing, 95.0)
        for key, value in want.items():
            assert got[1][key] == pytest.approx(value, rel=1e-6), key
