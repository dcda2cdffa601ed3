"""Planning a case before any voxel is read: what the prediction is, its shapes through the
ops' validation funnel, the chunk plan within the memory budget, the histogram budget.
"""

import math

import keras
import numpy as np

import voxelmetrics.defaults as defaults
from voxelmetrics.evaluate.readers import InputError, Volume
from voxelmetrics.evaluate.records import DEFAULT_CHUNK_MB, ChunkPlan, Options
from voxelmetrics.ops._inputs import InputSpec, check_inputs

MB = 2**20
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
# Label maps without a given class count are counted in a matrix this wide (every uint8
# id), then cut to the largest id seen + 1 in either map.
MAX_INFERRED_CLASSES = 256


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
