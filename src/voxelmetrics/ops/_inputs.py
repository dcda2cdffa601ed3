"""The one validation funnel: every accepted input form becomes one canonical form.

`check_inputs` validates shapes (always) and values (when they are concrete, i.e. eager) and
returns a hashable `InputSpec`; `prepare` runs inside the kernels (traceable) and turns the
raw tensors into boolean labels, float32 scores, a voxel weight and an `invalid` mask.
"""

import dataclasses
from typing import Literal

import numpy as np
from keras import ops

from voxelmetrics.backends import is_concrete, to_host, value_range
from voxelmetrics.ops._host import on_host, xp
from voxelmetrics.ops._options import check_from_logits, check_on_invalid

Activation = Literal["none", "sigmoid", "softmax"]


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Static facts about one call's inputs; hashable so that compiled kernels key on it.

    Attributes:
        ndim: rank of `y_pred`.
        axis: the class axis of `y_pred`, non-negative.
        num_classes: `C`, the size of the class axis.
        sparse: True when `y_true` holds integer class ids (exclusive classes).
        activation: what turns `y_pred` into probabilities.
        ignore_index: sparse label id that marks voxels to skip, or None.
        has_weight: a `sample_weight` was given (counts become float32 sums of weights).
        has_mask: a `mask` was given.
    """

    ndim: int
    axis: int
    num_classes: int
    sparse: bool
    activation: Activation
    ignore_index: int | None
    has_weight: bool
    has_mask: bool


def static_shape(x) -> tuple:
    """The shape of a tensor, array, list or Python number, as a tuple (None if unknown).

    Read from `x.shape`, not `ops.shape`: inside `tf.function` the latter gives a tensor for
    an unknown (batch) dimension, which no Python comparison can use.
    """
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def check_pred_rank(pred_shape: tuple) -> None:
    """Refuse a scalar or 1-D `y_pred`: scores need a voxel axis and a class axis.

    A `(N,)` array would otherwise read as N classes of one voxel, which is never what a
    binary problem given as 1-D arrays (as scikit-learn takes them) means; the message says
    how to pass it rather than guessing.
    """
    if len(pred_shape) == 0:
        raise ValueError("y_pred must have a class axis; received a scalar.")
    if len(pred_shape) == 1:
        raise ValueError(
            f"y_pred has shape {pred_shape}: a 1-D array has no voxel axis and would read as "
            f"{pred_shape[0]} classes of one voxel. For one class (a binary problem) pass "
            f"y_true[..., None] and y_pred[..., None], shape ({pred_shape[0]}, 1); for one "
            f"voxel of {pred_shape[0]} classes pass shape (1, {pred_shape[0]})."
        )


def class_count(pred_shape: tuple, axis: int) -> int:
    """`C`, the static size of y_pred's class axis (`axis` normalized); at least 1."""
    c = pred_shape[axis]
    if c is None:
        raise ValueError(f"The class axis {axis} of y_pred must have a static size.")
    if c == 0:
        raise ValueError(
            f"y_pred has shape {pred_shape}: 0 classes on the class axis {axis}; expected at "
            f"least one class (check axis=)."
        )
    return c


def normalize_axis(axis: int, ndim: int) -> int:
    """`axis` as a non-negative index into `ndim` axes, or a ValueError saying why not."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for y_pred of rank {ndim}.")
    return axis % ndim


def activation(from_logits: bool | str, sparse: bool) -> Activation:
    """What `from_logits` means: True is softmax for sparse labels, sigmoid for multi-hot."""
    from_logits = check_from_logits(from_logits)
    if from_logits in (False, None, "none"):
        return "none"
    if from_logits is True:
        return "softmax" if sparse else "sigmoid"
    return from_logits


def is_sparse(true_shape: tuple, pred_shape: tuple, axis: int) -> bool:
    """True for integer ids (`y_true` without the class axis, or with it of size 1 where
    `C > 1`), False for multi-hot labels of `y_pred`'s shape; else a ValueError. The one
    place where the two label forms are told apart."""
    grid_shape = pred_shape[:axis] + pred_shape[axis + 1 :]
    if len(true_shape) == len(pred_shape) - 1 and _compatible(true_shape, grid_shape):
        return True
    if len(true_shape) == len(pred_shape) and pred_shape[axis] not in (1, None):
        collapsed = (*true_shape[:axis], pred_shape[axis], *true_shape[axis + 1 :])
        if true_shape[axis] == 1 and _compatible(collapsed, pred_shape):
            return True
    if len(true_shape) == len(pred_shape) and _compatible(true_shape, pred_shape):
        return False
    raise ValueError(
        f"y_true has shape {true_shape} but y_pred has shape {pred_shape} (class axis {axis}): "
        f"expected multi-hot labels of shape {pred_shape} or sparse integer labels of shape "
        f"{grid_shape}."
    )


def _compatible(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=False)
    )


def _grid_weight_shape(shape: tuple, grid_shape: tuple, name: str) -> None:
    """Check that a weight/mask broadcasts to the voxel grid, left-aligned as in Keras."""
    padded = shape + (1,) * (len(grid_shape) - len(shape))
    ok = len(shape) <= len(grid_shape) and all(
        s in (1, None) or g is None or s == g for s, g in zip(padded, grid_shape, strict=False)
    )
    if not ok:
        raise ValueError(
            f"{name} has shape {shape}; expected a shape that broadcasts to the voxel grid "
            f"{grid_shape} (leading axes first, as Keras aligns sample weights)."
        )


def _full_weight_shape(shape: tuple, pred_shape: tuple, axis: int, name: str) -> None:
    """Check that a weight/mask of y_pred's rank broadcasts to y_pred (class axis 1 or C)."""
    ok = all(s in (1, None) or p is None or s == p for s, p in zip(shape, pred_shape, strict=True))
    if not ok:
        raise ValueError(
            f"{name} has shape {shape}; with y_pred's rank it must broadcast to y_pred's shape "
            f"{pred_shape}: size 1 or {pred_shape[axis]} on the class axis {axis}, the voxel "
            f"grid's size (or 1) on the others."
        )


def check_inputs(
    y_true,
    y_pred,
    *,
    axis: int,
    from_logits: bool | str,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    num_classes: int | None = None,
    on_invalid: str = "raise",
) -> InputSpec:
    """Validate the inputs of every counting op and describe them as an `InputSpec`.

    Shapes are checked always. Values (NaN scores, probabilities outside [0, 1], non-binary
    multi-hot truth, sparse ids outside `[0, C)`) are checked when the tensors are concrete;
    traced code cannot raise on values, so there they are tallied as `invalid` instead.
    `on_invalid="tally"` skips the value checks, so that eager calls tally as traced ones do.
    """
    pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
    check_pred_rank(pred_shape)
    axis = normalize_axis(axis, len(pred_shape))
    c = class_count(pred_shape, axis)
    if num_classes is not None and num_classes != c:
        raise ValueError(f"num_classes={num_classes} but y_pred has {c} classes on axis {axis}.")
    sparse = is_sparse(true_shape, pred_shape, axis)
    if ignore_index is not None and not sparse:
        raise ValueError("ignore_index applies to sparse integer labels; y_true is multi-hot.")
    grid_shape = pred_shape[:axis] + pred_shape[axis + 1 :]
    for name, w in (("sample_weight", sample_weight), ("mask", mask)):
        if w is not None and len(static_shape(w)) == len(pred_shape):
            _full_weight_shape(static_shape(w), pred_shape, axis, name)
        elif w is not None:
            _grid_weight_shape(static_shape(w), grid_shape, name)
    spec = InputSpec(
        ndim=len(pred_shape),
        axis=axis,
        num_classes=c,
        sparse=sparse,
        activation=activation(from_logits, sparse),
        ignore_index=ignore_index,
        has_weight=sample_weight is not None,
        has_mask=mask is not None,
    )
    if check_on_invalid(on_invalid) == "tally":
        return spec
    if is_concrete(y_true) and is_concrete(y_pred):
        _check_values(y_true, y_pred, spec, mask)
    if sample_weight is not None and is_concrete(sample_weight):
        check_sample_weight(sample_weight)
    return spec


def _first_index(flags: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(flags)), flags.shape))


def _check_values(y_true, y_pred, spec: InputSpec, mask) -> None:
    """Clear the usual, valid input with a few reductions on the tensors' own device; copy
    them to the host and find the first bad value only when something is wrong."""
    if not _scores_plainly_valid(y_pred, spec):
        _diagnose_scores(to_host(y_pred), spec, mask)
    if spec.sparse:
        if not _integers_in_range(y_true, 0, spec.num_classes - 1):
            check_sparse_ids(y_true, spec.num_classes, spec.ignore_index, "sparse y_true")
    elif not _integers_in_range(y_true, 0, 1):
        labels = to_host(y_true)
        bad = (labels != 0) & (labels != 1)
        if bad.any():
            raise ValueError(
                f"multi-hot y_true must hold only 0 and 1; found {labels[bad][0].item()!r} at "
                f"index {_first_index(bad)} ({int(bad.sum())} such values)."
            )


def _scores_plainly_valid(scores, spec: InputSpec) -> bool:
    """No NaN, probabilities within [0, 1], softmax logits finite: one `value_range`."""
    low, high = value_range(scores)
    if np.isnan(low) or np.isnan(high):
        return False
    if spec.activation == "softmax":
        return low > -np.inf and high < np.inf  # else look for undefined voxels
    return spec.activation != "none" or (low >= 0 and high <= 1)


def _integers_in_range(labels, low: int, high: int) -> bool:
    """True for bool labels, or integer labels whose values all lie in `[low, high]`."""
    # Not getattr(labels, "dtype", np.asarray(labels).dtype): its default would copy every
    # tensor to the host (and fail for a CUDA tensor) before `dtype` is even read.
    dtype = str(labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype)
    if "bool" in dtype:
        return True
    if "int" not in dtype:
        return False
    least, most = value_range(labels)
    return low <= least and most <= high


def _diagnose_scores(scores: np.ndarray, spec: InputSpec, mask) -> None:
    """Raise for NaN or out-of-range scores among the counted voxels, naming the first."""
    counted = np.ones(scores.shape, bool)
    if mask is not None and is_concrete(mask):
        counted = np.broadcast_to(
            np.asarray(ops.convert_to_numpy(grid_to_full(mask, spec)), bool), scores.shape
        )
    nan = np.isnan(scores) & counted
    if nan.any():
        raise ValueError(
            f"y_pred contains {int(nan.sum())} NaN score(s), the first at index "
            f"{_first_index(nan)}; NaN is never counted. Fix the predictions or mask those "
            f"voxels out with mask=."
        )
    if spec.activation == "softmax":
        undefined = np.asarray(ops.convert_to_numpy(undefined_voxels(scores, spec.axis, True)))
        undefined = np.broadcast_to(undefined, scores.shape) & counted
        if undefined.any():
            raise ValueError(
                f"y_pred holds {int(undefined.sum()) // spec.num_classes} voxel(s) whose "
                f"softmax is undefined (several +inf logits, or every logit -inf), the first "
                f"at index {_first_index(undefined)}; one +inf logit is a certain winner, "
                f"-inf a zero probability."
            )
    if spec.activation == "none":
        outside = ((scores < 0) | (scores > 1)) & counted
        if outside.any():
            raise ValueError(
                f"y_pred holds {int(outside.sum())} probabilities outside [0, 1] (range "
                f"[{scores[counted].min()}, {scores[counted].max()}], the first at index "
                f"{_first_index(outside)}); pass from_logits=True if these are logits."
            )


def bad_weight(weight):
    """Where a weight is NaN, infinite or negative: the rule of every voxel and volume weight
    (such a weight counts nowhere and is tallied as invalid in-graph; eager calls raise).
    `weight` any shape, float; bool, the same shape; numpy inside `on_host()`.

    Example:
        >>> with on_host():
        ...     bad_weight(np.array([1.0, 0.0, -1.0, np.nan, np.inf])).tolist()
        [False, False, True, True, True]
    """
    return xp.logical_not(xp.logical_and(xp.isfinite(weight), xp.greater_equal(weight, 0)))


def check_sample_weight(sample_weight) -> None:
    """Raise unless the concrete `sample_weight` is finite and >= 0 everywhere."""
    low, high = value_range(sample_weight)
    if low > high:  # empty
        return
    with on_host():
        if not bad_weight(np.array([low, high], np.float64)).any():
            return
        values = to_host(sample_weight).astype(np.float64)
        bad = bad_weight(values)
    raise ValueError(
        f"sample_weight must be finite and >= 0; found {values[bad][0]} at index "
        f"{_first_index(bad)} ({int(bad.sum())} such values). Use mask= to leave voxels out."
    )


def check_sparse_ids(ids, num_classes: int, ignore_index: int | None, name: str) -> None:
    """Raise unless the concrete `ids` are integers in `[0, num_classes)` or `ignore_index`."""
    values = to_host(ids)
    as_int = values.astype(np.int64)
    if not np.array_equal(as_int, values):
        raise ValueError(f"{name} must hold integer class ids; found fractional values.")
    bad = ((as_int < 0) | (as_int >= num_classes)) & (as_int != ignore_index)
    if bad.any():
        raise ValueError(
            f"{name} holds {int(bad.sum())} id(s) outside [0, {num_classes}) (e.g. "
            f"{int(as_int[bad][0])} at index {_first_index(bad)}); set ignore_index for a void "
            f"label."
        )


def grid_to_full(w, spec: InputSpec):
    """Broadcastable full-rank view of a voxel-grid weight or mask (class axis inserted)."""
    w = ops.convert_to_tensor(w)
    if len(ops.shape(w)) == spec.ndim:
        return w
    grid_rank = spec.ndim - 1
    w = ops.reshape(w, tuple(ops.shape(w)) + (1,) * (grid_rank - len(ops.shape(w))))
    return ops.expand_dims(w, spec.axis)


def class_ids(spec: InputSpec):
    """int32 `[1, .., C, .., 1]`: the class index along the class axis, broadcastable."""
    return _class_range(spec.num_classes, spec.axis, spec.ndim)


def _class_range(num_classes: int, axis: int, ndim: int):
    shape = [1] * ndim
    shape[axis] = num_classes
    return ops.reshape(ops.arange(num_classes, dtype="int32"), shape)


def sparse_one_hot(y_true, num_classes: int, axis: int, ndim: int):
    """Sparse class ids as one-hot labels: the one rule of the counts, the losses and the
    boundary ops (an id outside `[0, C)` is in no class).

    Args:
        y_true: integer ids `(...)` with `ndim - 1` axes, or `ndim` axes with a length-1
            class axis at `axis`.
        num_classes: `C`.
        axis: the class axis of the result, in `[0, ndim)` or negative.
        ndim: the rank of the result.

    Returns:
        `(ids, labels)`: int32 ids with the class axis, and bool labels `[..., C, ...]`.

    Example:
        >>> _, labels = sparse_one_hot(np.array([0, 2, 5]), 3, -1, 2)
        >>> np.asarray(labels).astype(int).tolist()
        [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    """
    ids = ops.cast(y_true, "int32")
    if len(ops.shape(ids)) == ndim - 1:
        ids = ops.expand_dims(ids, axis)
    return ids, ops.equal(ids, _class_range(num_classes, axis, ndim))


def to_probabilities(y_pred, spec: InputSpec):
    """float32 scores after the spec's activation (sigmoid, softmax over the class axis)."""
    return apply_activation(y_pred, spec.activation, spec.axis)


def apply_activation(y_pred, activation: Activation, axis: int):
    """float32 `y_pred` after `activation`: "sigmoid", "softmax" over `axis`, or "none".

    Infinite logits are valid where the limit is: sigmoid gives 1 at `+inf` and 0 at
    `-inf`; softmax gives the class with the one `+inf` logit probability 1 (a one-hot
    winner) and a `-inf` logit probability 0. A voxel whose softmax has no limit
    (`undefined_voxels`: a NaN logit, several `+inf`, or every logit `-inf`) gets NaN in every
    class, on every backend, so that it is never counted.
    """
    scores = ops.cast(y_pred, "float32")
    if activation == "sigmoid":
        return ops.sigmoid(scores)
    if activation == "softmax":
        return _softmax(scores, axis)
    return scores


def _softmax(logits, axis: int):
    positive = ops.equal(logits, np.inf)
    winner = ops.any(positive, axis=axis, keepdims=True)
    limit = ops.where(winner, ops.where(positive, 0.0, -np.inf), logits)
    probabilities = ops.softmax(limit, axis=axis)
    return ops.where(undefined_voxels(logits, axis, keepdims=True), np.nan, probabilities)


def undefined_voxels(scores, axis: int, keepdims: bool = False):
    """bool, True where a voxel's scores over the class axis decide no class: a NaN score,
    several `+inf`, or every score `-inf`. The one rule of softmax and of argmax."""
    scores = ops.cast(scores, "float32")
    several = ops.greater(ops.sum(ops.cast(ops.equal(scores, np.inf), "int32"), axis=axis), 1)
    undefined = ops.logical_or(
        ops.logical_or(ops.any(ops.isnan(scores), axis=axis), several),
        ops.all(ops.equal(scores, -np.inf), axis=axis),
    )
    return ops.expand_dims(undefined, axis) if keepdims else undefined


def scores_and_invalid(y_pred, spec: InputSpec, bad_label=None):
    """float32 probabilities, and where a voxel cannot be counted: a score NaN or outside
    [0, 1], or (`bad_label` from `prepare`) a sparse id out of range. The one in-range rule of
    every kernel."""
    scores = to_probabilities(y_pred, spec)
    in_range = ops.logical_and(ops.greater_equal(scores, 0.0), ops.less_equal(scores, 1.0))
    invalid = ops.logical_not(in_range)
    return scores, invalid if bad_label is None else ops.logical_or(invalid, bad_label)


def prepare(y_true, sample_weight, mask, spec: InputSpec):
    """Canonical labels and voxel weight, inside the kernel.

    Returns:
        `(labels, weight, bad_label)`: `labels` bool, broadcastable to `y_pred`'s shape (True
        where the voxel belongs to the class); `weight` None (every voxel counts), bool (mask)
        or float32 (sample weights times mask), broadcastable to `y_pred`'s shape;
        `bad_label` None, or bool where a label cannot be counted (a sparse id outside
        `[0, C)` and not `ignore_index`, a multi-hot value other than 0 and 1) or a
        `sample_weight` is NaN, infinite or negative: such voxels are tallied as invalid,
        never counted as negatives.
    """
    y_true = ops.convert_to_tensor(y_true)  # lists and numpy arrays have no backend dtype
    weight = None if mask is None else ops.cast(grid_to_full(mask, spec), "bool")
    bad_label = None
    if spec.sparse:
        ids, labels = sparse_one_hot(y_true, spec.num_classes, spec.axis, spec.ndim)
        bad_label = ops.logical_or(ops.less(ids, 0), ops.greater_equal(ids, spec.num_classes))
        if spec.ignore_index is not None:
            keep = ops.not_equal(ids, spec.ignore_index)
            bad_label = ops.logical_and(bad_label, keep)
            weight = keep if weight is None else ops.logical_and(weight, keep)
    else:
        labels = ops.not_equal(y_true, ops.zeros((), dtype=ops.dtype(y_true)))
        if "bool" not in ops.dtype(y_true):
            bad_label = ops.logical_and(labels, ops.not_equal(ops.cast(y_true, "float32"), 1.0))
    if sample_weight is not None:
        sw = ops.cast(grid_to_full(sample_weight, spec), "float32")
        # A NaN, infinite or negative weight counts nowhere; the voxel is tallied as
        # invalid with weight 1 (an eager call raises before getting here).
        bad = bad_weight(sw)
        sw = ops.where(bad, 1.0, sw)
        bad_label = bad if bad_label is None else ops.logical_or(bad_label, bad)
        weight = sw if weight is None else sw * ops.cast(weight, "float32")
    return labels, weight, bad_label
