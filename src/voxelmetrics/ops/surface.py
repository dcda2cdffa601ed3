"""Boundary metrics: Hausdorff distance, average surface distance, normalised surface Dice.

Every volume and class at once, from an exact Euclidean distance transform in `keras.ops`;
the points, weights and reductions of each named convention come from `surface_rules`.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from keras import ops

from voxelmetrics._docs import fill
from voxelmetrics.backends import compile_kernel
from voxelmetrics.defaults import SURFACE_CONVENTION, THRESHOLD
from voxelmetrics.ops import surface_rules as rules
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    normalize_axis,
    prepare,
    sparse_one_hot,
    static_shape,
    to_probabilities,
)
from voxelmetrics.ops._options import (
    check_convention,
    check_percentile,
    check_spacing,
    check_spatial_dims,
    check_threshold_values,
    check_tolerance,
)
from voxelmetrics.ops.counting import predicted
from voxelmetrics.ops.distance import distances_at
from voxelmetrics.ops.surface_rules import boundary


class SurfaceDistances(NamedTuple):
    """Boundary points, their weights and their distances to the other mask's boundary, as
    dense maps.

    The fixed-size form: every field is `[N, C, *grid]`, so batches stack and compile with
    static shapes (and only arrays: a `jax.jit` may return it). The grid says which points
    it holds: boundary voxels of weight 1 on the voxel grid (`grid = spatial`; `monai`,
    `medpy`), or surfels on the corner grid weighted by their marching-cubes area
    (`grid = spatial + 1` per axis; `deepmind`). A distance is defined on its own boundary
    (0 elsewhere) and is `+inf` where the other boundary is empty.

    Attributes:
        pred_to_true: float32, from each predicted boundary point to the nearest true one.
        true_to_pred: float32, from each true boundary point to the nearest predicted one.
        pred_boundary: bool, the predicted boundary points.
        true_boundary: bool, the true boundary points.
        pred_weight: float32, each predicted point's weight (0 off the boundary).
        true_weight: float32, each true point's weight (0 off the boundary).
    """

    pred_to_true: object
    true_to_pred: object
    pred_boundary: object
    true_boundary: object
    pred_weight: object = None
    true_weight: object = None


# ----------------------------------------------------------------------------- inputs


def _one_hot_labels(labels, num_classes: int | None, name: str):
    """float32 `(..., C)` one-hot of an integer label map (ids outside `[0, C)`: no class)."""
    if num_classes is None:
        raise ValueError(
            f"{name} is an integer label map without a class axis; pass num_classes to say "
            f"how many classes it holds."
        )
    labels = ops.convert_to_tensor(labels)
    _, one_hot = sparse_one_hot(labels, num_classes, -1, len(ops.shape(labels)) + 1)
    return ops.cast(one_hot, "float32")


def _check_grid(y_pred, axis: int, spatial_dims: int) -> int:
    """The class axis of `y_pred` `(N, *spatial, C)` (or channels-first), checked."""
    shape = static_shape(y_pred)
    if len(shape) != spatial_dims + 2:
        raise ValueError(
            f"y_pred has shape {shape}; expected (N, *spatial, C) with {spatial_dims} spatial "
            f"axes (rank {spatial_dims + 2}), or an integer label map (N, *spatial) with "
            f"num_classes."
        )
    axis = normalize_axis(axis, len(shape))
    if axis == 0:
        raise ValueError("axis=0 is the volume axis; the class axis must come after it.")
    return axis


def _input_spec(y_true, y_pred, num_classes, axis: int, spatial_dims: int):
    """`(y_true, y_pred, spec)`: a label-map `y_pred` one-hot encoded, the rest checked by the
    project's input funnel (multi-hot or sparse `y_true`, scores in [0, 1])."""
    if len(static_shape(y_pred)) == spatial_dims + 1:
        y_pred, axis = _one_hot_labels(y_pred, num_classes, "y_pred"), -1
    axis = _check_grid(y_pred, axis, spatial_dims)
    spec = check_inputs(y_true, y_pred, axis=axis, from_logits=False, num_classes=num_classes)
    return y_true, y_pred, spec


def _class_first(x, axis: int):
    """`[N, C, *spatial]` from `[N, ..., C, ...]` with the class axis at `axis`."""
    return ops.moveaxis(x, axis, 1)


def _masks(y_true, y_pred, threshold, spec: InputSpec):
    """bool `(truth, prediction)`, each `[N, C, *spatial]`; predicted iff score >= threshold."""
    labels, _, _ = prepare(y_true, None, None, spec)
    shape = ops.shape(y_pred)
    truth = _class_first(ops.broadcast_to(labels, shape), spec.axis)
    return truth, predicted(_class_first(to_probabilities(y_pred, spec), spec.axis), threshold)


# ----------------------------------------------------------------------------- geometry


def _distance_maps(truth, predicted, spacing: Sequence[float]) -> SurfaceDistances:
    """Both boundaries and both directed distance maps, as one batched transform."""
    spatial_dims = len(spacing)
    edges = boundary(ops.stack([predicted, truth]), spatial_dims)  # [2, N, C, *spatial]
    d2 = distances_at(ops.flip(edges, axis=0), edges, spacing)  # to the other boundary
    distances = ops.sqrt(d2)
    return SurfaceDistances(distances[0], distances[1], edges[0], edges[1])


# ----------------------------------------------------------------------------- conventions


def _to_other(points, spacing: Sequence[float]):
    """Distances from each point of both boundaries `points` `[2, ...]` (prediction, truth)
    to the nearest point of the other: the one seam to the distance transform."""
    return ops.sqrt(distances_at(ops.flip(points, axis=0), points, spacing))


def _convention_maps(truth, predicted, spacing: Sequence[float], convention: str) -> tuple:
    """The six fields of `SurfaceDistances` (`convention` aside) for bool `[N, C, *spatial]`
    masks: boundary voxels of weight 1, or corner-grid surfels weighted by their area."""
    if rules.uses_surfels(convention):
        points, areas = rules.surfels(ops.stack([predicted, truth]), spacing)
        distances = _to_other(points, spacing)
        return distances[0], distances[1], points[0], points[1], areas[0], areas[1]
    maps = _distance_maps(truth, predicted, spacing)
    pred_weight = ops.cast(maps.pred_boundary, "float32")
    true_weight = ops.cast(maps.true_boundary, "float32")
    edges = (maps.pred_to_true, maps.true_to_pred, maps.pred_boundary, maps.true_boundary)
    return (*edges, pred_weight, true_weight)


def _flat(x, spatial_dims: int):
    """`[..., M]`: the trailing `spatial_dims` axes flattened."""
    shape = ops.shape(x)  # static ints, and run-time sizes where unknown (tf.function)
    return ops.reshape(x, (*shape[:-spatial_dims], -1))


def _point_rows(maps: tuple, spatial_dims: int) -> tuple:
    """`(d_pred, w_pred, d_true, w_true)`, each `[N, C, M]`, for `surface_rules`."""
    pred_to_true, true_to_pred, _, _, pred_weight, true_weight = maps
    return tuple(
        _flat(x, spatial_dims) for x in (pred_to_true, pred_weight, true_to_pred, true_weight)
    )


# ----------------------------------------------------------------------------- kernels


def _maps_kernel(y_true, y_pred, *, spec, spacing, threshold, convention) -> tuple:
    truth, predicted = _masks(y_true, y_pred, _threshold_tensor(threshold, spec), spec)
    return _convention_maps(truth, predicted, spacing, convention)


def _threshold_tensor(threshold, spec: InputSpec):
    """float32 threshold broadcastable to `[N, C, *spatial]`."""
    values = ops.convert_to_tensor(np.asarray(threshold, np.float32))
    return ops.reshape(values, (1, -1) + (1,) * (spec.ndim - 2))


def _rows(y_true, y_pred, spec, spacing, threshold, convention) -> tuple:
    maps = _maps_kernel(
        y_true, y_pred, spec=spec, spacing=spacing, threshold=threshold, convention=convention
    )
    return _point_rows(maps, len(spacing))


def _hausdorff_kernel(
    y_true, y_pred, *, spec, spacing, threshold, convention, percentile, directed
):
    rows = _rows(y_true, y_pred, spec, spacing, threshold, convention)
    measure = rules.directed_hausdorff if directed else rules.hausdorff
    return measure(*rows, convention=convention, percentile=percentile, spacing=spacing)


def _average_kernel(y_true, y_pred, *, spec, spacing, threshold, convention, symmetric):
    rows = _rows(y_true, y_pred, spec, spacing, threshold, convention)
    measure = rules.average_surface_distance if symmetric else rules.directed_average
    return measure(*rows, convention=convention)


def _surface_dice_kernel(y_true, y_pred, tolerance, *, spec, spacing, threshold, convention):
    rows = _rows(y_true, y_pred, spec, spacing, threshold, convention)
    return rules.surface_dice(*rows, tolerance=tolerance, convention=convention)


def _all_kernel(y_true, y_pred, tolerance, *, spec, spacing, threshold, convention, percentile):
    rows = _rows(y_true, y_pred, spec, spacing, threshold, convention)
    return rules.boundary_measures(
        *rows, convention=convention, percentile=percentile, tolerance=tolerance, spacing=spacing
    )


_STATIC = ("spec", "spacing", "threshold", "convention")
_compiled_maps = compile_kernel(_maps_kernel, static_argnames=_STATIC)
_compiled_hausdorff = compile_kernel(
    _hausdorff_kernel, static_argnames=(*_STATIC, "percentile", "directed")
)
_compiled_average = compile_kernel(_average_kernel, static_argnames=(*_STATIC, "symmetric"))
_compiled_surface_dice = compile_kernel(_surface_dice_kernel, static_argnames=_STATIC)
_compiled_all = compile_kernel(_all_kernel, static_argnames=(*_STATIC, "percentile"))


def _tolerance_tensor(tolerance, num_classes: int):
    """float32 `[C]` tolerances."""
    values = np.asarray(check_tolerance(tolerance, num_classes), np.float32)
    return ops.convert_to_tensor(np.broadcast_to(values, (num_classes,)).copy())


def _call_args(y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention):
    """Checked `(y_true, y_pred, static kwargs)` for the kernels: the one place every
    boundary measure reads its inputs."""
    check_spatial_dims(spatial_dims)
    convention = check_convention(convention)
    y_true, y_pred, spec = _input_spec(y_true, y_pred, num_classes, axis, spatial_dims)
    threshold = check_threshold_values(threshold, spec.num_classes)
    static = {
        "spec": spec,
        "spacing": check_spacing(spacing, spatial_dims),
        "threshold": threshold if isinstance(threshold, float) else tuple(threshold),  # static
        "convention": convention,
    }
    if rules.uses_surfels(convention):
        rules.surfel_areas(static["spacing"])  # refuses 1-D here, not inside a trace
    return y_true, y_pred, static


# ----------------------------------------------------------------------------- public API

_ARGS = """
    Args:
        y_true: multi-hot masks `(N, *spatial, C)` (bool or 0/1), or an integer label map
            `(N, *spatial)`.
        y_pred: masks or scores `(N, *spatial, C)` (predicted where `score >= threshold`),
            or an integer label map `(N, *spatial)` with `num_classes`.
        spacing: voxel size per spatial axis (a number: isotropic; default 1.0).
        threshold: a number in [0, 1] or one per class.
        num_classes: `C`, needed when `y_pred` is a label map.
        axis: the class axis of `y_pred` (1 for channels-first).
        spatial_dims: how many spatial axes lie between the volume axis and the class axis.
        convention: whose definition to reproduce, one of `surface_rules.CONVENTIONS`:
            "monai" (default; boundary voxels), "deepmind" (`surface-distance`'s surfels
            weighted by area; 2-D and 3-D), "medpy" (boundary voxels, HD-p of both
            directions pooled). See `voxelmetrics.ops.surface_rules`.
"""


def surface_distances(
    y_true,
    y_pred,
    *,
    spacing=None,
    threshold=THRESHOLD,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
    convention: str = SURFACE_CONVENTION,
) -> SurfaceDistances:
    """Boundaries of both masks and each boundary point's distance to the other boundary.

    The primitive of every boundary measure, for every volume and class at once. The
    boundary of a mask is its voxels with a face neighbour outside it (the volume's border
    included; weight 1), or for `convention="deepmind"` its surfels on the corner grid
    (weight: their area); a distance is Euclidean, in the spacing's units, from an exact
    distance transform (`squared_distance_transform`). The form is dense and fixed-size:
    see `SurfaceDistances`.
    {args}
    Returns:
        `SurfaceDistances`, each map `[N, C, *spatial]` (`deepmind`: `[N, C, *(n_i + 1)]`,
        surfels on the corner grid weighted by area; else voxels of weight 1).

    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 4] = True
    >>> d = surface_distances(t, p, spatial_dims=2)
    >>> float(np.asarray(d.pred_to_true).max())
    3.0
    """
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention
    )
    return SurfaceDistances(*_compiled_maps(y_true, y_pred, **static))


def hausdorff_distance(
    y_true,
    y_pred,
    *,
    percentile: float | None = None,
    directed: bool = False,
    spacing=None,
    threshold=THRESHOLD,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
    convention: str = SURFACE_CONVENTION,
):
    r"""Hausdorff distance per volume and class: `[N, C]` (`percentile=95`: HD95).

    $HD = \max(h(P, T), h(T, P))$ with $h(A, B) = \max_{a \in \partial A} d(a, \partial B)$;
    with `percentile=q`, $h$ is the q-th percentile of those distances instead of the max
    (linear interpolation, as `np.percentile` and MONAI's `compute_hausdorff_distance`).
    `directed=True` gives $h(P, T)$ alone (prediction to truth). That is `monai`; `deepmind`
    takes area-weighted nearest-rank percentiles over surfels, `medpy` the percentile of
    both directions pooled (`surface_rules`).

    Empty masks (as MONAI): NaN when both boundaries are empty (undefined; left out of
    volume means), `+inf` when exactly one is.
    {args}
    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 1:5] = True
    >>> np.asarray(hausdorff_distance(t, p, spatial_dims=2)).tolist()
    [[3.0]]
    """
    percentile = check_percentile(percentile)
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention
    )
    return _compiled_hausdorff(
        y_true,
        y_pred,
        percentile=percentile,
        directed=bool(directed),
        **static,
    )


def average_surface_distance(
    y_true,
    y_pred,
    *,
    symmetric: bool = True,
    spacing=None,
    threshold=THRESHOLD,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
    convention: str = SURFACE_CONVENTION,
):
    r"""Average (symmetric) surface distance per volume and class: `[N, C]`.

    $ASSD = \frac{\sum_{p \in \partial P} d(p, \partial T) + \sum_{t \in \partial T}
    d(t, \partial P)}{|\partial P| + |\partial T|}$ (MONAI's pooled mean); with
    `symmetric=False`, the mean of $d(p, \partial T)$ over the predicted boundary. `medpy`
    pools as `monai`; `deepmind` averages its two directed area-weighted means.

    Empty masks (as MONAI): NaN when both boundaries are empty, `+inf` when exactly one is.
    {args}
    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 1:5] = True
    >>> np.asarray(average_surface_distance(t, p, spatial_dims=2)).tolist()
    [[1.2]]
    """
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention
    )
    return _compiled_average(y_true, y_pred, symmetric=bool(symmetric), **static)


def normalized_surface_dice(
    y_true,
    y_pred,
    tolerance,
    *,
    spacing=None,
    threshold=THRESHOLD,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
    convention: str = SURFACE_CONVENTION,
):
    r"""Normalised surface Dice at `tolerance` per volume and class: `[N, C]`.

    $NSD = \frac{|\{p \in \partial P: d(p, \partial T) \le \tau\}| + |\{t \in \partial T:
    d(t, \partial P) \le \tau\}|}{|\partial P| + |\partial T|}$ (Nikolov et al. 2021), with
    boundary voxels counted as MONAI's `compute_surface_dice` counts them (`monai`,
    `medpy`), or surfel areas summed (`deepmind`, `compute_surface_dice_at_tolerance`).

    Empty masks (as MONAI): NaN when both boundaries are empty; 0 when exactly one is (no
    boundary voxel lies within any tolerance of an empty boundary).
    {args}        tolerance: `tau`, a number or one per class, in the spacing's units.

    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 1:5] = True
    >>> np.asarray(normalized_surface_dice(t, p, 1.0, spatial_dims=2)).tolist()
    [[0.6]]
    """
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention
    )
    tolerance = _tolerance_tensor(tolerance, static["spec"].num_classes)
    return _compiled_surface_dice(y_true, y_pred, tolerance, **static)


def surface_metrics(
    y_true,
    y_pred,
    tolerance,
    *,
    percentile: float | None = 95,
    spacing=None,
    threshold=THRESHOLD,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
    convention: str = SURFACE_CONVENTION,
) -> dict:
    """HD (HD95 by default), ASSD and NSD from one distance transform: each `[N, C]`.

    The same values as `hausdorff_distance(percentile=...)`, `average_surface_distance()`
    and `normalized_surface_dice(tolerance)`, for a third of their cost together.
    {args}        tolerance: the NSD's tolerance, a number or one per class.

    Returns:
        `{"hausdorff", "average_surface_distance", "surface_dice"}`, each `[N, C]`.

    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 1:5] = True
    >>> m = surface_metrics(t, p, 1.0, percentile=None, spatial_dims=2)
    >>> [np.asarray(m[k]).item() for k in sorted(m)]
    [1.2, 3.0, 0.6]
    """
    percentile = check_percentile(percentile)
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims, convention
    )
    tolerance = _tolerance_tensor(tolerance, static["spec"].num_classes)
    return _compiled_all(y_true, y_pred, tolerance, percentile=percentile, **static)


for _fn in (
    surface_metrics,
    surface_distances,
    hausdorff_distance,
    average_surface_distance,
    normalized_surface_dice,
):
    _fn.__doc__ = fill(_fn.__doc__, args=_ARGS)
