"""Boundary metrics: Hausdorff distance, average surface distance, normalised surface Dice.

Every volume and class at once, from an exact Euclidean distance transform in `keras.ops`.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from keras import ops

from voxelmetrics.backends import compile_kernel
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    normalize_axis,
    prepare,
    static_shape,
    to_probabilities,
)
from voxelmetrics.ops.distance import distances_at

_NO_KEY = 2**31 - 1  # sorts after every float32 key, +inf included


class SurfaceDistances(NamedTuple):
    """Boundary voxels and their distances to the other mask's boundary, as dense maps.

    The fixed-size form: every field is `[N, C, *spatial]`, so batches stack and compile
    with static shapes. A distance is defined on its own boundary (0 elsewhere) and is
    `+inf` where the other boundary is empty.

    Attributes:
        pred_to_true: float32, from each predicted boundary voxel to the nearest true one.
        true_to_pred: float32, from each true boundary voxel to the nearest predicted one.
        pred_boundary: bool, the predicted boundary voxels.
        true_boundary: bool, the true boundary voxels.
    """

    pred_to_true: object
    true_to_pred: object
    pred_boundary: object
    true_boundary: object


# ----------------------------------------------------------------------------- inputs


def check_spacing(spacing, spatial_dims: int) -> tuple[float, ...]:
    """One positive, finite voxel size per spatial axis (None: 1.0; a number: isotropic)."""
    values = np.asarray(1.0 if spacing is None else spacing, np.float64)
    if values.ndim == 0:
        values = np.full(spatial_dims, values)
    ok = values.shape == (spatial_dims,) and np.all(np.isfinite(values) & (values > 0))
    if not ok:
        raise ValueError(
            f"spacing must be a positive number or one positive number per spatial axis "
            f"({spatial_dims}); received {spacing!r}."
        )
    return tuple(float(s) for s in values)


def _one_hot_labels(labels, num_classes: int | None, name: str):
    """float32 `(..., C)` one-hot of an integer label map (ids outside `[0, C)`: no class)."""
    if num_classes is None:
        raise ValueError(
            f"{name} is an integer label map without a class axis; pass num_classes to say "
            f"how many classes it holds."
        )
    ids = ops.expand_dims(ops.cast(ops.convert_to_tensor(labels), "int32"), -1)
    return ops.cast(ops.equal(ids, ops.arange(num_classes, dtype="int32")), "float32")


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
    predicted = ops.greater_equal(
        _class_first(to_probabilities(y_pred, spec), spec.axis), threshold
    )
    return truth, predicted


# ----------------------------------------------------------------------------- geometry


def _shifted(x, axis: int, offset: int, fill):
    """`out[i] = x[i + offset]` along `axis`, `fill` where `i + offset` falls outside."""
    n = static_shape(x)[axis]
    pad = [(0, 0)] * len(static_shape(x))
    pad[axis] = (max(-offset, 0), max(offset, 0))
    padded = ops.pad(x, pad, constant_values=fill)
    start = max(offset, 0)
    return padded[(slice(None),) * axis + (slice(start, start + n),)]


def boundary(mask, spatial_dims: int):
    """Boundary voxels of bool masks `[..., *spatial]`: the mask minus its erosion.

    A voxel is on the boundary when it is in the mask and one of its `2 * spatial_dims`
    face neighbours is not; outside the volume counts as background, so mask voxels on the
    volume's border are boundary (MONAI's edges: `mask ^ binary_erosion(mask)`).

    >>> import numpy as np
    >>> m = np.zeros((1, 5), bool); m[0, 1:5] = True
    >>> np.asarray(boundary(m, 2)).astype(int).tolist()
    [[0, 1, 1, 1, 1]]
    """
    mask = ops.convert_to_tensor(mask, "bool")
    interior = mask
    rank = len(static_shape(mask))
    for axis in range(rank - spatial_dims, rank):
        for offset in (-1, 1):
            interior = ops.logical_and(interior, _shifted(mask, axis, offset, False))
    return ops.logical_and(mask, ops.logical_not(interior))


def _distance_maps(truth, predicted, spacing: Sequence[float]) -> SurfaceDistances:
    """Both boundaries and both directed distance maps, as one batched transform."""
    spatial_dims = len(spacing)
    edges = boundary(ops.stack([predicted, truth]), spatial_dims)  # [2, N, C, *spatial]
    d2 = distances_at(ops.flip(edges, axis=0), edges, spacing)  # to the other boundary
    distances = ops.sqrt(d2)
    return SurfaceDistances(distances[0], distances[1], edges[0], edges[1])


# ----------------------------------------------------------------------------- reductions


def _boundary_sizes(edges, spatial_dims: int):
    """int32 `[N, C]`: how many boundary voxels each volume and class has."""
    return ops.sum(ops.cast(edges, "int32"), axis=tuple(range(2, 2 + spatial_dims)))


def _empty_rule(value, n_pred, n_true, one_empty: float):
    """The empty-mask rule, in one place (as MONAI): NaN when both boundaries are empty
    (undefined, left out of means), `one_empty` when exactly one is, else `value`."""
    both = ops.logical_and(ops.equal(n_pred, 0), ops.equal(n_true, 0))
    either = ops.logical_or(ops.equal(n_pred, 0), ops.equal(n_true, 0))
    return ops.where(both, np.nan, ops.where(either, one_empty, value))


def _flat(x, spatial_dims: int):
    """`[..., M]`: the trailing `spatial_dims` axes flattened."""
    shape = ops.shape(x)  # static ints, and run-time sizes where unknown (tf.function)
    return ops.reshape(x, (*shape[:-spatial_dims], -1))


def _order_statistic(keys, rank):
    """The `rank`-th smallest (0-based) of int32 `keys` `[..., M]`, per row: `[...]`.

    A bisection over `[min, max]` of the keys that occur, one counting pass per step
    (a pass that also found the nearest keys would cost three on XLA's CPU). Exact.
    """
    real = keys != _NO_KEY
    lo = ops.min(keys, axis=-1)
    hi = ops.max(ops.where(real, keys, lo[..., None]), axis=-1)

    def halve(lo, hi):
        mid = lo + (hi - lo) // 2
        enough = ops.sum(ops.cast(keys <= mid[..., None], "int32"), axis=-1) > rank
        return ops.where(enough, lo, mid + 1), ops.where(enough, mid, hi)

    lo, _ = ops.while_loop(lambda lo, hi: ops.any(lo < hi), halve, (lo, hi))
    return lo


def _keys(distances, spacing: Sequence[float]):
    """int32 keys that order like the distances, and their inverse. With isotropic spacing
    $s$ the key is the integer $d^2 / s^2$ (a narrow range: few bisection steps); else the
    float32 bit pattern of $d$ (non-negative floats order like their bits)."""
    if len(set(spacing)) > 1:
        return ops.view(distances, "int32"), lambda k: ops.view(k, "float32")
    s2 = spacing[0] * spacing[0]
    keys = ops.cast(ops.round(ops.square(distances) / s2), "int32")
    return keys, lambda k: ops.sqrt(ops.cast(k, "float32") * s2)


def _percentile(distances, edges, q: float, spacing: Sequence[float]):
    r"""The `q`-th percentile of the distances on each boundary, `[...]`, exactly as
    `torch.quantile` (MONAI) and `np.percentile` define it: linear interpolation between
    the order statistics at $\lfloor p \rfloor$ and $\lceil p \rceil$, $p = q/100\,(n-1)$
    (computed in float32, as torch does). Rows with no boundary give garbage: mask them.

    The order statistics come from `_keys` (`_order_statistic`, then the next larger key).
    Rows whose other boundary is empty (all distances inf) are left to `_empty_rule`.
    """
    k = len(spacing)
    finite = ops.where(ops.isinf(distances), 0.0, distances)
    keys, value = _keys(finite, spacing)
    keys = _flat(ops.where(edges, keys, _NO_KEY), k)
    n = ops.sum(ops.cast(keys != _NO_KEY, "int32"), axis=-1)
    position = ops.cast(np.float32(q / 100), "float32") * ops.cast(ops.maximum(n - 1, 0), "float32")
    low_rank = ops.cast(ops.floor(position), "int32")
    low = _order_statistic(keys, low_rank)
    at_most_low = ops.sum(ops.cast(keys <= low[..., None], "int32"), axis=-1)
    above = ops.min(ops.where(keys > low[..., None], keys, _NO_KEY), axis=-1)
    high = ops.where(at_most_low > low_rank + 1, low, above)
    low, high = value(low), value(ops.where(high == _NO_KEY, low, high))
    fraction = position - ops.floor(position)
    return ops.where(fraction > 0, low + fraction * (high - low), low)


def _directed_hausdorff(distances, edges, percentile, spacing: Sequence[float]):
    if percentile is None:
        axes = tuple(range(2, 2 + len(spacing)))
        return ops.max(ops.where(edges, distances, 0.0), axis=axes)
    return _percentile(distances, edges, percentile, spacing)


# ----------------------------------------------------------------------------- kernels


def _maps_kernel(y_true, y_pred, *, spec, spacing, threshold) -> SurfaceDistances:
    truth, predicted = _masks(y_true, y_pred, _threshold_tensor(threshold, spec), spec)
    return _distance_maps(truth, predicted, spacing)


def _threshold_tensor(threshold, spec: InputSpec):
    """float32 threshold broadcastable to `[N, C, *spatial]`."""
    values = ops.convert_to_tensor(np.asarray(threshold, np.float32))
    return ops.reshape(values, (1, -1) + (1,) * (spec.ndim - 2))


def _hausdorff(maps: SurfaceDistances, percentile, directed: bool, spacing: Sequence[float]):
    k = len(spacing)
    value = _directed_hausdorff(maps.pred_to_true, maps.pred_boundary, percentile, spacing)
    if not directed:
        back = _directed_hausdorff(maps.true_to_pred, maps.true_boundary, percentile, spacing)
        value = ops.maximum(value, back)
    n_pred, n_true = _boundary_sizes(maps.pred_boundary, k), _boundary_sizes(maps.true_boundary, k)
    return _empty_rule(value, n_pred, n_true, np.inf)


def _average(maps: SurfaceDistances, symmetric: bool, k: int):
    axes = tuple(range(2, 2 + k))
    n_pred, n_true = _boundary_sizes(maps.pred_boundary, k), _boundary_sizes(maps.true_boundary, k)
    total = ops.sum(ops.where(maps.pred_boundary, maps.pred_to_true, 0.0), axis=axes)
    count = n_pred
    if symmetric:
        total = total + ops.sum(ops.where(maps.true_boundary, maps.true_to_pred, 0.0), axis=axes)
        count = count + n_true
    value = total / ops.cast(ops.maximum(count, 1), "float32")
    return _empty_rule(value, n_pred, n_true, np.inf)


def _surface_dice(maps: SurfaceDistances, tolerance, k: int):
    axes = tuple(range(2, 2 + k))
    tolerance = ops.reshape(ops.cast(tolerance, "float32"), (1, -1) + (1,) * k)

    def within(distances, edges):
        close = ops.logical_and(edges, ops.less_equal(distances, tolerance))
        return ops.sum(ops.cast(close, "int32"), axis=axes)

    n_pred, n_true = _boundary_sizes(maps.pred_boundary, k), _boundary_sizes(maps.true_boundary, k)
    close = within(maps.pred_to_true, maps.pred_boundary) + within(
        maps.true_to_pred, maps.true_boundary
    )
    value = ops.cast(close, "float32") / ops.cast(ops.maximum(n_pred + n_true, 1), "float32")
    return _empty_rule(value, n_pred, n_true, 0.0)


def _hausdorff_kernel(y_true, y_pred, *, spec, spacing, threshold, percentile, directed):
    maps = _maps_kernel(y_true, y_pred, spec=spec, spacing=spacing, threshold=threshold)
    return _hausdorff(maps, percentile, directed, spacing)


def _average_kernel(y_true, y_pred, *, spec, spacing, threshold, symmetric):
    maps = _maps_kernel(y_true, y_pred, spec=spec, spacing=spacing, threshold=threshold)
    return _average(maps, symmetric, len(spacing))


def _surface_dice_kernel(y_true, y_pred, tolerance, *, spec, spacing, threshold):
    maps = _maps_kernel(y_true, y_pred, spec=spec, spacing=spacing, threshold=threshold)
    return _surface_dice(maps, tolerance, len(spacing))


def _all_kernel(y_true, y_pred, tolerance, *, spec, spacing, threshold, percentile):
    maps = _maps_kernel(y_true, y_pred, spec=spec, spacing=spacing, threshold=threshold)
    k = len(spacing)
    return {
        "hausdorff": _hausdorff(maps, percentile, False, spacing),
        "average_surface_distance": _average(maps, True, k),
        "surface_dice": _surface_dice(maps, tolerance, k),
    }


_STATIC = ("spec", "spacing", "threshold")
_compiled_maps = compile_kernel(_maps_kernel, static_argnames=_STATIC)
_compiled_hausdorff = compile_kernel(
    _hausdorff_kernel, static_argnames=(*_STATIC, "percentile", "directed")
)
_compiled_average = compile_kernel(_average_kernel, static_argnames=(*_STATIC, "symmetric"))
_compiled_surface_dice = compile_kernel(_surface_dice_kernel, static_argnames=_STATIC)
_compiled_all = compile_kernel(_all_kernel, static_argnames=(*_STATIC, "percentile"))


def _check_threshold(threshold, num_classes: int) -> float | tuple[float, ...]:
    values = np.asarray(threshold, np.float64)
    if values.ndim > 1 or (values.ndim == 1 and len(values) != num_classes):
        raise ValueError(
            f"threshold must be a number or one per class ({num_classes}); received {threshold!r}."
        )
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"threshold must lie in [0, 1]; received {threshold!r}.")
    return float(values) if values.ndim == 0 else tuple(values.tolist())


def check_tolerance(tolerance, num_classes: int | None = None) -> float | list[float]:
    """The NSD tolerance as a float or one float per class, each finite and >= 0."""
    values = np.asarray(tolerance, np.float64)
    ok = values.ndim == 0 or (values.ndim == 1 and num_classes in (None, len(values)))
    if not ok or not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(
            f"tolerance must be a finite number >= 0 or one per class ({num_classes}); "
            f"received {tolerance!r}."
        )
    return float(values) if values.ndim == 0 else values.tolist()


def _tolerance_tensor(tolerance, num_classes: int):
    """float32 `[C]` tolerances."""
    values = np.asarray(check_tolerance(tolerance, num_classes), np.float32)
    return ops.convert_to_tensor(np.broadcast_to(values, (num_classes,)).copy())


def check_percentile(percentile) -> float | None:
    """The percentile as a float in [0, 100], or None (the maximum)."""
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100] or be None; received {percentile!r}.")
    return None if percentile is None else float(percentile)


def _call_args(y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims):
    """Checked `(y_true, y_pred, static kwargs)` for the kernels: the one place every
    boundary measure reads its inputs."""
    if isinstance(spatial_dims, bool) or spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3; received {spatial_dims!r}.")
    y_true, y_pred, spec = _input_spec(y_true, y_pred, num_classes, axis, spatial_dims)
    static = {
        "spec": spec,
        "spacing": check_spacing(spacing, spatial_dims),
        "threshold": _check_threshold(threshold, spec.num_classes),
    }
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
"""


def surface_distances(
    y_true,
    y_pred,
    *,
    spacing=None,
    threshold=0.5,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
) -> SurfaceDistances:
    """Boundaries of both masks and each boundary voxel's distance to the other boundary.

    The primitive of every boundary measure, for every volume and class at once. The
    boundary of a mask is its voxels with a face neighbour outside it (the volume's border
    included); a distance is Euclidean, in the spacing's units, from an exact distance
    transform (`squared_distance_transform`). The form is dense and fixed-size: see
    `SurfaceDistances`.
    {args}
    Returns:
        `SurfaceDistances`, each field `[N, C, *spatial]`.

    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 4] = True
    >>> d = surface_distances(t, p, spatial_dims=2)
    >>> float(np.asarray(d.pred_to_true).max())
    3.0
    """
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims
    )
    return SurfaceDistances(*_compiled_maps(y_true, y_pred, **static))


def hausdorff_distance(
    y_true,
    y_pred,
    *,
    percentile: float | None = None,
    directed: bool = False,
    spacing=None,
    threshold=0.5,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
):
    r"""Hausdorff distance per volume and class: `[N, C]` (`percentile=95`: HD95).

    $HD = \max(h(P, T), h(T, P))$ with $h(A, B) = \max_{a \in \partial A} d(a, \partial B)$;
    with `percentile=q`, $h$ is the q-th percentile of those distances instead of the max
    (linear interpolation, as `np.percentile` and MONAI's `compute_hausdorff_distance`).
    `directed=True` gives $h(P, T)$ alone (prediction to truth).

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
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims
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
    threshold=0.5,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
):
    r"""Average (symmetric) surface distance per volume and class: `[N, C]`.

    $ASSD = \frac{\sum_{p \in \partial P} d(p, \partial T) + \sum_{t \in \partial T}
    d(t, \partial P)}{|\partial P| + |\partial T|}$ (MONAI's pooled mean); with
    `symmetric=False`, the mean of $d(p, \partial T)$ over the predicted boundary.

    Empty masks (as MONAI): NaN when both boundaries are empty, `+inf` when exactly one is.
    {args}
    >>> import numpy as np
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), bool); p[0, 0, 1:5] = True
    >>> np.asarray(average_surface_distance(t, p, spatial_dims=2)).tolist()
    [[1.2]]
    """
    y_true, y_pred, static = _call_args(
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims
    )
    return _compiled_average(y_true, y_pred, symmetric=bool(symmetric), **static)


def normalized_surface_dice(
    y_true,
    y_pred,
    tolerance,
    *,
    spacing=None,
    threshold=0.5,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
):
    r"""Normalised surface Dice at `tolerance` per volume and class: `[N, C]`.

    $NSD = \frac{|\{p \in \partial P: d(p, \partial T) \le \tau\}| + |\{t \in \partial T:
    d(t, \partial P) \le \tau\}|}{|\partial P| + |\partial T|}$ (Nikolov et al. 2021), with
    boundary voxels counted as MONAI's `compute_surface_dice` counts them (not surfels).

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
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims
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
    threshold=0.5,
    num_classes: int | None = None,
    axis: int = -1,
    spatial_dims: int = 3,
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
        y_true, y_pred, spacing, threshold, num_classes, axis, spatial_dims
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
    _fn.__doc__ = _fn.__doc__.replace("{args}", _ARGS)
