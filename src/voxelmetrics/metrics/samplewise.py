"""Per-volume (sample-wise) scores, as medical challenges rank them: the mean over volumes.

State is fixed-size and merged by sum: per class, the sum of per-volume scores and the
(weighted) number of volumes where the score is defined. No list of volumes is kept.
"""

from collections.abc import Callable, Sequence

from keras import ops

from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.metrics._base import AveragedMetric, VolumeMeanState, arguments
from voxelmetrics.metrics._lifecycle import documented
from voxelmetrics.ops import scores
from voxelmetrics.ops._inputs import static_shape
from voxelmetrics.ops.scores import average_scores, safe_ratio


class SamplewiseScore(AveragedMetric, VolumeMeanState):
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
        zero_division=ZERO_DIVISION,
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
        if not isinstance(ignore_empty, bool):
            raise ValueError(f"ignore_empty must be True or False; received {ignore_empty!r}.")
        if average == "micro":
            raise ValueError(
                "average='micro' pools counts over classes; a sample-wise mean is per class. "
                "Use 'macro', 'weighted' or None."
            )
        super().__init__(**arguments(locals(), "ignore_empty", name=name or self.default_name))
        self.ignore_empty = ignore_empty

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        volume_weight = None
        if sample_weight is not None and len(static_shape(sample_weight)) == 1:
            volume_weight, sample_weight = self._volume_weight(sample_weight, y_pred), None
        counts, invalid = self._working_counts(y_true, y_pred, sample_weight, mask, per_sample=True)
        self._accumulate("invalid_total", ops.sum(invalid, axis=0))
        values = type(self).score(counts, zero_division=self.zero_division)
        if self.ignore_empty:  # MONAI's rule: a volume without truth of class c is skipped
            has_truth = ops.greater(counts[..., 0] + counts[..., 2], 0)
            values = ops.where(has_truth, values, float("nan"))
        self._add_volumes(values, volume_weight)

    def _average_state(self):
        """`[C, 2]`: each class's sum of per-volume values and its number of volumes."""
        return ops.stack([self.score_sum, self.volumes], axis=-1)

    def _average(self, state, class_weights):
        values, volumes = safe_ratio(state[:, 0], state[:, 1]), state[:, 1]
        return average_scores(values, volumes, average=self.average, class_weights=class_weights)


_SAMPLEWISE_ARGS = """
    See `SamplewiseScore` for the empty-class policy and the weights. `average`: None per
    class, "macro" (default) over classes with at least one defined volume, "weighted" by
    the number of such volumes or by `class_weights`. Other arguments as in
    `voxelmetrics.Recall`; the leading axis of the inputs is the volume axis.
"""
_documented = documented(_SAMPLEWISE_ARGS)


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
