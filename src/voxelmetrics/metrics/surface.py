"""Boundary metrics as Keras metrics: HD / HD95, average surface distance, surface Dice.

The per-volume values come from `voxelmetrics.ops.surface`; the state is fixed-size and
merged by sum, as for the sample-wise scores: per class, the sum of the per-volume values
and the (weighted) number of volumes where the value is defined.
"""

from keras import ops

from voxelmetrics.defaults import SURFACE_CONVENTION
from voxelmetrics.metrics._lifecycle import documented
from voxelmetrics.metrics.samplewise import SamplewiseScore
from voxelmetrics.ops import surface
from voxelmetrics.ops._inputs import check_inputs, prepare, scores_and_invalid, static_shape
from voxelmetrics.ops._options import (
    check_convention,
    check_percentile,
    check_spacing,
    check_tolerance,
)


class SurfaceScore(SamplewiseScore):
    r"""Mean over volumes of a per-volume boundary measure, per class:
    $\frac{1}{|V_c|}\sum_{v \in V_c} s_{v,c}$, $V_c$ the volumes where $s_{v,c}$ is defined.

    Empty masks follow `voxelmetrics.ops.surface`: a volume where both the truth and the
    prediction of class c are empty is undefined and left out of that class's mean; one
    where exactly one of them is empty is kept with its value (`inf` for distances, 0 for
    the surface Dice), so a missed or hallucinated structure shows in the mean.

    Invalid values never raise (as in every metric): a voxel whose score is NaN or outside
    [0, 1] (or whose softmax has no limit), or whose label is not a class, is left out of
    that class's masks (neither predicted nor true) and tallied in `invalid_count()`.
    Logits go through the library's one activation (`from_logits`).

    Args (besides those of `voxelmetrics.SamplewiseDice`):
        spacing: voxel size per spatial axis (a number: isotropic; default 1.0).
        spatial_dims: spatial axes between the volume axis and the class axis (default 3).
        convention: whose definition to reproduce: "monai" (default), "deepmind" or
            "medpy" (`voxelmetrics.ops.surface_rules`).

    `threshold=None` means 0.5 for `mode="multilabel"` and the argmax over classes for
    exclusive classes. `sample_weight` of shape `[B]` weighs volumes in the mean.
    """

    def __init__(
        self, *, spacing=None, spatial_dims: int = 3, convention=SURFACE_CONVENTION, **kwargs
    ):
        super().__init__(**kwargs)
        if self.ignore_index is not None:
            raise ValueError("ignore_index is not supported by boundary metrics.")
        self.spacing = list(check_spacing(spacing, spatial_dims))
        self.spatial_dims = spatial_dims
        self.convention = check_convention(convention)

    def measure(self, y_true, y_pred, threshold, axis: int):
        """`[N, C]` per-volume values of this metric's boundary measure."""
        raise NotImplementedError

    def _update(self, y_true, y_pred, sample_weight, mask) -> None:
        if mask is not None:
            raise ValueError("mask is not supported by boundary metrics.")
        if sample_weight is not None and len(static_shape(sample_weight)) != 1:
            raise ValueError(
                f"sample_weight of a boundary metric weighs whole volumes: shape [B]; "
                f"received shape {static_shape(sample_weight)}."
            )
        y_pred, axis, threshold, activation = self._working_scores(y_pred)
        y_true, y_pred = self._valid(y_true, y_pred, axis, activation)
        volume_weight = None
        if sample_weight is not None:
            volume_weight = self._volume_weight(sample_weight, y_pred)
        self._add_volumes(self.measure(y_true, y_pred, threshold, axis), volume_weight)

    def _valid(self, y_true, y_pred, axis: int, activation):
        """bool truth and float32 probabilities of `y_pred`'s shape, the invalid voxels
        (`scores_and_invalid`, the rule of every metric) left out of both and tallied."""
        spec = check_inputs(y_true, y_pred, axis=axis, from_logits=activation, on_invalid="tally")
        labels, _, bad_label = prepare(y_true, None, None, spec)
        scores, invalid = scores_and_invalid(y_pred, spec, bad_label)
        invalid = ops.broadcast_to(invalid, ops.shape(scores))
        grid_axes = tuple(a for a in range(len(static_shape(scores))) if a != spec.axis)
        self._accumulate("invalid_total", ops.sum(ops.cast(invalid, "int32"), axis=grid_axes))
        truth = ops.logical_and(
            ops.broadcast_to(labels, ops.shape(scores)), ops.logical_not(invalid)
        )
        return truth, ops.where(invalid, 0.0, scores)

    def _common(self, threshold, axis: int) -> dict:
        return {
            "spacing": self.spacing,
            "threshold": threshold,
            "axis": axis,
            "spatial_dims": self.spatial_dims,
            "convention": self.convention,
        }


@documented()
class HausdorffDistance(SurfaceScore):
    """Mean over volumes of the (percentile) Hausdorff distance, per class and averaged.

    `percentile=95` (default) gives HD95, None the maximum; `directed=True` measures from
    the prediction to the truth only. The default name says which: "hd95", "hd" for the
    maximum, "hd{p}" for another percentile. See `SurfaceScore` for the empty-mask rule and the
    other arguments, `voxelmetrics.ops.hausdorff_distance` for the definition.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import HausdorffDistance
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), "float32"); p[0, 0, 1:5] = 0.9
    >>> m = HausdorffDistance(percentile=None, spatial_dims=2)
    >>> m.update_state(t, p)
    >>> float(m.result())
    3.0

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.HausdorffDistance(class_names=["liver", "tumour"],
                                                          average=None, spacing=(1, 1, 2.5))])
    ```
    """

    def __init__(self, *, percentile=95, directed: bool = False, name: str | None = None, **kwargs):
        percentile = check_percentile(percentile)
        if name is None:
            name = "hd" if percentile is None else f"hd{percentile:g}"
        super().__init__(name=name, **kwargs)
        self.percentile = percentile
        self.directed = directed

    def measure(self, y_true, y_pred, threshold, axis: int):
        return surface.hausdorff_distance(
            y_true,
            y_pred,
            percentile=self.percentile,
            directed=self.directed,
            **self._common(threshold, axis),
        )


@documented()
class AverageSurfaceDistance(SurfaceScore):
    """Mean over volumes of the average (symmetric, by default) surface distance.

    See `SurfaceScore` for the empty-mask rule and the other arguments,
    `voxelmetrics.ops.average_surface_distance` for the definition.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import AverageSurfaceDistance
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), "float32"); p[0, 0, 1:5] = 0.9
    >>> m = AverageSurfaceDistance(spatial_dims=2)
    >>> m.update_state(t, p)
    >>> round(float(m.result()), 3)
    1.2

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.AverageSurfaceDistance(spacing=(1, 1, 2.5))])
    ```
    """

    def __init__(self, *, symmetric: bool = True, name: str = "assd", **kwargs):
        super().__init__(name=name, **kwargs)
        self.symmetric = symmetric

    def measure(self, y_true, y_pred, threshold, axis: int):
        return surface.average_surface_distance(
            y_true, y_pred, symmetric=self.symmetric, **self._common(threshold, axis)
        )


@documented()
class SurfaceDice(SurfaceScore):
    """Mean over volumes of the normalised surface Dice at `tolerance` (spacing units).

    `tolerance`: a number or one per class. See `SurfaceScore` for the empty-mask rule and
    the other arguments, `voxelmetrics.ops.normalized_surface_dice` for the definition.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.metrics import SurfaceDice
    >>> t = np.zeros((1, 1, 6, 1), bool); t[0, 0, 1] = True
    >>> p = np.zeros((1, 1, 6, 1), "float32"); p[0, 0, 1:5] = 0.9
    >>> m = SurfaceDice(1.0, spatial_dims=2)
    >>> m.update_state(t, p)
    >>> round(float(m.result()), 3)
    0.6

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[voxelmetrics.SurfaceDice(2.0, spacing=(1, 1, 2.5))])
    ```
    """

    def __init__(self, tolerance, *, name: str = "surface_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tolerance = check_tolerance(tolerance)

    def measure(self, y_true, y_pred, threshold, axis: int):
        return surface.normalized_surface_dice(
            y_true, y_pred, self.tolerance, **self._common(threshold, axis)
        )
