"""Counting metrics: recall, precision, specificity, F-beta, Dice, IoU and the raw counts.

Each is a thin shell over one `CountState` (per-class `tp, fp, fn, tn`, exact); `result()`
calls the matching `voxelmetrics.ops` score, so the empty-class policy and the averaging
rule are the ops' own.
"""

from collections.abc import Callable, Sequence

from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.metrics._base import AveragedMetric, CountState, arguments
from voxelmetrics.metrics._lifecycle import documented
from voxelmetrics.ops import scores
from voxelmetrics.ops._options import check_number

_COMMON_ARGS = """
    Args:
        threshold: None (default): 0.5 for `mode="multilabel"`, the argmax over classes for
            `"multiclass"` / `"sparse"`; or a number in [0, 1], or one per class: a voxel is
            positive for class c iff `score >= threshold[c]` (Keras' built-ins use `>`).
            A list is one threshold per class, not Keras' `thresholds=[...]` (several
            operating points of one class at once): for those use a curve metric.
        average: None / "none" per class `[C]` (a dict `{name}/{class}` of scalars when
            `class_names` is given, so each class is its own log entry); "micro" pools the
            counts of all classes; "macro" (default) the mean over classes whose score is
            defined (NaN classes skipped); "weighted" by support, by `class_weights`, or by
            `class_weights="inverse_frequency"` (1 / support, from the accumulated counts).
        class_weights: per-class weights or "inverse_frequency"; `average="weighted"` only.
        exclude_from_average: classes (names or ids) reported per class but left out of
            every average, e.g. `["background"]` (MONAI's `include_background=False`).
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
_documented = documented(_COMMON_ARGS)


class ScoreMetric(AveragedMetric, CountState):
    """A score of the accumulated counts (`score`, one of `voxelmetrics.ops.scores`),
    averaged over classes as `average` says."""

    score: Callable = None
    default_name: str = None

    def __init__(
        self,
        threshold=None,
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

    def _score_kwargs(self) -> dict:
        """Options of `score` beyond the averaging ones (F-beta's `beta`)."""
        return {}

    def _average_state(self):
        return self.counts()

    def _average(self, counts, class_weights):
        return type(self).score(
            counts,
            average=self.average,
            class_weights=class_weights,
            zero_division=self.zero_division,
            **self._score_kwargs(),
        )


@_documented
class Recall(ScoreMetric):
    """Recall (sensitivity) `tp / (tp + fn)`, per class and averaged, from exact counts.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import Recall
    >>> m = Recall(average=None)
    >>> y_true = np.array([[[1, 0], [1, 1]], [[0, 0], [1, 0]]])   # (B, W, C)
    >>> y_pred = np.array([[[.9, .2], [.4, .8]], [[.6, .1], [.7, .3]]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [0.667, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=voxelmetrics.losses.TverskyLoss(),
                  metrics=[voxelmetrics.Recall(class_names=["liver", "tumour"])])
    ```
    """

    score = staticmethod(scores.recall)
    default_name = "recall"


@_documented
class Precision(ScoreMetric):
    """Precision `tp / (tp + fp)`, per class and averaged, from exact counts.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import Precision
    >>> m = Precision(average=None)
    >>> m.update_state(np.array([[1, 0], [1, 1], [0, 0]]),
    ...                np.array([[.9, .2], [.4, .8], [.6, .1]], "float32"))
    >>> np.asarray(m.result()).round(3).tolist()
    [0.5, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.Precision(threshold=[0.5, 0.3])])
    ```
    """

    score = staticmethod(scores.precision)
    default_name = "precision"


@_documented
class Specificity(ScoreMetric):
    """Specificity `tn / (tn + fp)`, per class and averaged, from exact counts.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import Specificity
    >>> m = Specificity(average="micro")
    >>> m.update_state(np.array([[1, 0], [0, 1], [0, 0]]),
    ...                np.array([[.9, .2], [.6, .8], [.1, .7]], "float32"))
    >>> round(float(m.result()), 3)
    0.5

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.Specificity(mode="sparse", num_classes=3)])
    ```
    """

    score = staticmethod(scores.specificity)
    default_name = "specificity"


@_documented
class Dice(ScoreMetric):
    """Dice `2 tp / (2 tp + fp + fn)` (= F1), per class and averaged, from exact counts.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import Dice
    >>> m = Dice(mode="sparse", average=None)
    >>> y_pred = np.array([[.8, .1, .1], [.2, .7, .1], [.5, .3, .2], [0, 0, 1]], "float32")
    >>> m.update_state(np.array([0, 1, 1, 2]), y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [0.667, 0.667, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=voxelmetrics.losses.SoftDiceLoss(),
                  metrics=[voxelmetrics.Dice(class_names=["liver", "tumour"])])
    ```
    """

    score = staticmethod(scores.dice)
    default_name = "dice"


@_documented
class IoU(ScoreMetric):
    """IoU (Jaccard) `tp / (tp + fp + fn)`, per class and averaged, from exact counts.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import IoU
    >>> m = IoU(average=None)
    >>> m.update_state(np.array([[1, 0], [1, 1], [0, 1]]),
    ...                np.array([[.9, .2], [.4, .8], [.6, .7]], "float32"))
    >>> np.asarray(m.result()).round(3).tolist()
    [0.333, 1.0]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.IoU(average="micro")])
    ```
    """

    score = staticmethod(scores.iou)
    default_name = "iou"


@_documented
class FBetaScore(ScoreMetric):
    """F-beta `(1 + b²) tp / ((1 + b²) tp + b² fn + fp)`, per class and averaged.

    `beta` (> 0, default 1): `beta > 1` weighs recall higher, `beta < 1` precision;
    `beta = 1` is F1 (= Dice).

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

    def __init__(
        self,
        beta: float = 1.0,
        threshold=None,
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
        name: str = "fbeta_score",
        dtype=None,
    ):
        beta = check_number("beta", beta, positive=True)
        super().__init__(**arguments(locals(), "beta"))
        self.beta = beta

    def _score_kwargs(self) -> dict:
        return {"beta": self.beta}


@_documented
class F1Score(ScoreMetric):
    """F1 `2 tp / (2 tp + fp + fn)` (equal to Dice), per class and averaged.

    The default `average="macro"` is every score metric's here; Keras' own `F1Score`
    defaults to None (per class): pass `average=None` for that.

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

    score = staticmethod(scores.fbeta_score)
    default_name = "f1_score"

    def _score_kwargs(self) -> dict:
        return {"beta": 1.0}


@documented()
class ConfusionCounts(CountState):
    """Per-class `tp, fp, fn, tn` at the working threshold(s): the exact accumulated state.

    `result()` returns `[C, 4]` (columns `tp, fp, fn, tn`). Called outside a traced function
    it is a numpy int64 array holding the exact totals (exact to 2**55 on every backend,
    JAX without x64 included; float64 once a weighted batch was added); inside `jit` /
    `tf.function` it is float32 (exact to 2**24). `invalid_count()` gives the per-class
    tally of scores left out as invalid (metrics tally them and never raise on values).

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

    def __init__(
        self,
        threshold=None,
        *,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "confusion_counts",
        dtype=None,
    ):
        super().__init__(**arguments(locals()))

    # Configs saved by earlier versions carry a zero_division that never applied (counts
    # are never undefined).
    retired_arguments = ("zero_division",)

    def _result(self):
        return self._exact("count_total")
