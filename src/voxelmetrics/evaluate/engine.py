"""The streaming engine: per-case confusion counts and score histograms, chunk by chunk.

Each case is read in slabs of a fixed shape along one voxel axis (the last slab is padded
and masked), so one compiled kernel serves every chunk and memory is bounded by the chunk
budget. Totals are kept on the host in numpy int64, exact for any volume size.
"""

import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor

import keras
import numpy as np
from keras import ops

import voxelmetrics.defaults as defaults
from voxelmetrics.backends import compile_kernel
from voxelmetrics.evaluate.lesions import CaseLesions, LesionRequest, lesions_of_case
from voxelmetrics.evaluate.readers import (
    InputError,
    InputWarning,
    Volume,
    open_volume,
    pair_cases,
)
from voxelmetrics.evaluate.regions import Regions, region_counts
from voxelmetrics.evaluate.surface import SurfaceRequest, case_measures
from voxelmetrics.evaluate.whole_case import read_case
from voxelmetrics.ops._inputs import InputSpec, check_inputs
from voxelmetrics.ops._options import check_threshold_values
from voxelmetrics.ops.counting import counts_from_confusion_matrix
from voxelmetrics.ops.fused import counts_and_histogram
from voxelmetrics.ops.labels import label_confusion_matrix

MB = 2**20
DEFAULT_CHUNK_MB = defaults.CHUNK_MB
# Bytes of working memory per score element of a chunk beyond its own buffers (device copies,
# float32 scores, int32 bin ids, bool temporaries): measured on the JAX CPU backend as the
# growth of peak RSS per element between chunks of 1 and 92 rows of 128x128x4 scores. On top
# comes a fixed overhead of about 64 MiB (allocator arenas of XLA's threads), not a per-chunk cost.
KERNEL_BYTES_PER_ELEMENT = 40
# More classes than this, or at least SPATIAL_CLASSES and as many as a voxel axis is long,
# suggests that the class axis is a spatial one (a wrong `axis`).
PLAUSIBLE_CLASSES = 64
SPATIAL_CLASSES = 16
PRED_KINDS = defaults.PRED_KINDS
HARD_KINDS = ("labels", "masks")
# Label maps without a given class count are counted in a matrix this wide (every uint8
# id), then cut to the largest id seen + 1 in either map.
MAX_INFERRED_CLASSES = 256
NO_CURVES = "hard predictions rank nothing: no curves, AP, AUC or optimal thresholds"

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class Options:
    """How to read and score a dataset (everything the engine needs, nothing the report does).

    Attributes:
        threshold: the working threshold, scalar or one per class (score >= threshold).
        num_bins: histogram bins on [0, 1] for curves, AP, AUC and optimal thresholds.
        from_logits: scores are logits (sigmoid for multi-hot truth, softmax for sparse).
        axis: the class axis of the prediction volumes (1 or 0 for channels-first).
        num_classes: expected number of classes (checked), or None to take it from the data.
        ignore_index: sparse label id whose voxels are skipped.
        chunk_mb: memory budget of one chunk, in MiB (buffers and kernel temporaries).
        pred_key, true_key: the array to read from `.npz` archives holding several.
        devices: under JAX, spread the cases over this many local devices (0: all of
            them), one reader thread per device; each case stays on one device and the
            totals are summed on the host. Memory grows to one chunk budget per device.
        num_classes_from: what to call `num_classes` in messages (the CLI names the option
            it came from, `--num-classes 3` or `--class-names (3 names)`).
        pred_kind: what the predictions are: `scores` (probabilities or logits, with a
            class axis), `labels` (an integer label map of the truth's shape: exclusive
            classes), `masks` (0/1 or bool multi-hot masks with a class axis), or `auto`:
            bool means masks, another integer dtype a label map, floats scores (a float
            array of only 0 and 1 stays scores unless `masks` is said; uint8 multi-hot
            masks of the truth's shape need `masks`, as a label map has that shape too).
        surface: the boundary measures to add per case and class (`--surface`), or None.
        spacing: the voxel size per spatial axis for them (`--spacing`); None reads it from
            NIfTI headers, else 1.0.
    """

    threshold: float | tuple[float, ...] = defaults.THRESHOLD
    num_bins: int = defaults.NUM_BINS
    from_logits: bool = False
    axis: int = -1
    num_classes: int | None = None
    ignore_index: int | None = None
    chunk_mb: float = DEFAULT_CHUNK_MB
    pred_key: str | None = None
    true_key: str | None = None
    devices: int = 1
    num_classes_from: str = "num_classes"
    pred_kind: str = defaults.PRED_KIND
    surface: SurfaceRequest | None = None
    spacing: tuple[float, ...] | None = None
    lesions: LesionRequest | None = None  # `--lesions`: see evaluate/lesions.py
    regions: Regions | None = None  # `--regions`: see evaluate/regions.py


@dataclasses.dataclass
class CaseTotals:
    """Exact totals of one case.

    Attributes:
        name: the case name (file name without suffix).
        pred, true: where the volumes came from.
        grid_shape: the voxel grid (the prediction's shape without its class axis).
        counts: int64 `[C, 4]`, columns `tp, fp, fn, tn` at the working threshold (of
            the hard prediction itself for label maps and masks).
        histogram: int64 `[C, B, 2]`, negatives and positives per score bin; None for
            hard predictions (they rank nothing).
        matrix: label maps only: int64 `[C, C]` confusion matrix, rows truth.
        surface: `{measure: float64 [C]}` boundary measures (`Options.surface`), or None.
    """

    name: str
    pred: str
    true: str
    grid_shape: tuple[int, ...]
    counts: np.ndarray | None
    histogram: np.ndarray | None
    matrix: np.ndarray | None = None
    surface: dict[str, np.ndarray] | None = None
    lesions: CaseLesions | None = None  # `--lesions`: see evaluate/lesions.py


@dataclasses.dataclass
class Evaluation:
    """What `evaluate` returns: the options, the threshold per class, and each case's totals."""

    options: Options
    threshold: np.ndarray
    cases: list[CaseTotals]
    pred_kind: str = "scores"

    @property
    def hard(self) -> bool:
        """The predictions were label maps or masks: counts only, no histograms."""
        return self.pred_kind in HARD_KINDS

    @property
    def num_classes(self) -> int:
        return self.threshold.shape[0]

    @property
    def counts(self) -> np.ndarray:
        """Pooled int64 `[C, 4]`: the sum over cases."""
        return np.sum([c.counts for c in self.cases], axis=0)

    @property
    def histogram(self) -> np.ndarray | None:
        """Pooled int64 `[C, B, 2]`: the sum over cases (None for hard predictions)."""
        if self.hard:
            return None
        return np.sum([c.histogram for c in self.cases], axis=0)


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How one case is cut: `rows` entries of `pred_axis` (`true_axis` in truth) per chunk."""

    pred_axis: int
    true_axis: int
    rows: int
    length: int

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.length / self.rows)


def _symbolic(volume: Volume):
    return keras.KerasTensor(volume.shape, dtype=str(volume.dtype))


def pred_kind(pred: Volume, true: Volume, requested: str = "auto") -> str:
    """What the prediction is: `scores`, `labels` or `masks` (see `Options.pred_kind`).

    Raises:
        InputError: `requested` is not one of `PRED_KINDS`, or a label map whose shape is not
            the truth's.
    """
    if requested not in PRED_KINDS:
        raise InputError(
            f"pred_kind={requested!r}", f"expected one of {', '.join(PRED_KINDS)} (--pred-kind)."
        )
    kind = requested
    if kind == "auto":
        dtype = np.dtype(pred.dtype)
        kind = "masks" if dtype.kind == "b" else "labels" if dtype.kind in "iu" else "scores"
    if kind == "labels" and pred.shape != true.shape:
        raise InputError(
            f"{pred.path} vs {true.path}",
            f"a label map (integer {pred.dtype}) must have the truth's shape {true.shape}; it has "
            f"{pred.shape}. Pass --pred-kind masks for multi-hot masks with a class axis.",
        )
    return kind


def case_spec(pred: Volume, true: Volume, options: Options, kind: str = "scores") -> InputSpec:
    """Check a pair's shapes (not values) through the one validation funnel of the ops.

    A label map has no class axis: its spec places the class axis after the last voxel
    axis (`ndim = rank + 1`), with `num_classes` as given (or `MAX_INFERRED_CLASSES`).

    Raises:
        InputError naming both files: shape mismatch (including multi-hot truth with another
        number of classes), bad axis.
    """
    if kind == "labels":
        rank = len(true.shape)
        c = options.num_classes or MAX_INFERRED_CLASSES
        return InputSpec(rank + 1, rank, c, True, "none", options.ignore_index, False, True)
    try:
        return check_inputs(
            _symbolic(true),
            _symbolic(pred),
            axis=options.axis,
            from_logits=options.from_logits,
            mask=keras.KerasTensor((1,), dtype="bool"),
            ignore_index=options.ignore_index,
        )
    except ValueError as e:
        raise InputError(f"{pred.path} vs {true.path}", f"the volumes do not match: {e}") from None


def _row_bytes(pred: Volume, true: Volume, axis: int, true_axis: int) -> int:
    """Bytes of working memory of a one-entry slab on `axis`: buffers and kernel temporaries."""
    elements = math.prod(pred.shape) // pred.shape[axis]
    true_bytes = math.prod(true.shape) // true.shape[true_axis] * true.dtype.itemsize
    return elements * (pred.dtype.itemsize + KERNEL_BYTES_PER_ELEMENT) + true_bytes


def plan_chunks(pred: Volume, true: Volume, spec: InputSpec, chunk_mb: float) -> ChunkPlan:
    """Chunk along a voxel axis so that one chunk's memory fits `chunk_mb`.

    The axis is the first voxel axis (not the class axis) whose one-entry slab fits the
    budget, so length-1 axes and a leading class axis are passed over; when none fits,
    the one with the smallest slab. "First" is in the prediction's storage order: the
    outermost axis of a C-order array, the last axis of a Fortran-order one (NIfTI), so
    that a slab is read in long runs. Per score element a chunk holds its prediction
    buffer, its share of the truth buffer, and `KERNEL_BYTES_PER_ELEMENT` of kernel
    temporaries; at least one entry is always read.
    """
    budget = chunk_mb * MB
    sparse_true = len(true.shape) < len(pred.shape)
    candidates = []
    axes = [a for a in range(len(pred.shape)) if a != spec.axis]
    for axis in reversed(axes) if pred.fortran else axes:
        true_axis = axis - (sparse_true and spec.axis < axis)
        candidates.append((axis, true_axis, _row_bytes(pred, true, axis, true_axis)))
    if not candidates:
        raise InputError(pred.path, f"has shape {pred.shape}: a class axis but no voxel axes.")
    fitting = [c for c in candidates if c[2] <= budget]
    axis, true_axis, row_bytes = fitting[0] if fitting else min(candidates, key=lambda c: c[2])
    length = pred.shape[axis]
    rows = int(min(length, max(1, budget // row_bytes)))
    return ChunkPlan(axis, true_axis, rows, length)


def check_histogram_budget(num_classes: int, num_bins: int, num_cases: int, chunk_mb: float):
    """Raise `InputError` before allocating when the histograms kept (one int64 `[C, B, 2]`
    per case, and the pooled one) exceed the chunk budget, or the default budget if larger:
    a small budget bounds the slabs, not the report's resolution."""
    need = (num_cases + 1) * num_classes * num_bins * 2 * np.dtype(np.int64).itemsize
    allowed = max(chunk_mb, DEFAULT_CHUNK_MB)
    if need > allowed * MB:
        raise InputError(
            f"num_bins={num_bins}",
            f"the histograms of {num_cases} case(s) x {num_classes} classes x {num_bins} bins "
            f"need {need / MB:,.0f} MiB, more than the budget of {allowed:g} MiB "
            f"(max of chunk_mb and {DEFAULT_CHUNK_MB:g}); use fewer bins (--num-bins).",
        )


def implausible_class_axis(spec: InputSpec, shape: tuple[int, ...]) -> bool:
    """True when the class axis looks like a voxel axis: too many classes, or as many as
    a voxel axis is long."""
    grid = [s for a, s in enumerate(shape) if a != spec.axis]
    c = spec.num_classes
    return c > PLAUSIBLE_CLASSES or (c >= SPATIAL_CLASSES and c in grid)


def _chunk_kernel(y_true, y_pred, threshold, mask, *, axis, from_logits, ignore_index, num_bins):
    """Counts, histogram and invalid tally of one chunk, from one pass when it can.

    One compiled program under JAX; `counts_and_histogram` reads the counts off the
    histogram when the thresholds are bin edges.
    """
    return counts_and_histogram(
        y_true,
        y_pred,
        threshold,
        num_bins,
        from_logits=from_logits,
        axis=axis,
        mask=mask,
        ignore_index=ignore_index,
        with_invalid=True,
    )


_compiled_chunk = compile_kernel(
    _chunk_kernel, static_argnames=("axis", "from_logits", "ignore_index", "num_bins")
)


def _first(flags: np.ndarray, offset: int, axis: int) -> tuple[int, ...]:
    index = list(np.unravel_index(int(np.argmax(flags)), flags.shape))
    index[axis] += offset
    return tuple(int(i) for i in index)


def check_scores(scores: np.ndarray, *, from_logits: bool, path: str, offset: int, axis: int):
    """Raise `InputError` on NaN scores, or probabilities outside [0, 1] without logits.

    Two reductions (min, max; NaN propagates through both) on the happy path; the
    diagnosis with counts and the first index (in file coordinates) only on failure.
    """
    low, high = scores.min(), scores.max()
    if not (np.isnan(low) or np.isnan(high)) and (from_logits or (low >= 0 and high <= 1)):
        return
    nan = np.isnan(scores)
    if nan.any():
        raise InputError(
            path,
            f"holds NaN scores, the first at index {_first(nan, offset, axis)}; every score "
            f"must be a number.",
        )
    outside = (scores < 0) | (scores > 1)
    if scores.dtype.kind in "biu":
        advice = (
            "integer values look like a label map: pass --pred-kind labels (or are PRED and "
            "TRUE swapped? predictions come first)"
        )
    elif low >= 0 and np.array_equal(scores, np.floor(scores)):  # whole floats: label ids
        advice = (
            f"whole numbers from 0 to {high:.6g} look like a label map stored as {scores.dtype}: "
            f"pass --pred-kind labels (--from-logits if these are logits)"
        )
    else:
        advice = "pass --from-logits if these are logits"
    raise InputError(
        path,
        f"holds scores outside [0, 1], the first at index {_first(outside, offset, axis)} "
        f"(e.g. {scores[outside].flat[0]:.6g}); {advice}.",
    )


def check_labels(
    labels: np.ndarray,
    *,
    sparse: bool,
    num_classes: int,
    ignore_index: int | None,
    path: str,
    offset: int,
    axis: int,
    ignorable: bool = True,
):
    """Raise `InputError` unless multi-hot labels are 0/1 and sparse ids lie in `[0, C)`.

    `ignorable`: `--ignore-index` applies to these labels (the truth's, not a predicted
    label map's), so a negative id gets that advice.
    """
    if labels.dtype == bool:
        return
    low, high = labels.min(), labels.max()
    integral = labels.dtype.kind in "iu" or np.array_equal(labels, np.floor(labels))
    top = num_classes - 1 if sparse else 1
    if integral and low >= 0 and high <= top:
        return
    if not integral:
        bad = labels != np.floor(labels)
        raise InputError(
            path,
            f"holds non-integer labels (e.g. {labels[bad].flat[0]} at index "
            f"{_first(bad, offset, axis)}); expected {'class ids' if sparse else '0 and 1'}. "
            f"If these are scores, PRED and TRUE are swapped: predictions come first.",
        )
    bad = (labels < 0) | (labels > top)
    if ignore_index is not None and sparse:
        bad &= labels != ignore_index
        if not bad.any():
            return
    what = f"class ids in [0, {num_classes})" if sparse else "multi-hot labels of 0 and 1"
    advice = negative_ids_advice(labels[bad & (labels < 0)], ignorable) if sparse else ""
    raise InputError(
        path,
        f"holds {int(bad.sum())} label(s) that are not {what} (e.g. {labels[bad].flat[0]} at "
        f"index {_first(bad, offset, axis)}); the prediction has {num_classes} classes"
        f"{'; ' + advice if advice else ''}.",
    )


def negative_ids_advice(negative: np.ndarray, ignorable: bool) -> str:
    """What to do about the negative ids of a label map ("" when there are none): the
    truth's may be skipped with `--ignore-index`, a prediction holds class ids only.

    Example:
        >>> negative_ids_advice(np.array([-1, -1]), ignorable=True)
        'a negative id is no class: pass --ignore-index -1 to skip its voxels'
    """
    if not negative.size:
        return ""
    if ignorable:
        return (
            f"a negative id is no class: pass --ignore-index {negative.flat[0]} to skip its voxels"
        )
    return "a predicted label map holds class ids only (--ignore-index skips truth voxels)"


def _slab_shape(shape: tuple[int, ...], axis: int, rows: int) -> tuple[int, ...]:
    return (*shape[:axis], rows, *shape[axis + 1 :])


def evaluate_case(
    name: str,
    pred: Volume,
    true: Volume,
    options: Options,
    threshold: np.ndarray,
    *,
    expected_from: str = "threshold",
    progress: Progress | None = None,
    device=None,
) -> CaseTotals:
    """Stream one case through the chunk kernel and return its exact totals.

    Args:
        name: the case name, for progress and the report.
        pred, true: opened volumes.
        options: see `Options`.
        threshold: float32 `[C]`.
        expected_from: where the class count `C` came from, for the mismatch message.
        progress: optional `progress(name, chunks_done, num_chunks)` after every chunk.
        device: optional JAX device that scores this case's chunks.

    Returns:
        `CaseTotals`; bad values raise `InputError` naming the file and the first bad voxel.
    """
    kind = pred_kind(pred, true, options.pred_kind)
    if options.regions and kind != "labels":
        raise InputError(pred.path, f"holds {kind}; --regions unites the labels of label maps.")
    spec = case_spec(pred, true, options, kind)
    if kind != "labels" and spec.num_classes != threshold.shape[0]:
        raise InputError(
            pred.path,
            f"has {spec.num_classes} classes on axis {spec.axis}, but {threshold.shape[0]} "
            f"were expected (from {expected_from}).",
        )
    plan = plan_chunks(pred, true, spec, options.chunk_mb)
    slab = {"scores": _score_slab, "masks": _mask_slab, "labels": _label_slab}[kind]
    try:
        totals = _stream_case(
            name, pred, true, options, threshold, spec, plan, slab, progress, device
        )
        surface = None
        if options.surface is not None:
            # a check point between classes: Ctrl-C stops the boundary phase there too
            check = progress and (lambda: progress(name, plan.num_chunks, plan.num_chunks))
            surface = surface_of_case(pred, true, options, threshold, spec, kind, check)
        lesions = None
        if options.lesions is not None:
            lesions = lesions_of_case(pred, true, options, threshold, spec, kind)
    finally:
        pred.close()
        true.close()
    grid = tuple(s for a, s in enumerate(pred.shape) if a != spec.axis)
    if kind == "labels":
        return CaseTotals(
            name,
            pred.path,
            true.path,
            grid,
            None,
            None,
            matrix=totals[0],
            surface=surface,
            lesions=lesions,
        )
    return CaseTotals(
        name,
        pred.path,
        true.path,
        grid,
        totals[0],
        totals[1] if kind == "scores" else None,
        surface=surface,
        lesions=lesions,
    )


def surface_of_case(
    pred: Volume, true: Volume, options: Options, threshold, spec, kind: str, check=None
):
    """`{measure: [C]}` boundary measures of one case (whole volumes: see evaluate.surface);
    `check()` runs before each class."""
    case = read_case(pred, true, options, threshold, spec, kind, "--surface")
    measures = case_measures(
        case.y_true, case.y_pred, options.surface, path=pred.path, check=check, **case.layout()
    )
    return {
        name: np.pad(values, (0, spec.num_classes - values.size), constant_values=np.nan)
        for name, values in measures.items()
    }


@dataclasses.dataclass(frozen=True)
class _Slab:
    """One slab in its reused buffers, and what the checks need to name a bad voxel."""

    true: np.ndarray
    pred: np.ndarray
    mask: np.ndarray
    start: int
    count: int
    true_path: str
    pred_path: str
    true_axis: int
    pred_axis: int


def _score_slab(slab: _Slab, options, threshold, spec, device) -> tuple:
    """Counts and histogram of a slab of scores (values checked first)."""
    check_scores(
        slab.pred,
        from_logits=options.from_logits,
        path=slab.pred_path,
        offset=slab.start,
        axis=slab.pred_axis,
    )
    _check_truth(slab, spec)
    return _run_chunk(slab, threshold, spec, options.from_logits, options.num_bins, device)


def _mask_slab(slab: _Slab, options, threshold, spec, device) -> tuple:
    """Counts of a slab of 0/1 masks: positive where 1 (the chunk kernel at 0.5, 2 bins)."""
    check_labels(
        slab.pred,
        sparse=False,
        num_classes=spec.num_classes,
        ignore_index=None,
        path=slab.pred_path,
        offset=slab.start,
        axis=slab.pred_axis,
    )
    _check_truth(slab, spec)
    half = np.full(spec.num_classes, 0.5, np.float32)
    return _run_chunk(slab, half, spec, False, 2, device)[:1]


def _check_truth(slab: _Slab, spec) -> None:
    check_labels(
        slab.true,
        sparse=spec.sparse,
        num_classes=spec.num_classes,
        ignore_index=spec.ignore_index,
        path=slab.true_path,
        offset=slab.start,
        axis=slab.true_axis,
    )


def _run_chunk(slab: _Slab, threshold, spec, from_logits, num_bins, device) -> tuple:
    chunk_counts, chunk_hist, invalid = _compiled_chunk(
        *_place((slab.true, slab.pred), device),
        threshold,
        slab.mask,
        axis=spec.axis,
        from_logits=from_logits,
        ignore_index=spec.ignore_index,
        num_bins=num_bins,
    )
    if np.any(ops.convert_to_numpy(invalid)):
        raise InputError(
            slab.pred_path, f"holds invalid scores in rows {slab.start}..{slab.start + slab.count}."
        )
    return chunk_counts, chunk_hist


def _label_slab(slab: _Slab, options, threshold, spec, device) -> tuple:
    """The `[C, C]` matrix of a slab of label maps; the kernel's out-of-range tally is the
    check (a float map is first checked for fractions on the host)."""
    for labels, path, axis in (
        (slab.true, slab.true_path, slab.true_axis),
        (slab.pred, slab.pred_path, slab.pred_axis),
    ):
        if labels.dtype.kind == "f":
            _check_label_map(labels, spec, path, slab.start, axis, options)
    matrix, invalid = label_confusion_matrix(
        *_place((slab.true, slab.pred), device),
        spec.num_classes,
        ignore_index=spec.ignore_index,
        mask=slab.mask,
        with_invalid=True,
    )
    if int(ops.convert_to_numpy(invalid)):
        _check_label_map(slab.true, spec, slab.true_path, slab.start, slab.true_axis, options)
        _check_label_map(
            slab.pred, spec, slab.pred_path, slab.start, slab.pred_axis, options, ignore=False
        )
    return (matrix,)


def _check_label_map(labels, spec, path, offset, axis, options, ignore: bool = True) -> None:
    """Raise `InputError` on fractional ids or ids outside `[0, C)` (C given or inferred)."""
    try:
        check_labels(
            labels,
            sparse=True,
            num_classes=spec.num_classes,
            ignore_index=spec.ignore_index if ignore else None,
            path=path,
            offset=offset,
            axis=axis,
            ignorable=ignore,
        )
    except InputError as e:
        fractional = labels.dtype.kind == "f" and not np.array_equal(labels, np.floor(labels))
        if options.num_classes or fractional:
            raise
        negative = labels < 0
        if ignore and spec.ignore_index is not None:
            negative &= labels != spec.ignore_index
        advice = negative_ids_advice(labels[negative], ignore)
        raise InputError(
            path,
            f"holds label ids outside [0, {MAX_INFERRED_CLASSES}) (the most inferred without "
            f"--num-classes; largest {labels.max()}, smallest {labels.min()}); "
            f"{advice or 'pass --num-classes'}.",
        ) from e


def _stream_case(name, pred, true, options, threshold, spec, plan, score_slab, progress, device):
    """The chunk loop of `evaluate_case`: read each slab of `plan` into reused buffers,
    check and score it with `score_slab`, and add its results into int64 totals."""
    pred_buf = np.zeros(_slab_shape(pred.shape, plan.pred_axis, plan.rows), pred.dtype)
    true_buf = np.zeros(_slab_shape(true.shape, plan.true_axis, plan.rows), true.dtype)
    # The padding mask on the streaming axis' place in the voxel grid (the class axis taken out).
    grid_axis = plan.pred_axis - (spec.axis < plan.pred_axis)
    mask = np.ones((1,) * grid_axis + (plan.rows,), bool)
    totals = None
    for i in range(plan.num_chunks):
        start = i * plan.rows
        count = min(plan.rows, plan.length - start)
        if count < plan.rows:  # the last chunk: zero its padding, mask it out
            pred_buf[...] = 0
            true_buf[...] = 0
            mask[..., count:] = False
        pred.read_into(start, count, pred_buf, plan.pred_axis)
        true.read_into(start, count, true_buf, plan.true_axis)
        slab = _Slab(
            true_buf,
            pred_buf,
            mask,
            start,
            count,
            true.path,
            pred.path,
            plan.true_axis,
            plan.pred_axis,
        )
        results = [
            ops.convert_to_numpy(r).astype(np.int64)
            for r in score_slab(slab, options, threshold, spec, device)
        ]
        totals = (
            results if totals is None else [t + r for t, r in zip(totals, results, strict=True)]
        )
        if progress is not None:
            progress(name, i + 1, plan.num_chunks)
    return totals


def exact_linear(fn: Callable, values: np.ndarray, terms: int) -> np.ndarray:
    """int64 `fn(values)` for a linear integer op `fn` (sums and differences of at most
    `terms` entries, e.g. `counts_from_confusion_matrix`, `counts_at_bins`), exact for any
    int64 `values` >= 0 on every backend, JAX without x64 included (a negative one raises
    `ValueError`: counts are never negative).

    `fn` is linear, so `values` is split into limbs narrow enough that `terms` of them sum
    within int32, `fn` runs on each limb, and the results are shifted back and added in
    numpy int64.

    Example:
        >>> import numpy as np
        >>> exact_linear(lambda x: x.sum(keepdims=True), np.int64([2**40, 3]), 2).tolist()
        [1099511627779]
    """
    values = np.asarray(values, np.int64)
    if values.size and values.min() < 0:  # >> keeps a negative value negative: no end
        raise ValueError(f"exact_linear takes counts >= 0; got {values.min()}.")
    bits = max(1, 30 - math.ceil(math.log2(max(terms, 1) + 1)))
    total, shift = None, 0
    while total is None or (values >> shift).any():
        limb = ((values >> shift) & ((1 << bits) - 1)).astype(np.int32)
        part = np.asarray(ops.convert_to_numpy(fn(limb))).astype(np.int64) << shift
        total = part if total is None else total + part
        shift += bits
    return total


def exact_counts(matrix: np.ndarray) -> np.ndarray:
    """int64 `[C, 4]` one-vs-rest counts of an int64 `[C, C]` confusion matrix, exact
    (`counts_from_confusion_matrix` through `exact_linear`)."""
    matrix = np.asarray(matrix, np.int64)
    return exact_linear(counts_from_confusion_matrix, matrix, matrix.size)


def _place(arrays: tuple, device) -> tuple:
    """Copy host buffers to `device` (None: leave them for the backend to place)."""
    if device is None:
        return arrays
    import jax

    return tuple(jax.device_put(a, device) for a in arrays)


def local_devices(requested: int) -> list:
    """The JAX devices to spread cases over: `[]` (no spreading) unless JAX runs with more
    than one local device and more than one is requested (0 requests all)."""
    if requested == 1 or keras.backend.backend() != "jax":
        return []
    import jax

    devices = jax.local_devices()
    devices = devices if requested == 0 else devices[:requested]
    return devices if len(devices) > 1 else []


def threshold_vector(threshold, num_classes: int, num_classes_from: str) -> np.ndarray:
    """float32 `[C]` from a scalar or per-class threshold, each in [0, 1] (the ops' rule,
    `check_threshold_values`); the count message says where `C` came from."""
    values = check_threshold_values(threshold, name="threshold (--threshold)")
    t = np.asarray(values, np.float32).reshape(-1)
    if t.shape[0] == 1:
        t = np.repeat(t, num_classes)
    if t.shape[0] != num_classes:
        raise ValueError(
            f"threshold (--threshold) must be one value in [0, 1] or one per class "
            f"({num_classes}, from {num_classes_from}); got {np.asarray(threshold).tolist()}."
        )
    return t


def _expected_classes(options: Options, spec: InputSpec, first: Volume) -> tuple[int, str]:
    """The class count every case must have, and where it came from (for messages)."""
    if options.num_classes:
        return options.num_classes, options.num_classes_from
    if np.ndim(options.threshold) and len(options.threshold) > 1:
        return len(options.threshold), f"threshold (--threshold), {len(options.threshold)} values"
    return spec.num_classes, f"the first case, {first.path}"


def _cases(y_true, y_pred, cases) -> list[tuple[str, object, object]]:
    """`(name, pred source, true source)` for every case, however they were given."""
    if cases is not None:
        return [(str(name), p, t) for name, t, p in cases]
    if y_true is None or y_pred is None:
        raise TypeError("evaluate needs y_true and y_pred (or cases=[(name, y_true, y_pred)]).")
    if isinstance(y_pred, np.ndarray) or isinstance(y_true, np.ndarray):
        return [("case", y_pred, y_true)]
    return pair_cases(y_pred, y_true)


def _legacy_arguments(legacy: tuple) -> tuple:
    """`evaluate(pred, true[, options])`, the order before 0.2: `(y_true, y_pred, cases,
    options)` with a DeprecationWarning (`(name, pred, true)` triples as `pred` included)."""
    if not 2 <= len(legacy) <= 3:
        raise TypeError(
            f"evaluate takes keyword arguments y_true=, y_pred= (and options=); got "
            f"{len(legacy)} positional argument(s)."
        )
    warnings.warn(
        "evaluate(pred, true, options) is deprecated: call evaluate(y_true=..., y_pred=..., "
        "options=...), the (y_true, y_pred) order of every other voxelmetrics function.",
        DeprecationWarning,
        stacklevel=3,
    )
    pred, true, *rest = legacy
    if true is None:
        return None, None, [(name, t, p) for name, p, t in pred], (rest or [None])[0]
    return true, pred, None, (rest or [None])[0]


def evaluate(
    *legacy,
    y_true=None,
    y_pred=None,
    options: Options | None = None,
    cases=None,
    progress: Progress | None = None,
    on_case: Callable[[str, int, int], None] | None = None,
    scores_needed_for: str | None = None,
    executor: Executor | None = None,
) -> Evaluation:
    """Score prediction volumes against truth volumes, streamed in bounded memory.

    Args:
        y_true, y_pred: two files or two directories of files paired by case name (see
            `pair_cases`), or two numpy arrays (one case). Keyword-only; the positional
            `evaluate(pred, true, options)` of earlier versions still works, with a
            DeprecationWarning.
        options: see `Options`.
        cases: instead of `y_true`/`y_pred`, `(name, y_true, y_pred)` triples of arrays
            or files.
        progress: optional `progress(case, chunks_done, num_chunks)` after every chunk; in
            this process only (not called for cases run by an `executor`).
        on_case: optional `on_case(case, index, num_cases)` before every case (with an
            `executor`: as this process turns to the case's result, in case order).
        scores_needed_for: what asks for curves (e.g. `"--plot"`): hard predictions (label
            maps, masks) then raise `InputError` before any voxel is read.
        executor: optional `concurrent.futures.Executor` that runs the cases (see
            `run_case_task`): a `ProcessPoolExecutor` (spawn context: see
            `evaluate.executors.process_pool`), or a dask.distributed client's
            `client.get_executor(pure=False)`. Each worker opens its case's files (or
            receives its arrays) and returns the case's int64 totals; they are taken in
            case order, so the result does not depend on which worker finished first. The
            first failing case in case order raises its own `InputError`; the cases not
            started are cancelled. Needs `options.devices == 1`; a pool that forks is
            refused.

    Returns:
        An `Evaluation`: exact per-case int64 counts `[C, 4]` and histograms `[C, B, 2]`
        (label maps and masks: counts only). Any problem with a file raises `InputError`
        naming it.

    Example:
        >>> import numpy as np
        >>> y_true = np.array([[1, 0], [0, 1], [1, 1]])
        >>> y_pred = np.float32([[0.9, 0.2], [0.4, 0.6], [0.5, 1.0]])
        >>> ev = evaluate(y_true=y_true, y_pred=y_pred, options=Options(num_bins=4))
        >>> ev.counts.tolist()
        [[2, 0, 0, 1], [2, 0, 0, 1]]
    """
    if legacy:
        y_true, y_pred, cases, options = _legacy_arguments(legacy)
    options = options or Options()
    cases = _cases(y_true, y_pred, cases)
    if not cases:
        raise ValueError("evaluate needs at least one case.")
    if executor is not None:
        _check_executor(executor, options)
    opened = []
    for name, pred_source, true_source in cases:
        pred_volume = open_volume(pred_source, key=options.pred_key)
        opened.append((name, pred_volume, open_volume(true_source, key=options.true_key)))
    _, first_pred, first_true = opened[0]
    kind = pred_kind(first_pred, first_true, options.pred_kind)
    if kind in HARD_KINDS and scores_needed_for:
        raise scores_needed_error(first_pred.path, kind, scores_needed_for, first_pred.dtype)
    options = dataclasses.replace(options, pred_kind=kind)
    threshold, expected_from = np.zeros(0, np.float32), ""
    if kind != "labels":
        threshold, expected_from = _score_threshold(first_pred, first_true, options, len(opened))
    if executor is None:
        run = _case_runner(opened, options, threshold, expected_from, progress, on_case)
        totals = _run_all(run, len(opened), options.devices)
    else:
        totals = _run_on(executor, cases, options, threshold, expected_from, on_case)
    if kind == "labels":
        return finish_label_maps(totals, options)
    return Evaluation(options, threshold, totals, kind)


def _check_executor(executor: Executor, options: Options) -> None:
    """Refuse `devices` with an executor, and a process pool that forks: a child forked
    from a process running JAX's or TensorFlow's threads can deadlock on their locks."""
    if options.devices != 1:
        raise ValueError(
            f"devices={options.devices} spreads cases over the JAX devices of this process; "
            f"with an executor each worker runs its cases: pass devices=1 (or no executor)."
        )
    context = getattr(executor, "_mp_context", None)  # a ProcessPoolExecutor's
    if context is not None and context.get_start_method() == "fork":
        raise ValueError(
            "a ProcessPoolExecutor that forks can deadlock once Keras' backend runs threads: "
            "pass mp_context=multiprocessing.get_context('spawn'), or use "
            "voxelmetrics.evaluate.executors.process_pool(n)."
        )


def scores_needed_error(path, kind: str, needed_for: str, dtype=None) -> InputError:
    """The error for an option that needs scores (`needed_for`, e.g. "--plot") given hard
    predictions of `kind` ("labels" or "masks")."""
    what = "a label map" if kind == "labels" else "binary masks"
    return InputError(
        path,
        f"is a hard prediction ({what}{f', {dtype}' if dtype is not None else ''}): "
        f"{needed_for} needs scores, and a hard prediction ranks nothing. Drop {needed_for}, "
        f"or pass probabilities.",
    )


def _score_threshold(first_pred: Volume, first_true: Volume, options: Options, num_cases: int):
    """The threshold vector `[C]` of scores or masks, and where `C` came from (for messages),
    once the first case's shapes are checked (a warning if its class axis looks spatial)."""
    spec = case_spec(first_pred, first_true, options)
    if implausible_class_axis(spec, first_pred.shape):
        warnings.warn(
            f"{first_pred.path}: class axis {spec.axis} gives {spec.num_classes} classes, "
            f"which looks like a voxel axis of shape {first_pred.shape}; is --axis right?",
            InputWarning,
            stacklevel=3,
        )
    num_classes, expected_from = _expected_classes(options, spec, first_pred)
    if options.pred_kind == "scores":
        check_histogram_budget(num_classes, options.num_bins, num_cases, options.chunk_mb)
    try:
        threshold = threshold_vector(options.threshold, num_classes, expected_from)
    except ValueError as e:
        raise InputError(first_pred.path, f"does not fit the options: {e}") from None
    return threshold, expected_from


def _case_runner(opened, options, threshold, expected_from, progress, on_case):
    """`run(index, device=None)`: announce case `index` to `on_case`, then stream it."""

    def run(index: int, device=None) -> CaseTotals:
        name, pred_volume, true_volume = opened[index]
        if on_case is not None:
            on_case(name, index, len(opened))
        return evaluate_case(
            name,
            pred_volume,
            true_volume,
            options,
            threshold,
            expected_from=expected_from,
            progress=progress,
            device=device,
        )

    return run


def _run_all(run: Callable[..., CaseTotals], num_cases: int, requested_devices: int) -> list:
    """`run(index[, device])` for every case: in turn, or one thread per JAX device."""
    devices = local_devices(requested_devices)
    if not devices:
        return [run(i) for i in range(num_cases)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = [pool.submit(run, i, devices[i % len(devices)]) for i in range(num_cases)]
        return [f.result() for f in futures]


def run_case_task(
    name: str,
    pred_source,
    true_source,
    options: Options,
    threshold: np.ndarray,
    expected_from: str,
    backend: str | None = None,
) -> CaseTotals:
    """One case in a worker: open its volumes (a path or an array each), stream them, and
    return its `CaseTotals`. A top-level function of picklable arguments, so that any
    `concurrent.futures` executor can run it in another process or on another machine.

    Raises:
        InputError: as `evaluate_case` (it pickles whole: path and problem).
        InputError: also when the worker runs another Keras backend than `backend` (the
            driver's), so that every case is counted by the same kernels.
    """
    if backend is not None and keras.backend.backend() != backend:
        raise InputError(
            f"case {name}",
            f"this worker runs the Keras backend {keras.backend.backend()!r}, the driver "
            f"{backend!r}; start the workers with KERAS_BACKEND={backend}.",
        )
    pred = open_volume(pred_source, key=options.pred_key)
    true = open_volume(true_source, key=options.true_key)
    return evaluate_case(name, pred, true, options, threshold, expected_from=expected_from)


def _worker_deaths() -> tuple[type[BaseException], ...]:
    """The exceptions that say a worker died (not that its case was bad)."""
    deaths: list[type[BaseException]] = [BrokenExecutor]
    if "distributed" in sys.modules:
        deaths.append(sys.modules["distributed"].KilledWorker)
    return tuple(deaths)


def _run_on(executor: Executor, cases, options, threshold, expected_from, on_case) -> list:
    """Every case as a `run_case_task` on `executor`, the results taken in case order.

    On the first failure (in case order) or an interruption, the cases not started are
    cancelled; a worker that died is reported as an `InputError` naming the case.
    """
    backend = keras.backend.backend()
    futures = [
        executor.submit(run_case_task, name, pred, true, options, threshold, expected_from, backend)
        for name, pred, true in cases
    ]
    totals = []
    try:
        for index, ((name, pred, _), future) in enumerate(zip(cases, futures, strict=True)):
            if on_case is not None:
                on_case(name, index, len(cases))
            try:
                totals.append(future.result())
            except _worker_deaths() as e:
                raise InputError(
                    pred if isinstance(pred, str | os.PathLike) else name,
                    f"the worker evaluating case {name!r} died ({type(e).__name__}: {e}); "
                    f"out of memory? Lower --chunk-mb or use fewer workers per machine.",
                ) from e
    finally:
        for future in futures:
            future.cancel()
    return totals


def finish_label_maps(cases: list[CaseTotals], options: Options) -> Evaluation:
    """The `Evaluation` of label maps from every case's `[c, c]` matrix (any `c`).

    C is `options.num_classes` or, without it, the largest id seen in either map of any
    case, plus one. Each matrix is cut or zero-padded to `[C, C]`: beyond the ids a case
    holds its matrix is zero, so neither loses a count, and cases counted at different
    widths (shards of one dataset) finish as one run would. Per-class counts come from
    the matrices; boundary measures are cut or NaN-padded (an absent class is NaN).

    Example:
        >>> import numpy as np
        >>> a = CaseTotals("a", "", "", (2,), None, None, matrix=np.int64([[1, 0], [0, 1]]))
        >>> b = CaseTotals("b", "", "", (2,), None, None, matrix=np.int64([[2]]))
        >>> ev = finish_label_maps([a, b], Options())
        >>> ev.num_classes, ev.cases[1].matrix.tolist()
        (2, [[2, 0], [0, 0]])
    """
    c = options.num_classes or max([1, *(_largest_id(case.matrix) + 1 for case in cases)])
    width = len(options.regions) if options.regions else c  # the report's classes
    for case in cases:
        case.matrix = _fit(_fit(case.matrix, c, 0, 0), c, 1, 0)
        case.counts = exact_counts(case.matrix)
        if options.regions:
            case.counts = region_counts(case.matrix, options.regions)
        if case.surface is not None:
            case.surface = {name: _fit(v, width, 0, np.nan) for name, v in case.surface.items()}
        if case.lesions is not None:  # a class above a case's largest id: no lesion there
            case.lesions.counts = _fit(case.lesions.counts, width, 0, 0.0)
    return Evaluation(options, np.full(width, 0.5, np.float32), cases, "labels")


def _largest_id(matrix: np.ndarray) -> int:
    """The largest class id with a voxel in a `[c, c]` confusion matrix (-1: none)."""
    seen = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    return int(seen[-1]) if seen.size else -1


def _fit(values: np.ndarray, size: int, axis: int, fill) -> np.ndarray:
    """`values` cut or padded with `fill` to `size` entries along `axis`."""
    values = np.take(values, range(min(size, values.shape[axis])), axis=axis)
    pad = [(0, 0)] * values.ndim
    pad[axis] = (0, size - values.shape[axis])
    return np.pad(values, pad, constant_values=fill)
