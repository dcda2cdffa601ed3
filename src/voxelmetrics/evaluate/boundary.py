"""Boundary measures on the host, at the cost of the boundary (not classes x volume).

The offline engine's path for `--surface` (`evaluate/surface.py` `case_measures`), and
`mask_measures` for one pair of masks (the lesion-wise measures use it). Host only:
numpy and scipy, nothing compiled, so a case never waits on a long compiled call (Ctrl-C
acts between classes) and never builds a `[C, *spatial]` tensor.

Per case:
1. **Boundary points.** For a label map, one pass over the volume finds the boundary
   voxels of every class at once (`edge_voxels`: a voxel with a face neighbour of another
   label, or on the volume's border) and groups them by class. A per-class mask
   (multi-hot masks, thresholded scores) is cropped to its bounding box first (exact: a
   mask voxel on the box's face has its outward neighbour outside the mask). DeepMind's
   surfels live on the corner grid of the bounding box of prediction | truth.
2. **Distances.** From each point of one boundary to the nearest point of the other:
   a KD-tree over the other boundary's coordinates in the spacing's units
   (`nearest_distances`), exact Euclidean in float64, `O(M log M)` in the boundary size
   `M` whatever the boxes' extent (why not an EDT of the box: `docs/design.md`).
3. **Reductions** (percentile, ASSD, NSD, the empty rule) are the convention's:
   `ops/surface_rules.py` `boundary_measures`, run on numpy inside `on_host()`.

Peak memory: the case's own arrays, one bool volume (the edge map, or one class's mask),
and `O(M)` for the points.
"""

from collections.abc import Callable, Sequence

import numpy as np

from voxelmetrics.defaults import SURFACE_CONVENTION

KEYS = ("hausdorff", "average_surface_distance", "surface_dice")


# ----------------------------------------------------------------------------- boundaries


def edge_voxels(labels: np.ndarray) -> np.ndarray:
    """bool, same shape: voxels with a face neighbour of another label, or on the border.

    The host form of the boundary rule (`ops/surface.py` `boundary`): the boundary of
    class c is `(labels == c) & edge_voxels(labels)`, for every class at once; for a bool
    mask, `mask & edge_voxels(mask)` (outside the array counts as background).

    Example:
        >>> edge_voxels(np.array([0, 0, 1, 1, 1, 0])).astype(int).tolist()
        [1, 1, 1, 0, 1, 1]
    """
    edge = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        lo = (slice(None),) * axis + (slice(None, -1),)
        hi = (slice(None),) * axis + (slice(1, None),)
        differs = labels[hi] != labels[lo]
        edge[hi] |= differs
        edge[lo] |= differs
        edge[(slice(None),) * axis + (0,)] = True
        edge[(slice(None),) * axis + (-1,)] = True
    return edge


def label_boundaries(labels: np.ndarray, classes: Sequence[int]) -> dict[int, np.ndarray]:
    """int64 `[M_c, k]` boundary voxel indices of each class in `classes`, in one pass.

    Args:
        labels: integer label map `[*spatial]` (ids not in `classes` belong to no class
            measured here; their voxels bound the classes beside them).
        classes: the class ids to collect.

    Example:
        >>> b = label_boundaries(np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1]]), [0, 1])
        >>> len(b[0]), len(b[1])
        (0, 8)
    """
    flat = np.flatnonzero(edge_voxels(labels))
    ids = labels.reshape(-1)[flat]
    order = np.argsort(ids, kind="stable")
    flat, ids = flat[order], ids[order]
    wanted = np.asarray(sorted(set(int(c) for c in classes)), np.int64)
    starts = np.searchsorted(ids, wanted, "left")
    stops = np.searchsorted(ids, wanted, "right")
    return {
        int(c): np.stack(np.unravel_index(flat[a:b], labels.shape), -1)
        for c, a, b in zip(wanted, starts, stops, strict=True)
    }


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box of `mask`'s True voxels (None when there is none)."""
    boxes = _find_objects(mask) if mask.size else []
    return boxes[0] if boxes and boxes[0] is not None else None


def _find_objects(mask: np.ndarray):
    from scipy import ndimage

    return ndimage.find_objects(np.asarray(mask, bool).view(np.uint8))


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """int64 `[M, k]` boundary voxel indices of a bool mask, computed on its bounding box.

    Example:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> len(mask_boundary(m))
        8
    """
    box = bounding_box(mask)
    if box is None:
        return np.zeros((0, mask.ndim), np.int64)
    crop = mask[box]
    points = np.argwhere(crop & edge_voxels(crop))
    return points + np.asarray([s.start for s in box], np.int64)


# ----------------------------------------------------------------------------- distances


def nearest_distances(points: np.ndarray, others: np.ndarray, spacing: Sequence[float]):
    """float64 `[M]`: from each point to the nearest of `others`, in the spacing's units.

    Exact Euclidean: 0 for a point that is one of `others` (integer grid points: found by
    their flat index, no search), else a KD-tree query over `others` scaled by `spacing`;
    `+inf` where `others` is empty. The tree is built by sliding midpoints without node
    compaction (`balanced_tree=False, compact_nodes=False`): on the 117-class phantom's
    surfels, 1.5x faster to build and query than scipy's default, the same distances. One
    thread: parallel queries gained nothing on the 21-organ case and cost a thread start
    per lesion pair.

    Example:
        >>> nearest_distances(np.array([[0, 0], [3, 0]]), np.array([[0, 1]]), (2.0, 1.0)).tolist()
        [1.0, 6.082762530298219]
    """
    if len(points) == 0:
        return np.zeros(0)
    if len(others) == 0:
        return np.full(len(points), np.inf)
    from scipy.spatial import cKDTree

    distances = np.zeros(len(points))
    away = ~_shared(points, others)
    if away.any():
        scale = np.asarray(spacing, np.float64)
        tree = cKDTree(others * scale, balanced_tree=False, compact_nodes=False)
        distances[away] = tree.query(points[away] * scale, k=1)[0]
    return distances


def _shared(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """bool `[M]`: which of the integer `points` `[M, k]` are also among `others` `[N, k]`
    (all False for points that are not integers)."""
    if points.dtype.kind not in "iu" or others.dtype.kind not in "iu":
        return np.zeros(len(points), bool)
    low = np.minimum(points.min(0), others.min(0))
    dims = tuple(np.maximum(points.max(0), others.max(0)) - low + 1)
    flat = [np.ravel_multi_index((side - low).T, dims) for side in (points, others)]
    return np.isin(*flat)


# ----------------------------------------------------------------------------- measures


def _reduce(d_pred, w_pred, d_true, w_true, *, convention, percentile, tolerance) -> dict:
    """The convention's HD (or percentile), ASSD and NSD of one class, as floats."""
    from voxelmetrics.ops._host import on_host

    boundary_measures = _rules().boundary_measures

    # an empty boundary (length 0) is the rules' own case (`surface_rules._with_a_point`)
    with on_host():
        values = boundary_measures(
            d_pred,
            w_pred,
            d_true,
            w_true,
            convention=convention,
            percentile=percentile,
            tolerance=tolerance,
        )
    return {key: float(np.asarray(values[key])) for key in KEYS}


def _voxel_measures(p_pts, t_pts, spacing, convention, percentile, tolerance) -> dict:
    """Measures from two sets of boundary voxel indices (monai, medpy)."""
    d_pred = nearest_distances(p_pts, t_pts, spacing)
    d_true = nearest_distances(t_pts, p_pts, spacing)
    ones = np.ones
    return _reduce(
        d_pred,
        ones(len(d_pred)),
        d_true,
        ones(len(d_true)),
        convention=convention,
        percentile=percentile,
        tolerance=tolerance,
    )


def _check_convention(convention: str) -> str:
    from voxelmetrics.ops._options import check_convention

    return check_convention(convention)


def _uses_surfels(convention: str) -> bool:
    return _rules().uses_surfels(convention)


def _rules():
    from voxelmetrics.ops import surface_rules

    return surface_rules


def mask_measures(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    spacing: Sequence[float],
    convention: str = SURFACE_CONVENTION,
    percentile: float | None = 95.0,
    tolerance: float = 1.0,
) -> dict[str, float]:
    r"""HD (`percentile=None`) or HD at a percentile, ASSD and NSD of one pair of masks.

    $d(p, \partial T)$ for every point p of the predicted boundary and back; the points and
    the reductions are the convention's (`ops/surface_rules.py`; `monai`: voxel boundary,
    max of the directed percentiles, ASSD the mean of both directions' distances pooled,
    voxel-counting NSD; `medpy`: voxel boundary, percentile of the pooled distances, pooled
    ASSD as `monai`; `deepmind`: corner-grid surfels weighted by area, ASSD the mean of the
    two directed area-weighted means). Empty masks: both empty NaN; one empty HD/ASSD inf,
    NSD 0.

    Args:
        truth, pred: bool masks of one shape `[*spatial]` (any size: the work is done on
            the bounding box of `truth | pred`).
        spacing: the voxel size per axis.
        convention: `monai`, `deepmind` or `medpy`.
        percentile: the Hausdorff percentile (95: HD95), None for the maximum.
        tolerance: the NSD tolerance in the spacing's units.

    Returns:
        `{"hausdorff", "average_surface_distance", "surface_dice"}` as floats.

    Example:
        >>> t = np.zeros((1, 6), bool); t[0, 1] = True
        >>> p = np.zeros((1, 6), bool); p[0, 1:5] = True
        >>> m = mask_measures(t, p, spacing=(1.0, 1.0), percentile=None)
        >>> [m[k] for k in KEYS]
        [3.0, 1.2, 0.6]
    """
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    if truth.shape != pred.shape or len(spacing) != truth.ndim:
        raise ValueError(
            f"truth and pred must share one shape with one voxel size per axis; received "
            f"{truth.shape}, {pred.shape} and spacing {tuple(spacing)}."
        )
    convention = _check_convention(convention)
    box = bounding_box(truth | pred) or tuple(slice(0, 0) for _ in truth.shape)
    truth, pred = truth[box], pred[box]
    found = case_boundary_measures(
        Side(mask=lambda _: truth),
        Side(mask=lambda _: pred),
        [1],
        spacing=spacing,
        convention=convention,
        percentile=percentile,
        tolerance=tolerance,
    )
    return {key: found[1][key] for key in KEYS}


# ----------------------------------------------------------------------------- a whole case


# Tiles of the corner grid that DeepMind's surfels are computed on, `TILE` voxels a side.
# A tile is widened to TILE + 2: a surface takes about (TILE + 2)**3 / TILE**2 voxels per
# voxel of area (15.6 at 8, 13.5 at 4), a stray voxel a whole tile (1000 at 8, 216 at 4).
# On phantom (c), 117 classes with strays, the surfels of one side took 6.2 s at 8, 3.6 s
# at 4 and 3.5 s at 3.
TILE = 4


def near_surfels(padded: np.ndarray, c: int, voxels: np.ndarray, spacing):
    """DeepMind's surfels of `mask = padded == c`, computed only around its boundary
    voxels: `(corners int64 [S, k], areas float64 [S])`, corner `j` lying between voxels
    `j - 1` and `j` (the corner grid of the unpadded map).

    Exact: a corner is a surfel when the `2**k` voxels around it are mixed, and then one
    of them is a boundary voxel (a path of face steps from an inside to an outside voxel
    of that cube crosses the boundary inside it); so the tiles of `TILE**k` voxels that
    hold a boundary voxel, widened by one voxel, cover every surfel (`ops/surface_rules.py`
    `surfels` on each tile, duplicates on the tiles' shared faces dropped).

    Args:
        padded: the map padded with one non-`c` voxel before and `TILE + 1` after each axis.
        c: the class (True for a bool mask).
        voxels: int `[M, k]` the mask's boundary voxels (`edge_voxels`).
        spacing: the voxel size per axis.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    from voxelmetrics.ops._host import on_host
    from voxelmetrics.ops.surface_rules import surfels

    k = len(spacing)
    if not len(voxels):
        return np.zeros((0, k), np.int64), np.zeros(0)
    tiles = tuple(-(-n // TILE) for n in padded.shape)  # enough tiles to cover the map
    held = np.unique(np.ravel_multi_index((voxels // TILE).T, tiles))  # rows' sorted order
    starts = np.stack(np.unravel_index(held, tiles), -1) * TILE  # each tile's first voxel
    views = sliding_window_view(padded, (TILE + 2,) * k)  # window at s: voxels s-1 .. s+TILE
    windows = views[tuple(starts.T)] == c
    with on_host():
        points, areas = surfels(windows, tuple(spacing))
    inner = (slice(None),) + (slice(1, TILE + 2),) * k  # corners s .. s+TILE of each tile
    points, areas = np.asarray(points, bool)[inner], np.asarray(areas, np.float64)[inner]
    tile, *local = np.nonzero(points)
    corners = starts[tile] + np.stack(local, -1)
    grid = tuple(n - TILE for n in padded.shape)  # the unpadded map's corner grid: n + 1
    _, first = np.unique(np.ravel_multi_index(corners.T, grid), return_index=True)
    return corners[first], areas[points][first]


def _padded(array: np.ndarray, fill) -> np.ndarray:
    """`array` padded by one `fill` voxel before and `TILE + 1` after each axis."""
    return np.pad(array, [(1, TILE + 1)] * array.ndim, constant_values=fill)


def _fill_value(labels: np.ndarray, classes: Sequence[int]):
    """A value of `labels`' dtype that is none of `classes` (the outside of the volume)."""
    info = np.iinfo(labels.dtype) if labels.dtype.kind in "iu" else None
    taken = set(int(c) for c in classes)
    for value in (-1, 0, max(taken, default=0) + 1):
        if value not in taken and (info is None or info.min <= value <= info.max):
            return value
    raise ValueError(f"no label value outside the {len(taken)} classes fits {labels.dtype}")


class Side:
    """One side of a case (prediction or truth): each class's boundary voxels, and its
    surfels near them.

    Either a label map `[*spatial]` (the boundaries of all its classes found in one pass)
    or a per-class mask function `mask(c) -> bool [*spatial]` (one class at a time; the
    last class's mask is kept for its surfels).
    """

    def __init__(self, *, labels: np.ndarray | None = None, mask: Callable | None = None):
        self.labels, self._mask = labels, mask
        self._found: dict[int, np.ndarray] = {}
        self._last: tuple[int, np.ndarray] | None = None
        self._padded: np.ndarray | None = None

    def prepare(self, classes: Sequence[int]) -> None:
        """Find the boundaries of every class of a label map at once."""
        if self.labels is not None:
            self._found = label_boundaries(self.labels, classes)
            self._classes = list(classes)

    def _class_mask(self, c: int) -> np.ndarray:
        if self._last is None or self._last[0] != c:
            self._last = (c, np.asarray(self._mask(c), bool))
        return self._last[1]

    def boundary(self, c: int) -> np.ndarray:
        """int64 `[M, k]`: the boundary voxels of class c."""
        if self.labels is not None:
            return self._found[c]
        return mask_boundary(self._class_mask(c))

    def surfels(self, c: int, spacing) -> tuple[np.ndarray, np.ndarray]:
        """`(corners [S, k], areas [S])`: DeepMind's surfels of class c (`near_surfels`)."""
        if self.labels is not None:
            if self._padded is None:  # once per case: the map with an outside
                fill = _fill_value(self.labels, self._classes)
                self._padded = _padded(self.labels, fill)
            return near_surfels(self._padded, c, self.boundary(c), spacing)
        padded = _padded(self._class_mask(c), False)
        return near_surfels(padded, True, self.boundary(c), spacing)


def case_boundary_measures(
    truth: Side,
    pred: Side,
    classes: Sequence[int],
    *,
    spacing: Sequence[float],
    convention: str = SURFACE_CONVENTION,
    percentile: float | None = 95.0,
    tolerance: Callable[[int], float] | float = 1.0,
    check: Callable[[], None] | None = None,
) -> dict[int, dict[str, float]]:
    """`{c: {"hausdorff", "average_surface_distance", "surface_dice", "missed"}}` per class
    (`missed`: exactly one side has no voxel of the class).

    Args:
        truth, pred: the two sides (`Side`).
        classes: the class ids to measure (the others are not touched).
        spacing: the voxel size per spatial axis.
        convention, percentile: as `mask_measures`.
        tolerance: the NSD tolerance, or `tolerance(c)` per class.
        check: called before each class (the CLI stops there after Ctrl-C).
    """
    convention = _check_convention(convention)
    tol = tolerance if callable(tolerance) else (lambda c: float(tolerance))
    truth.prepare(classes)
    pred.prepare(classes)
    out = {}
    for c in classes:
        if check is not None:
            check()
        t_pts, p_pts = truth.boundary(c), pred.boundary(c)
        missed = (len(t_pts) == 0) != (len(p_pts) == 0)
        if _uses_surfels(convention):
            (t_pts, t_area), (p_pts, p_area) = truth.surfels(c, spacing), pred.surfels(c, spacing)
            out[c] = _reduce(
                nearest_distances(p_pts, t_pts, spacing),
                p_area,
                nearest_distances(t_pts, p_pts, spacing),
                t_area,
                convention=convention,
                percentile=percentile,
                tolerance=tol(c),
            )
        else:
            out[c] = _voxel_measures(p_pts, t_pts, spacing, convention, percentile, tol(c))
        out[c]["missed"] = missed
    return out
