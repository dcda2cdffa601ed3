"""The host boundary path (`evaluate/boundary.py`) against MONAI 1.6's
`compute_hausdorff_distance`, `compute_average_surface_distance` and `compute_surface_dice`
(spacing given), against the in-graph `surface_metrics` under the active backend, on
random and adversarial masks (single voxels, thin structures, masks touching the border,
empty masks, a class on one side only), as masks and as label maps."""

import numpy as np
import pytest
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)

from tests.conftest import to_numpy
from tests.ops.test_surface import ANISOTROPIC, CASES, monai
from tests.reference import reference_boundary
from voxelmetrics.evaluate.boundary import (
    KEYS,
    Side,
    case_boundary_measures,
    edge_voxels,
    label_boundaries,
    mask_boundary,
    mask_measures,
)
from voxelmetrics.ops import surface_metrics

TOLERANCE = 1.5


def monai_all(t, p, spacing, percentile):
    """MONAI's three measures `[N, C]` each, as `KEYS`; HD95 of a one-sided class is NaN
    there (torch.quantile of infs) and inf here, as its plain HD is."""
    hd = monai(compute_hausdorff_distance, t, p, percentile=percentile, spacing=spacing)
    hd[np.isnan(hd) & (t.any((1, 2, 3)) != p.any((1, 2, 3)))] = np.inf
    assd = monai(compute_average_surface_distance, t, p, symmetric=True, spacing=spacing)
    nsd = monai(compute_surface_dice, t, p, [TOLERANCE] * t.shape[-1], spacing=spacing)
    return dict(zip(KEYS, (hd, assd, nsd), strict=True))


def ours(t, p, spacing, percentile):
    out = {k: np.empty(t.shape[0::4]) for k in KEYS}
    for n, c in np.ndindex(t.shape[0], t.shape[-1]):
        m = mask_measures(
            t[n, ..., c], p[n, ..., c], spacing=spacing, percentile=percentile, tolerance=TOLERANCE
        )
        for k in KEYS:
            out[k][n, c] = m[k]
    return out


def assert_same(a: dict, b: dict):
    for k in KEYS:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), ANISOTROPIC])
@pytest.mark.parametrize("percentile", [None, 95.0])
def test_mask_measures_match_monai(rng, case, spacing, percentile):
    t, p = CASES[case](rng)
    assert_same(ours(t, p, spacing, percentile), monai_all(t, p, spacing, percentile))


@pytest.mark.parametrize("case", CASES)
def test_mask_measures_match_the_in_graph_op(rng, case):
    t, p = CASES[case](rng)
    graph = surface_metrics(t, p, TOLERANCE, percentile=95, spacing=ANISOTROPIC)
    expected = {k: to_numpy(graph[k]) for k in KEYS}
    # float32 in-graph, float64 here
    for k in KEYS:
        np.testing.assert_allclose(ours(t, p, ANISOTROPIC, 95.0)[k], expected[k], rtol=2e-6)


def label_case(rng, shape=(14, 11, 9), num_classes=5):
    """A label map pair with a class on one side only, a single voxel, a class touching the
    border, an ignore label (-1) and an absent class."""
    truth = rng.integers(0, 3, shape)
    truth[3:9, 2:8, 2:6] = 3  # a block
    truth[0, :, :] = 2  # a whole face on the border
    pred = np.roll(truth, 1, axis=0)
    pred[rng.random(shape) < 0.02] = 1  # stray voxels far away
    pred[7, 7, 7] = 4  # class 4: one predicted voxel, no truth
    truth[5, 5, 5] = -1  # an ignored voxel inside the block
    return truth, pred, num_classes + 1  # class 5: absent from both


def test_label_maps_in_one_pass_match_monai_per_class(rng):
    truth, pred, c = label_case(rng)
    spacing = ANISOTROPIC
    got = case_boundary_measures(
        Side(labels=truth), Side(labels=pred), range(c), spacing=spacing, tolerance=TOLERANCE
    )
    one_hot = lambda m: m[None, ..., None] == np.arange(c)  # noqa: E731
    expected = monai_all(one_hot(truth), one_hot(pred), spacing, 95.0)
    for k in KEYS:
        np.testing.assert_allclose(
            [got[i][k] for i in range(c)], expected[k][0], rtol=1e-6, err_msg=k
        )
    assert np.isinf(got[4]["hausdorff"]) and got[4]["surface_dice"] == 0
    assert np.isnan(got[5]["hausdorff"])


def test_mask_sides_equal_label_sides(rng):
    truth, pred, c = label_case(rng)
    by_labels = case_boundary_measures(
        Side(labels=truth), Side(labels=pred), range(c), spacing=(1, 1, 1)
    )
    by_masks = case_boundary_measures(
        Side(mask=lambda i: truth == i), Side(mask=lambda i: pred == i), range(c), spacing=(1, 1, 1)
    )
    assert by_labels.keys() == by_masks.keys()
    for i in by_labels:
        np.testing.assert_array_equal(list(by_labels[i].values()), list(by_masks[i].values()))


@pytest.mark.parametrize("case", CASES)
def test_boundary_rule_is_the_in_graph_one(rng, case):
    t, _ = CASES[case](rng)
    for n, c in np.ndindex(t.shape[0], t.shape[-1]):
        mask = t[n, ..., c]
        expected = np.argwhere(reference_boundary(mask))
        np.testing.assert_array_equal(mask_boundary(mask), expected)
        labels = np.where(mask, 7, 0)
        np.testing.assert_array_equal(label_boundaries(labels, [7])[7], expected)


def test_edge_voxels_count_the_border():
    assert edge_voxels(np.ones((3, 3), int)).sum() == 8
    assert not edge_voxels(np.ones((3, 3, 3), int))[1, 1, 1]


def test_classes_not_asked_are_not_measured(rng):
    truth, pred, _ = label_case(rng)
    asked = []
    got = case_boundary_measures(
        Side(labels=truth),
        Side(mask=lambda i: asked.append(i) or pred == i),
        [2, 3],
        spacing=(1, 1, 1),
    )
    assert sorted(got) == [2, 3] and asked == [2, 3]


def test_check_runs_before_every_class_and_can_stop_the_case(rng):
    truth, pred, c = label_case(rng)
    seen = []

    def check():
        seen.append(len(seen))
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        case_boundary_measures(
            Side(labels=truth), Side(labels=pred), range(c), spacing=(1, 1, 1), check=check
        )
    assert seen == [0, 1, 2]


def test_mask_measures_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        mask_measures(np.zeros((2, 3), bool), np.zeros((3, 2), bool), spacing=(1, 1))
    with pytest.raises(ValueError, match="one voxel size per axis"):
        mask_measures(np.zeros((2, 3), bool), np.zeros((2, 3), bool), spacing=(1, 1, 1))


@pytest.mark.parametrize("case", CASES)
def test_surfels_near_the_boundary_are_every_surfel(rng, case):
    """The tiles around the boundary voxels hold every surfel of the whole corner grid
    (random masks have many diagonal-only contacts), with the same areas."""
    from voxelmetrics.evaluate.boundary import TILE, near_surfels
    from voxelmetrics.ops._host import on_host
    from voxelmetrics.ops.surface_rules import surfels

    t, _ = CASES[case](rng)
    for n, c in np.ndindex(t.shape[0], t.shape[-1]):
        mask = t[n, ..., c]
        with on_host():
            points, areas = (np.asarray(x) for x in surfels(mask, ANISOTROPIC))
        padded = np.pad(mask, [(1, TILE + 1)] * 3)
        corners, got = near_surfels(padded, True, mask_boundary(mask), ANISOTROPIC)
        np.testing.assert_array_equal(corners[np.lexsort(corners.T[::-1])], np.argwhere(points))
        np.testing.assert_allclose(
            got[np.lexsort(corners.T[::-1])], areas[points.astype(bool)], rtol=1e-12
        )


@pytest.mark.parametrize("convention", ["monai", "deepmind"])
def test_memory_follows_the_boundary_not_classes_times_volume(convention):
    """60 classes of a 64^3 uint8 label map (20 balls, 0.2% stray voxels: every class's box
    is the whole volume): the peak of new allocations is a few bytes per voxel plus a
    constant per boundary voxel, far below one byte per voxel and class (59 classes
    measured, the background left out as `--exclude 0` would)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    shape = (64, 64, 64)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    truth = np.zeros(shape, np.uint8)
    for c in range(1, 21):
        centre, radius = rng.uniform(8, 56, 3), rng.uniform(4, 9)
        truth[sum((g - x) ** 2 for g, x in zip(grid, centre, strict=True)) <= radius**2] = c
    pred = np.roll(truth, 1, 0)
    strays = rng.random(shape) < 0.002
    pred[strays] = rng.integers(0, 21, strays.sum())
    boundary_voxels = edge_voxels(truth).sum() + edge_voxels(pred).sum()
    tracemalloc.start()
    case_boundary_measures(
        Side(labels=truth),
        Side(labels=pred),
        range(1, 60),
        spacing=(1, 1, 1),
        convention=convention,
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # measured: 5.2 (monai) and 15.2 (deepmind: the tiles around 0.2% strays) bytes per
    # voxel; one [C, *spatial] bool array alone would be 59
    assert peak < {"monai": 8, "deepmind": 20}[convention] * truth.size
    assert boundary_voxels < 0.35 * truth.size  # (the balls' and strays' boundaries)
