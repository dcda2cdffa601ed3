"""Exact, sort-based PR curves and average precision: the validation mode.

O(N log N) per class instead of the O(N) histogram; matches scikit-learn on raw scores.
For small data and for checking the binned results, not for the training loop.
"""

from keras import ops

from voxelmetrics.backends import compile_kernel, searchsorted
from voxelmetrics.ops._inputs import InputSpec, check_inputs, prepare, to_probabilities
from voxelmetrics.ops.scores import Average, ZeroDivision, average_scores, safe_ratio


def _class_rows(x, spec: InputSpec):
    """`[C, M]`: the class axis first, every other axis flattened."""
    return ops.reshape(ops.moveaxis(x, spec.axis, 0), (spec.num_classes, -1))


def _exact_kernel(y_true, y_pred, sample_weight, mask, *, spec: InputSpec):
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    scores = to_probabilities(y_pred, spec)
    valid = ops.logical_and(ops.greater_equal(scores, 0.0), ops.less_equal(scores, 1.0))
    if bad_label is not None:
        valid = ops.logical_and(valid, ops.logical_not(bad_label))
    dtype = "int32" if weight is None or ops.dtype(weight) == "bool" else "float32"
    w = ops.cast(valid, dtype) if weight is None else ops.where(valid, ops.cast(weight, dtype), 0)
    shape = ops.shape(scores)
    w = _class_rows(ops.broadcast_to(w, shape), spec)
    pos = w * ops.cast(_class_rows(ops.broadcast_to(labels, shape), spec), dtype)
    s = _class_rows(ops.where(valid, scores, 0.0), spec)
    order = ops.argsort(s, axis=-1)
    s = ops.take_along_axis(s, order, axis=-1)
    w, pos = ops.take_along_axis(w, order, axis=-1), ops.take_along_axis(pos, order, axis=-1)
    # At threshold s_i the predicted positives are all scores >= s_i: everything from the
    # first member of s_i's tie group onwards.
    first = ops.stack([searchsorted(s[c], s[c], side="left") for c in range(spec.num_classes)])
    before_w = ops.take_along_axis(ops.cumsum(w, axis=-1) - w, first, axis=-1)
    before_pos = ops.take_along_axis(ops.cumsum(pos, axis=-1) - pos, first, axis=-1)
    total_pos = ops.sum(pos, axis=-1, keepdims=True)
    tp = total_pos - before_pos
    predicted = ops.sum(w, axis=-1, keepdims=True) - before_w
    return tp, predicted, total_pos, pos, s


_compiled_exact = compile_kernel(_exact_kernel, static_argnames=("spec",))


def _exact(y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index):
    spec = check_inputs(
        y_true,
        y_pred,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
    )
    return _compiled_exact(y_true, y_pred, sample_weight, mask, spec=spec)


def exact_precision_recall_curve(
    y_true,
    y_pred,
    *,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    zero_division: ZeroDivision = "nan",
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

    Returns:
        `(precision, recall, thresholds)`, each float32 `[C, M]` (M voxels per class).

    Example:
        >>> import numpy as np
        >>> p, r, t = exact_precision_recall_curve(np.array([[0], [1], [1]]),
        ...                                        np.float32([[0.2], [0.7], [0.7]]))
        >>> np.asarray(p).round(3).tolist(), np.asarray(t).tolist()
        ([[0.667, 1.0, 1.0]], [[0.2, 0.699999988079071, 0.699999988079071]])
    """
    tp, predicted, total_pos, _, thresholds = _exact(
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index
    )
    return (
        safe_ratio(tp, predicted, 1),
        safe_ratio(tp, ops.broadcast_to(total_pos, ops.shape(tp)), zero_division),
        thresholds,
    )


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
    zero_division: ZeroDivision = "nan",
):
    r"""Exact average precision per class, equal to `sklearn.metrics.average_precision_score`.

    $AP = \frac{1}{P}\sum_{i:\,y_i = 1} w_i\,P(s \ge s_i)$: each positive weighs the precision
    at its own score's threshold, which is the step-wise sum $\sum (R_k - R_{k+1}) P_k$.

    Args:
        average: None/"none", "macro" or "weighted" (by support or `class_weights`).
            "micro" pools classes by re-sorting all scores: call with the class axis
            flattened instead.
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
        raise ValueError(
            "exact_average_precision supports average None, 'none', 'macro' or 'weighted'; "
            "received 'micro': flatten the class axis into one class to pool them."
        )
    tp, predicted, total_pos, pos, _ = _exact(
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index
    )
    precision = safe_ratio(tp, predicted, 1)
    support = ops.cast(total_pos[..., 0], "float32")
    values = safe_ratio(
        ops.sum(ops.cast(pos, "float32") * precision, axis=-1), support, zero_division
    )
    return average_scores(values, support, average=average, class_weights=class_weights)
