"""Curve metrics: AP, PR-AUC, ROC-AUC, recall at a precision floor, best thresholds.

Each is a thin shell over one `HistogramState` (per-class score histograms, exact); every
curve point is a cumulative sum of it, so a result costs O(C·B), never a pass over voxels.
"""

from collections.abc import Callable

import keras
from keras import ops

from voxelmetrics.metrics._base import (
    HistogramState,
    check_class_weights,
    normalize_average,
    per_class,
)
from voxelmetrics.ops import curves
from voxelmetrics.ops.scores import average_scores, safe_ratio
from voxelmetrics.ops.thresholds import make_criterion, optimal_threshold

_register = keras.saving.register_keras_serializable(package="voxelmetrics")

_CURVE_ARGS = """
    Args:
        num_bins: B uniform score bins on [0, 1] (default 200); the curve's thresholds are
            `k / B`, a voxel counting as positive at `t_k` iff `score >= t_k`.
        average: None / "none" per class `[C]` (a dict `{name}/{class}` with `class_names`);
            "micro" pools every class's voxels into one binary problem; "macro" (default)
            the mean over classes where the value is defined (classes without positives
            skipped); "weighted" by support, `class_weights` or "inverse_frequency".
        class_weights: per-class weights or "inverse_frequency"; `average="weighted"` only.
        zero_division: the value of a class without positives: "nan" (default), 0 or 1.
        mode: "multilabel" (sigmoid scores, multi-hot labels, default), "multiclass"
            (softmax scores, one-hot labels, one-vs-rest curves) or "sparse" (softmax
            scores, integer labels).
        from_logits, axis, num_classes, class_names, ignore_index, name, dtype: as in
            `voxelmetrics.Recall`.
"""


class CurveMetric(HistogramState):
    """A per-class value of the accumulated histograms, averaged as `average` says."""

    def __init__(self, *, average="macro", class_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.average = normalize_average(average)
        self.class_weights = check_class_weights(class_weights, average, self.num_classes)

    def _per_class(self, histogram):
        """float32 `[C]` values of a `[C, B, 2]` histogram (NaN where undefined)."""
        raise NotImplementedError

    def _result(self):
        histogram = self.histogram()
        if self.average == "micro":
            return self._per_class(ops.sum(histogram, axis=0, keepdims=True))[0]
        values = self._per_class(histogram)
        if self.average is None:
            if self.class_names is not None:
                return per_class(values, self.name, self.class_names)
            return values
        support = ops.sum(histogram[..., 1], axis=-1)
        return average_scores(
            values, support, average=self.average, class_weights=self.class_weights
        )

    def get_config(self):
        config = super().get_config()
        config.update(average=self.average, class_weights=self.class_weights)
        return config


def _curve_metric(cls_name: str, fn: Callable, default_name: str, summary: str, example: str):
    doc = f"""{summary}
{_CURVE_ARGS}
    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import {cls_name}
    >>> m = {cls_name}(num_bins=10, average=None)
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> y_pred = np.array([[.9, .2], [.4, .6], [.5, .95], [.3, .7]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    {example}

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.{cls_name}(class_names=["liver", "tumour"])])
    ```
    """

    def __init__(self, *, name: str = default_name, **kwargs):
        CurveMetric.__init__(self, name=name, **kwargs)

    def _per_class(self, histogram):
        return fn(histogram, zero_division=self.zero_division)

    cls = type(
        cls_name,
        (CurveMetric,),
        {"__init__": __init__, "__doc__": doc, "_per_class": _per_class},
    )
    cls.__module__ = __name__
    return _register(cls)


AveragePrecision = _curve_metric(
    "AveragePrecision",
    curves.average_precision,
    "average_precision",
    "Average precision, scikit-learn's step-wise sum over the binned PR curve.\n\n"
    "    Equals `sklearn.metrics.average_precision_score(y, q(s))`, q mapping a score to its\n"
    "    bin's lower edge.",
    "[1.0, 0.833]",
)
PRAUC = _curve_metric(
    "PRAUC",
    curves.pr_auc,
    "pr_auc",
    "Area under the PR curve, Davis & Goadrich interpolation (Keras' `AUC(curve='PR')`).",
    "[1.0, 0.797]",
)
ROCAUC = _curve_metric(
    "ROCAUC",
    curves.roc_auc,
    "roc_auc",
    "Area under the ROC curve, trapezoidal over the binned thresholds.\n\n"
    "    Equals `sklearn.metrics.roc_auc_score(y, q(s))`, q mapping a score to its bin's\n"
    "    lower edge.",
    "[1.0, 0.75]",
)


class _ConstrainedMetric(CurveMetric):
    """The best value of one criterion under a floor, per class, from `optimal_threshold`.

    A class with positives where no threshold meets the floor scores 0 (as Keras'
    `RecallAtPrecision` does: only an empty mask is left); a class without positives is
    `zero_division`.
    """

    criterion = ""
    floor = ""

    def __init__(self, value: float, *, name: str, **kwargs):
        make_criterion(self.criterion, **{self.floor: value})
        super().__init__(name=name, **kwargs)
        setattr(self, self.floor, float(value))

    def _per_class(self, histogram):
        _, values = optimal_threshold(
            histogram, self.criterion, **{self.floor: getattr(self, self.floor)}
        )
        has_positives = ops.greater(ops.sum(histogram[..., 1], axis=-1), 0.0)
        empty = safe_ratio(0.0, 0.0, self.zero_division)
        return ops.where(has_positives, ops.where(ops.isnan(values), 0.0, values), empty)

    def get_config(self):
        config = super().get_config()
        config[self.floor] = getattr(self, self.floor)
        return config


@_register
class RecallAtPrecision(_ConstrainedMetric):
    """The highest recall over the binned thresholds where precision >= `min_precision`.

    Per class and averaged; 0 for a class whose precision never reaches the floor.
    Other arguments as in `voxelmetrics.AveragePrecision`.

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

    def __init__(self, min_precision: float, *, name: str = "recall_at_precision", **kwargs):
        super().__init__(min_precision, name=name, **kwargs)


@_register
class PrecisionAtRecall(_ConstrainedMetric):
    """The highest precision over the binned thresholds where recall >= `min_recall`.

    Per class and averaged. Other arguments as in `voxelmetrics.AveragePrecision`.

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

    def __init__(self, min_recall: float, *, name: str = "precision_at_recall", **kwargs):
        super().__init__(min_recall, name=name, **kwargs)


@_register
class OptimalThreshold(HistogramState):
    """The best threshold of each class under `criterion`, and the criterion's value there.

    One log entry per class for each: `{name}/{class}` is the threshold and
    `{name}_{criterion}/{class}` the value (NaN and NaN where no threshold is allowed, e.g.
    a class without positives; see `voxelmetrics.ops.thresholds.optimal_threshold`).
    Candidates are the `num_bins` thresholds `k / B`; ties go to the highest threshold.

    Args:
        criterion: "f1", "fbeta", "dice", "iou", "youden", "recall_at_precision",
            "precision_at_recall" or "cost".
        beta, min_precision, min_recall, cost_fp, cost_fn: the criterion's options.
        num_bins, mode, from_logits, axis, num_classes, class_names, ignore_index, name,
            dtype: as in `voxelmetrics.AveragePrecision`.

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
        criterion: str = "f1",
        *,
        beta: float = 1.0,
        min_precision: float | None = None,
        min_recall: float | None = None,
        cost_fp: float = 1.0,
        cost_fn: float = 1.0,
        name: str = "optimal_threshold",
        **kwargs,
    ):
        self._criterion = make_criterion(
            criterion,
            beta=beta,
            min_precision=min_precision,
            min_recall=min_recall,
            cost_fp=cost_fp,
            cost_fn=cost_fn,
        )
        kwargs.pop("zero_division", None)
        super().__init__(name=name, **kwargs)

    @property
    def _keys(self) -> tuple[str, str]:
        """Prefixes of the threshold and the value entries."""
        return self.name, f"{self.name}_{self._criterion.name}"

    def _result(self):
        c = self._criterion
        thresholds, values = optimal_threshold(
            self.histogram(),
            c.name,
            beta=c.beta,
            min_precision=c.min_precision,
            min_recall=c.min_recall,
            cost_fp=c.cost_fp,
            cost_fn=c.cost_fn,
        )
        threshold_key, value_key = self._keys
        return {
            **per_class(thresholds, threshold_key, self.names),
            **per_class(values, value_key, self.names),
        }

    def get_config(self):
        config = super().get_config()
        del config["zero_division"]
        c = self._criterion
        config.update(
            criterion=c.name,
            beta=c.beta,
            min_precision=c.min_precision,
            min_recall=c.min_recall,
            cost_fp=c.cost_fp,
            cost_fn=c.cost_fn,
        )
        return config


@_register
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

    def __init__(self, beta: float = 1.0, *, name: str = "best_f1", **kwargs):
        for key in ("criterion", "min_precision", "min_recall", "cost_fp", "cost_fn"):
            kwargs.pop(key, None)
        super().__init__("fbeta", beta=beta, name=name, **kwargs)

    @property
    def _keys(self) -> tuple[str, str]:
        return f"{self.name}_threshold", self.name

    def get_config(self):
        config = super().get_config()
        for key in ("criterion", "min_precision", "min_recall", "cost_fp", "cost_fn"):
            del config[key]
        return config
