"""The boundary conventions: which points a boundary holds, what each weighs, and how HD,
ASSD and NSD reduce their distances, once for the graph (`keras.ops`) and the host report.

Published boundary numbers differ by tool more than by model, so every boundary measure
names the tool whose definition it reproduces (`CONVENTIONS`):

- `monai`: boundary voxels (weight 1); HD-p the larger of the two directed p-th
  percentiles (linear interpolation); ASSD the mean of both directions' distances pooled;
  NSD the share of boundary voxels within the tolerance.
- `deepmind`: surfels on the corner grid, weighted by their marching-cubes area (contour
  length in 2-D); HD-p the larger of the two directed area-weighted nearest-rank
  percentiles; ASSD the mean of the two directed area-weighted means; NSD the share of
  surface area within the tolerance.
- `medpy`: boundary voxels (weight 1); HD-p the p-th percentile of both directions'
  distances pooled (linear); ASSD pooled, as `monai` (MedPy 0.5's `assd` concatenates
  both directions); NSD as `monai` (MedPy has none).

`monai` equals MONAI 1.6 (`compute_hausdorff_distance`, `compute_average_surface_distance`,
`compute_surface_dice`); `deepmind` equals DeepMind `surface-distance` 0.1
(`compute_surface_distances`, `compute_robust_hausdorff`, `compute_surface_dice_at_tolerance`;
its `compute_average_surface_distance` returns the two directed means, averaged here);
`medpy` equals MedPy 0.5 (`hd`, `hd95`, `assd`). Every array function goes through
`voxelmetrics.ops._host.xp`: `keras.ops` by default, numpy float64 inside `on_host()`.

The empty rule, for every convention: NaN when both boundaries are empty (undefined, left
out of means); when exactly one is, HD and ASSD are `+inf` and NSD is 0.
"""

import functools
import itertools
from collections.abc import Sequence

import numpy as np

from voxelmetrics.ops._host import bitcast, is_on_host, xp
from voxelmetrics.ops._options import SURFACE_CONVENTIONS, check_convention

CONVENTIONS = SURFACE_CONVENTIONS  # the names: `defaults`; their check: `_options.check_convention`


def uses_surfels(convention: str) -> bool:
    """Whether the convention's points are corner-grid surfels weighted by their area
    (`deepmind`) rather than boundary voxels of weight 1 (`monai`, `medpy`)."""
    return check_convention(convention) == "deepmind"


# ----------------------------------------------------------------------------- points


def _shifted(x, axis: int, offset: int, fill):
    """`out[i] = x[i + offset]` along `axis`, `fill` where `i + offset` falls outside."""
    shape = xp.shape(x)
    n = shape[axis]
    pad = [(0, 0)] * len(shape)
    pad[axis] = (max(-offset, 0), max(offset, 0))
    padded = xp.pad(x, pad, constant_values=fill)
    start = max(offset, 0)
    return padded[(slice(None),) * axis + (slice(start, start + n),)]


def boundary(mask, spatial_dims: int):
    """Boundary voxels of bool masks `[..., *spatial]`: the mask minus its erosion.

    A voxel is on the boundary when it is in the mask and one of its `2 * spatial_dims`
    face neighbours is not; outside the volume counts as background, so mask voxels on the
    volume's border are boundary. MONAI (`mask ^ binary_erosion(mask)`) and MedPy
    (`binary_erosion` with the face-connected structure, `border_value=0`) agree on it.

    >>> import numpy as np
    >>> m = np.zeros((1, 5), bool); m[0, 1:5] = True
    >>> np.asarray(boundary(m, 2)).astype(int).tolist()
    [[0, 1, 1, 1, 1]]
    """
    mask = xp.convert_to_tensor(mask, "bool")
    interior = mask
    rank = len(xp.shape(mask))
    for axis in range(rank - spatial_dims, rank):
        for offset in (-1, 1):
            interior = xp.logical_and(interior, _shifted(mask, axis, offset, False))
    return xp.logical_and(mask, xp.logical_not(interior))


def _corners(k: int) -> list[tuple[int, ...]]:
    """The `2**k` voxels around a corner, as offsets; offset `b` is bit `b` of a code."""
    return list(itertools.product((0, 1), repeat=k))


def _corner_windows(shape: Sequence[int], k: int):
    """For each bit `b` of a code, the slice of the mask padded by one voxel on each of its
    last `k` axes that holds voxel `corner - 1 + _corners(k)[b]` at every corner."""
    lead = len(shape) - k
    return [
        (slice(None),) * lead
        + tuple(slice(o, o + n + 1) for o, n in zip(offset, shape[lead:], strict=True))
        for offset in _corners(k)
    ]


def _neighbour_codes(mask, k: int):
    """int `[..., *(n_i + 1)]`: at each corner of the voxel grid, the code of the `2**k`
    voxels around it (bit `b` set iff voxel `corner - 1 + _corners(k)[b]` is in the mask;
    outside the volume is background).

    On the host the codes are uint8 (k <= 3: 256 codes), OR-ed in place
    (`_host_neighbour_codes`): a quarter of the memory traffic of int32 sums."""
    if is_on_host():
        return _host_neighbour_codes(np.asarray(mask, bool), k)
    mask = xp.convert_to_tensor(mask, "bool")
    lead = len(xp.shape(mask)) - k
    padded = xp.cast(xp.pad(mask, [(0, 0)] * lead + [(1, 1)] * k, constant_values=False), "int32")
    code = None
    for bit, window in enumerate(_corner_windows(xp.shape(mask), k)):
        term = padded[window] * (1 << bit)
        code = term if code is None else code + term
    return code


def _host_neighbour_codes(mask: np.ndarray, k: int) -> np.ndarray:
    """`_neighbour_codes` in numpy: uint8 codes, each bit OR-ed in place."""
    padded = np.pad(mask, [(0, 0)] * (mask.ndim - k) + [(1, 1)] * k).view(np.uint8)
    windows = _corner_windows(mask.shape, k)
    code = padded[windows[0]].copy()
    for bit, window in enumerate(windows[1:], start=1):
        code |= padded[window] << bit
    return code


def _cube_area(inside: np.ndarray, spacing: Sequence[float]) -> float:
    """Area of the marching-cubes surface in one cube whose corners `inside` [2, 2, 2] are
    in the mask: Lorensen's triangles, on whichever of the configuration and its complement
    has fewer inside corners (the classic table's complementary symmetry, which is what
    `surface-distance` measures), vertices at the edges' midpoints."""
    try:
        from skimage.measure import marching_cubes, mesh_surface_area
    except ImportError as error:  # an optional dependency (the `cli` extra)
        raise ImportError(
            "convention='deepmind' in 3-D takes its surfel areas from scikit-image's marching "
            "cubes: pip install scikit-image (or voxelmetrics[cli])."
        ) from error

    if inside.sum() > 4:
        inside = ~inside
    vertices, faces, _, _ = marching_cubes(inside.astype(np.float64), 0.5, method="lorensen")
    # unit-grid vertices are exact halves; scaled here in float64, not in float32 inside
    return float(mesh_surface_area(vertices.astype(np.float64) * np.asarray(spacing), faces))


def _square_length(inside: np.ndarray, spacing: Sequence[float]) -> float:
    """Length of the marching-squares contour in one square whose corners `inside` [2, 2]
    are in the mask: a segment between edge midpoints cuts off each lone corner (two for a
    diagonal pair); two neighbouring corners give one segment parallel to their side."""
    n = int(inside.sum())
    if n in (0, 4):
        return 0.0
    diagonal = 0.5 * float(np.hypot(*spacing))
    if n in (1, 3):
        return diagonal
    if inside[0, 0] == inside[1, 1]:  # two opposite corners: two corner cuts
        return 2 * diagonal
    along = 1 if inside[0, 0] == inside[0, 1] else 0  # the in-pair shares a row: axis 1
    return float(spacing[along])


@functools.cache
def surfel_areas(spacing: tuple[float, ...]) -> np.ndarray:
    """float64 `[2**(2**k)]`: the surface area (3-D) or contour length (2-D) of the
    marching-cubes (-squares) surface at a corner, per neighbourhood code (`_corners`
    order), with the voxel size `spacing`. Codes 0 and all-in have none.

    >>> surfel_areas((1.0, 1.0)).tolist()[:4]
    [0.0, 0.7071067811865476, 0.7071067811865476, 1.0]
    """
    k = len(spacing)
    if k not in (2, 3):
        raise ValueError(
            f"the deepmind convention measures 2-D contours or 3-D surfaces; received "
            f"{k} spatial axes."
        )
    measure = _square_length if k == 2 else _cube_area
    areas = np.zeros(2 ** (2**k))
    for code in range(1, len(areas) - 1):
        inside = np.zeros((2,) * k, bool)
        for bit, offset in enumerate(_corners(k)):
            inside[offset] = bool(code >> bit & 1)
        areas[code] = measure(inside, spacing)
    return areas


def surfels(mask, spacing: Sequence[float]):
    """Surface elements of bool masks `[..., *spatial]` on the corner grid (`deepmind`).

    A corner of the voxel grid is a surface point when the `2**k` voxels around it are
    neither all in nor all out of the mask (outside the volume is out); it weighs the
    marching-cubes surface area (3-D) or contour length (2-D) of that neighbourhood, in the
    spacing's units (`surfel_areas`), as DeepMind's `surface-distance` weighs it.

    Args:
        mask: bool `[..., *spatial]`, the `k = len(spacing)` spatial axes last (k = 2, 3).
        spacing: the voxel size per spatial axis.

    Returns:
        `(points, areas)`: bool and float, each `[..., *(n_i + 1)]`; areas are 0 off the
        points.

    >>> import numpy as np
    >>> points, areas = surfels(np.ones((1, 1), bool), (1.0, 1.0))
    >>> np.asarray(points).astype(int).tolist(), round(float(np.asarray(areas).sum()), 4)
    ([[1, 1], [1, 1]], 2.8284)
    """
    spacing = tuple(float(s) for s in spacing)
    table = surfel_areas(spacing)
    codes = _neighbour_codes(mask, len(spacing))
    points = xp.logical_and(xp.not_equal(codes, 0), xp.not_equal(codes, len(table) - 1))
    areas = xp.take(xp.convert_to_tensor(table, "float32"), codes)
    return points, areas


def boundary_points(mask, spacing: Sequence[float], *, convention: str):
    """`(points, weights)` of bool masks `[..., *spatial]` under `convention`: boundary
    voxels of weight 1 (`[..., *spatial]`), or surfels and their areas (`[..., *(n_i+1)]`)."""
    if uses_surfels(convention):
        return surfels(mask, spacing)
    points = boundary(mask, len(spacing))
    return points, xp.cast(points, "float32")


# ----------------------------------------------------------------------------- reductions


def _empty_rule(value, n_pred, n_true, one_empty: float):
    """The empty-mask rule, in one place (as MONAI): NaN when both boundaries are empty
    (undefined, left out of means), `one_empty` when exactly one is, else `value`."""
    both = xp.logical_and(xp.equal(n_pred, 0), xp.equal(n_true, 0))
    either = xp.logical_or(xp.equal(n_pred, 0), xp.equal(n_true, 0))
    return xp.where(both, np.nan, xp.where(either, one_empty, value))


def _no_key(keys):
    """The key that sorts after every real key of `keys`' integer dtype."""
    return np.iinfo(str(xp.dtype(keys))).max


def _keys(distances, spacing: Sequence[float] | None):
    """Integer keys that order like the (finite, >= 0) distances, and their inverse. With
    isotropic spacing $s$ given, the key is the integer $d^2 / s^2$ (a narrow range: few
    bisection steps); else the float's bit pattern (non-negative floats order like their
    bits; int32 for float32, int64 for the host's float64)."""
    if spacing is None or len(set(spacing)) > 1:
        return bitcast(distances, "int32"), lambda k: bitcast(k, "float32")
    s2 = spacing[0] * spacing[0]
    keys = xp.cast(xp.round(xp.square(distances) / s2), "int32")
    return keys, lambda k: xp.sqrt(xp.cast(k, "float32") * s2)


def _bisect(keys, enough):
    """Per row of int `keys` `[..., M]`, the smallest key `k` among `[min, max]` of the real
    keys for which `enough(k[..., None])` holds (it must be monotone in `k` and hold at the
    largest real key): one counting pass per halving step. Exact.

    On the host the same key is searched among the row's sorted keys (`_search_sorted`):
    ceil(log2 M) passes instead of one per bit of the key range (62 for the
    bit patterns of float64 distances)."""
    if is_on_host():
        return _search_sorted(keys, enough)
    real = keys != _no_key(keys)
    lo = xp.min(keys, axis=-1)
    hi = xp.max(xp.where(real, keys, lo[..., None]), axis=-1)

    def halve(lo, hi):
        mid = lo + (hi - lo) // 2
        ok = enough(mid[..., None])
        return xp.where(ok, lo, mid + 1), xp.where(ok, mid, hi)

    lo, _ = xp.while_loop(lambda lo, hi: xp.any(lo < hi), halve, (lo, hi))
    return lo


def _search_sorted(keys: np.ndarray, enough) -> np.ndarray:
    """`_bisect` on numpy: the smallest real key of each row for which `enough` holds.
    `enough` counts the keys `<= k`, so it changes only at real keys, and the smallest
    integer that satisfies it (what `_bisect` finds) is a real key: bisecting the sorted
    real keys by index finds the same one. A row with no real key gives `_no_key`, as
    `_bisect` does."""
    ordered = np.sort(keys, axis=-1)
    last = np.sum(ordered != _no_key(keys), axis=-1) - 1
    lo, hi = np.zeros_like(last), np.maximum(last, 0)
    while np.any(active := lo < hi):  # a row whose search has ended stays where it is
        mid = lo + (hi - lo) // 2
        ok = enough(np.take_along_axis(ordered, mid[..., None], axis=-1))
        lo, hi = np.where(active & ~ok, mid + 1, lo), np.where(active & ok, mid, hi)
    return np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]


def _linear_percentile(distances, present, q: float, spacing):
    r"""The `q`-th percentile of the distances at the `present` points of each row
    (`[..., M]` -> `[...]`), as `np.percentile` and `torch.quantile` (MONAI) define it: linear
    interpolation between the order statistics at $\lfloor p \rfloor$ and $\lceil p \rceil$,
    $p = q/100\,(n-1)$. Rows with no point, or with infinite distances, give garbage for
    `_empty_rule` to replace."""
    finite = xp.where(xp.isinf(distances), 0.0, distances)
    keys, value = _keys(finite, spacing)
    none = _no_key(keys)
    keys = xp.where(present, keys, none)
    n = xp.sum(xp.cast(present, "int32"), axis=-1)
    position = xp.cast(q / 100, "float32") * xp.cast(xp.maximum(n - 1, 0), "float32")
    low_rank = xp.cast(xp.floor(position), "int32")
    low = _bisect(keys, lambda k: xp.sum(xp.cast(keys <= k, "int32"), axis=-1) > low_rank)
    at_most_low = xp.sum(xp.cast(keys <= low[..., None], "int32"), axis=-1)
    above = xp.min(xp.where(keys > low[..., None], keys, none), axis=-1)
    high = xp.where(at_most_low > low_rank + 1, low, above)
    low, high = value(low), value(xp.where(high == none, low, high))
    fraction = position - xp.floor(position)
    return xp.where(fraction > 0, low + fraction * (high - low), low)


def _nearest_rank_percentile(distances, weights, q: float, spacing):
    r"""The area-weighted nearest-rank `q`-th percentile per row (`[..., M]` -> `[...]`),
    as `surface-distance`'s `compute_robust_hausdorff`: the smallest distance $d$ with
    $\sum_{d_i \le d} w_i \ge q/100 \sum_i w_i$. Points of weight 0 are not points.

    A share that equals $q/100$ in exact arithmetic (symmetric shapes make many) must
    count as reached whatever order the sums ran in: the comparison allows 16 ulps of the
    weights' float type (`surface-distance`, in float64, reaches it too).
    """
    present = weights > 0
    finite = xp.where(xp.isinf(distances), 0.0, distances)
    keys, value = _keys(finite, spacing)
    keys = xp.where(present, keys, _no_key(keys))
    total = xp.sum(weights, axis=-1)
    slack = 16 * float(np.finfo(str(xp.dtype(weights))).eps)
    target = total * (q / 100 - slack)

    def enough(k):
        return xp.sum(xp.where(keys <= k, weights, 0.0), axis=-1) >= target

    return value(_bisect(keys, enough))


def _with_a_point(distances, weights):
    """`M >= 1`: a boundary with no points at all (a compact host array of length 0) gets
    one of weight 0, so the reductions have something to reduce (`_empty_rule` decides).
    Only a length known to be 0 is padded: in a traced graph whose batch is unknown (a partial
    last batch under `tf.function`) the length is symbolic and belongs to a real volume."""
    length = xp.shape(distances)[-1]
    if not isinstance(length, int) or length != 0:
        return distances, weights
    none = xp.zeros((*xp.shape(distances)[:-1], 1), "float32")
    return none, none


def _directed_percentile(distances, weights, percentile, convention: str, spacing):
    """One direction's HD-p `[...]` of distances `[..., M]` at the points of weight > 0."""
    distances, weights = _with_a_point(distances, weights)
    present = weights > 0
    if percentile is None:
        return xp.max(xp.where(present, distances, 0.0), axis=-1)
    if uses_surfels(convention):
        return _nearest_rank_percentile(distances, weights, percentile, spacing)
    return _linear_percentile(distances, present, percentile, spacing)


def _sizes(w_pred, w_true):
    """How many points each boundary has, `[...]` each."""
    return (
        xp.sum(xp.cast(w_pred > 0, "int32"), axis=-1),
        xp.sum(xp.cast(w_true > 0, "int32"), axis=-1),
    )


def _weighted_mean(distances, weights):
    """$\\sum_i w_i d_i / \\sum_i w_i$ per row (points of weight 0 left out)."""
    total = xp.sum(xp.where(weights > 0, distances * weights, 0.0), axis=-1)
    return total / xp.maximum(xp.sum(weights, axis=-1), np.finfo(np.float32).tiny)


def hausdorff(d_pred, w_pred, d_true, w_true, *, convention: str, percentile, spacing=None):
    """HD (`percentile=None`) or HD-p `[...]` of both directions under `convention`, with
    the empty rule (`+inf` when one boundary is empty). `medpy` takes the percentile of both
    directions pooled, the others the larger of the two directed percentiles."""
    if check_convention(convention) == "medpy" and percentile is not None:
        pooled, weights = _with_a_point(
            xp.concatenate([d_pred, d_true], axis=-1), xp.concatenate([w_pred, w_true], -1)
        )
        present = weights > 0
        value = _linear_percentile(pooled, present, percentile, spacing)
    else:
        value = xp.maximum(
            _directed_percentile(d_pred, w_pred, percentile, convention, spacing),
            _directed_percentile(d_true, w_true, percentile, convention, spacing),
        )
    return _empty_rule(value, *_sizes(w_pred, w_true), np.inf)


def directed_hausdorff(
    d_pred, w_pred, d_true, w_true, *, convention: str, percentile, spacing=None
):
    """HD-p `[...]` from the prediction to the truth only (`d_pred`), with the empty rule."""
    value = _directed_percentile(d_pred, w_pred, percentile, check_convention(convention), spacing)
    return _empty_rule(value, *_sizes(w_pred, w_true), np.inf)


def average_surface_distance(d_pred, w_pred, d_true, w_true, *, convention: str):
    """ASSD `[...]` under `convention`, with the empty rule: the mean of both directions'
    distances pooled (`monai`; `medpy`, whose 0.5 `assd` concatenates them), or the mean of
    the two directed area-weighted means (`deepmind`: `compute_average_surface_distance`
    returns that pair)."""
    if not uses_surfels(convention):
        both = xp.concatenate([d_pred, d_true], axis=-1)
        value = _weighted_mean(both, xp.concatenate([w_pred, w_true], axis=-1))
    else:
        value = (_weighted_mean(d_pred, w_pred) + _weighted_mean(d_true, w_true)) / 2
    return _empty_rule(value, *_sizes(w_pred, w_true), np.inf)


def directed_average(d_pred, w_pred, d_true, w_true, *, convention: str):
    """The weighted mean distance `[...]` from the prediction to the truth, empty rule."""
    check_convention(convention)
    return _empty_rule(_weighted_mean(d_pred, w_pred), *_sizes(w_pred, w_true), np.inf)


def surface_dice(d_pred, w_pred, d_true, w_true, *, tolerance, convention: str):
    r"""NSD `[...]`: $\frac{\sum_{d_i \le \tau} w_i}{\sum_i w_i}$ over the points of both
    boundaries (voxel counts for `monai` and `medpy`, surfel areas for `deepmind`), with the
    empty rule (0 when one boundary is empty). `tolerance` broadcasts against `[...]`."""
    check_convention(convention)
    tau = xp.expand_dims(xp.cast(tolerance, "float32"), -1)

    def close(d, w):
        return xp.sum(xp.where(xp.logical_and(w > 0, d <= tau), w, 0.0), axis=-1)

    total = xp.sum(w_pred, axis=-1) + xp.sum(w_true, axis=-1)
    value = (close(d_pred, w_pred) + close(d_true, w_true)) / xp.maximum(
        total, np.finfo(np.float32).tiny
    )
    return _empty_rule(value, *_sizes(w_pred, w_true), 0.0)


def boundary_measures(
    d_pred, w_pred, d_true, w_true, *, convention: str, percentile, tolerance, spacing=None
) -> dict:
    """HD (or HD-p), ASSD and NSD of one pair of boundaries under `convention`.

    Args:
        d_pred, d_true: float `[..., M]`, the distance from each point of one boundary to
            the nearest point of the other (`+inf` where the other is empty).
        w_pred, w_true: float `[..., M]`, each point's weight: 1 for a boundary voxel, the
            surfel area for `deepmind`, 0 for no point. Dense `[N, C, M]` maps in-graph,
            compact numpy arrays of one class's points inside `on_host()`.
        convention: one of `CONVENTIONS`.
        percentile: the HD percentile in [0, 100], or None for the maximum.
        tolerance: the NSD tolerance (spacing units), broadcastable to `[...]`.
        spacing: optional; isotropic spacing lets percentiles bisect integer keys (faster),
            valid only when the distances are grid distances in that spacing.

    Returns:
        `{"hausdorff", "average_surface_distance", "surface_dice"}`, each `[...]`; the empty
        rule applied (both empty: NaN; one empty: HD and ASSD `+inf`, NSD 0).

    >>> import numpy as np
    >>> from voxelmetrics.ops._host import on_host
    >>> with on_host():
    ...     m = boundary_measures(np.array([0.0, 1.0, 3.0]), np.ones(3), np.array([0.0]),
    ...                           np.ones(1), convention="medpy", percentile=None,
    ...                           tolerance=1.0)
    >>> {k: round(float(v), 4) for k, v in m.items()}
    {'hausdorff': 3.0, 'average_surface_distance': 1.0, 'surface_dice': 0.75}
    """
    args = (d_pred, w_pred, d_true, w_true)
    return {
        "hausdorff": hausdorff(
            *args, convention=convention, percentile=percentile, spacing=spacing
        ),
        "average_surface_distance": average_surface_distance(*args, convention=convention),
        "surface_dice": surface_dice(*args, tolerance=tolerance, convention=convention),
    }
