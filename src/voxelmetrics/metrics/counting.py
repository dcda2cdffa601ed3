"""Counting metrics: recall, precision, specificity, F-beta, Dice, IoU and the raw counts.

Each is a thin shell over one `CountState` (per-class `tp, fp, fn, tn`, exact); `result()`
calls the matching `voxelmetrics.ops` score, so the empty-class policy and the averaging
rule are the ops' own.
"""

from collections.abc import Callable

import keras

from voxelmetrics.metrics._base import (
    CountState,
    check_class_weights,
    normalize_average,
    per_class,
)
from voxelmetrics.ops import scores

_register = keras.saving.register_keras_serializable(package="voxelmetrics")

_COMMON_ARGS = """
    Args:
        threshold: None (default): 0.5 for `mode="multilabel"`, the argmax over classes for
            `"multiclass"` / `"sparse"`; or a number in [0, 1], or one per class: a voxel is
            positive for class c iff `score >= threshold[c]` (Keras' built-ins use `>`).
        average: None / "none" per class `[C]` (a dict `{name}/{class}` of scalars when
            `class_names` is given, so each class is its own log entry); "micro" pools the
            counts of all classes; "macro" (default) the mean over classes whose score is
            defined (NaN classes skipped); "weighted" by support, by `class_weights`, or by
            `class_weights="inverse_frequency"` (1 / support, from the accumulated counts).
        class_weights: per-class weights or "inverse_frequency"; `average="weighted"` only.
        zero_division: what an undefined score (0 / 0, e.g. recall of a class without
            positives) becomes: "nan" (default), 0 or 1.
        mode: "multilabel" (sigmoid scores, multi-hot labels, default), "multiclass"
            (softmax scores, one-hot labels) or "sparse" (softmax scores, integer labels).
        from_logits: y_pred holds logits (sigmoid for multilabel, softmax otherwise).
        axis: the class axis of y_pred (1 for channels-first).
        num_classes: C; inferred from the first batch when omitted.
        class_names: one name per class, for per-class results.
        ignore_index: with mode="sparse", a label id whose voxels are skipped.
        name, dtype: as for every Keras metric.

    Inputs of `update_state(y_true, y_pred, sample_weight=None, mask=None)`: `y_pred`
    `[..., C]` scores (any number of spatial axes), `y_true` multi-hot / one-hot
    `[..., C]` or integer ids `[...]`; `sample_weight` and `mask` broadcast to the voxel grid.
    Unweighted counts are exact integers (to 2**55); weighted counts are float32 sums.
"""


class ScoreMetric(CountState):
    """A score of the accumulated counts, averaged over classes as `average` says."""

    score: Callable = None
    score_kwargs: tuple = ()

    def __init__(self, *, average="macro", class_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.average = normalize_average(average)
        self.class_weights = check_class_weights(class_weights, average, self.num_classes)

    def _result(self):
        values = type(self).score(
            self.counts(),
            average=self.average,
            class_weights=self.class_weights,
            zero_division=self.zero_division,
            **dict(self.score_kwargs),
        )
        if self.average is None and self.class_names is not None:
            return per_class(values, self.name, self.class_names)
        return values

    def get_config(self):
        config = super().get_config()
        config.update(average=self.average, class_weights=self.class_weights)
        return config


def _score_metric(cls_name: str, score: Callable, default_name: str, formula: str, example):
    doc = f"""{formula}, per class and averaged, from exact accumulated counts.
{_COMMON_ARGS}
    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import {cls_name}
    >>> m = {cls_name}(average=None)
    >>> y_true = np.array([[[1, 0], [1, 1]], [[0, 0], [1, 0]]])   # (B, W, C)
    >>> y_pred = np.array([[[.9, .2], [.4, .8]], [[.6, .1], [.7, .3]]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    {example}

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=voxelmetrics.losses.TverskyLoss(),
                  metrics=[voxelmetrics.{cls_name}(class_names=["liver", "tumour"])])
    ```
    """

    def __init__(self, *, name: str = default_name, **kwargs):
        ScoreMetric.__init__(self, name=name, **kwargs)

    cls = type(
        cls_name,
        (ScoreMetric,),
        {"__init__": __init__, "__doc__": doc, "score": staticmethod(score)},
    )
    cls.__module__ = __name__
    return _register(cls)


Recall = _score_metric("Recall", scores.recall, "recall", "Recall `tp / (tp + fn)`", "[0.667, 1.0]")
Precision = _score_metric(
    "Precision", scores.precision, "precision", "Precision `tp / (tp + fp)`", "[0.667, 1.0]"
)
Specificity = _score_metric(
    "Specificity",
    scores.specificity,
    "specificity",
    "Specificity `tn / (tn + fp)`",
    "[0.0, 1.0]",
)
Dice = _score_metric("Dice", scores.dice, "dice", "Dice `2 tp / (2 tp + fp + fn)`", "[0.667, 1.0]")
IoU = _score_metric("IoU", scores.iou, "iou", "IoU (Jaccard) `tp / (tp + fp + fn)`", "[0.5, 1.0]")


@_register
class FBetaScore(ScoreMetric):
    """F-beta `(1 + b²) tp / ((1 + b²) tp + b² fn + fp)`, per class and averaged.

    `beta > 1` weighs recall higher, `beta < 1` precision; `beta = 1` is F1 (= Dice).
    Other arguments as in `Recall`.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import FBetaScore
    >>> m = FBetaScore(beta=2.0, average=None)
    >>> y_true = np.array([[[1, 0], [1, 1]], [[0, 0], [1, 0]]])
    >>> y_pred = np.array([[[.9, .2], [.4, .8]], [[.6, .1], [.7, .3]]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [0.667, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.FBetaScore(beta=2.0)])
    ```
    """

    score = staticmethod(scores.fbeta_score)

    def __init__(self, beta: float = 1.0, *, name: str = "fbeta_score", **kwargs):
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta > 0:
            raise ValueError(f"beta must be a number > 0; received {beta!r}.")
        super().__init__(name=name, **kwargs)
        self.beta = float(beta)
        self.score_kwargs = (("beta", self.beta),)

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta)
        return config


@_register
class F1Score(FBetaScore):
    """F1 `2 tp / (2 tp + fp + fn)` (equal to Dice), per class and averaged.

    Arguments as in `Recall`.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import F1Score
    >>> m = F1Score(average="micro")
    >>> m.update_state(np.array([[1, 0], [1, 1]]), np.array([[.9, .2], [.4, .8]], "float32"))
    >>> round(float(m.result()), 3)
    0.8

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.F1Score()])
    ```
    """

    def __init__(self, *, name: str = "f1_score", **kwargs):
        kwargs.pop("beta", None)
        super().__init__(beta=1.0, name=name, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


@_register
class ConfusionCounts(CountState):
    """Per-class `tp, fp, fn, tn` at the working threshold(s): the exact accumulated state.

    `result()` returns `[C, 4]` (columns `tp, fp, fn, tn`). Called outside a traced function
    it is a numpy int64 array holding the exact totals (exact to 2**55 on every backend,
    JAX without x64 included; float64 once a weighted batch was added); inside `jit` /
    `tf.function` it is float32 (exact to 2**24). `invalid_count()` gives the per-class
    tally of scores left out as invalid by traced updates.

    Args:
        threshold, mode, from_logits, axis, num_classes, class_names, ignore_index: as in
            `Recall`.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import ConfusionCounts
    >>> m = ConfusionCounts()
    >>> m.update_state(np.array([[1, 1], [0, 1], [1, 0]]),
    ...                np.array([[.9, .4], [.6, .7], [.2, .1]], "float32"))
    >>> m.result().tolist()
    [[1, 1, 1, 0], [1, 0, 1, 1]]

    Usage with `compile()` API (the counts appear as a `[C, 4]` array in the logs):

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.ConfusionCounts(num_classes=3)])
    ```
    """

    def __init__(self, *, name: str = "confusion_counts", **kwargs):
        kwargs.pop("zero_division", None)
        super().__init__(name=name, **kwargs)

    def _result(self):
        return self._exact("count_total")
