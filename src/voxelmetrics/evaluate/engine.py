"""The streaming engine: per-case confusion counts and score histograms, chunk by chunk.

Each case is read in slabs of a fixed shape along one voxel axis (the last slab is padded
and masked), so one compiled kernel serves every chunk and memory is bounded by the chunk
budget. Totals are kept on the host in numpy int64, exact for any volume size.

This module is the orchestration (`evaluate`: open, plan the run's threshold, run every
case, finish label maps); the parts live beside it: `records` (Options, CaseTotals,
Evaluation), `planning` (prediction kind, shapes, chunk plan, budgets), `value_checks`,
`streaming` (one case) and `executors` (where the cases run).
"""

import dataclasses
import warnings
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from voxelmetrics.evaluate.executors import check_executor, run_all, run_on
from voxelmetrics.evaluate.planning import (
    case_spec,
    check_histogram_budget,
    implausible_class_axis,
    pred_kind,
)
from voxelmetrics.evaluate.readers import (
    MASK_CUT,
    InputError,
    InputWarning,
    Volume,
    open_volume,
    pair_cases,
)
from voxelmetrics.evaluate.records import (
    HARD_KINDS,
    CaseTotals,
    Evaluation,
    Options,
    Progress,
)
from voxelmetrics.evaluate.regions import region_counts
from voxelmetrics.evaluate.streaming import evaluate_case
from voxelmetrics.ops._inputs import InputSpec
from voxelmetrics.ops._options import threshold_per_class
from voxelmetrics.ops.accumulate import exact_counts


def threshold_vector(threshold, num_classes: int, num_classes_from: str) -> np.ndarray:
    """float32 `[C]` from a scalar or per-class threshold, each in [0, 1]: the ops' rule,
    `threshold_per_class`; the count message says where `C` came from."""
    return threshold_per_class(
        threshold, num_classes, "threshold (--threshold)", classes_from=num_classes_from
    ).astype(np.float32)


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
        check_executor(executor, options)
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
        totals = run_all(run, len(opened), options.devices)
    else:
        totals = run_on(executor, cases, options, threshold, expected_from, on_case)
    if kind == "labels":
        return finish_label_maps(totals, options)
    return Evaluation(options, threshold, totals, kind)


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
    return Evaluation(options, np.full(width, MASK_CUT, np.float32), cases, "labels")


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
