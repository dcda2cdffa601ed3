"""Each boundary convention against the package that defines it: `monai` against MONAI 1.6,
`deepmind` against DeepMind's `surface-distance` 0.1, `medpy` against MedPy 0.5, on random
and adversarial masks (single voxels, thin structures, masks on the border, anisotropic
spacing), in 2-D and 3-D: in-graph under the active backend, and on the host (`on_host()`,
numpy float64) on the same arrays."""

import warnings

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)
from scipy import ndimage

from tests.conftest import to_numpy
from voxelmetrics.metrics import AverageSurfaceDistance, HausdorffDistance, SurfaceDice
from voxelmetrics.ops import surface_rules as rules
from voxelmetrics.ops._host import on_host
from voxelmetrics.ops.surface import (
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_distances,
    surface_metrics,
)

np.Inf = np.inf  # noqa: NPY201 (surface-distance 0.1 still names np.Inf, gone in numpy 2)
import surface_distance as deepmind  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance")
TOLERANCE = 1.5
MEASURES = ("hausdorff", "average_surface_distance", "surface_dice")


# ----------------------------------------------------------------------------- references


def monai_measures(t: np.ndarray, p: np.ndarray, spacing, percentile) -> dict:
    """MONAI's three functions on one pair of masks `[*spatial]` (background kept)."""
    to_torch = lambda x: torch.tensor(x[None, None].astype(np.float32))  # noqa: E731
    args = (to_torch(p), to_torch(t))
    kw = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "hausdorff": compute_hausdorff_distance(*args, percentile=percentile, **kw).item(),
            "average_surface_distance": compute_average_surface_distance(
                *args, symmetric=True, **kw
            ).item(),
            "surface_dice": compute_surface_dice(*args, [TOLERANCE], **kw).item(),
        }


def deepmind_measures(t: np.ndarray, p: np.ndarray, spacing, percentile) -> dict:
    """`surface-distance`'s functions; ASSD the mean of its two directed means."""
    s = deepmind.compute_surface_distances(t, p, list(spacing))
    return {
        "hausdorff": deepmind.compute_robust_hausdorff(
            s, 100 if percentile is None else percentile
        ),
        "average_surface_distance": float(np.mean(deepmind.compute_average_surface_distance(s))),
        "surface_dice": deepmind.compute_surface_dice_at_tolerance(s, TOLERANCE),
    }


def medpy_measures(t: np.ndarray, p: np.ndarray, spacing, percentile) -> dict:
    """MedPy's `hd` / `hd95` and `assd`; MedPy has no NSD: ours is MONAI's."""
    hd = medpy.hd if percentile is None else medpy.hd95
    return {
        "hausdorff": hd(p, t, voxelspacing=spacing),
        "average_surface_distance": medpy.assd(p, t, voxelspacing=spacing),
        "surface_dice": monai_measures(t, p, spacing, None)["surface_dice"],
    }


REFERENCES = {"monai": monai_measures, "deepmind": deepmind_measures, "medpy": medpy_measures}
HOST_RTOL = {
    "monai": 2e-6,
    "deepmind": 1e-9,
    "medpy": 2e-6,
}  # MONAI answers in float32 (and medpy NSD is MONAI's)
PERCENTILES = {"monai": (None, 95, 50), "deepmind": (None, 95, 50), "medpy": (None, 95)}


def reference(t, p, spacing, convention, percentile) -> dict:
    """`{measure: [N, C]}` of the convention's package, NaN where a mask is empty (the empty
    rule is ours, tested on its own)."""
    n, c = t.shape[0], t.shape[-1]
    out = {m: np.full((n, c), np.nan) for m in MEASURES}
    for i, j in np.ndindex(n, c):
        tc, pc = t[i, ..., j], p[i, ..., j]
        if tc.any() and pc.any():
            for m, v in REFERENCES[convention](tc, pc, spacing, percentile).items():
                out[m][i, j] = v
    return out


def both_present(t, p) -> np.ndarray:
    axes = tuple(range(1, t.ndim - 1))
    return t.any(axes) & p.any(axes)


# ----------------------------------------------------------------------------- inputs


def shape_of(k: int) -> tuple:
    return (2, 12, 11, 10, 3) if k == 3 else (2, 12, 11, 3)


def random_masks(rng, k, density=0.3):
    shape = shape_of(k)
    return rng.random(shape) < density, rng.random(shape) < density


def blob_masks(rng, k):
    """Ellipses / ellipsoids, the prediction shifted and resized: smooth surfaces."""
    shape = shape_of(k)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape[1:-1]], indexing="ij"), -1)
    out = np.zeros((2, *shape), bool)
    for which, n, c in np.ndindex(2, shape[0], shape[-1]):
        centre = np.asarray(shape[1:-1]) * (0.3 + 0.4 * rng.random(k)) + 1.5 * which
        radii = np.asarray(shape[1:-1]) * (0.1 + 0.3 * rng.random(k))
        out[which, n, ..., c] = (((grid - centre) / radii) ** 2).sum(-1) <= 1
    return out[0], out[1]


def adversarial_masks(rng, k):
    """Single voxels in opposite corners, a one-voxel-thin line against a thin plane, the
    whole volume against an inner block, a structure on the border against a stray voxel."""
    t = np.zeros(shape_of(k), bool)
    p = np.zeros(shape_of(k), bool)
    t[(0,) + (0,) * k + (0,)] = True
    p[(0,) + (-1,) * k + (0,)] = True
    t[(0, slice(None)) + (4,) * (k - 1) + (1,)] = True
    p[(0, 3) + (slice(None),) * (k - 1) + (1,)] = True
    t[0, ..., 2] = True
    p[(0,) + (slice(2, -2),) * k + (2,)] = True
    t[(1, slice(0, 3)) + (slice(None),) * (k - 1) + (0,)] = True
    p[(1, slice(0, 2)) + (slice(None),) * (k - 1) + (0,)] = True
    p[(1, -1) + (-1,) * (k - 1) + (0,)] = True  # a stray voxel far away
    t[(1,) + (slice(1, 3),) * k + (1,)] = True
    p[(1,) + (slice(2, 4),) * k + (1,)] = True
    t[1, ..., 2] = rng.random(shape_of(k)[1:-1]) < 0.5
    p[1, ..., 2] = t[1, ..., 2]
    p[(1,) + (5,) * k + (2,)] ^= True
    return t, p


CASES = {
    "random": lambda rng, k: random_masks(rng, k),
    "sparse": lambda rng, k: random_masks(rng, k, density=0.03),
    "blobs": blob_masks,
    "adversarial": adversarial_masks,
}
SPACINGS = {3: [(1.0, 1.0, 1.0), (0.8, 1.0, 2.5)], 2: [(1.0, 1.0), (1.5, 0.7)]}
GRID = [
    (convention, case, k, spacing)
    for convention in rules.CONVENTIONS
    for case in CASES
    for k in (2, 3)
    for spacing in SPACINGS[k]
]


# ----------------------------------------------------------------------------- the host path


def host_measures(t, p, spacing, convention, percentile) -> dict:
    """`{measure: [N, C]}` from `surface_rules` inside `on_host()` on compact arrays of each
    class's points, the distances from scipy's exact EDT on the point grid."""
    n, c = t.shape[0], t.shape[-1]
    out = {m: np.full((n, c), np.nan) for m in MEASURES}

    def to_other(points, other):
        if not other.any():
            return np.full(int(points.sum()), np.inf)
        return ndimage.distance_transform_edt(~other, sampling=spacing)[points]

    for i, j in np.ndindex(n, c):
        with on_host():
            pt, wt = rules.boundary_points(t[i, ..., j], spacing, convention=convention)
            pp, wp = rules.boundary_points(p[i, ..., j], spacing, convention=convention)
        d_pred, d_true = to_other(pp, pt), to_other(pt, pp)
        with on_host():
            values = rules.boundary_measures(
                d_pred,
                wp[pp],
                d_true,
                wt[pt],
                convention=convention,
                percentile=percentile,
                tolerance=TOLERANCE,
            )
        for m, v in values.items():
            assert isinstance(v, np.ndarray) and v.dtype == np.float64
            out[m][i, j] = v
    return out


@pytest.mark.parametrize(("convention", "case", "k", "spacing"), GRID)
def test_host_path_equals_the_reference(rng, convention, case, k, spacing):
    t, p = CASES[case](rng, k)
    present = both_present(t, p)
    for percentile in PERCENTILES[convention]:
        expected = reference(t, p, spacing, convention, percentile)
        ours = host_measures(t, p, spacing, convention, percentile)
        for m in MEASURES:
            np.testing.assert_allclose(
                ours[m][present],
                expected[m][present],
                rtol=HOST_RTOL[convention],
                err_msg=f"{m} p={percentile}",
            )


# ----------------------------------------------------------------------------- in-graph


@pytest.mark.parametrize(("convention", "case", "k", "spacing"), GRID)
def test_graph_equals_the_reference(rng, convention, case, k, spacing):
    t, p = CASES[case](rng, k)
    present = both_present(t, p)
    kw = {"spacing": spacing, "spatial_dims": k, "convention": convention}
    # each percentile compiles anew: all of them on the adversarial masks, HD95 elsewhere
    for percentile in PERCENTILES[convention] if case == "adversarial" else (95,):
        expected = reference(t, p, spacing, convention, percentile)
        ours = surface_metrics(t, p, TOLERANCE, percentile=percentile, **kw)
        for m in MEASURES:
            np.testing.assert_allclose(
                to_numpy(ours[m])[present],
                expected[m][present],
                rtol=2e-6,
                err_msg=f"{m} p={percentile}",
            )
    if case != "blobs":
        return
    alone = {
        "hausdorff": hausdorff_distance(t, p, percentile=95, **kw),
        "average_surface_distance": average_surface_distance(t, p, **kw),
        "surface_dice": normalized_surface_dice(t, p, TOLERANCE, **kw),
    }
    together = surface_metrics(t, p, TOLERANCE, percentile=95, **kw)
    for m in MEASURES:
        np.testing.assert_array_equal(to_numpy(alone[m]), to_numpy(together[m]))


@pytest.mark.parametrize("convention", rules.CONVENTIONS)
@pytest.mark.parametrize("k", [2, 3])
def test_empty_rule_in_every_convention(convention, k):
    """Both empty: NaN; exactly one empty: HD and ASSD inf, NSD 0; in-graph and on the host."""
    t = np.zeros(shape_of(k), bool)
    p = np.zeros(shape_of(k), bool)
    t[0, ..., 0] = True  # prediction empty
    p[(0,) + (slice(2, 5),) * k + (1,)] = True  # truth empty; class 2 both empty
    spacing = SPACINGS[k][1]
    kw = {"spacing": spacing, "spatial_dims": k, "convention": convention}
    graph = {m: to_numpy(v) for m, v in surface_metrics(t, p, 1.0, **kw).items()}
    host = host_measures(t, p, spacing, convention, 95)
    for values in (graph, host):
        for m in MEASURES:
            assert np.isnan(values[m][0, 2]) and np.isnan(values[m][1]).all()
        for m in ("hausdorff", "average_surface_distance"):
            assert np.isposinf(values[m][0, :2]).all()
        np.testing.assert_array_equal(values["surface_dice"][0, :2], 0.0)


def test_surfel_areas_equal_surface_distance():
    """Every neighbourhood code's area (3-D) and contour length (2-D), anisotropic: each
    configuration of one cube (square) gives the surfels `surface-distance` finds."""
    for spacing in [(1.0, 2.0, 3.0), (0.7, 0.7, 2.5), (1.5, 0.6)]:
        k = len(spacing)
        for code in range(2 ** (2**k)):
            mask = np.zeros((2,) * k, bool)
            for bit, offset in enumerate(rules._corners(k)):
                mask[offset] = bool(code >> bit & 1)
            with on_host():
                points, areas = rules.surfels(mask, spacing)
            theirs = deepmind.compute_surface_distances(mask, mask, list(spacing))
            np.testing.assert_allclose(
                np.sort(areas[points]), np.sort(theirs["surfel_areas_gt"]), rtol=1e-12
            )


@pytest.mark.parametrize("k", [2, 3])
def test_graph_and_host_surfels_agree(rng, k):
    mask = rng.random(shape_of(k)) < 0.4
    spacing = SPACINGS[k][1]
    points, areas = rules.surfels(mask, spacing)
    with on_host():
        host_points, host_areas = rules.surfels(mask, spacing)
    np.testing.assert_array_equal(to_numpy(points), host_points)
    np.testing.assert_allclose(to_numpy(areas), host_areas, rtol=1e-6)
    assert host_areas.dtype == np.float64


def test_distance_maps_say_which_points_they_hold(rng):
    t, p = blob_masks(rng, 3)
    voxels = surface_distances(t, p, spacing=(0.8, 1.0, 2.5))
    corners = surface_distances(t, p, spacing=(0.8, 1.0, 2.5), convention="deepmind")
    assert voxels.convention == "monai" and corners.convention == "deepmind"
    assert to_numpy(voxels.pred_weight).shape == (2, 3, 12, 11, 10)
    assert to_numpy(corners.pred_weight).shape == (2, 3, 13, 12, 11)
    np.testing.assert_array_equal(to_numpy(voxels.pred_weight), to_numpy(voxels.pred_boundary))
    points, areas = rules.surfels(np.moveaxis(t, -1, 1), (0.8, 1.0, 2.5))
    np.testing.assert_array_equal(to_numpy(corners.true_boundary), to_numpy(points))
    np.testing.assert_allclose(to_numpy(corners.true_weight), to_numpy(areas))


def test_directed_measures_follow_the_convention(rng):
    """`directed=True` / `symmetric=False`: the prediction's side of each convention."""
    t, p = blob_masks(rng, 3)
    spacing = (0.8, 1.0, 2.5)
    for i, j in np.ndindex(2, 3):
        tc, pc = t[i, ..., j], p[i, ..., j]
        if not (tc.any() and pc.any()):
            continue
        s = deepmind.compute_surface_distances(tc, pc, list(spacing))
        d, a = s["distances_pred_to_gt"], s["surfel_areas_pred"]
        expected_hd = d[min(np.searchsorted(np.cumsum(a) / a.sum(), 0.95), len(d) - 1)]
        kw = {"spacing": spacing, "convention": "deepmind"}
        hd = to_numpy(hausdorff_distance(t, p, percentile=95, directed=True, **kw))[i, j]
        asd = to_numpy(average_surface_distance(t, p, symmetric=False, **kw))[i, j]
        np.testing.assert_allclose(hd, expected_hd, rtol=2e-6)
        np.testing.assert_allclose(asd, deepmind.compute_average_surface_distance(s)[1], 2e-6)


def test_bad_conventions_are_refused():
    t = np.zeros(shape_of(3), bool)
    with pytest.raises(ValueError, match="convention must be one of 'monai', 'deepmind', 'medpy'"):
        hausdorff_distance(t, t, convention="nikolov")
    with pytest.raises(ValueError, match="2-D contours or 3-D surfaces; received 1"):
        hausdorff_distance(t[:, 0, 0], t[:, 0, 0], spatial_dims=1, convention="deepmind")


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("convention", rules.CONVENTIONS)
def test_metrics_carry_the_convention(rng, convention):
    t, p = blob_masks(rng, 3)
    spacing = (0.8, 1.0, 2.5)
    metrics = [
        HausdorffDistance(spacing=spacing, average=None, convention=convention),
        AverageSurfaceDistance(spacing=spacing, average=None, convention=convention),
        SurfaceDice(TOLERANCE, spacing=spacing, average=None, convention=convention),
    ]
    expected = reference(t, p, spacing, convention, 95)
    for metric, m in zip(metrics, MEASURES, strict=True):
        metric.update_state(t, p.astype("float32"))
        np.testing.assert_allclose(
            to_numpy(metric.result()), np.nanmean(expected[m], axis=0), rtol=2e-6
        )
        config = metric.get_config()
        assert config["convention"] == convention
        assert type(metric).from_config(config).convention == convention
    with pytest.raises(ValueError, match="convention must be one of"):
        SurfaceDice(1.0, convention="MONAI")
