"""The two fused states every Keras metric here is a thin shell over.

`CountState` holds per-class `tp, fp, fn, tn` (one `confusion_counts` pass per batch);
`HistogramState` holds per-class score histograms (one `score_histogram` pass per batch).
Both are exact int32-limb totals merged by sum (DESIGN.md, "State and distribution").
"""

import math
from collections.abc import Sequence

import numpy as np
from keras import metrics, ops

from voxelmetrics.backends import is_concrete
from voxelmetrics.ops._inputs import normalize_axis, static_shape
from voxelmetrics.ops.accumulate import accumulate, exact_total, total_as_float
from voxelmetrics.ops.counting import confusion_counts
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.scores import check_average, zero_division_value

MODES = ("multilabel", "multiclass", "sparse")


def check_num_classes(num_classes, class_names) -> int | None:
    """`C` from `num_classes` and/or `class_names`, or None when the first batch will say."""
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"num_classes must be an integer >= 1; received {num_classes!r}.")
    if class_names is None:
        return num_classes
    if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
        raise ValueError(f"class_names must be a list of strings; received {class_names!r}.")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be unique; received {list(class_names)}.")
    if num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}.")
    return len(class_names)


def check_threshold(threshold, num_classes: int | None, mode: str):
    """The threshold as a float or a list of floats in [0, 1] (None: argmax, exclusive only)."""
    if threshold is None:
        return 0.5 if mode == "multilabel" else None
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim > 1 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"threshold must be a number in [0, 1] or one per class; received {threshold!r}."
        )
    if values.ndim == 1 and num_classes is not None and len(values) != num_classes:
        raise ValueError(f"threshold has {len(values)} values but there are {num_classes} classes.")
    return float(values) if values.ndim == 0 else values.tolist()


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; received {value!r}.")


def normalize_average(average):
    """`"none"` and None mean per class: store None. Raises on an unknown average."""
    check_average(average)
    return None if average in (None, "none") else average


def check_class_weights(class_weights, average, num_classes: int | None):
    """class_weights as stored in config: None, "inverse_frequency" or a list of floats."""
    check_average(average, class_weights)
    if class_weights is None or isinstance(class_weights, str):
        return class_weights
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1 or (num_classes is not None and len(weights) != num_classes):
        raise ValueError(
            f"class_weights must hold one weight per class ({num_classes}); received "
            f"{class_weights!r}."
        )
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f"class_weights must be finite and >= 0; received {class_weights!r}.")
    return weights.tolist()


def check_zero_division(zero_division):
    """zero_division as stored in config: "nan", 0 or 1."""
    if isinstance(zero_division, float) and math.isnan(zero_division):
        return "nan"
    zero_division_value(zero_division)
    return zero_division


def argmax_one_hot(y_pred, axis: int):
    """float32 one-hot of the argmax over `axis` (ties: lowest class); NaN where a score is.

    Exclusive classes are decided by argmax, the segmentation mask; NaN marks the voxel
    invalid so that `confusion_counts` tallies it instead of counting it.
    """
    scores = ops.cast(y_pred, "float32")
    nan = ops.any(ops.isnan(scores), axis=axis, keepdims=True)
    winner = ops.argmax(ops.where(ops.isnan(scores), -np.inf, scores), axis=axis)
    shape = [1] * len(ops.shape(scores))
    shape[axis] = ops.shape(scores)[axis]
    ids = ops.reshape(ops.arange(shape[axis], dtype="int32"), shape)
    one_hot = ops.cast(ops.equal(ops.expand_dims(ops.cast(winner, "int32"), axis), ids), "float32")
    return ops.where(nan, np.nan, one_hot)


class SegmentationMetric(metrics.Metric):
    """Configuration shared by every metric: how inputs are read, and the lazily built state.

    Subclasses implement `_build_state(num_classes)` (create variables with `add_variable`)
    and `_update(y_true, y_pred, sample_weight, mask)`.

    The state is created in `__init__` when `num_classes` (or `class_names`) is given, else
    from the static class-axis size of the first `update_state` call (as Keras' `F1Score`
    does); this works in `model.compile`, where Keras builds metrics on symbolic inputs
    before training. Calling the stateless API (`stateless_update_state` under `jax.jit`)
    before any update needs `num_classes`.
    """

    def __init__(
        self,
        *,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        zero_division="nan",
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        _check_choice("mode", mode, MODES)
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be True or False; received {from_logits!r}.")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"axis must be an integer; received {axis!r}.")
        if ignore_index is not None and mode != "sparse":
            raise ValueError(f"ignore_index applies to mode='sparse'; received mode={mode!r}.")
        self.mode = mode
        self.from_logits = from_logits
        self.axis = axis
        self.num_classes = check_num_classes(num_classes, class_names)
        self.class_names = None if class_names is None else list(class_names)
        self.ignore_index = ignore_index
        self.zero_division = check_zero_division(zero_division)
        self._state_built = False

    def _maybe_build(self, num_classes: int) -> None:
        if self._state_built:
            if num_classes != self.num_classes:
                raise ValueError(
                    f"{self.name} holds state for {self.num_classes} classes; y_pred has "
                    f"{num_classes}."
                )
            return
        self.num_classes = num_classes
        self._build_state(num_classes)
        self._state_built = True

    def _build_state(self, num_classes: int) -> None:
        raise NotImplementedError

    @property
    def activation(self) -> str | bool:
        """What `from_logits` means for this mode, in the ops' terms."""
        if not self.from_logits:
            return False
        return "sigmoid" if self.mode == "multilabel" else "softmax"

    def _working_scores(self, y_pred):
        """`(y_pred, axis, threshold, from_logits)` for `confusion_counts` at the working
        threshold: `threshold=None` on exclusive classes means the argmax over classes, given
        as a one-hot at 0.5 (the one place this rule lives)."""
        axis = normalize_axis(self.axis, len(static_shape(y_pred)))
        if self.threshold is None:
            return argmax_one_hot(y_pred, axis), axis, 0.5, False
        return y_pred, axis, self.threshold, self.activation

    @property
    def names(self) -> list[str]:
        """One name per class: `class_names`, or `class_0`, `class_1`, …"""
        return self.class_names or [f"class_{i}" for i in range(self.num_classes)]

    def _check_inputs(self, y_true, y_pred) -> None:
        pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
        axis = normalize_axis(self.axis, len(pred_shape))
        num_classes = pred_shape[axis]
        if num_classes is None:
            raise ValueError(f"The class axis {self.axis} of y_pred must have a static size.")
        sparse = len(true_shape) == len(pred_shape) - 1 or (
            len(true_shape) == len(pred_shape) and true_shape[axis] == 1 and num_classes > 1
        )
        if sparse != (self.mode == "sparse"):
            expected = (
                f"integer labels of shape {pred_shape[:axis] + pred_shape[axis + 1 :]}"
                if self.mode == "sparse"
                else f"multi-hot / one-hot labels of shape {pred_shape}"
            )
            raise ValueError(
                f"{self.name} has mode={self.mode!r} and expects {expected}; y_true has shape "
                f"{true_shape}."
            )
        self._maybe_build(num_classes)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        """Add one batch to the state.

        Args:
            y_true: multi-hot / one-hot `[..., C, ...]`, or integer ids `[...]` with
                `mode="sparse"`.
            y_pred: scores `[..., C, ...]`, class axis `axis`.
            sample_weight: optional weights broadcastable to the voxel grid, leading axes
                first (Keras' `[B]` weighs whole volumes).
            mask: optional bool broadcastable to the voxel grid; False voxels are ignored.
        """
        self._check_inputs(y_true, y_pred)
        self._update(y_true, y_pred, sample_weight, mask)

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        raise NotImplementedError

    def result(self):
        if not self._state_built:
            raise ValueError(
                f"{self.name} has no state yet: call update_state first or pass num_classes."
            )
        return self._result()

    def _result(self):
        raise NotImplementedError

    # Exact totals: an int32-limb variable for unweighted batches and a float32 one for
    # weighted batches (sums of weights are not integers); the value is their sum.
    def _add_total(self, name: str, shape: tuple[int, ...]) -> None:
        setattr(
            self,
            name,
            self.add_variable(shape=(*shape, 2), initializer="zeros", dtype="int32", name=name),
        )
        setattr(
            self,
            f"{name}_weighted",
            self.add_variable(
                shape=shape, initializer="zeros", dtype="float32", name=f"{name}_weighted"
            ),
        )

    def _accumulate(self, name: str, values) -> None:
        """Add one batch's counts: int32 counts exactly, float32 (weighted) sums as floats."""
        if "int" in str(ops.dtype(values)):
            limbs = getattr(self, name)
            limbs.assign(accumulate(limbs, values))
        else:
            weighted = getattr(self, f"{name}_weighted")
            weighted.assign(weighted + ops.cast(values, "float32"))

    def _total(self, name: str):
        """float32 value of a total (relative error below 2**-24), in-graph."""
        return total_as_float(getattr(self, name)) + getattr(self, f"{name}_weighted")

    def _exact(self, name: str):
        """The exact total on the host: int64 numpy while no weighted batch was added
        (float64 otherwise); inside a traced function, the float32 `_total`."""
        limbs = getattr(self, name)
        if not is_concrete(ops.convert_to_tensor(limbs)):
            return self._total(name)
        weighted = np.asarray(ops.convert_to_numpy(getattr(self, f"{name}_weighted")))
        exact = exact_total(limbs)
        return exact if not weighted.any() else exact + weighted.astype(np.float64)

    def invalid_count(self):
        """Per class, how many scores were left out as invalid (NaN, out of range, or a
        sparse id out of range) inside traced updates: `[C]`. Eager updates raise instead."""
        return self._exact("invalid_total")

    def get_config(self):
        config = super().get_config()
        config.update(
            mode=self.mode,
            from_logits=self.from_logits,
            axis=self.axis,
            num_classes=self.num_classes,
            class_names=self.class_names,
            ignore_index=self.ignore_index,
            zero_division=self.zero_division,
        )
        return config


class CountState(SegmentationMetric):
    """Per-class `tp, fp, fn, tn` at the working threshold(s), from one fused pass.

    `threshold=None` (the default) means 0.5 for `mode="multilabel"` and, for exclusive
    classes (`"multiclass"`, `"sparse"`), the argmax over classes; a number (or one per
    class) thresholds each class's probability one-vs-rest (`score >= threshold`).
    """

    def __init__(self, *, threshold=None, **kwargs):
        super().__init__(**kwargs)
        self.threshold = check_threshold(threshold, self.num_classes, self.mode)
        if self.num_classes is not None:
            self._maybe_build(self.num_classes)

    def _build_state(self, num_classes: int) -> None:
        if isinstance(self.threshold, list) and len(self.threshold) != num_classes:
            raise ValueError(
                f"threshold has {len(self.threshold)} values but y_pred has {num_classes} classes."
            )
        self._add_total("count_total", (num_classes, 4))
        self._add_total("invalid_total", (num_classes,))

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        y_pred, axis, threshold, activation = self._working_scores(y_pred)
        counts, invalid = confusion_counts(
            y_true,
            y_pred,
            threshold,
            from_logits=activation,
            axis=axis,
            sample_weight=sample_weight,
            mask=mask,
            ignore_index=self.ignore_index,
            with_invalid=True,
        )
        self._accumulate("count_total", counts)
        self._accumulate("invalid_total", invalid)

    def counts(self):
        """float32 `[C, 4]` totals (`tp, fp, fn, tn`), usable in-graph."""
        return self._total("count_total")

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold)
        return config


class HistogramState(SegmentationMetric):
    """Per-class histograms of negative and positive scores (`num_bins` uniform bins on
    [0, 1]), from one fused pass; every curve point is a cumulative sum of it."""

    def __init__(self, *, num_bins: int = 200, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError(f"num_bins must be an integer >= 1; received {num_bins!r}.")
        self.num_bins = num_bins
        if self.num_classes is not None:
            self._maybe_build(self.num_classes)

    def _build_state(self, num_classes: int) -> None:
        self._add_total("histogram_total", (num_classes, self.num_bins, 2))
        self._add_total("invalid_total", (num_classes,))

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        histogram, invalid = score_histogram(
            y_true,
            y_pred,
            self.num_bins,
            from_logits=self.activation,
            axis=self.axis,
            sample_weight=sample_weight,
            mask=mask,
            ignore_index=self.ignore_index,
            with_invalid=True,
        )
        self._accumulate("histogram_total", histogram)
        self._accumulate("invalid_total", invalid)

    def histogram(self):
        """float32 `[C, B, 2]` totals (negatives, positives per bin), usable in-graph."""
        return self._total("histogram_total")

    def get_config(self):
        config = super().get_config()
        config.update(num_bins=self.num_bins)
        return config


def per_class(values, prefix: str, names: Sequence[str]) -> dict:
    """`{f"{prefix}/{name}": values[i]}`: one scalar log entry per class."""
    return {f"{prefix}/{name}": values[i] for i, name in enumerate(names)}
