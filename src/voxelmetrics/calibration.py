"""Per-class thresholds that travel with the model.

`ApplyThresholds` turns scores into masks with thresholds held as a model variable, and
`ThresholdCalibration` sets them from validation data, so that a saved model deploys them.
"""

from collections.abc import Iterable, Iterator

import keras
import numpy as np
from keras import ops

from voxelmetrics.defaults import CRITERION, THRESHOLD
from voxelmetrics.ops._inputs import activation, apply_activation, normalize_axis
from voxelmetrics.ops._options import (
    NUM_BINS,
    check_axis,
    check_from_logits,
    check_int,
    check_num_bins,
    check_threshold_values,
)
from voxelmetrics.ops.accumulate import add_counts, empty_total, pair_as_float
from voxelmetrics.ops.counting import predicted
from voxelmetrics.ops.criterion import Criterion
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.thresholds import optimal_threshold


@keras.saving.register_keras_serializable(package="voxelmetrics")
class ApplyThresholds(keras.layers.Layer):
    r"""Scores to per-class masks: $m_c = [s_c \ge \tau_c]$, the library's threshold rule.

    The thresholds $\tau$ are a non-trainable variable of shape `[C]`, so they are saved,
    loaded and exported with the model's weights; `ThresholdCalibration` (or an
    `assign`) changes them without rebuilding anything. Each class is thresholded on its own
    (one-vs-rest): for exclusive classes the masks may overlap or leave a voxel unlabelled.

    Args:
        thresholds: one threshold for all classes, or one per class `[C]`, in [0, 1].
        axis: the class axis of the scores.
        from_logits: False for probabilities; True or "sigmoid", or "softmax" (over `axis`),
            applies that activation before comparing.
        **kwargs: `keras.layers.Layer` arguments (`name`, ...).

    Input: scores `[..., C, ...]`. Output: bool masks of the same shape.

    Standalone usage:

    >>> import numpy as np
    >>> layer = ApplyThresholds([0.5, 0.2])
    >>> np.asarray(layer(np.float32([[0.5, 0.1], [0.4, 0.2]]))).tolist()
    [[True, False], [False, True]]

    With a trained model `backbone` that outputs probabilities:

    ```python
    deploy = keras.Sequential([backbone, ApplyThresholds(0.5)])
    backbone.fit(x, y, callbacks=[ThresholdCalibration((x_val, y_val), layer=deploy)])
    deploy.save("segmenter.keras")  # the calibrated thresholds are in the file
    ```
    """

    def __init__(
        self, thresholds=THRESHOLD, *, axis: int = -1, from_logits: bool | str = False, **kwargs
    ):
        super().__init__(**kwargs)
        check_threshold_values(thresholds, name="thresholds")
        self._initial = np.asarray(thresholds, np.float32)
        self.axis = check_axis(axis)
        self.from_logits = check_from_logits(from_logits)

    def build(self, input_shape):
        num_classes = input_shape[normalize_axis(self.axis, len(input_shape))]
        if num_classes is None:
            raise ValueError(f"The class axis {self.axis} of the scores needs a static size.")
        if self._initial.ndim == 1 and self._initial.shape[0] != num_classes:
            raise ValueError(
                f"{self._initial.shape[0]} thresholds were given but the scores have "
                f"{num_classes} classes on axis {self.axis}."
            )
        self.thresholds = self.add_weight(
            shape=(num_classes,), initializer="zeros", trainable=False, name="thresholds"
        )
        self.thresholds.assign(np.broadcast_to(self._initial, (num_classes,)))

    def load_own_variables(self, store):
        """Load the thresholds from a saved file, and refuse values the rule cannot use (NaN,
        outside [0, 1]): a tampered or corrupt file fails to load instead of segmenting."""
        super().load_own_variables(store)
        values = np.asarray(ops.convert_to_numpy(self.thresholds), np.float64)
        check_threshold_values(values, name=f"the thresholds of {self.name} in the saved file")

    def call(self, inputs):
        axis = normalize_axis(self.axis, len(ops.shape(inputs)))
        scores = apply_activation(inputs, activation(self.from_logits, sparse=False), axis)
        shape = [1] * len(ops.shape(scores))
        shape[axis] = -1
        return predicted(scores, ops.reshape(self.thresholds, shape))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")

    def get_config(self):
        thresholds = self._initial
        if self.built:
            thresholds = np.asarray(ops.convert_to_numpy(self.thresholds), np.float32)
        return {
            **super().get_config(),
            "thresholds": thresholds.tolist(),
            "axis": self.axis,
            "from_logits": self.from_logits,
        }


def find_threshold_layer(obj) -> ApplyThresholds:
    """The one `ApplyThresholds` layer of `obj` (itself, or inside a model, searched deeply)."""
    if isinstance(obj, ApplyThresholds):
        return obj
    found, stack = [], [obj]
    while stack:
        node = stack.pop()
        for layer in getattr(node, "layers", []):
            if isinstance(layer, ApplyThresholds):
                found.append(layer)
            stack.append(layer)
    if len(found) != 1:
        raise ValueError(
            f"Expected exactly one ApplyThresholds layer in {getattr(obj, 'name', obj)!r}; "
            f"found {len(found)}. Pass the layer itself as layer=."
        )
    return found[0]


class ThresholdCalibration(keras.callbacks.Callback):
    r"""Choose per-class thresholds on validation data and write them into the model.

    After every `frequency` epochs (and whenever `calibrate()` is called) the scoring model
    predicts the validation batches; their per-class score histograms are summed exactly
    (`accumulate`, int32 limbs; float32 sums with sample weights), `optimal_threshold`
    picks each class's best threshold for `criterion`, and the result is assigned to the
    `ApplyThresholds` layer. A class for which the criterion is undefined or infeasible
    (NaN) keeps its previous threshold. Threshold resolution is $1/B$ (`num_bins`).

    Args:
        validation_data: `(x, y)` or `(x, y, sample_weight)` arrays (batched by
            `batch_size`), or an iterable of such batches (e.g. a `tf.data.Dataset`);
            `y` multi-hot `[..., C]` or sparse integer labels, as `score_histogram` takes.
        layer: the `ApplyThresholds` layer to set, or a model holding exactly one; by
            default the layer inside the model being fitted.
        criterion: a `Criterion`, its text spelling (`"recall_at_precision:0.9"`) or a name
            with the options below, as in `optimal_threshold`; "f1" by default.
        scoring_model: the model whose outputs are the scores; by default the model being
            fitted (it must output scores, not masks).
        num_bins: B of the histogram.
        from_logits, axis: how to read the scores, as in `score_histogram`.
        batch_size: batch size for array `validation_data`.
        frequency: calibrate after every `frequency` epochs; 0 only on demand.
        **options: with a criterion's name, its options as `Criterion` takes them.

    Attributes:
        thresholds, values: numpy `[C]`, the last calibration's optimum (NaN where none).
        history: one `(epoch, thresholds, values)` per calibration during `fit`.

    Usage with `fit`:

    ```python
    deploy = keras.Sequential([backbone, ApplyThresholds()])
    calibration = ThresholdCalibration(
        (x_val, y_val), layer=deploy, criterion="recall_at_precision", min_precision=0.9
    )
    backbone.fit(x, y, epochs=10, callbacks=[calibration])
    deploy.save("segmenter.keras")
    ```
    """

    def __init__(
        self,
        validation_data,
        layer=None,
        criterion: Criterion | str = CRITERION,
        *,
        scoring_model: keras.Model | None = None,
        num_bins: int = NUM_BINS,
        from_logits: bool | str = False,
        axis: int = -1,
        batch_size: int = 8,
        frequency: int = 1,
        **options: float | None,
    ):
        super().__init__()
        self.criterion = Criterion.of(criterion, **options)
        self.validation_data = validation_data
        self.layer = layer
        self.scoring_model = scoring_model
        self.num_bins = check_num_bins(num_bins)
        self.from_logits = check_from_logits(from_logits)
        self.axis = check_axis(axis)
        self.batch_size = check_int("batch_size", batch_size)
        self.frequency = check_int("frequency", frequency, minimum=0)
        self.thresholds = self.values = None
        self.history: list[tuple[int, np.ndarray, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        if self.frequency and (epoch + 1) % self.frequency == 0:
            self.calibrate()
            self.history.append((epoch, self.thresholds, self.values))

    def calibrate(self):
        """Calibrate now: returns `(thresholds, values)` as numpy `[C]` and sets the layer."""
        model = self.scoring_model or self.model
        if model is None:
            raise ValueError("No scoring model: pass scoring_model= or use the callback in fit.")
        histogram, shape = self.validation_histogram(model)
        thresholds, values = optimal_threshold(histogram, self.criterion)
        layer = find_threshold_layer(self.layer if self.layer is not None else self.model)
        if not layer.built:
            layer.build(shape)
        new = ops.where(ops.isnan(thresholds), layer.thresholds.value, thresholds)
        layer.thresholds.assign(new)
        self.thresholds = np.asarray(ops.convert_to_numpy(thresholds))
        self.values = np.asarray(ops.convert_to_numpy(values))
        return self.thresholds, self.values

    def validation_histogram(self, model):
        """`[C, B, 2]` float32 histogram of the model's validation scores, and their shape.

        Batches are summed as the metrics' states are (`add_counts`): exactly while they are
        unweighted, as float32 sums once sample weights appear, in any order."""
        total = shape = None
        for batch in _batches(self.validation_data, self.batch_size):
            x, y = batch[0], _numpy(batch[1])
            weight = _numpy(batch[2]) if len(batch) > 2 else None
            scores = model.predict_on_batch(x)
            hist = score_histogram(
                y,
                scores,
                self.num_bins,
                from_logits=self.from_logits,
                axis=self.axis,
                sample_weight=weight,
            )
            if total is None:
                total = (empty_total(ops.shape(hist)), ops.zeros(ops.shape(hist), "float32"))
            total = add_counts(*total, hist)
            shape = tuple(ops.shape(scores))
        if total is None:
            raise ValueError("validation_data yielded no batches.")
        return pair_as_float(*total), shape


def _numpy(x):
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _batches(data, batch_size: int) -> Iterator[tuple]:
    """Batches `(x, y[, sample_weight])` of arrays, or the batches an iterable yields."""
    if isinstance(data, tuple) and len(data) in (2, 3) and hasattr(data[1], "shape"):
        n = len(data[1])
        for start in range(0, n, batch_size):
            yield tuple(part[start : start + batch_size] for part in data)
    elif isinstance(data, Iterable):
        for batch in data:
            yield tuple(batch)
    else:
        raise ValueError(
            "validation_data must be (x, y[, sample_weight]) arrays or an iterable of batches."
        )
