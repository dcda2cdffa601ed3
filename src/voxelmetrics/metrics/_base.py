"""The metric lifecycle every Keras metric here shares, and the fixed-size states it runs on.

`SegmentationMetric` reads inputs, builds state lazily, keeps exact totals and writes the
config; `CountState` holds per-class `tp, fp, fn, tn`, `HistogramState` per-class score
histograms (exact int32-limb totals merged by sum, docs/design.md "State, merge and
dispatch"), `VolumeMeanState` per-class sums of per-volume values; `AveragedMetric` is the
one result template: per class, or averaged over classes as `average` says.
"""

from collections.abc import Sequence

import numpy as np
from keras import metrics, ops

from voxelmetrics.backends import is_concrete, is_meta
from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.metrics._lifecycle import ConstructorConfig
from voxelmetrics.ops._inputs import (
    Activation,
    activation,
    bad_weight,
    check_pred_rank,
    class_count,
    is_sparse,
    normalize_axis,
    static_shape,
)
from voxelmetrics.ops._options import (
    NUM_BINS,
    THRESHOLD,
    check_axis,
    check_class_weights,
    check_exclude,
    check_from_logits,
    check_mode,
    check_num_bins,
    check_threshold_values,
    check_zero_division,
    classes_from,
    default_class_names,
    normalize_average,
)
from voxelmetrics.ops.accumulate import add_counts, pair_as_float, pair_exact
from voxelmetrics.ops.counting import argmax_one_hot, confusion_counts
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.scores import safe_ratio


def working_threshold(threshold, num_classes: int | None, mode: str):
    """The threshold a count metric stores: None means 0.5 for "multilabel" and the argmax
    over classes (kept as None) for exclusive classes; else a float or one per class."""
    if threshold is None:
        return THRESHOLD if mode == "multilabel" else None
    return check_threshold_values(threshold, num_classes)


class SegmentationMetric(ConstructorConfig, metrics.Metric):
    """Configuration shared by every metric: how inputs are read, and the lazily built state.

    Subclasses implement `_build_state(num_classes)` (create variables with `add_variable`),
    `_update(y_true, y_pred, sample_weight, mask)` and `_result()`, and store each
    constructor argument as the attribute of its name (the config, `ConstructorConfig`).

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
        zero_division=ZERO_DIVISION,
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

    def _build_if_known(self) -> None:
        """Build the state now when `num_classes` is known (the stateless API needs it)."""
        if self.num_classes is not None:
            self._maybe_build(self.num_classes)

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
    def activation(self) -> Activation:
        """What `from_logits` means for this mode: the ops' `activation`, exclusive classes
        ("multiclass", "sparse") read as sparse labels are (softmax), multi-hot as sigmoid."""
        return activation(self.from_logits, sparse=self.mode != "multilabel")

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
        return self.class_names or default_class_names(self.num_classes)

    def _pass_options(self, sample_weight, mask) -> dict:
        """Keywords of a metric's fused pass (`confusion_counts`, `score_histogram`): the
        batch's weights and mask, `ignore_index`, and invalid values tallied, never raised
        (`on_invalid="tally"`, every metric's rule: see `invalid_count`)."""
        return {
            "sample_weight": sample_weight,
            "mask": mask,
            "ignore_index": self.ignore_index,
            "with_invalid": True,
            "on_invalid": "tally",
        }

    def _check_inputs(self, y_true, y_pred) -> None:
        pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
        check_pred_rank(pred_shape)
        axis = normalize_axis(self.axis, len(pred_shape))
        num_classes = class_count(pred_shape, axis)
        try:
            sparse = is_sparse(true_shape, pred_shape, axis)
        except ValueError:
            sparse = None  # neither label form: say what this metric's mode expects
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


class ThresholdedState(SegmentationMetric):
    """A state counted at the working threshold(s), `working_threshold`'s rule.

    `threshold=None` (the default) means 0.5 for `mode="multilabel"` and, for exclusive
    classes (`"multiclass"`, `"sparse"`), the argmax over classes; a number (or one per
    class) thresholds each class's probability one-vs-rest (`score >= threshold`).
    """

    def __init__(self, *, threshold=None, **kwargs):
        super().__init__(**kwargs)
        self.threshold = working_threshold(threshold, self.num_classes, self.mode)

    def _build_state(self, num_classes: int) -> None:
        if isinstance(self.threshold, list) and len(self.threshold) != num_classes:
            raise ValueError(
                f"threshold has {len(self.threshold)} values but y_pred has {num_classes} classes."
            )

    def _working_scores(self, y_pred):
        """`(y_pred, axis, threshold, from_logits)` for `confusion_counts` at the working
        threshold: `threshold=None` on exclusive classes means the argmax over classes, given
        as a one-hot at 0.5 (the one place this rule lives)."""
        axis = normalize_axis(self.axis, len(static_shape(y_pred)))
        if self.threshold is None:
            return argmax_one_hot(y_pred, axis), axis, 0.5, False
        return y_pred, axis, self.threshold, self.activation

    def _working_counts(self, y_true, y_pred, sample_weight, mask, *, per_sample=False):
        """`(counts, invalid)` of `confusion_counts` at the working threshold: `[C, 4]` and
        `[C]`, or `[N, C, 4]` and `[N, C]` per volume with `per_sample`."""
        y_pred, axis, threshold, activation = self._working_scores(y_pred)
        return confusion_counts(
            y_true,
            y_pred,
            threshold,
            from_logits=activation,
            axis=axis,
            per_sample=per_sample,
            **self._pass_options(sample_weight, mask),
        )


class CountState(ThresholdedState):
    """Per-class `tp, fp, fn, tn` at the working threshold(s), from one fused pass."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_if_known()

    def _build_state(self, num_classes: int) -> None:
        super()._build_state(num_classes)
        self._add_total("count_total", (num_classes, 4))
        self._add_total("invalid_total", (num_classes,))

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        counts, invalid = self._working_counts(y_true, y_pred, sample_weight, mask)
        self._accumulate("count_total", counts)
        self._accumulate("invalid_total", invalid)

    def counts(self):
        """float32 `[C, 4]` totals (`tp, fp, fn, tn`), usable in-graph."""
        return self._total("count_total")


class HistogramState(SegmentationMetric):
    """Per-class histograms of negative and positive scores (`num_bins` uniform bins on
    [0, 1]), from one fused pass; every curve point is a cumulative sum of it."""

    def __init__(self, *, num_bins: int = NUM_BINS, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = check_num_bins(num_bins)
        self._build_if_known()

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
            **self._pass_options(sample_weight, mask),
        )
        self._accumulate("histogram_total", histogram)
        self._accumulate("invalid_total", invalid)

    def histogram(self):
        """float32 `[C, B, 2]` totals (negatives, positives per bin), usable in-graph."""
        return self._total("histogram_total")


class VolumeMeanState(ThresholdedState):
    r"""Per class, the (weighted) sum of per-volume values $\sum_v w_v s_{v,c}$ and the
    (weighted) number of volumes where the value is defined $\sum_v w_v$: fixed-size,
    merged by sum, no list of volumes kept. `volume_mean()` is their ratio."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_if_known()

    def _build_state(self, num_classes: int) -> None:
        super()._build_state(num_classes)
        self.score_sum = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", name="score_sum"
        )
        self.volumes = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", name="volumes"
        )
        self._add_total("invalid_total", (num_classes,))

    def _add_volumes(self, values, volume_weight=None) -> None:
        """Add `[N, C]` per-volume values, NaN where undefined (left out of the mean);
        `volume_weight` `[N, 1]` weighs volumes (`_volume_weight`)."""
        defined = ops.logical_not(ops.isnan(values))
        weight = ops.cast(defined, "float32")
        if volume_weight is not None:
            weight = weight * volume_weight
        self.score_sum.assign(self.score_sum + ops.sum(ops.where(defined, values, 0.0) * weight, 0))
        self.volumes.assign(self.volumes + ops.sum(weight, axis=0))

    def _volume_weight(self, sample_weight, y_pred):
        """float32 `[B, 1]` weights of whole volumes from `sample_weight` `[B]`; a NaN,
        infinite or negative one weighs 0 and its volume's voxels (of `y_pred`'s grid) are
        tallied as invalid in every class, as a voxel weight would be (`prepare`): metrics
        never raise on values."""
        weight = ops.cast(sample_weight, "float32")
        bad = bad_weight(weight)
        shape = static_shape(y_pred)
        axis = normalize_axis(self.axis, len(shape))
        voxels = int(np.prod([n for a, n in enumerate(shape) if a not in (0, axis)]))
        bad_voxels = ops.sum(ops.cast(bad, "int32")) * voxels
        self._accumulate("invalid_total", ops.broadcast_to(bad_voxels, (shape[axis],)))
        return ops.where(bad, 0.0, weight)[:, None]

    def volume_mean(self):
        """float32 `[C]` mean over the volumes where the value is defined (NaN where none)."""
        return safe_ratio(self.score_sum, self.volumes)


class AveragedMetric(SegmentationMetric):
    """The one result template: a per-class value of the state, averaged over classes as
    `average` says (None: per class, a dict `{name}/{class}` with `class_names`).

    Put before the state class (`class Recall(AveragedMetric, CountState)`); subclasses
    give `_average_state()` (the state `[C, ...]`, class axis first) and
    `_average(state, class_weights)` (the ops' averaging rule on it). The classes of
    `exclude_from_average` leave the state before it is averaged (`for_average`).
    """

    def __init__(self, *, average="macro", class_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.average = normalize_average(average)
        self.class_weights = check_class_weights(class_weights, average, self.num_classes)

    def _average_state(self):
        raise NotImplementedError

    def _average(self, state, class_weights):
        """`[C]` values of `state` (`average=None`), else their average (a scalar)."""
        raise NotImplementedError

    def _result(self):
        state, class_weights = self._average_state(), self.class_weights
        if self.average is not None:
            state, class_weights = self.for_average(state, class_weights)
        values = self._average(state, class_weights)
        if self.average is None and self.class_names is not None:
            return per_class(values, self.name, self.class_names)
        return values


def arguments(init_locals: dict, *exclude: str, **override) -> dict:
    """An `__init__`'s arguments as keywords, from its `locals()`, less `exclude` and with
    `override`: how the explicit metric classes pass their real signature to the bases."""
    dropped = {"self", "__class__", *exclude}
    return {**{k: v for k, v in init_locals.items() if k not in dropped}, **override}


def per_class(values, prefix: str, names: Sequence[str]) -> dict:
    """`{f"{prefix}/{name}": values[i]}`: one scalar log entry per class."""
    return {f"{prefix}/{name}": values[i] for i, name in enumerate(names)}
