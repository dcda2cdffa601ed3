"""Curve metrics: AP, PR-AUC, ROC-AUC, recall at a precision floor, best thresholds.

Each is a thin shell over one `HistogramState` (per-class score histograms, exact); every
curve point is a cumulative sum of it, so a result costs O(C·B), never a pass over voxels.
"""

from collections.abc import Sequence

from keras import ops

from voxelmetrics.defaults import CRITERION, ZERO_DIVISION
from voxelmetrics.metrics._base import AveragedMetric, HistogramState, arguments, per_class
from voxelmetrics.metrics._lifecycle import documented
from voxelmetrics.ops import curves
from voxelmetrics.ops._options import NUM_BINS, check_fraction
from voxelmetrics.ops.criterion import Criterion
from voxelmetrics.ops.scores import safe_ratio
from voxelmetrics.ops.thresholds import optimal_threshold

_CURVE_ARGS = """
    Args:
        num_bins: B uniform score bins on [0, 1] (default 1024, the library's one default;
            before it was 200, still reachable as `num_bins=200`); the curve's thresholds
            are `k / B`, a voxel counting as positive at `t_k` iff `score >= t_k`.
        average: None / "none" per class `[C]` (a dict `{name}/{class}` with `class_names`);
            "micro" pools every class's voxels into one binary problem; "macro" (default)
            the mean over classes where the value is defined (classes without positives
            skipped); "weighted" by support, `class_weights` or "inverse_frequency".
        class_weights: per-class weights or "inverse_frequency"; `average="weighted"` only.
        exclude_from_average: classes (names or ids) left out of every average.
        zero_division: the value of a class without positives: "nan" (default), 0 or 1.
        mode: "multilabel" (sigmoid scores, multi-hot labels, default), "multiclass"
            (softmax scores, one-hot labels, one-vs-rest curves) or "sparse" (softmax
            scores, integer labels).
        from_logits, axis, num_classes, class_names, ignore_index, name, dtype: as in
            `voxelmetrics.Recall`.
"""
_documented = documented(_CURVE_ARGS)


class CurveMetric(AveragedMetric, HistogramState):
    """A per-class value of the accumulated histograms, averaged as `average` says
    (`voxelmetrics.ops.curves.average_histogram_score`, the ops' own rule)."""

    default_name: str = None

    def __init__(
        self,
        num_bins: int = NUM_BINS,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(**arguments(locals(), name=name or self.default_name))

    def _per_class(self, histogram, zero_division):
        """float32 `[C]` values of a `[C, B, 2]` histogram (NaN where undefined)."""
        raise NotImplementedError

    def _average_state(self):
        return self.histogram()

    def _average(self, histogram, class_weights):
        return curves.average_histogram_score(
            self._per_class, histogram, self.average, class_weights, self.zero_division
        )


@_documented
class AveragePrecision(CurveMetric):
    """Average precision, scikit-learn's step-wise sum over the binned PR curve.

    Equals `sklearn.metrics.average_precision_score(y, q(s))`, q mapping a score to its
    bin's lower edge.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import AveragePrecision
    >>> m = AveragePrecision(num_bins=10, average=None)
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [1.0, 0.833]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.AveragePrecision(class_names=["liver", "tumour"])])
    ```
    """

    default_name = "average_precision"

    def _per_class(self, histogram, zero_division):
        return curves.average_precision(histogram, zero_division=zero_division)


@_documented
class PRAUC(CurveMetric):
    """Area under the PR curve, Davis & Goadrich interpolation (Keras' `AUC(curve='PR')`).

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import PRAUC
    >>> m = PRAUC(num_bins=10, average=None)
    >>> m.update_state(np.array([[1, 0], [0, 1], [1, 1], [0, 0]]),
    ...                np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32"))
    >>> np.asarray(m.result()).round(3).tolist()
    [1.0, 0.797]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.PRAUC(average="micro")])
    ```
    """

    default_name = "pr_auc"

    def _per_class(self, histogram, zero_division):
        return curves.pr_auc(histogram, zero_division=zero_division)


@_documented
class ROCAUC(CurveMetric):
    """Area under the ROC curve, trapezoidal over the binned thresholds.

    Equals `sklearn.metrics.roc_auc_score(y, q(s))`, q mapping a score to its bin's lower
    edge.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import ROCAUC
    >>> m = ROCAUC(num_bins=10, average=None)
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(np.array([[1, 0], [0, 1], [1, 1], [0, 0]]), y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [1.0, 0.75]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.ROCAUC(num_bins=256, mode="sparse")])
    ```
    """

    default_name = "roc_auc"

    def _per_class(self, histogram, zero_division):
        return curves.roc_auc(histogram, zero_division=zero_division)


class _ConstrainedMetric(CurveMetric):
    """The best value of one criterion under a floor, per class, from `optimal_threshold`.

    A class with positives where no threshold meets the floor scores 0 (as Keras'
    `RecallAtPrecision` does: only an empty mask is left); a class without positives is
    `zero_division`. `floor` names the constructor's argument (and the attribute holding
    it), `option` the criterion's (they differ where the class keeps Keras' spelling:
    `specificity` is `min_specificity`).
    """

    criterion = ""
    floor = ""
    option = ""

    def __init__(self, **kwargs):
        value = check_fraction(self.floor, kwargs.pop(self.floor))
        self._criterion = Criterion(self.criterion, **{self.option or self.floor: value})
        super().__init__(**kwargs)
        setattr(self, self.floor, value)

    def _per_class(self, histogram, zero_division):
        _, values = optimal_threshold(histogram, self._criterion)
        has_positives = ops.greater(ops.sum(histogram[..., 1], axis=-1), 0.0)
        empty = safe_ratio(0.0, 0.0, zero_division)
        return ops.where(has_positives, ops.where(ops.isnan(values), 0.0, values), empty)


@_documented
class RecallAtPrecision(_ConstrainedMetric):
    """The highest recall over the binned thresholds where precision >= `min_precision`.

    `min_precision` in [0, 1]. Per class and averaged; 0 for a class whose precision never
    reaches the floor.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import RecallAtPrecision
    >>> m = RecallAtPrecision(0.6, num_bins=10, average=None)
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [1.0, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.RecallAtPrecision(0.9)])
    ```
    """

    criterion = "recall_at_precision"
    floor = "min_precision"

    def __init__(
        self,
        min_precision: float,
        num_bins: int = NUM_BINS,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "recall_at_precision",
        dtype=None,
    ):
        super().__init__(**arguments(locals()))


@_documented
class PrecisionAtRecall(_ConstrainedMetric):
    """The highest precision over the binned thresholds where recall >= `min_recall`.

    `min_recall` in [0, 1]. Per class and averaged.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import PrecisionAtRecall
    >>> m = PrecisionAtRecall(0.5, num_bins=10, average=None)
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [1.0, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.PrecisionAtRecall(0.95)])
    ```
    """

    criterion = "precision_at_recall"
    floor = "min_recall"

    def __init__(
        self,
        min_recall: float,
        num_bins: int = NUM_BINS,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "precision_at_recall",
        dtype=None,
    ):
        super().__init__(**arguments(locals()))


_AGAINST_KERAS = """
    Against Keras: Keras' `num_thresholds=n` counts `score > k / (n - 1)`; here
    `score >= k / B` over `num_bins=B`: with `B = n - 1` and no score on a grid point the
    candidates agree. Keras' extra threshold 1.0 predicts nothing (sensitivity 0,
    specificity 1): it matters only to `SpecificityAtSensitivity(0.0)`, where Keras
    answers 1 and this metric the best specificity at a threshold below 1. Keras'
    `class_id=c` is `average=None` and entry `c`. A class without negatives has no
    specificity (Keras counts it as 0); one without positives is `zero_division`.
"""
_keras_documented = documented(_CURVE_ARGS, _AGAINST_KERAS)


@_keras_documented
class SensitivityAtSpecificity(_ConstrainedMetric):
    """The highest sensitivity (recall) over the binned thresholds where specificity >=
    `specificity` (Keras' `SensitivityAtSpecificity`, per class and averaged).

    `specificity` in [0, 1]. Per class and averaged; 0 for a class whose specificity never
    reaches the floor. The example is Keras' own.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SensitivityAtSpecificity
    >>> m = SensitivityAtSpecificity(0.5, num_bins=10)
    >>> m.update_state(np.array([[0], [0], [0], [1], [1]]),
    ...                np.array([[0], [0.3], [0.8], [0.3], [0.8]], "float32"))
    >>> float(m.result())
    0.5

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.SensitivityAtSpecificity(0.99)])
    ```
    """

    criterion = "recall_at_specificity"
    floor = "specificity"
    option = "min_specificity"

    def __init__(
        self,
        specificity: float,
        num_bins: int = NUM_BINS,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "sensitivity_at_specificity",
        dtype=None,
    ):
        super().__init__(**arguments(locals()))


@_keras_documented
class SpecificityAtSensitivity(_ConstrainedMetric):
    """The highest specificity over the binned thresholds where sensitivity (recall) >=
    `sensitivity` (Keras' `SpecificityAtSensitivity`, per class and averaged).

    `sensitivity` in [0, 1]. Per class and averaged; 0 for a class without negatives. The
    example is Keras' own.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SpecificityAtSensitivity
    >>> m = SpecificityAtSensitivity(0.5, num_bins=10)
    >>> m.update_state(np.array([[0], [0], [0], [1], [1]]),
    ...                np.array([[0], [0.3], [0.8], [0.3], [0.8]], "float32"))
    >>> round(float(m.result()), 4)
    0.6667

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.SpecificityAtSensitivity(0.9)])
    ```
    """

    criterion = "specificity_at_recall"
    floor = "sensitivity"
    option = "min_recall"

    def __init__(
        self,
        sensitivity: float,
        num_bins: int = NUM_BINS,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "specificity_at_sensitivity",
        dtype=None,
    ):
        super().__init__(**arguments(locals()))


@documented()
class OptimalThreshold(HistogramState):
    """The best threshold of each class under `criterion`, and the criterion's value there.

    One log entry per class for each: `{name}/{class}` is the threshold and
    `{name}_{criterion}/{class}` the value (NaN and NaN where no threshold is allowed, e.g.
    a class without positives; see `voxelmetrics.ops.thresholds.optimal_threshold`).
    Candidates are the `num_bins` thresholds `k / B`; ties go to the highest threshold.

    Args:
        criterion: a `voxelmetrics.Criterion` (e.g. `Criterion.parse("cost:1:5")`), its text
            spelling, or one of its names with the options as keywords.
        num_bins, mode, from_logits, axis, num_classes, class_names, ignore_index, name,
            dtype: as in `voxelmetrics.AveragePrecision`.
        **options: with a criterion's name, its options as `Criterion` takes them (`beta`,
            `min_precision`, `min_recall`, `min_specificity`, `cost_fp`, `cost_fn`).

    The config holds the criterion as `str(criterion)` (`"recall_at_specificity:0.9"`), the
    spelling `Criterion.parse` reads back exactly.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import OptimalThreshold
    >>> m = OptimalThreshold("f1", num_bins=10, class_names=["a", "b"])
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> {k: round(float(v), 3) for k, v in m.result().items()}
    {'optimal_threshold/a': 0.5, 'optimal_threshold/b': 0.6, 'optimal_threshold_f1/a': 1.0, \
'optimal_threshold_f1/b': 0.8}

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.OptimalThreshold("youden", class_names=["liver"])])
    ```
    """

    def __init__(
        self,
        criterion: Criterion | str = CRITERION,
        *,
        num_bins: int = NUM_BINS,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "optimal_threshold",
        dtype=None,
        **options: float | None,
    ):
        self._criterion = Criterion.of(criterion, **options)
        super().__init__(**arguments(locals(), "criterion", "options"))

    @property
    def criterion(self) -> Criterion:
        """The criterion (the config holds its text spelling, `str(criterion)`)."""
        return self._criterion

    @property
    def _keys(self) -> tuple[str, str]:
        """Prefixes of the threshold and the value entries."""
        return self.name, f"{self.name}_{self._criterion.name}"

    def _result(self):
        thresholds, values = optimal_threshold(self.histogram(), self._criterion)
        threshold_key, value_key = self._keys
        return {
            **per_class(thresholds, threshold_key, self.names),
            **per_class(values, value_key, self.names),
        }


@documented()
class BestFBeta(OptimalThreshold):
    """The best F-beta of each class over the binned thresholds, and where it is reached.

    Log entries `{name}/{class}` (the best F-beta) and `{name}_threshold/{class}` (its
    threshold). Arguments as in `OptimalThreshold`, with `beta` (default 1: best F1).

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import BestFBeta
    >>> m = BestFBeta(num_bins=10, class_names=["a", "b"])
    >>> m.update_state(np.array([[1, 0], [0, 1], [1, 1], [0, 0]]),
    ...                np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32"))
    >>> {k: round(float(v), 3) for k, v in m.result().items()}
    {'best_f1_threshold/a': 0.5, 'best_f1_threshold/b': 0.6, 'best_f1/a': 1.0, 'best_f1/b': 0.8}

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.BestFBeta(beta=2.0, name="best_f2")])
    ```
    """

    def __init__(
        self,
        beta: float = 1.0,
        *,
        num_bins: int = NUM_BINS,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "best_f1",
        dtype=None,
    ):
        super().__init__("fbeta", **arguments(locals()))

    @property
    def beta(self) -> float:
        """The beta of the F-beta criterion."""
        return self._criterion.beta

    @property
    def _keys(self) -> tuple[str, str]:
        return f"{self.name}_threshold", self.name
