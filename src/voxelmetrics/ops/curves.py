"""PR and ROC curves, average precision and AUCs from per-class score histograms.

A histogram `[C, B, 2]` (`score_histogram`) holds everything: the counts at threshold
$t_k$ are reverse cumulative sums over bins, so every curve costs O(C·B), not O(N·B).
"""

from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.ops._host import xp
from voxelmetrics.ops.histogram import bin_thresholds
from voxelmetrics.ops.scores import (
    Average,
    ZeroDivision,
    average_scores,
    check_average,
    safe_ratio,
    zero_division_value,
)


def curve_counts(histogram):
    r"""`tp, fp, fn, tn` at every threshold of a histogram.

    $tp_k = \sum_{j \ge k} pos_j$, $fp_k = \sum_{j \ge k} neg_j$, $fn_k = P - tp_k$,
    $tn_k = N - fp_k$, with P and N the totals of positives and negatives.

    Args:
        histogram: `[..., B, 2]` (negatives, positives per bin), e.g. `[C, B, 2]`.

    Returns:
        `[..., B, 4]` of the histogram's dtype, columns `tp, fp, fn, tn`; row k is the count
        at threshold $t_k$ (score >= t_k is predicted positive).

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])   # one class, 3 bins
        >>> np.asarray(curve_counts(h))[0].tolist()
        [[3, 4, 0, 0], [3, 1, 0, 3], [2, 0, 1, 4]]
    """
    histogram = xp.convert_to_tensor(histogram)
    totals = xp.sum(histogram, axis=-2, keepdims=True)
    # Inclusive reverse cumulative sum without flips: total - (prefix before k).
    at_or_above = totals - xp.cumsum(histogram, axis=-2) + histogram
    tp, fp = at_or_above[..., 1], at_or_above[..., 0]
    return xp.stack([tp, fp, totals[..., 1] - tp, totals[..., 0] - fp], axis=-1)


def _thresholds(histogram, edges):
    return bin_thresholds(xp.shape(histogram)[-2]) if edges is None else edges


def precision_recall_curve(histogram, *, edges=None, zero_division: ZeroDivision = ZERO_DIVISION):
    r"""Precision and recall at every threshold $t_k$, aligned with the thresholds.

    $P_k = tp_k / (tp_k + fp_k)$ (1 where nothing is predicted positive, the convention of
    scikit-learn's last PR point), $R_k = tp_k / (tp_k + fn_k)$ (`zero_division` for a class
    without positives). Unlike scikit-learn, all three arrays have the same length, so an
    index found on one is valid on the others.

    Args:
        histogram: `[C, B, 2]` from `score_histogram`.
        edges: the custom edges the histogram was built with, if any.
        zero_division: recall of a class without positives: "nan", 0 or 1.

    Returns:
        `(precision [C, B], recall [C, B], thresholds [B])`, thresholds increasing.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])
        >>> p, r, t = precision_recall_curve(h)
        >>> np.asarray(p).round(2).tolist(), np.asarray(r).round(2).tolist()
        ([[0.43, 0.75, 1.0]], [[1.0, 1.0, 0.67]])
    """
    tp, fp, fn, _ = _split(curve_counts(histogram))
    precision = safe_ratio(tp, tp + fp, 1)
    recall = safe_ratio(tp, tp + fn, zero_division)
    return precision, recall, _thresholds(histogram, edges)


def roc_curve(histogram, *, edges=None, zero_division: ZeroDivision = ZERO_DIVISION):
    r"""False- and true-positive rates at every threshold $t_k$, aligned with the thresholds.

    $FPR_k = fp_k / (fp_k + tn_k)$, $TPR_k = tp_k / (tp_k + fn_k)$; an undefined rate (no
    negatives, no positives) gives `zero_division`.

    Returns:
        `(fpr [C, B], tpr [C, B], thresholds [B])`, thresholds increasing.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])
        >>> fpr, tpr, t = roc_curve(h)
        >>> np.asarray(fpr).round(2).tolist()
        [[1.0, 0.25, 0.0]]
    """
    tp, fp, fn, tn = _split(curve_counts(histogram))
    fpr = safe_ratio(fp, fp + tn, zero_division)
    tpr = safe_ratio(tp, tp + fn, zero_division)
    return fpr, tpr, _thresholds(histogram, edges)


def _split(counts):
    counts = xp.cast(counts, "float32")
    return counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3]


def average_histogram_score(score_fn, histogram, average, class_weights, zero_division):
    """Apply a per-class histogram score `score_fn(histogram, zero_division)` and combine
    classes as `average` says: "micro" scores the pooled histogram, the others average the
    per-class values by `average_scores` with the positives as support. The one curve
    averaging rule, of the ops and the metrics alike."""
    check_average(average, class_weights)
    zero_division_value(zero_division)
    if average == "micro":
        return score_fn(xp.sum(histogram, axis=-3, keepdims=True), zero_division)[..., 0]
    values = score_fn(histogram, zero_division)
    support = xp.sum(xp.cast(histogram[..., 1], "float32"), axis=-1)
    return average_scores(values, support, average=average, class_weights=class_weights)


def _average_precision(histogram, zero_division):
    precision, _, _ = precision_recall_curve(histogram)
    positives = xp.cast(histogram[..., 1], "float32")
    # R_k - R_{k+1} = pos_k / P: each bin's positives weigh the precision at its threshold.
    return safe_ratio(
        xp.sum(positives * precision, axis=-1), xp.sum(positives, axis=-1), zero_division
    )


def average_precision(
    histogram,
    *,
    average: Average = None,
    class_weights=None,
    zero_division: ZeroDivision = ZERO_DIVISION,
):
    r"""Average precision, scikit-learn's step-wise sum: $AP = \sum_k (R_k - R_{k+1}) P_k$.

    With $R_B = 0$. Since $R_k - R_{k+1} = pos_k / P$ this is
    $\frac{1}{P}\sum_k pos_k P_k$, exact in the bin counts. It equals
    `sklearn.metrics.average_precision_score(y, q(s))`, q mapping a score to its bin's lower
    edge.

    Args:
        histogram: `[C, B, 2]`.
        average: None/"none" per class; "micro" pools all classes' voxels into one binary
            problem; "macro" skips classes without positives (NaN); "weighted" by support or
            `class_weights` (array or "inverse_frequency").
        class_weights: see `average`.
        zero_division: AP of a class without positives: "nan", 0 or 1.

    Returns:
        float32 `[C]` or a scalar when averaged.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])
        >>> round(float(average_precision(h)[0]), 4)   # (2 * 1.0 + 1 * 0.75) / 3
        0.9167
    """
    return average_histogram_score(
        _average_precision, histogram, average, class_weights, zero_division
    )


def _roc_auc(histogram, zero_division, max_fpr=None):
    h = xp.cast(histogram, "float32")
    neg, pos = h[..., 0], h[..., 1]
    if max_fpr is not None:
        return _partial_roc_auc(h, max_fpr, zero_division)
    tp = curve_counts(h)[..., 0]
    # Trapezoids between t_k and t_{k+1}: width neg_k / N, mean height (2 tp_k - pos_k) / 2P.
    area = xp.sum(neg * (2.0 * tp - pos), axis=-1)
    den = 2.0 * xp.sum(neg, axis=-1) * xp.sum(pos, axis=-1)
    return safe_ratio(area, den, zero_division)


def _partial_roc_auc(h, max_fpr: float, zero_division):
    r"""McClish-standardised area of the ROC curve left of FPR = `max_fpr`.

    Bin k's segment runs from $(x_0, y_0) = ((fp_k - neg_k)/N, (tp_k - pos_k)/P)$ to
    $(x_1, y_1) = (fp_k/N, tp_k/P)$; its trapezoid is clipped at $m$ = `max_fpr`, the
    height at the cut interpolated linearly. With $A$ the clipped area,
    $\frac12\left(1 + \frac{A - m^2/2}{m - m^2/2}\right)$ (0.5 for chance, 1 for perfect).
    """
    counts = curve_counts(h)
    tp, fp = counts[..., 0], counts[..., 1]
    total_pos = xp.sum(h[..., 1], axis=-1, keepdims=True)
    total_neg = xp.sum(h[..., 0], axis=-1, keepdims=True)
    x1, y1 = safe_ratio(fp, total_neg), safe_ratio(tp, total_pos)
    x0, y0 = safe_ratio(fp - h[..., 0], total_neg), safe_ratio(tp - h[..., 1], total_pos)
    start, stop = xp.minimum(x0, max_fpr), xp.minimum(x1, max_fpr)
    slope = safe_ratio(y1 - y0, x1 - x0, 0)
    y_stop = y0 + slope * (stop - x0)
    area = xp.sum((stop - start) * (y0 + y_stop) / 2.0, axis=-1)
    low, high = 0.5 * max_fpr**2, max_fpr
    value = 0.5 * (1.0 + (area - low) / (high - low))
    defined = xp.logical_and(xp.greater(total_pos[..., 0], 0), xp.greater(total_neg[..., 0], 0))
    return xp.where(defined, value, safe_ratio(0.0, 0.0, zero_division))


def roc_auc(
    histogram,
    *,
    max_fpr: float | None = None,
    average: Average = None,
    class_weights=None,
    zero_division: ZeroDivision = ZERO_DIVISION,
):
    r"""Area under the ROC curve by the trapezoidal rule over the binned thresholds.

    $AUC = \sum_k (FPR_k - FPR_{k+1})(TPR_k + TPR_{k+1}) / 2
         = \frac{1}{2PN}\sum_k neg_k (2\,tp_k - pos_k)$ (ties within a bin count one half),
    equal to `sklearn.metrics.roc_auc_score(y, q(s))`.

    With `max_fpr` = m in (0, 1], the partial area left of FPR = m (the last segment cut
    there by linear interpolation), McClish-standardised as scikit-learn's
    `roc_auc_score(..., max_fpr=m)`: $\frac12(1 + \frac{A - m^2/2}{m - m^2/2})$. In
    segmentation almost every operating point sits at a small FPR; this scores that region.

    Args:
        histogram: `[C, B, 2]`.
        max_fpr: None (the full area) or m in (0, 1].
        average, class_weights: as in `average_precision`.
        zero_division: AUC of a class without positives or without negatives.

    Returns:
        float32 `[C]` or a scalar when averaged.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])
        >>> round(float(roc_auc(h)[0]), 4)
        0.9583
    """
    if max_fpr is not None and not (
        isinstance(max_fpr, int | float) and not isinstance(max_fpr, bool) and 0 < max_fpr <= 1
    ):
        raise ValueError(f"max_fpr must be a number in (0, 1]; received {max_fpr!r}.")
    if max_fpr == 1:
        max_fpr = None  # the full area, as scikit-learn

    def score(h, z):
        return _roc_auc(h, z, max_fpr)

    return average_histogram_score(score, histogram, average, class_weights, zero_division)


def _pr_auc(histogram, zero_division):
    tp, fp, _, _ = _split(curve_counts(histogram))
    pos = xp.cast(histogram[..., 1], "float32")
    total_pos = xp.sum(pos, axis=-1, keepdims=True)
    # Append the point above every score (tp = fp = 0) so the last bin has a right neighbour.
    zero = xp.zeros_like(tp[..., :1])
    tp_next = xp.concatenate([tp[..., 1:], zero], axis=-1)
    p, p_next = tp + fp, xp.concatenate([(tp + fp)[..., 1:], zero], axis=-1)
    dtp, dp = tp - tp_next, p - p_next
    slope = safe_ratio(dtp, xp.maximum(dp, 0.0), 0)
    intercept = tp_next - slope * p_next
    both = xp.logical_and(xp.greater(p, 0.0), xp.greater(p_next, 0.0))
    log_ratio = xp.where(both, xp.log(xp.where(both, p / xp.where(both, p_next, 1.0), 1.0)), 0.0)
    increment = safe_ratio(slope * (dtp + intercept * log_ratio), total_pos, 0)
    area = xp.sum(increment, axis=-1)
    return xp.where(xp.equal(total_pos[..., 0], 0.0), safe_ratio(0.0, 0.0, zero_division), area)


def pr_auc(
    histogram,
    *,
    average: Average = None,
    class_weights=None,
    zero_division: ZeroDivision = ZERO_DIVISION,
):
    r"""Area under the PR curve with Davis & Goadrich interpolation, as Keras' AUC(curve="PR").

    Between consecutive thresholds precision is interpolated along the line of constant
    slope in (predicted positives, tp) space, $tp = a\,p + b$, so that
    $\int P\,dR = \frac{1}{P_{tot}}\sum_k a_k\,(\Delta tp_k + b_k \ln(p_k / p_{k+1}))$.
    Davis & Goadrich, "The relationship between Precision-Recall and ROC curves", ICML 2006.

    Args:
        histogram: `[C, B, 2]`.
        average, class_weights, zero_division: as in `average_precision`.

    Returns:
        float32 `[C]` or a scalar when averaged.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[3, 0], [1, 1], [0, 2]]])
        >>> round(float(pr_auc(h)[0]), 4)
        0.9489
    """
    return average_histogram_score(_pr_auc, histogram, average, class_weights, zero_division)
