"""What a loaded partial must hold before `merge` uses any of it.

A partial is a file from another process, another machine or another day: its arrays are
checked against its own metadata (dtype, shape, sign, finiteness) before a single number
is used, so a tampered or damaged file is refused with its name instead of hanging the
exact readout (a negative count) or reaching the report as NaN.
"""

import json
import math

import numpy as np

from voxelmetrics.evaluate.surface import MEASURES, MISSED
from voxelmetrics.ops._options import check_threshold_values

# The arrays `--lesions` adds.
LESION_ARRAYS = ("lesion_counts", "lesion_rows")
# The arrays each prediction kind writes (`save_partial`); `surface` comes with `--surface`.
KIND_ARRAYS = {
    "scores": ("threshold", "counts", "histogram"),
    "masks": ("threshold", "counts"),
    "labels": ("threshold", "counts", "matrix"),
}
# Measures of a length (NaN: no boundary on either side; inf: on one side only); NSD is a
# fraction of boundary in [0, 1].
_FRACTIONS = ("nsd", MISSED)  # MISSED: 1 where a class was missed on one side


class PartialProblem(ValueError):
    """What is wrong with a partial's content (the caller names the file)."""


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise PartialProblem(problem)


def _check_array(arrays: dict, name: str, dtype, shape: tuple) -> np.ndarray:
    """`arrays[name]` of exactly `dtype` and `shape` (None in `shape`: any length >= 1)."""
    array = arrays[name]
    _expect(
        array.dtype == np.dtype(dtype),
        f"array {name!r} has dtype {array.dtype}; expected {np.dtype(dtype)}",
    )
    fits = len(array.shape) == len(shape) and all(
        s >= 1 if want is None else s == want for s, want in zip(array.shape, shape, strict=True)
    )
    wanted = "[" + ", ".join("c" if s is None else str(s) for s in shape) + "]"
    _expect(fits, f"array {name!r} has shape {list(array.shape)}; expected {wanted}")
    return array


def _check_counts(array: np.ndarray, name: str) -> None:
    negative = array < 0
    if negative.any():
        raise PartialProblem(
            f"array {name!r} holds a negative count ({int(array[negative].flat[0])} at index "
            f"{tuple(int(i) for i in np.argwhere(negative)[0])}); counts are >= 0"
        )


def _in_threshold_range(threshold: np.ndarray) -> bool:
    """Whether every value of `threshold` `[C]` passes the ops' threshold rule (in [0, 1])."""
    try:
        check_threshold_values(threshold)
    except ValueError:
        return False
    return True


def check_cases(meta: dict) -> None:
    """The case entries of the metadata: each index once, inside the dataset, named as the
    dataset's case at that index, with a voxel grid of positive lengths."""
    dataset, seen = meta["dataset"], set()
    _expect(
        isinstance(dataset, list)
        and all(isinstance(entry, list) and len(entry) == 5 for entry in dataset),
        "its dataset is not a list of [name, pred, true, pred bytes, true bytes]",
    )
    index, count = meta["shard"]
    _expect(
        isinstance(index, int) and isinstance(count, int) and 0 <= index < count,
        f"shard {meta['shard']} is not I/N with 0 <= I < N",
    )
    for case in meta["cases"]:
        i = case["index"]
        _expect(
            isinstance(i, int) and 0 <= i < len(dataset) and i not in seen,
            f"case index {i!r} is not a new index in [0, {len(dataset)})",
        )
        seen.add(i)
        _expect(
            case["name"] == dataset[i][0],
            f"case {i} is named {case['name']!r}, but the run's case {i} is {dataset[i][0]!r}",
        )
        grid = case["grid_shape"]
        _expect(
            all(isinstance(s, int) and s >= 1 for s in grid),
            f"case {i} has voxel grid {grid}; expected positive lengths",
        )


def check_arrays(meta: dict, arrays: dict) -> None:
    """Raise `PartialProblem` unless `arrays` are what `save_partial` writes for `meta`.

    With n cases, C classes, B bins and M boundary measures: `threshold` float32 `[C]` in
    [0, 1]; `counts` int64 `[n, C, 4]` >= 0, each class's total at most the case's voxels;
    `histogram` int64 `[n, C, B, 2]` >= 0 (scores); `matrix` int64 `[n, C, C]` >= 0 (label
    maps); `surface` float64 `[n, M, C]`: NaN or >= 0 (inf allowed: one boundary empty),
    NSD <= 1, and finite wherever the class has a true positive (both boundaries exist).
    A shard without cases holds no array.
    """
    n, kind, measures = len(meta["cases"]), meta["pred_kind"], meta["surface"]
    if n == 0:
        _expect(not arrays, f"holds arrays {sorted(arrays)} but no case")
        return
    _expect(kind in KIND_ARRAYS, f"prediction kind {kind!r} is not one of {sorted(KIND_ARRAYS)}")
    lesions = meta["options"].get("lesions") is not None
    expected = set(KIND_ARRAYS[kind]) | ({"surface"} if measures is not None else set())
    expected |= set(LESION_ARRAYS) if lesions else set()
    _expect(
        set(arrays) == expected,
        f"holds arrays {sorted(arrays)}; a {kind} partial holds {sorted(expected)}",
    )
    threshold = _check_array(arrays, "threshold", np.float32, (None,))
    _expect(
        _in_threshold_range(threshold),
        f"array 'threshold' holds {threshold.tolist()}; expected values in [0, 1]",
    )
    c = threshold.shape[0]
    counts = _check_array(arrays, "counts", np.int64, (n, c, 4))
    _check_counts(counts, "counts")
    for case, totals in zip(meta["cases"], counts.sum(-1), strict=True):
        voxels = math.prod(case["grid_shape"])
        _expect(
            bool(np.all(totals <= voxels)),
            f"case {case['index']} counts {int(totals.max())} voxels in a class, more than its "
            f"grid {case['grid_shape']} holds",
        )
    if kind == "scores":
        bins = meta["options"]["num_bins"]
        _check_counts(_check_array(arrays, "histogram", np.int64, (n, c, bins, 2)), "histogram")
    if kind == "labels":  # with --regions the matrix is over the labels, not the regions
        labels = None if meta["options"].get("regions") else c
        matrix = _check_array(arrays, "matrix", np.int64, (n, labels, labels))
        _expect(
            matrix.shape[1] == matrix.shape[2],
            f"array 'matrix' has shape {list(matrix.shape)}; expected square matrices",
        )
        _check_counts(matrix, "matrix")
    if measures is not None:
        request = meta["options"].get("surface") or {}
        _check_surface(arrays, measures, counts, request.get("exclude", ()))
    if lesions:
        _check_lesions(arrays, n)


def _check_lesions(arrays: dict, n: int) -> None:
    """`lesion_counts` float64 `[n, C, F]`, NaN or >= 0; `lesion_rows` uint8 `[L]`, the
    bytes of a JSON list of n cases' rows."""
    from voxelmetrics.evaluate.lesions import FIELDS

    counts = _check_array(arrays, "lesion_counts", np.float64, (n, None, len(FIELDS)))
    _expect(
        not bool(np.any(counts < 0)),
        "array 'lesion_counts' holds a negative value; expected NaN or >= 0",
    )
    raw = _check_array(arrays, "lesion_rows", np.uint8, (None,))
    try:
        rows = json.loads(bytes(raw).decode())
    except (UnicodeDecodeError, ValueError):
        rows = None
    _expect(
        isinstance(rows, list) and len(rows) == n,
        f"array 'lesion_rows' is not a JSON list of {n} cases' lesion rows",
    )


def _check_surface(arrays: dict, measures, counts: np.ndarray, not_measured=()) -> None:
    names = (*MEASURES, MISSED)
    _expect(
        isinstance(measures, list)
        and all(m in names for m in measures)
        and len(set(measures)) == len(measures),
        f"surface measures {measures!r} are not distinct names of {', '.join(names)}",
    )
    n, c, _ = counts.shape
    surface = _check_array(arrays, "surface", np.float64, (n, len(measures), c))
    for m, name in enumerate(measures):
        values = surface[:, m]
        top = 1.0 if name in _FRACTIONS else np.inf
        outside = ~np.isnan(values) & ~((values >= 0) & (values <= top))
        if outside.any():
            raise PartialProblem(
                f"surface {name} holds {values[outside].flat[0]}; expected NaN or a value in "
                f"[0, {top}]"
            )
        # A true positive means both boundaries exist: the measure is a finite number.
        undefined = (counts[..., 0] > 0) & ~np.isfinite(values)
        undefined[:, [k for k in not_measured if 0 <= k < c]] = False  # --exclude: NaN
        if undefined.any():
            case, cls = (int(i) for i in np.argwhere(undefined)[0])
            raise PartialProblem(
                f"surface {name} is {values[case, cls]} for the partial's case {case}, class "
                f"{cls}, which has {int(counts[case, cls, 0])} true positive voxel(s): both "
                f"boundaries exist, so it must be a finite number"
            )
