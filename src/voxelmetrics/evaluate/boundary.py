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


def _union_box(*points: np.ndarray) -> tuple[slice, ...] | None:
    """The box of the union of several point sets `[M, k]` (None when all are empty)."""
    filled = [p for p in points if len(p)]
    if not filled:
        return None
    lo = np.min([p.min(0) for p in filled], 0)
    hi = np.max([p.max(0) for p in filled], 0)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))


# ----------------------------------------------------------------------------- distances


def nearest_distances(points: np.ndarray, others: np.ndarray, spacing: Sequence[float]):
    """float64 `[M]`: from each point to the nearest of `others`, in the spacing's units.

    Exact Euclidean (a KD-tree over `others` scaled by `spacing`); `+inf` where `others` is
    empty.

    Example:
        >>> nearest_distances(np.array([[0, 0], [3, 0]]), np.array([[0, 1]]), (2.0, 1.0)).tolist()
        [1.0, 6.082762530298219]
    """
    if len(points) == 0:
        return np.zeros(0)
    if len(others) == 0:
        return np.full(len(points), np.inf)
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing, np.float64)
    tree = cKDTree(others * scale)
    return tree.query(points * scale, k=1)[0]


# ----------------------------------------------------------------------------- measures


def _reduce(d_pred, w_pred, d_true, w_true, *, convention, percentile, tolerance) -> dict:
    """The convention's HD (or percentile), ASSD and NSD of one class, as floats."""
    from voxelmetrics.ops._host import on_host

    boundary_measures = _rules().boundary_measures

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


def _surfel_points(mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """`(indices [M, k] on the corner grid of mask, areas [M])` of DeepMind's surfels."""
    from voxelmetrics.ops._host import on_host
    from voxelmetrics.ops.surface_rules import surfels

    with on_host():
        points, areas = surfels(mask, tuple(spacing))
    points = np.asarray(points, bool)
    return np.argwhere(points), np.asarray(areas, np.float64)[points]


def _surfel_measures(truth_crop, pred_crop, spacing, percentile, tolerance) -> dict:
    """DeepMind's measures from two masks cropped to one box (the corner grid is shared)."""
    t_pts, t_area = _surfel_points(truth_crop, spacing)
    p_pts, p_area = _surfel_points(pred_crop, spacing)
    return _reduce(
        nearest_distances(p_pts, t_pts, spacing),
        p_area,
        nearest_distances(t_pts, p_pts, spacing),
        t_area,
        convention="deepmind",
        percentile=percentile,
        tolerance=tolerance,
    )


def _check_convention(convention: str) -> str:
    return _rules().check_convention(convention)


def _uses_surfels(convention: str) -> bool:
    return _rules().uses_surfels(convention)


def _rules():
    """`ops/surface_rules.py` (helper `conventions`); until it is merged, MONAI's rules."""
    import importlib.util

    if importlib.util.find_spec("voxelmetrics.ops.surface_rules") is not None:
        from voxelmetrics.ops import surface_rules

        return surface_rules
    return _InterimMonai


class _InterimMonai:
    """TEMPORARY (removed once `ops/surface_rules.py` is merged): MONAI's reductions."""

    @staticmethod
    def check_convention(convention):
        if convention != "monai":
            raise ValueError(f"convention must be 'monai' for now; received {convention!r}.")
        return convention

    @staticmethod
    def uses_surfels(convention):
        return False

    @staticmethod
    def boundary_measures(d_pred, w_pred, d_true, w_true, *, convention, percentile, tolerance):
        n_p, n_t = len(d_pred), len(d_true)
        if n_p == 0 and n_t == 0:
            return dict.fromkeys(KEYS, np.nan)
        if n_p == 0 or n_t == 0:
            return {"hausdorff": np.inf, "average_surface_distance": np.inf, "surface_dice": 0.0}

        def directed(d):
            return d.max() if percentile is None else np.percentile(d, percentile)

        both = np.concatenate([d_pred, d_true])
        return {
            "hausdorff": max(directed(d_pred), directed(d_true)),
            "average_surface_distance": both.mean(),
            "surface_dice": (both <= tolerance).sum() / both.size,
        }


def mask_measures(
    truth: np.ndarray,
    pred: np.ndarray,
    *,
    spacing: Sequence[float],
    convention: str = "monai",
    percentile: float | None = 95.0,
    tolerance: float = 1.0,
) -> dict[str, float]:
    r"""HD (`percentile=None`) or HD at a percentile, ASSD and NSD of one pair of masks.

    $d(p, \partial T)$ for every point p of the predicted boundary and back; the points and
    the reductions are the convention's (`monai`: voxel boundary, max of the directed
    percentiles, pooled ASSD, voxel-counting NSD; `medpy`: voxel boundary, percentile of
    the pooled distances, mean of the directed means; `deepmind`: corner-grid surfels
    weighted by area). Empty masks: both empty NaN; one empty HD/ASSD inf, NSD 0.

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
    if _uses_surfels(convention):
        return _surfel_measures(truth, pred, spacing, percentile, tolerance)
    return _voxel_measures(
        mask_boundary(pred), mask_boundary(truth), spacing, convention, percentile, tolerance
    )


# ----------------------------------------------------------------------------- a whole case


class Side:
    """One side of a case (prediction or truth): how to get each class's mask and boundary.

    Either a label map `[*spatial]` (boundaries of all classes found in one pass, on first
    use) or a per-class mask function `mask(c) -> bool [*spatial]` (one class at a time).
    """

    def __init__(self, *, labels: np.ndarray | None = None, mask: Callable | None = None):
        self.labels, self._mask, self._edges = labels, mask, None

    def mask(self, c: int, box: tuple[slice, ...] | None = None) -> np.ndarray:
        """bool mask of class c (cropped to `box`)."""
        if self.labels is not None:
            return (self.labels if box is None else self.labels[box]) == c
        full = self._mask(c)
        return full if box is None else full[box]

    def boundaries(self, classes: Sequence[int]) -> Callable[[int], np.ndarray]:
        """`boundary(c) -> int64 [M, k]` for the classes measured."""
        if self.labels is not None:
            found = label_boundaries(self.labels, classes)
            return found.__getitem__
        return lambda c: mask_boundary(self._mask(c))


def case_boundary_measures(
    truth: Side,
    pred: Side,
    classes: Sequence[int],
    *,
    spacing: Sequence[float],
    convention: str = "monai",
    percentile: float | None = 95.0,
    tolerance: Callable[[int], float] | float = 1.0,
    check: Callable[[], None] | None = None,
) -> dict[int, dict[str, float]]:
    """`{c: {"hausdorff", "average_surface_distance", "surface_dice"}}` for each class.

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
    true_edges, pred_edges = truth.boundaries(classes), pred.boundaries(classes)
    out = {}
    for c in classes:
        if check is not None:
            check()
        t_pts, p_pts = true_edges(c), pred_edges(c)
        if _uses_surfels(convention):
            box = _union_box(t_pts, p_pts) or tuple(slice(0, 0) for _ in spacing)
            out[c] = _surfel_measures(
                truth.mask(c, box), pred.mask(c, box), spacing, percentile, tol(c)
            )
        else:
            out[c] = _voxel_measures(p_pts, t_pts, spacing, convention, percentile, tol(c))
    return out
