"""Per-volume (sample-wise) scores, as medical challenges rank them: the mean over volumes.

State is fixed-size and merged by sum: per class, the sum of per-volume scores and the
(weighted) number of volumes where the score is defined. No list of volumes is kept.
"""

from collections.abc import Callable, Sequence

import numpy as np
from keras import ops

from voxelmetrics.metrics._base import (
    SegmentationMetric,
    arguments,
    documented,
    per_class,
    working_threshold,
)
from voxelmetrics.ops import scores
from voxelmetrics.ops._inputs import static_shape
from voxelmetrics.ops._options import check_class_weights, normalize_average
from voxelmetrics.ops.counting import confusion_counts
from voxelmetrics.ops.scores import average_scores, safe_ratio


class SamplewiseScore(SegmentationMetric):
    r"""Mean over volumes of a per-volume, per-class score: $\frac{1}{|V_c|}\sum_{v \in V_c}
    s_{v,c}$, with $V_c$ the volumes where $s_{v,c}$ is defined.

    Empty-class policy (docs/design.md): a volume where the score of class c is 0 / 0 (for Dice
    and IoU: no truth and no prediction; for recall: no truth) gets `zero_division`: with
    "nan" (default) it is left out of that class's mean; with 0 or 1 it counts as that
    value. "Empty truth but false positives" is not 0 / 0 for Dice and IoU: it scores 0,
    unless `ignore_empty=True`: then every volume without truth of class c is left out of
    class c's mean, whatever was predicted (MONAI's `DiceMetric(ignore_empty=True)`).

    `sample_weight` of shape `[B]` weighs volumes in the mean; a weight over the voxel grid
    weighs voxels within each volume's counts instead.
    """

    score: Callable = None

    default_name: str = None

    def __init__(
        self,
        threshold=None,
        *,
        average="macro",
        class_weights=None,
        exclude_from_average=(),
        zero_division="nan",
        ignore_empty: bool = False,
        mode: str = "multilabel",
        from_logits: bool = False,
        axis: int = -1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(
            **arguments(
                locals(),
                "threshold",
                "average",
                "class_weights",
                "ignore_empty",
                name=name or self.default_name,
            )
        )
        if not isinstance(ignore_empty, bool):
            raise ValueError(f"ignore_empty must be True or False; received {ignore_empty!r}.")
        self.ignore_empty = ignore_empty
        self.threshold = working_threshold(threshold, self.num_classes, self.mode)
        self.average = normalize_average(average)
        if self.average == "micro":
            raise ValueError(
                "average='micro' pools counts over classes; a sample-wise mean is per class. "
                "Use 'macro', 'weighted' or None."
            )
        self.class_weights = check_class_weights(class_weights, average, self.num_classes)
        if self.num_classes is not None:
            self._maybe_build(self.num_classes)

    def _build_state(self, num_classes: int) -> None:
        self.score_sum = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", name="score_sum"
        )
        self.volumes = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", name="volumes"
        )
        self._add_total("invalid_total", (num_classes,))

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        y_pred, axis, threshold, activation = self._working_scores(y_pred)
        volume_weight = None
        if sample_weight is not None and len(static_shape(sample_weight)) == 1:
            volume_weight, sample_weight = self._volume_weight(sample_weight, y_pred, axis), None
        counts, invalid = confusion_counts(
            y_true,
            y_pred,
            threshold,
            from_logits=activation,
            axis=axis,
            sample_weight=sample_weight,
            mask=mask,
            ignore_index=self.ignore_index,
            per_sample=True,
            with_invalid=True,
            on_invalid="tally",
        )
        self._accumulate("invalid_total", ops.sum(invalid, axis=0))
        values = type(self).score(counts, zero_division=self.zero_division)
        defined = ops.logical_not(ops.isnan(values))
        if self.ignore_empty:  # MONAI's rule: a volume without truth of class c is skipped
            defined = ops.logical_and(defined, ops.greater(counts[..., 0] + counts[..., 2], 0))
        weight = ops.cast(defined, "float32")
        if volume_weight is not None:
            weight = weight * volume_weight
        self.score_sum.assign(self.score_sum + ops.sum(ops.where(defined, values, 0.0) * weight, 0))
        self.volumes.assign(self.volumes + ops.sum(weight, axis=0))

    def _volume_weight(self, sample_weight, y_pred, axis: int):
        """float32 `[B, 1]` weights of whole volumes; a NaN, infinite or negative one weighs
        0 and its volume's voxels are tallied as invalid in every class, as a voxel weight
        would be (`prepare`): metrics never raise on values."""
        weight = ops.cast(sample_weight, "float32")
        bad = ops.logical_not(ops.logical_and(ops.isfinite(weight), ops.greater_equal(weight, 0)))
        shape = static_shape(y_pred)
        voxels = int(np.prod([n for a, n in enumerate(shape) if a not in (0, axis)]))
        bad_voxels = ops.sum(ops.cast(bad, "int32")) * voxels
        self._accumulate("invalid_total", ops.broadcast_to(bad_voxels, (shape[axis],)))
        return ops.where(bad, 0.0, weight)[:, None]

    def _result(self):
        values = safe_ratio(self.score_sum, self.volumes)
        if self.average is None:
            if self.class_names is not None:
                return per_class(values, self.name, self.class_names)
            return values
        values, class_weights = self.for_average(values, self.class_weights)
        volumes, _ = self.for_average(self.volumes)
        return average_scores(values, volumes, average=self.average, class_weights=class_weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            average=self.average,
            class_weights=self.class_weights,
            ignore_empty=self.ignore_empty,
        )
        return config


_ARGS = """
    See `SamplewiseScore` for the empty-class policy and the weights. `average`: None per
    class, "macro" (default) over classes with at least one defined volume, "weighted" by
    the number of such volumes or by `class_weights`. Other arguments as in
    `voxelmetrics.Recall`; the leading axis of the inputs is the volume axis.
"""
_documented = documented(_ARGS)


@_documented
class SamplewiseDice(SamplewiseScore):
    """Mean over volumes of the per-volume Dice, per class and averaged.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SamplewiseDice
    >>> m = SamplewiseDice(average=None)
    >>> y_true = np.array([[[1, 0], [1, 0]], [[0, 0], [1, 0]]])   # (volumes, voxels, C)
    >>> y_pred = np.array([[[.9, .2], [.4, .1]], [[.6, .1], [.7, .3]]], "float32")
    >>> m.update_state(y_true, y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [0.667, nan]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=voxelmetrics.losses.SoftDiceLoss(),
                  metrics=[voxelmetrics.SamplewiseDice(class_names=["liver", "tumour"])])
    ```
    """

    score = staticmethod(scores.dice)
    default_name = "samplewise_dice"


@_documented
class SamplewiseIoU(SamplewiseScore):
    """Mean over volumes of the per-volume IoU (Jaccard), per class and averaged.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SamplewiseIoU
    >>> m = SamplewiseIoU(average=None)
    >>> m.update_state(np.array([[[1, 0], [1, 0]], [[0, 0], [1, 0]]]),
    ...                np.array([[[.9, .2], [.4, .1]], [[.6, .1], [.7, .3]]], "float32"))
    >>> np.asarray(m.result()).round(3).tolist()
    [0.5, nan]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.SamplewiseIoU(average="weighted")])
    ```
    """

    score = staticmethod(scores.iou)
    default_name = "samplewise_iou"


@_documented
class SamplewiseRecall(SamplewiseScore):
    """Mean over volumes of the per-volume recall, per class and averaged.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SamplewiseRecall
    >>> m = SamplewiseRecall(average=None)
    >>> y_pred = np.array([[[.9, .2], [.4, .1]], [[.6, .1], [.7, .3]]], "float32")
    >>> m.update_state(np.array([[[1, 0], [1, 0]], [[0, 0], [1, 0]]]), y_pred)
    >>> np.asarray(m.result()).round(3).tolist()
    [0.75, nan]

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.SamplewiseRecall(mode="sparse", num_classes=4)])
    ```
    """

    score = staticmethod(scores.recall)
    default_name = "samplewise_recall"
