"""The two fused states every Keras metric here is a thin shell over.

`CountState` holds per-class `tp, fp, fn, tn` (one `confusion_counts` pass per batch);
`HistogramState` holds per-class score histograms (one `score_histogram` pass per batch).
Both are exact int32-limb totals merged by sum (docs/design.md, "State, merge and dispatch").
"""

from collections.abc import Sequence

import keras
from keras import metrics, ops

from voxelmetrics.backends import is_concrete, is_meta
from voxelmetrics.ops._inputs import (
    check_pred_rank,
    class_count,
    normalize_axis,
    static_shape,
)
from voxelmetrics.ops._options import (
    NUM_BINS,
    THRESHOLD,
    check_axis,
    check_exclude,
    check_from_logits,
    check_mode,
    check_num_bins,
    check_threshold_values,
    check_zero_division,
    classes_from,
)
from voxelmetrics.ops.accumulate import add_counts, pair_as_float, pair_exact
from voxelmetrics.ops.counting import argmax_one_hot, confusion_counts
from voxelmetrics.ops.histogram import score_histogram


def working_threshold(threshold, num_classes: int | None, mode: str):
    """The threshold a count metric stores: None means 0.5 for "multilabel" and the argmax
    over classes (kept as None) for exclusive classes; else a float or one per class."""
    if threshold is None:
        return THRESHOLD if mode == "multilabel" else None
    return check_threshold_values(threshold, num_classes)


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
        exclude_from_average=(),
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.mode = check_mode(mode)
        if ignore_index is not None and mode != "sparse":
            raise ValueError(f"ignore_index applies to mode='sparse'; received mode={mode!r}.")
        self.from_logits = check_from_logits(from_logits, activations=False)
        self.axis = check_axis(axis)
        self.num_classes = classes_from(num_classes, class_names)
        self.class_names = None if class_names is None else list(class_names)
        self.ignore_index = ignore_index
        self.zero_division = check_zero_division(zero_division)
        self.exclude_from_average = check_exclude(
            exclude_from_average, self.class_names, self.num_classes, name="exclude_from_average"
        )
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
        check_exclude(self.exclude_from_average, None, num_classes, name="exclude_from_average")
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

    def for_average(self, values, class_weights=None):
        """`(values, class_weights)` of the classes that enter averages: `values` `[C, ...]`
        (counts, histograms, per-class scores, class axis first) and the per-class weights
        without the classes of `exclude_from_average` (a weight rule such as
        "inverse_frequency" is kept as it is). Per-class results keep every class."""
        if not self.exclude_from_average:
            return values, class_weights
        kept = [c for c in range(self.num_classes) if c not in self.exclude_from_average]
        if isinstance(class_weights, list):
            class_weights = [class_weights[c] for c in kept]
        return ops.take(values, kept, axis=0), class_weights

    @property
    def names(self) -> list[str]:
        """One name per class: `class_names`, or `class_0`, `class_1`, …"""
        return self.class_names or [f"class_{i}" for i in range(self.num_classes)]

    def _check_inputs(self, y_true, y_pred) -> None:
        pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
        check_pred_rank(pred_shape)
        axis = normalize_axis(self.axis, len(pred_shape))
        num_classes = class_count(pred_shape, axis)
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
        if is_meta(y_pred):
            # Keras' torch backend infers specs on meta tensors first; state variables made
            # there would live on the meta device. Raising makes it retry on a real device.
            raise RuntimeError(f"{self.name} keeps no state from meta tensors.")
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
        limbs, weighted = getattr(self, name), getattr(self, f"{name}_weighted")
        new_limbs, new_weighted = add_counts(limbs, weighted, values)
        if new_limbs is not limbs:
            limbs.assign(new_limbs)
        if new_weighted is not weighted:
            weighted.assign(new_weighted)

    def _total(self, name: str):
        """float32 value of a total (relative error below 2**-24), in-graph."""
        return pair_as_float(getattr(self, name), getattr(self, f"{name}_weighted"))

    def _exact(self, name: str):
        """The exact total on the host: int64 numpy while no weighted batch was added
        (float64 otherwise); inside a traced function, the float32 `_total`."""
        limbs = getattr(self, name)
        if not is_concrete(ops.convert_to_tensor(limbs)):
            return self._total(name)
        return pair_exact(limbs, getattr(self, f"{name}_weighted"))

    def invalid_count(self):
        """Per class, how many scores were left out as invalid: `[C]`.

        A score NaN or out of range (or a softmax without a limit), a label that is not a
        class (a sparse id outside `[0, C)`, a multi-hot value other than 0 and 1) or a NaN,
        infinite or negative `sample_weight`. Metrics never raise on such values, eager or
        traced, on any backend: the same model and data give the same logs everywhere, and
        this tally (`invalid` in `SegmentationReport`'s logs) says how many were left out.
        """
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
        if self.exclude_from_average:  # only the metrics that average take it
            config.update(exclude_from_average=self.exclude_from_average)
        return config


class CountState(SegmentationMetric):
    """Per-class `tp, fp, fn, tn` at the working threshold(s), from one fused pass.

    `threshold=None` (the default) means 0.5 for `mode="multilabel"` and, for exclusive
    classes (`"multiclass"`, `"sparse"`), the argmax over classes; a number (or one per
    class) thresholds each class's probability one-vs-rest (`score >= threshold`).
    """

    def __init__(self, *, threshold=None, **kwargs):
        super().__init__(**kwargs)
        self.threshold = working_threshold(threshold, self.num_classes, self.mode)
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
            on_invalid="tally",
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

    def __init__(self, *, num_bins: int = NUM_BINS, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = check_num_bins(num_bins)
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
            on_invalid="tally",
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


def documented(shared_args: str):
    """Class decorator: put `shared_args` (the Args every metric of a family takes) before
    the class docstring's own "Standalone usage:" examples, and register the class with
    Keras' serialization."""

    def decorate(cls):
        marker = "\n    Standalone usage:"
        cls.__doc__ = cls.__doc__.replace(marker, shared_args + marker)
        return keras.saving.register_keras_serializable(package="voxelmetrics")(cls)

    return decorate


def arguments(init_locals: dict, *exclude: str, **override) -> dict:
    """An `__init__`'s arguments as keywords, from its `locals()`, less `exclude` and with
    `override`: how the explicit metric classes pass their real signature to the bases."""
    dropped = {"self", "__class__", *exclude}
    return {**{k: v for k, v in init_locals.items() if k not in dropped}, **override}


def per_class(values, prefix: str, names: Sequence[str]) -> dict:
    """`{f"{prefix}/{name}": values[i]}`: one scalar log entry per class."""
    return {f"{prefix}/{name}": values[i] for i, name in enumerate(names)}
