"""Best per-class operating points, chosen in-graph from score histograms.

`optimal_threshold` scans the B thresholds of a histogram in O(C·B); `refine_threshold`
re-histograms the neighbourhood of each choice on a finer grid, one more O(N) pass.
"""

import math

from voxelmetrics.backends import compile_kernel
from voxelmetrics.defaults import CRITERION
from voxelmetrics.ops._host import is_on_host, xp
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    prepare,
    scores_and_invalid,
    static_shape,
)
from voxelmetrics.ops._options import NUM_BINS, check_int
from voxelmetrics.ops.criterion import CONSTRAINED, CRITERIA, Criterion
from voxelmetrics.ops.curves import curve_counts
from voxelmetrics.ops.histogram import bin_index, bin_thresholds, binned_counts
from voxelmetrics.ops.scores import safe_ratio

__all__ = ["CRITERIA", "Criterion", "optimal_threshold", "refine_threshold"]
# evaluate/report.py's spelling, until it calls `Criterion.parse` itself.
make_criterion = Criterion.of
MAX_FINE_BINS = 2**24  # thresholds i / (B·F) stay exact float32 integers over B·F


def criterion_value(counts, criterion: Criterion):
    r"""The criterion at every candidate threshold, and which candidates may be chosen.

    With $P = tp + fn$, $N = fp + tn$, $\hat P = tp + fp$ (float32; float64 on the host):
    f1 / dice $2tp / (2tp + fp + fn)$; fbeta $(1+\beta^2)tp / ((1+\beta^2)tp + \beta^2 fn + fp)$;
    iou $tp / (tp + fp + fn)$; youden $tp/P - fp/N$; recall_at_precision $tp / P$ where
    $tp / \hat P \ge p_{min}$; precision_at_recall $tp / \hat P$ where $tp / P \ge r_{min}$;
    recall_at_specificity $tp / P$ where $tn / N \ge s_{min}$; specificity_at_recall $tn / N$
    where $tp / P \ge r_{min}$; cost $c_{fp} fp + c_{fn} fn$ (minimised). Constraints compare
    the ratios in that precision.

    Args:
        counts: `[..., K, 4]` columns `tp, fp, fn, tn` at K candidate thresholds.
        criterion: a `Criterion`.

    Returns:
        `(value, allowed)`: float32 `[..., K]` and bool `[..., K]`. A candidate is allowed when
        the criterion is defined there and meets its constraint: every criterion but cost is
        undefined for a class without positives (its best value would be the 0/0 of "both
        empty"), youden and the specificity criteria also without negatives, precision
        wherever nothing is predicted.
    """
    c = xp.cast(counts, "float32")
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    ok = xp.greater(tp + fn, 0.0)
    name = criterion.name
    if name in ("f1", "dice"):
        value = safe_ratio(2.0 * tp, 2.0 * tp + fp + fn)
    elif name == "fbeta":
        b2 = criterion.beta**2
        value = safe_ratio((1.0 + b2) * tp, (1.0 + b2) * tp + b2 * fn + fp)
    elif name == "iou":
        value = safe_ratio(tp, tp + fp + fn)
    elif name == "youden":
        value = safe_ratio(tp, tp + fn) - safe_ratio(fp, fp + tn)
    elif name in CONSTRAINED:
        rates = {"recall": (tp, tp + fn), "precision": (tp, tp + fp), "specificity": (tn, tn + fp)}
        best, floored, option = CONSTRAINED[name]
        value = safe_ratio(*rates[best])
        floor = getattr(criterion, option)
        ok = xp.logical_and(ok, xp.greater_equal(safe_ratio(*rates[floored]), floor))
    else:
        value = criterion.cost_fp * fp + criterion.cost_fn * fn
        ok = xp.greater(tp + fp + fn + tn, 0.0)
    return value, xp.logical_and(ok, xp.logical_not(xp.isnan(value)))


def select_threshold(counts, thresholds, criterion: Criterion, allowed=None):
    r"""The best allowed candidate of each row; ties go to the highest threshold.

    Args:
        counts: `[..., K, 4]` counts at K candidates, thresholds increasing along K.
        thresholds: float32 broadcastable to `[..., K]`.
        criterion: a `Criterion`.
        allowed: optional extra bool mask broadcastable to `[..., K]`.

    Returns:
        `(thresholds, values)`, float32 `[...]`; NaN and NaN where no candidate is allowed.
    """
    value, ok = criterion_value(counts, criterion)
    if allowed is not None:
        ok = xp.logical_and(ok, allowed)
    # Maximise; cost is minimised, so its sign flips for the comparison only.
    score = -value if criterion.name == "cost" else value
    score = xp.where(ok, score, -math.inf)
    best = xp.max(score, axis=-1, keepdims=True)
    k = xp.shape(score)[-1]
    index = xp.arange(k, dtype="int32")
    # Highest index among the maxima: explicit, since argmax's tie rule is not portable.
    chosen = xp.max(xp.where(xp.logical_and(ok, xp.equal(score, best)), index, -1), axis=-1)
    pick = xp.expand_dims(xp.maximum(chosen, 0), -1)
    t = xp.broadcast_to(xp.cast(thresholds, "float32"), xp.shape(score))
    found = xp.greater_equal(chosen, 0)
    t = xp.where(found, xp.take_along_axis(t, pick, axis=-1)[..., 0], math.nan)
    v = xp.where(found, xp.take_along_axis(value, pick, axis=-1)[..., 0], math.nan)
    return t, v


def _search_kernel(histogram, edges, *, criterion: Criterion):
    num_bins = xp.shape(histogram)[-2]
    thresholds = bin_thresholds(num_bins) if edges is None else xp.cast(edges, "float32")
    return select_threshold(curve_counts(histogram), thresholds, criterion)


_compiled_search = compile_kernel(_search_kernel, static_argnames=("criterion",))


def optimal_threshold(
    histogram,
    criterion: Criterion | str = CRITERION,
    *,
    edges=None,
    refine=None,
    **options: float | None,
):
    r"""The best threshold of each class and the criterion's value there, in-graph.

    The candidates are the histogram's thresholds $t_k$ (k = 0..B-1; `edges` if the histogram
    was built with custom edges), where a voxel is positive iff $s \ge t_k$; the counts at
    $t_k$ come from `curve_counts`, so the search costs O(C·B) and no host sync. The point
    "above every score" (nothing predicted) is not a candidate: its threshold lies outside
    [0, 1], it never beats $t_k$ for f1/dice/iou/fbeta on a class with positives, and for
    the constrained criteria it would turn an unreachable floor into a silent recall (or
    precision) of 0. For "cost" this means the cheapest point is sought among the $t_k$ only.

    Criteria: those of `Criterion`, each with its options (formulas in `criterion_value`;
    for "cost" the value is the cost $c_{fp} FP + c_{fn} FN$, in counts or summed weights).

    Ties go to the **highest** threshold: among thresholds with equal float32 values (e.g.
    across empty bins, which give identical counts) the most conservative mask wins.
    A class where no candidate is allowed -- no positives (every criterion but cost; youden
    also needs negatives), a floor no threshold reaches, or an empty histogram for cost --
    gets NaN threshold and NaN value, never a silent 0.

    Why not "the threshold that maximises recall"? Recall $tp(t)/P$ can only fall as t
    rises, so its maximum is at $t_0 = 0$: every voxel positive, recall 1, precision equal
    to the prevalence. Fix a precision floor (or a recall floor) or weigh the two with
    F-beta instead. One class, 4 bins, 10 positives among 110 voxels:

        >>> import numpy as np
        >>> h = np.array([[[50, 1], [30, 1], [15, 3], [5, 5]]])  # (negatives, positives)
        >>> counts = np.asarray(curve_counts(h))[0]
        >>> recall = counts[:, 0] / 10
        >>> k = int(np.argmax(recall)); k, float(recall[k]), round(float(counts[k, 0] / 110), 3)
        (0, 1.0, 0.091)
        >>> t, v = optimal_threshold(h, "recall_at_precision", min_precision=0.25)
        >>> float(t[0]), float(v[0])       # 8 of 10 positives kept at precision 8/28
        (0.5, 0.800000011920929)
        >>> t, v = optimal_threshold(h, "fbeta", beta=2.0)   # recall weighs 4x precision
        >>> float(t[0]), round(float(v[0]), 3)
        (0.5, 0.588)
        >>> t, v = optimal_threshold(h, "recall_at_precision", min_precision=0.9)
        >>> float(t[0]), float(v[0])       # no threshold reaches precision 0.9
        (nan, nan)

    Args:
        histogram: `[..., C, B, 2]` from `score_histogram` (or summed over batches, or
            `total_as_float` of accumulated totals): negatives and positives per bin.
        criterion: a `Criterion` (`Criterion.parse("recall_at_precision:0.8")`), its text
            spelling, or one of the names above with its options as keywords.
        **options: with a name, its options as `Criterion` takes them (`beta`,
            `min_precision`, `min_recall`, `min_specificity`, `cost_fp`, `cost_fn`).
        edges: the custom edges the histogram was built with, if any.
        refine: optional `(y_true, y_pred)`, the data the histogram was built from
            (probabilities, class axis last, unweighted): runs `refine_threshold` on it with
            B fine bins per coarse bin, resolution $1/B^2$. For logits, weights, masks or
            another axis call `refine_threshold` directly.

    Returns:
        `(thresholds, values)`, float32 `[..., C]` each.
    """
    crit = Criterion.of(criterion, **options)
    shape = static_shape(histogram)
    if len(shape) < 3 or shape[-1] != 2:
        raise ValueError(f"histogram must have shape [..., C, B, 2]; got {shape}.")
    num_bins = shape[-2]
    if edges is not None and static_shape(edges) != (num_bins,):
        raise ValueError(f"edges has shape {static_shape(edges)}; the histogram has {num_bins}.")
    if refine is not None and edges is not None:
        raise ValueError("refine works on the uniform grid; it cannot refine custom edges.")
    if refine is not None and not (isinstance(refine, tuple | list) and len(refine) == 2):
        raise ValueError("refine must be a (y_true, y_pred) pair, or use refine_threshold.")
    # On the host (`_host.on_host`, the offline report) the search runs as numpy, uncompiled.
    search = _search_kernel if is_on_host() else _compiled_search
    best = search(histogram, edges, criterion=crit)
    if refine is None:
        return best
    return _refine(refine[0], refine[1], best[0], crit, num_bins=num_bins)


def _window_histogram(
    y_true, y_pred, start, sample_weight, mask, spec: InputSpec, fine_bins, width
):
    """`[C, width + 2, 2]`: bucket 0 below the window, 1..width its fine bins, last above."""
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    scores, invalid = scores_and_invalid(y_pred, spec, bad_label)
    shape = [1] * spec.ndim
    shape[spec.axis] = spec.num_classes
    j = bin_index(scores, fine_bins) - xp.reshape(start, shape)
    bucket = xp.clip(j, -1, width) + 1
    return binned_counts(bucket, labels, invalid, weight, spec, width + 2)[0]


def _refine_kernel(
    y_true, y_pred, coarse, sample_weight, mask, *, spec, criterion, num_bins, refine_bins, window
):
    coarse = xp.cast(coarse, "float32")
    missing = xp.isnan(coarse)
    k = bin_index(xp.where(missing, 0.0, coarse), num_bins)
    # The window spans `window` coarse bins either side of t_k: [t_{k-w}, t_{k+w}).
    fine_bins, width = num_bins * refine_bins, 2 * window * refine_bins
    start = xp.maximum(k - window, 0) * refine_bins
    hist = _window_histogram(y_true, y_pred, start, sample_weight, mask, spec, fine_bins, width)
    counts = curve_counts(hist)[:, 1 : width + 1]
    index = xp.expand_dims(start, -1) + xp.arange(width, dtype="int32")
    thresholds = xp.cast(index, "float32") / xp.cast(fine_bins, "float32")
    t, v = select_threshold(counts, thresholds, criterion, allowed=xp.less(index, fine_bins))
    return xp.where(missing, math.nan, t), xp.where(missing, math.nan, v)


_compiled_refine = compile_kernel(
    _refine_kernel, static_argnames=("spec", "criterion", "num_bins", "refine_bins", "window")
)


def _refine(
    y_true,
    y_pred,
    coarse,
    criterion: Criterion,
    *,
    num_bins: int,
    refine_bins: int | None = None,
    window: int = 1,
    axis: int = -1,
    from_logits: bool | str = False,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
):
    """Check the window's sizes and the data, then run the compiled refine kernel."""
    num_bins = check_int("num_bins", num_bins)
    refine_bins = num_bins if refine_bins is None else check_int("refine_bins", refine_bins)
    window = check_int("window", window)
    spec = check_inputs(
        y_true,
        y_pred,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
    )
    if num_bins * refine_bins > MAX_FINE_BINS:
        raise ValueError(
            f"num_bins * refine_bins = {num_bins * refine_bins} exceeds 2**24, where float32 "
            f"thresholds stop being distinct; use fewer bins."
        )
    if tuple(static_shape(coarse)) != (spec.num_classes,):
        raise ValueError(
            f"thresholds has shape {static_shape(coarse)}; expected ({spec.num_classes},)."
        )
    return _compiled_refine(
        y_true,
        y_pred,
        coarse,
        sample_weight,
        mask,
        spec=spec,
        criterion=criterion,
        num_bins=num_bins,
        refine_bins=refine_bins,
        window=window,
    )


def refine_threshold(
    y_true,
    y_pred,
    thresholds,
    criterion: Criterion | str = CRITERION,
    *,
    num_bins: int = NUM_BINS,
    refine_bins: int | None = None,
    window: int = 1,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    **options: float | None,
):
    r"""Sharpen coarse thresholds to resolution $1/(B F)$ with one more pass over the data.

    For each class c with coarse threshold $t_{k_c}$ (from `optimal_threshold` on a B-bin
    histogram) the scores are binned on the fine grid $u_i = i / (B F)$, float32, by the
    same bin rule as `score_histogram` (`bin_index` with $B F$ bins), but only the 2wF fine
    bins of the window $[t_{k_c - w}, t_{k_c + w})$ are kept, plus one bucket below and one
    above it. The counts at every $u_i$ of the window follow exactly, and the same criterion
    and tie rule as `optimal_threshold` picks among them. $t_{k_c} = u_{k_c F}$ is itself a
    candidate, so the refined value is never below the coarse one. Cost: one O(N) pass and
    O(C·wF) state, instead of the O(C·B·F) of a full fine histogram. A class whose coarse
    threshold is NaN stays NaN (no window to search).

    Args:
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index: the data the
            coarse histogram was built from, as in `score_histogram`.
        thresholds: float32 `[C]` coarse thresholds, each one of the $t_k$ (or NaN).
        criterion, **options: as in `optimal_threshold`.
        num_bins: B of the coarse histogram.
        refine_bins: F fine bins per coarse bin (default B, resolution $1/B^2$);
            $B F \le 2^{24}$.
        window: w, coarse bins searched either side of $t_{k_c}$: the window is
            $[t_{k_c - w}, t_{k_c + w})$, 2wF candidates. Widen it where the criterion is flat
            near its optimum and the best fine threshold may sit more than one bin away.

    Returns:
        `(thresholds, values)`, float32 `[C]` each.

    Example:
        >>> import numpy as np
        >>> from voxelmetrics.ops.histogram import score_histogram
        >>> y = np.array([[0], [0], [1], [1], [1]])
        >>> s = np.float32([[0.1], [0.3], [0.35], [0.4], [0.8]])
        >>> t, v = optimal_threshold(score_histogram(y, s, num_bins=4), "f1")
        >>> float(t[0]), round(float(v[0]), 3)     # 0.3 and 0.35 share a bin
        (0.25, 0.857)
        >>> t, v = refine_threshold(y, s, t, "f1", num_bins=4)
        >>> float(t[0]), round(float(v[0]), 3)     # u_i = i / 16 splits 0.3 from 0.35
        (0.3125, 1.0)
    """
    crit = Criterion.of(criterion, **options)
    return _refine(
        y_true,
        y_pred,
        thresholds,
        crit,
        num_bins=num_bins,
        refine_bins=refine_bins,
        window=window,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
    )
