"""Fused per-class confusion counts: `tp, fp, fn, tn` for every class in one pass.

Multi-label (multi-hot truth, one-vs-rest per class) and exclusive classes (sparse labels,
a `C x C` confusion matrix) both reduce to the same `[C, 4]` layout.
"""

import numpy as np
from keras import ops

from voxelmetrics.backends import Streaming, bincount, compile_kernel, count_true, is_concrete
from voxelmetrics.ops._host import is_on_host
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    check_sparse_ids,
    grid_to_full,
    prepare,
    scores_and_invalid,
    static_shape,
    undefined_voxels,
)
from voxelmetrics.ops._options import THRESHOLD, check_int, check_threshold

INT32_MAX = 2**31 - 1


def _reduce_axes(spec: InputSpec, per_sample: bool) -> tuple[int, ...]:
    kept = {spec.axis, 0} if per_sample else {spec.axis}
    return tuple(a for a in range(spec.ndim) if a not in kept)


def _check_voxel_count(y_pred, spec: InputSpec, per_sample: bool) -> None:
    """Unweighted counts are int32 per call; refuse a call that could overflow them."""
    shape = static_shape(y_pred)
    voxels = 1
    for a in _reduce_axes(spec, per_sample):
        if shape[a] is None:
            return
        voxels *= shape[a]
    if voxels > INT32_MAX:
        raise ValueError(
            f"One call counts at most 2**31 - 1 voxels per class in int32 (JAX without x64); "
            f"this call has {voxels}. Split the volume into chunks and add their counts with "
            f"voxelmetrics.accumulate, which stays exact to 2**55."
        )


def predicted(scores, threshold):
    """The threshold rule of every layer: predicted positive where `score >= threshold`,
    both compared as float32 (the scores the kernels count, and the histogram's edges).

    A float64 threshold (0.7) sits above its float32 (0.69999999); comparing in float64
    would leave a score of exactly float32(0.7) out of a mask that the counts put it in.
    In-graph (`keras.ops`), or numpy inside `on_host()` (the offline boundary and lesion
    masks).

    Args:
        scores: any shape.
        threshold: broadcastable to `scores` (a number, or one per class placed on the
            class axis by the caller).

    Returns:
        bool, the broadcast shape.

    Example:
        >>> import numpy as np
        >>> from voxelmetrics.ops._host import on_host
        >>> with on_host():
        ...     predicted(np.float32([0.5, 0.7, 0.9]), 0.7).tolist()
        [False, True, True]
    """
    if is_on_host():
        return np.asarray(scores, np.float32) >= np.asarray(threshold, np.float32)
    return ops.greater_equal(ops.cast(scores, "float32"), ops.cast(threshold, "float32"))


def _class_shaped(threshold, spec: InputSpec):
    shape = [1] * spec.ndim
    shape[spec.axis] = -1
    return ops.reshape(ops.cast(threshold, "float32"), shape)


def _count_kernel(y_true, y_pred, threshold, sample_weight, mask, *, spec, per_sample):
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    scores, invalid = scores_and_invalid(y_pred, spec, bad_label)
    in_range = ops.logical_not(invalid)
    positive = predicted(scores, _class_shaped(threshold, spec))
    axes = _reduce_axes(spec, per_sample)
    if weight is None or ops.dtype(weight) == "bool":
        counted = in_range if weight is None else ops.logical_and(in_range, weight)
        invalid = invalid if weight is None else ops.logical_and(invalid, weight)
        hit = ops.logical_and(counted, labels)
        flags = [ops.logical_and(hit, positive), hit, ops.logical_and(counted, positive)]
        voxels = _static_voxels(scores, axes)
        # One packed pass over the volume (backends.count_true) instead of several
        # reductions; without a mask the counted voxels are all but the invalid ones.
        if weight is None and voxels is not None:
            tp, positives, predicted_positives, invalid = count_true([*flags, invalid], axes)
            n = voxels - invalid
        else:
            tp, positives, predicted_positives, n, invalid = count_true(
                [*flags, counted, invalid], axes
            )
        return _stack_counts(tp, positives, predicted_positives, n), invalid
    else:
        counted_weight = ops.where(in_range, weight, 0.0)

        def total(x):
            return ops.sum(ops.where(x, counted_weight, 0.0), axis=axes)

        invalid = ops.sum(ops.where(in_range, 0.0, weight) * ops.ones_like(scores), axis=axes)
        counted = ops.not_equal(counted_weight, 0.0)
    hit = ops.logical_and(counted, labels)
    tp = total(ops.logical_and(hit, positive))
    positives = total(hit)
    predicted_positives = total(ops.logical_and(counted, positive))
    n = total(ops.broadcast_to(counted, ops.shape(scores)))
    return _stack_counts(tp, positives, predicted_positives, n), invalid


def _static_voxels(scores, axes: tuple[int, ...]) -> int | None:
    """Voxels per class over the reduced `axes`, when all of them have a static size."""
    shape = static_shape(scores)
    sizes = [shape[a] for a in axes]
    return None if any(s is None for s in sizes) else int(np.prod(sizes, dtype=np.int64))


def _stack_counts(tp, positives, predicted_positives, n):
    fp = predicted_positives - tp
    fn = positives - tp
    return ops.stack([tp, fp, fn, n - tp - fp - fn], axis=-1)


_compiled_counts = compile_kernel(
    _count_kernel,
    static_argnames=("spec", "per_sample"),
    streaming=Streaming(("y_true", "y_pred", "sample_weight", "mask"), per_sample="per_sample"),
)


def confusion_counts(
    y_true,
    y_pred,
    threshold=THRESHOLD,
    *,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    per_sample: bool = False,
    with_invalid: bool = False,
    on_invalid: str = "raise",
):
    r"""Per-class `tp, fp, fn, tn` at a threshold, fused into one pass over the volume.

    A voxel is predicted positive for class c iff $s_c \ge \tau_c$. With truth $y$,
    prediction $\hat y$ and voxel weight $w$ (1 unless given):
    $tp_c = \sum w\,y\,\hat y$, $fp_c = \sum w\,(1-y)\,\hat y$, $fn_c = \sum w\,y\,(1-\hat y)$,
    $tn_c = \sum w\,(1-y)(1-\hat y)$. Multi-hot truth is never argmax-ed: overlapping labels
    each count for their own class.

    Args:
        y_true: multi-hot `[..., C, ...]` of {0, 1} (any dtype), or sparse integer ids `[...]`.
        y_pred: scores `[..., C, ...]`; probabilities, or logits with `from_logits`.
        threshold: scalar or `[C]`, in [0, 1].
        from_logits: True applies sigmoid (multi-hot) or softmax (sparse labels); or name one.
        axis: the class axis (channels-first works as `axis=1`, no transpose needed).
        sample_weight: optional weights broadcastable to the voxel grid, leading axes first
            (a `[B]` weight weighs whole volumes).
        mask: optional bool broadcastable to the voxel grid; False voxels are ignored.
        ignore_index: sparse label id to ignore.
        per_sample: keep the leading axis: one `[C, 4]` per volume.
        with_invalid: also return the per-class tally of NaN / out-of-range scores (traced
            calls exclude them from every count; eager calls raise instead).
        on_invalid: "raise" (default) or "tally": eager calls too leave invalid values out
            and tally them, as traced calls do (what every metric uses).

    Returns:
        int32 `[C, 4]` (float32 with `sample_weight`), columns `tp, fp, fn, tn`;
        `[N, C, 4]` with `per_sample`. With `with_invalid`, `(counts, invalid)` with
        `invalid` `[C]` (`[N, C]`).

    Example:
        >>> import numpy as np
        >>> y_true = np.array([[1, 1], [0, 1], [1, 0]])   # voxel 0 carries both labels
        >>> y_pred = np.array([[0.9, 0.4], [0.6, 0.7], [0.2, 0.1]], "float32")
        >>> np.asarray(confusion_counts(y_true, y_pred)).tolist()
        [[1, 1, 1, 0], [1, 0, 1, 1]]
    """
    spec = check_inputs(
        y_true,
        y_pred,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
        on_invalid=on_invalid,
    )
    if per_sample and spec.axis == 0:
        raise ValueError("per_sample=True needs a leading sample axis; the class axis is 0.")
    check_threshold(threshold, spec.num_classes)
    if sample_weight is None:
        _check_voxel_count(y_pred, spec, per_sample)
    counts, invalid = _compiled_counts(
        y_true,
        y_pred,
        ops.convert_to_tensor(threshold, "float32"),
        sample_weight,
        mask,
        spec=spec,
        per_sample=per_sample,
    )
    return (counts, invalid) if with_invalid else counts


def argmax_ids(scores, axis: int):
    """`(ids, undefined)`: int32 argmax over `axis` (ties: lowest class; a NaN score never
    wins) and bool, True where the voxel decides no class (`undefined_voxels`: a NaN score,
    several `+inf` or all `-inf`, as softmax). The one argmax rule of exclusive classes."""
    scores = ops.cast(scores, "float32")
    winner = ops.argmax(ops.where(ops.isnan(scores), -np.inf, scores), axis=axis)
    return ops.cast(winner, "int32"), undefined_voxels(scores, axis)


def argmax_one_hot(y_pred, axis: int):
    """float32 one-hot of `argmax_ids` over `axis`; NaN where the voxel is undefined.

    Exclusive classes are decided by argmax, the segmentation mask; NaN marks the voxel
    invalid so that `confusion_counts` tallies it instead of counting it.
    """
    ids, nan = argmax_ids(y_pred, axis)
    c = static_shape(y_pred)[axis]
    shape = [1] * len(static_shape(y_pred))
    shape[axis] = c
    classes = ops.reshape(ops.arange(c, dtype="int32"), shape)
    one_hot = ops.cast(ops.equal(ops.expand_dims(ids, axis), classes), "float32")
    return ops.where(ops.expand_dims(nan, axis), np.nan, one_hot)


def _matrix_kernel(labels, y_pred, sample_weight, mask, *, spec: InputSpec, scores_given):
    c = spec.num_classes
    if scores_given:
        predicted, invalid = argmax_ids(y_pred, spec.axis)
    else:
        predicted = ops.cast(y_pred, "int32")
        invalid = ops.logical_or(ops.less(predicted, 0), ops.greater_equal(predicted, c))
    truth = ops.cast(labels, "int32")
    invalid = ops.logical_or(
        invalid, ops.logical_or(ops.less(truth, 0), ops.greater_equal(truth, c))
    )
    keep = ops.ones_like(invalid)
    if spec.ignore_index is not None:
        keep = ops.not_equal(truth, spec.ignore_index)
        invalid = ops.logical_and(invalid, keep)
    grid = ops.shape(truth)
    if mask is not None:
        keep = ops.logical_and(keep, ops.broadcast_to(_grid(mask, spec), grid))
    ids = ops.where(invalid, c * c, truth * c + predicted)
    ids = ops.where(keep, ids, c * c + 1)
    weights = None
    if sample_weight is not None:
        weights = ops.reshape(ops.broadcast_to(_grid(sample_weight, spec), grid), (-1,))
    counts = bincount(ops.reshape(ids, (-1,)), c * c + 2, weights=weights)
    return ops.reshape(counts[: c * c], (c, c)), counts[c * c]


def _grid(w, spec: InputSpec):
    return ops.squeeze(grid_to_full(w, spec), spec.axis)


_compiled_matrix = compile_kernel(
    _matrix_kernel,
    static_argnames=("spec", "scores_given"),
    streaming=Streaming(("labels", "y_pred", "sample_weight", "mask")),
)


def sparse_confusion_matrix(
    labels,
    y_pred,
    num_classes: int,
    *,
    axis: int = -1,
    ignore_index: int | None = None,
    sample_weight=None,
    mask=None,
    with_invalid: bool = False,
):
    r"""`C x C` confusion matrix for exclusive classes, in one pass.

    $M_{ij}$ counts voxels of true class i predicted as class j, where the prediction is the
    argmax of the scores over the class axis (ties go to the lowest class id) or the given
    integer predictions.

    Args:
        labels: integer class ids `[...]`.
        y_pred: scores `[..., C, ...]` (softmax probabilities or logits: argmax is the same),
            or integer predictions `[...]` of the same shape as `labels`.
        num_classes: `C`.
        axis: the class axis of score `y_pred`.
        ignore_index: label id to ignore.
        sample_weight, mask: as in `confusion_counts`, broadcastable to the voxel grid.
        with_invalid: also return the count of voxels with NaN scores or ids out of range.

    Returns:
        int32 `[C, C]` (float32 with `sample_weight`), rows true class, columns predicted.

    Example:
        >>> import numpy as np
        >>> labels = np.array([0, 1, 2, 2])
        >>> y_pred = np.array([0, 2, 2, 1])
        >>> np.asarray(sparse_confusion_matrix(labels, y_pred, 3)).tolist()
        [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    """
    num_classes = check_int("num_classes", num_classes)
    true_shape, pred_shape = static_shape(labels), static_shape(y_pred)
    scores_given = len(pred_shape) == len(true_shape) + 1
    if scores_given:
        # softmax: only NaN is invalid for scores here, any range is fine for argmax.
        spec = check_inputs(
            labels,
            y_pred,
            axis=axis,
            from_logits="softmax",
            sample_weight=sample_weight,
            mask=mask,
            ignore_index=ignore_index,
            num_classes=num_classes,
        )
    elif true_shape == pred_shape:
        spec = InputSpec(
            len(true_shape) + 1,
            len(true_shape),
            num_classes,
            True,
            "none",
            ignore_index,
            sample_weight is not None,
            mask is not None,
        )
        if is_concrete(labels) and is_concrete(y_pred):
            check_sparse_ids(y_pred, num_classes, None, "integer predictions")
            check_sparse_ids(labels, num_classes, ignore_index, "labels")
    else:
        raise ValueError(
            f"y_pred has shape {pred_shape}; expected scores with a class axis of size "
            f"{num_classes} or integer predictions of the labels' shape {true_shape}."
        )
    matrix, invalid = _compiled_matrix(
        labels, y_pred, sample_weight, mask, spec=spec, scores_given=scores_given
    )
    return (matrix, invalid) if with_invalid else matrix


def counts_from_confusion_matrix(matrix):
    r"""Per-class one-vs-rest `tp, fp, fn, tn` from a `C x C` confusion matrix (or a batch).

    $tp_c = M_{cc}$, $fp_c = \sum_i M_{ic} - M_{cc}$, $fn_c = \sum_j M_{cj} - M_{cc}$,
    $tn_c = \sum M - tp_c - fp_c - fn_c$.

    Args:
        matrix: `[..., C, C]`, rows true class, columns predicted class.

    Returns:
        `[..., C, 4]` of the matrix's dtype, columns `tp, fp, fn, tn`.

    Example:
        >>> import numpy as np
        >>> m = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1]])
        >>> np.asarray(counts_from_confusion_matrix(m)).tolist()
        [[1, 0, 0, 3], [0, 1, 1, 2], [1, 1, 1, 1]]
    """
    tp = ops.diagonal(matrix, axis1=-2, axis2=-1)
    fp = ops.sum(matrix, axis=-2) - tp
    fn = ops.sum(matrix, axis=-1) - tp
    total = ops.sum(matrix, axis=(-2, -1))[..., None]
    return ops.stack([tp, fp, fn, total - tp - fp - fn], axis=-1)
