"""Streaming one case: slabs of a fixed shape along one voxel axis (the last one padded and
masked) read into reused buffers, checked, counted by one compiled kernel, and summed into
numpy int64 totals; then the case's whole-volume measures (`--surface`, `--lesions`).
"""

import dataclasses

import numpy as np
from keras import ops

from voxelmetrics.backends import compile_kernel
from voxelmetrics.evaluate.lesions import lesions_of_case
from voxelmetrics.evaluate.planning import case_spec, plan_chunks, pred_kind
from voxelmetrics.evaluate.readers import MASK_CUT, InputError, Volume
from voxelmetrics.evaluate.records import CaseTotals, Options, Progress
from voxelmetrics.evaluate.surface import case_measures
from voxelmetrics.evaluate.value_checks import (
    check_label_map,
    check_labels,
    check_scores,
    check_truth,
)
from voxelmetrics.evaluate.whole_case import read_case
from voxelmetrics.ops.fused import counts_and_histogram
from voxelmetrics.ops.labels import label_confusion_matrix


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
    check_truth(slab, spec)
    return _run_chunk(slab, threshold, spec, options.from_logits, options.num_bins, device)


def _mask_slab(slab: _Slab, options, threshold, spec, device) -> tuple:
    """Counts of a slab of 0/1 masks: positive where 1 (the chunk kernel at `MASK_CUT`, 2
    bins)."""
    check_labels(
        slab.pred,
        sparse=False,
        num_classes=spec.num_classes,
        ignore_index=None,
        path=slab.pred_path,
        offset=slab.start,
        axis=slab.pred_axis,
    )
    check_truth(slab, spec)
    cut = np.full(spec.num_classes, MASK_CUT, np.float32)
    return _run_chunk(slab, cut, spec, False, 2, device)[:1]


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
            check_label_map(labels, spec, path, slab.start, axis, options)
    matrix, invalid = label_confusion_matrix(
        *_place((slab.true, slab.pred), device),
        spec.num_classes,
        ignore_index=spec.ignore_index,
        mask=slab.mask,
        with_invalid=True,
    )
    if int(ops.convert_to_numpy(invalid)):
        check_label_map(slab.true, spec, slab.true_path, slab.start, slab.true_axis, options)
        check_label_map(
            slab.pred, spec, slab.pred_path, slab.start, slab.pred_axis, options, ignore=False
        )
    return (matrix,)


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


def _place(arrays: tuple, device) -> tuple:
    """Copy host buffers to `device` (None: leave them for the backend to place)."""
    if device is None:
        return arrays
    import jax

    return tuple(jax.device_put(a, device) for a in arrays)
