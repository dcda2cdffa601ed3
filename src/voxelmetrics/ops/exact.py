"""Exact, sort-based PR curves and average precision: the validation mode.

O(N log N) per class instead of the O(N) histogram; matches scikit-learn on raw scores.
For small data and for checking the binned results, not for the training loop.
"""

from keras import ops

from voxelmetrics.backends import compile_kernel, run_starts
from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.ops._host import bitcast
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    prepare,
    scores_and_invalid,
    to_probabilities,
)
from voxelmetrics.ops._options import check_average
from voxelmetrics.ops.scores import Average, ZeroDivision, average_scores, safe_ratio


def _class_rows(x, spec: InputSpec):
    """`[C, M]`: the class axis first, every other axis flattened."""
    return ops.reshape(ops.moveaxis(x, spec.axis, 0), (spec.num_classes, -1))


def _exact_kernel(y_true, y_pred, sample_weight, mask, *, spec: InputSpec):
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    scores, invalid = scores_and_invalid(y_pred, spec, bad_label)
    valid = ops.logical_not(invalid)
    if weight is None or ops.dtype(weight) == "bool":
        counted = valid if weight is None else ops.logical_and(valid, weight)
        s, pos, first, predicted = _sorted_counts(scores, labels, counted, spec)
    else:
        s, pos, first, predicted = _sorted_weights(scores, labels, valid, weight, spec)
    # At threshold s_i the predicted positives are all scores >= s_i: everything from
    # `first`, the first member of s_i's tie group, onwards.
    before_pos = ops.take_along_axis(ops.cumsum(pos, axis=-1) - pos, first, axis=-1)
    total_pos = ops.sum(pos, axis=-1, keepdims=True)
    return total_pos - before_pos, predicted, total_pos, pos, s


def _sorted_counts(scores, labels, counted, spec: InputSpec):
    r"""Sort voxels by score with one single-key int32 sort; `(s, pos, first, predicted)`.

    For scores in [0, 1] the float32 bit pattern orders like the value, so
    $key = bits(s) \cdot 2 + y$ sorts scores with the label riding in the low bit: one
    plain sort instead of an argsort and gathers (on XLA's CPU about 6x faster). Voxels
    not counted get key 0 (score 0, negative) and are taken back out of the predicted
    positives at threshold 0, the only threshold they reach.
    """
    score = ops.where(ops.equal(scores, 0.0), 0.0, scores)  # -0.0 has the sign bit set
    key = ops.left_shift(bitcast(score, "int32"), 1) + ops.cast(labels, "int32")
    key = ops.sort(_class_rows(ops.where(counted, key, 0), spec), axis=-1)
    bits = ops.right_shift(key, 1)
    size = ops.shape(key)[-1]
    uncounted = size - ops.sum(
        _class_rows(ops.cast(ops.broadcast_to(counted, ops.shape(scores)), "int32"), spec),
        axis=-1,
        keepdims=True,
    )
    first = run_starts(bits)  # ties compared as bits: exact, subnormals included
    predicted = size - first - ops.where(ops.equal(bits, 0), uncounted, 0)
    return bitcast(bits, "float32"), ops.bitwise_and(key, 1), first, predicted


def _sorted_weights(scores, labels, valid, weight, spec: InputSpec):
    """`(s, pos, first, predicted)` `[C, M]` for float weights: an argsort, then gathers."""
    w = ops.where(valid, ops.cast(weight, "float32"), 0.0)
    shape = ops.shape(scores)
    w = _class_rows(ops.broadcast_to(w, shape), spec)
    pos = w * ops.cast(_class_rows(ops.broadcast_to(labels, shape), spec), "float32")
    s = _class_rows(ops.where(valid, scores, 0.0), spec)
    order = ops.argsort(s, axis=-1)
    s = ops.take_along_axis(s, order, axis=-1)
    w, pos = ops.take_along_axis(w, order, axis=-1), ops.take_along_axis(pos, order, axis=-1)
    first = run_starts(s)
    before_w = ops.take_along_axis(ops.cumsum(w, axis=-1) - w, first, axis=-1)
    return s, pos, first, ops.sum(w, axis=-1, keepdims=True) - before_w


_compiled_exact = compile_kernel(_exact_kernel, static_argnames=("spec",))


def _exact(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index):
    spec = _spec(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index)
    return _compiled_exact(y_true, y_pred, sample_weight, mask, spec=spec)


def _spec(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index):
    return check_inputs(
        y_true,
        y_pred,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
    )


def _pooled(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index):
    """`(labels, scores, sample_weight, mask)` of one class `[N * C, 1]`: every (voxel,
    class) pair a binary sample, probabilities already applied, weights repeated per class."""
    spec = _spec(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index)
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    scores = to_probabilities(y_pred, spec)
    shape = ops.shape(scores)

    def column(x):
        return ops.reshape(ops.moveaxis(ops.broadcast_to(x, shape), spec.axis, -1), (-1, 1))

    keep = None if bad_label is None else ops.logical_not(bad_label)
    if weight is not None and ops.dtype(weight) == "bool":
        keep = weight if keep is None else ops.logical_and(keep, weight)
        weight = None
    pooled_weight = None if weight is None else column(weight)[:, 0]
    pooled_mask = None if keep is None else column(keep)[:, 0]
    return ops.cast(column(labels), "int32"), column(scores), pooled_weight, pooled_mask


def exact_precision_recall_curve(
    y_true,
    y_pred,
    *,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    zero_division: ZeroDivision = ZERO_DIVISION,
    with_average_precision: bool = False,
):
    r"""Exact per-class PR curve, one point per voxel, thresholds = the sorted scores.

    At threshold $s_i$ (sorted increasing), $P_i = tp(s \ge s_i) / |\{s \ge s_i\}|$ and
    $R_i = tp(s \ge s_i) / P$. Tied scores share one point, so the distinct points are
    exactly scikit-learn's `precision_recall_curve` (without its appended (1, 0) point);
    static shapes keep it jit-safe.

    Args:
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index: as in
            `score_histogram`; masked and invalid voxels carry zero weight.
        zero_division: recall of a class without positives.
        with_average_precision: also return `exact_average_precision` per class `[C]`,
            from the same sort (one O(N log N) pass for both).

    Returns:
        `(precision, recall, thresholds)`, each float32 `[C, M]` (M voxels per class); with
        `with_average_precision`, `(precision, recall, thresholds, average_precision)`.

    Example:
        >>> import numpy as np
        >>> p, r, t = exact_precision_recall_curve(np.array([[0], [1], [1]]),
        ...                                        np.float32([[0.2], [0.7], [0.7]]))
        >>> np.asarray(p).round(3).tolist(), np.asarray(t).tolist()
        ([[0.667, 1.0, 1.0]], [[0.2, 0.699999988079071, 0.699999988079071]])
    """
    tp, predicted, total_pos, pos, thresholds = _exact(
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index
    )
    precision = safe_ratio(tp, predicted, 1)
    recall = safe_ratio(tp, ops.broadcast_to(total_pos, ops.shape(tp)), zero_division)
    if with_average_precision:
        ap = _average_precision(precision, total_pos, pos, zero_division)
        return precision, recall, thresholds, ap
    return precision, recall, thresholds


def _average_precision(precision, total_pos, pos, zero_division: ZeroDivision):
    """`[C]`: each positive weighs the precision at its own score's threshold."""
    support = ops.cast(total_pos[..., 0], "float32")
    weighted = ops.sum(ops.cast(pos, "float32") * precision, axis=-1)
    return safe_ratio(weighted, support, zero_division)


def exact_average_precision(
    y_true,
    y_pred,
    *,
    average: Average = None,
    class_weights=None,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    zero_division: ZeroDivision = ZERO_DIVISION,
):
    r"""Exact average precision per class, equal to `sklearn.metrics.average_precision_score`.

    $AP = \frac{1}{P}\sum_{i:\,y_i = 1} w_i\,P(s \ge s_i)$: each positive weighs the precision
    at its own score's threshold, which is the step-wise sum $\sum (R_k - R_{k+1}) P_k$.

    Args:
        average: None/"none", "macro", "weighted" (by support or `class_weights`), or
            "micro": every (voxel, class) pair one binary sample, as scikit-learn's
            `average_precision_score(..., average="micro")` (sparse labels as one-hot).
        Others as in `exact_precision_recall_curve`.

    Returns:
        float32 `[C]`, or a scalar when averaged.

    Example:
        >>> import numpy as np
        >>> y = np.array([[0], [1], [1], [0]])
        >>> s = np.float32([[0.1], [0.4], [0.35], [0.8]])
        >>> round(float(exact_average_precision(y, s)[0]), 4)   # sklearn: 0.5833
        0.5833
    """
    if average == "micro":
        check_average(average, class_weights)
        labels, scores, weight, keep = _pooled(
            y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index
        )
        pooled = exact_average_precision(
            labels, scores, sample_weight=weight, mask=keep, zero_division=zero_division
        )
        return pooled[0]
    tp, predicted, total_pos, pos, _ = _exact(
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index
    )
    values = _average_precision(safe_ratio(tp, predicted, 1), total_pos, pos, zero_division)
    support = ops.cast(total_pos[..., 0], "float32")
    return average_scores(values, support, average=average, class_weights=class_weights)
