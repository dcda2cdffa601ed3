"""`SegmentationReport`: every per-class and averaged score from one state and one pass.

Its result is a flat dict of scalars named `score/class` (`recall/liver`, `dice/macro`);
Keras flattens a metric's dict result into separate log entries on every backend, so each
appears on its own in `model.fit` logs, `History`, `CSVLogger` and TensorBoard.
"""

from collections.abc import Sequence

from keras import ops

from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.metrics._base import CountState, arguments, per_class
from voxelmetrics.metrics._lifecycle import documented
from voxelmetrics.ops import scores
from voxelmetrics.ops._options import check_class_weights, normalize_average

SCORES = {
    "recall": scores.recall,
    "precision": scores.precision,
    "specificity": scores.specificity,
    "dice": scores.dice,
    "iou": scores.iou,
    "balanced_accuracy": scores.balanced_accuracy,
    "mcc": scores.matthews_corrcoef,
}


@documented()
class SegmentationReport(CountState):
    """Per-class and averaged recall, precision, Dice and IoU from one fused count state.

    One `confusion_counts` pass per batch feeds every entry; `result()` is a dict of scalars:
    `{score}/{class_name}` for each class and `{score}/{average}` for each average, plus
    `invalid`, the number of (voxel, class) scores left out as invalid (`invalid_count`),
    eager or traced, on every backend (0 unless something is wrong upstream).

    Args:
        scores: which scores to report, from "recall", "precision", "specificity", "dice",
            "iou", "balanced_accuracy", "mcc". Default recall, precision, dice, iou.
        average: one average or a list of them, from "micro", "macro", "weighted"
            (default "macro"); an empty list reports per-class values only.
        class_weights: per-class weights or "inverse_frequency" for "weighted".
        exclude_from_average: classes (names or ids) reported per class but left out of
            every average, e.g. `["background"]`.
        threshold, zero_division, mode, from_logits, axis, num_classes, class_names,
            ignore_index: as in `voxelmetrics.Recall`.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SegmentationReport
    >>> m = SegmentationReport(class_names=["liver", "tumour"])
    >>> m.update_state(np.array([[1, 0], [1, 1], [0, 0]]),
    ...                np.array([[.9, .2], [.4, .8], [.6, .1]], "float32"))
    >>> {k: round(float(v), 3) for k, v in m.result().items() if k.startswith("dice")}
    {'dice/liver': 0.5, 'dice/tumour': 1.0, 'dice/macro': 0.75}

    Usage with `compile()` API (each entry is its own scalar in the logs):

    ```python
    model.compile(
        optimizer="adam",
        loss=voxelmetrics.losses.TverskyLoss(alpha=0.3, beta=0.7),
        metrics=[voxelmetrics.SegmentationReport(class_names=["liver", "tumour"])],
    )
    history = model.fit(x, y, epochs=2)
    history.history["dice/liver"], history.history["val_recall/macro"]
    ```
    """

    def __init__(
        self,
        *,
        scores: Sequence[str] = ("recall", "precision", "dice", "iou"),
        average: str | Sequence[str] = "macro",
        class_weights=None,
        exclude_from_average=(),
        threshold=None,
        zero_division=ZERO_DIVISION,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str = "segmentation_report",
        dtype=None,
    ):
        super().__init__(**arguments(locals(), "scores", "average", "class_weights"))
        if isinstance(scores, str) or not scores:
            raise ValueError(f"scores must be a non-empty list of names; received {scores!r}.")
        unknown = [s for s in scores if s not in SCORES]
        if unknown:
            raise ValueError(f"Unknown score(s) {unknown}; choose from {list(SCORES)}.")
        averages = [average] if average is None or isinstance(average, str) else list(average)
        for a in averages:
            if normalize_average(a) is None:
                raise ValueError(
                    f"average lists the averages to report (micro, macro, weighted); per-class "
                    f"values are always reported. Received {average!r}."
                )
        if class_weights is not None:
            check_class_weights(class_weights, "weighted", self.num_classes)
            if "weighted" not in averages:
                raise ValueError("class_weights applies to the 'weighted' average.")
        self.scores = list(scores)
        self.average = averages
        self.class_weights = check_class_weights(
            class_weights, "weighted" if class_weights is not None else None, self.num_classes
        )

    def _result(self):
        counts = self.counts()
        averaged, class_weights = self.for_average(counts, self.class_weights)
        logs = {}
        for score in self.scores:
            fn = SCORES[score]
            values = fn(counts, zero_division=self.zero_division)
            logs.update(per_class(values, score, self.names))
            for average in self.average:
                weights = class_weights if average == "weighted" else None
                logs[f"{score}/{average}"] = fn(
                    averaged,
                    average=average,
                    class_weights=weights,
                    zero_division=self.zero_division,
                )
        logs["invalid"] = ops.sum(self._total("invalid_total"))
        return logs
