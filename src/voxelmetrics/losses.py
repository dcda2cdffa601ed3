"""Segmentation losses for Keras 3: soft Dice, Tversky, focal Tversky, weighted cross-entropy.

Soft counts over 3D volumes with any number of spatial axes, any class axis, per-volume or
batch-level reduction, and gradients that stay finite on classes absent from a batch.
"""

import warnings
from collections.abc import Sequence

import keras
from keras import ops

from voxelmetrics.metrics._lifecycle import ConstructorConfig, documented
from voxelmetrics.ops._inputs import (
    activation,
    apply_activation,
    is_sparse,
    normalize_axis,
    sparse_one_hot,
    static_shape,
)
from voxelmetrics.ops._options import check_axis, check_from_logits, check_number, check_weight_list


def _probabilities_and_labels(y_true, y_pred, axis: int, from_logits: bool | str):
    """float32 probabilities and labels of `y_pred`'s shape (sparse ids become one-hot)."""
    pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
    axis = normalize_axis(axis, len(pred_shape))
    num_classes = pred_shape[axis]
    sparse = is_sparse(true_shape, pred_shape, axis)
    labels = y_true
    if sparse:
        _, labels = sparse_one_hot(y_true, num_classes, axis, len(pred_shape))
    scores = apply_activation(y_pred, activation(from_logits, sparse), axis)
    return scores, ops.cast(labels, "float32"), axis


class _SoftOverlapLoss(ConstructorConfig, keras.losses.Loss):
    """Soft `tp, fp, fn` per class (per volume or per batch) turned into a loss per volume."""

    def __init__(
        self,
        *,
        from_logits: bool | str = False,
        axis: int = -1,
        per_sample: bool = True,
        smooth: float = 1e-5,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_from_logits(from_logits)
        check_axis(axis)
        if not isinstance(per_sample, bool):
            raise ValueError(f"per_sample must be True or False; received {per_sample!r}.")
        self.from_logits = from_logits
        self.axis = axis
        self.per_sample = per_sample
        self.smooth = check_number("smooth", smooth, positive=True)

    def _index_loss(self, tp, fp, fn):
        """`[..., C]` soft counts -> `[..., C]` loss per class."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        p, y, axis = _probabilities_and_labels(y_true, y_pred, self.axis, self.from_logits)
        ndim = len(ops.shape(p))
        kept = (0, axis) if self.per_sample else (axis,)
        reduce = tuple(a for a in range(ndim) if a not in kept)
        tp = ops.sum(p * y, axis=reduce)
        fp = ops.sum(p * (1.0 - y), axis=reduce)
        fn = ops.sum((1.0 - p) * y, axis=reduce)
        loss = ops.mean(self._index_loss(tp, fp, fn), axis=-1)
        if not self.per_sample:
            loss = loss * ops.ones((ops.shape(p)[0],), dtype=loss.dtype)
        return loss


def _tversky_index(tp, fp, fn, alpha: float, beta: float, smooth: float):
    # The smoothing term keeps 0 / 0 (class absent, nothing predicted) at index 1, loss 0,
    # with finite gradients.
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


_SOFT_OVERLAP_ARGS = """
    Args:
        from_logits: False (probabilities), True (sigmoid for multi-hot labels, softmax for
            integer labels), or "sigmoid" / "softmax".
        axis: the class axis of y_pred (1 for channels-first).
        per_sample: True (default): one index per volume and class, so each volume weighs
            the same (sample weights apply per volume); False: one index per class over
            the whole batch (the loss of the batch, repeated per volume).
        smooth: > 0, added to numerator and denominator; an absent class predicted absent
            scores index 1 (loss 0) and every gradient stays finite.
        reduction, name, dtype: as for every Keras loss.

    Inputs: `y_true` multi-hot `[B, ..., C]` (or integer labels `[B, ...]`), `y_pred`
    `[B, ..., C]`; the loss is the mean over classes, `[B]` before Keras' reduction.
"""
_documented = documented(_SOFT_OVERLAP_ARGS)


@_documented
class TverskyLoss(_SoftOverlapLoss):
    r"""Tversky loss $1 - TI_c$, averaged over classes.

    $TI_c = (tp_c + s) / (tp_c + \alpha\,fp_c + \beta\,fn_c + s)$ with soft counts
    $tp = \sum p\,y$, $fp = \sum p\,(1-y)$, $fn = \sum (1-p)\,y$. `beta > alpha` penalises
    false negatives more and so favours recall; `alpha = beta = 0.5` is soft Dice.
    Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation using 3D
    fully convolutional deep networks", MLMI 2017.

    Args:
        alpha: weight of false positives, >= 0.
        beta: weight of false negatives, >= 0.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.losses import TverskyLoss
    >>> y_true = np.array([[[1, 0], [1, 0], [0, 0]]], "float32")   # (B, voxels, C)
    >>> y_pred = np.array([[[.9, .1], [.6, .2], [.2, .1]]], "float32")
    >>> round(float(TverskyLoss(alpha=0.3, beta=0.7)(y_true, y_pred)), 3)
    0.607

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=TverskyLoss(alpha=0.3, beta=0.7))
    ```
    """

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.5, *, name: str = "tversky_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.alpha = check_number("alpha", alpha)
        self.beta = check_number("beta", beta)

    def _index_loss(self, tp, fp, fn):
        return 1.0 - _tversky_index(tp, fp, fn, self.alpha, self.beta, self.smooth)


@_documented
class SoftDiceLoss(_SoftOverlapLoss):
    r"""Soft Dice loss $1 - (2\,tp_c + s) / (2\,tp_c + fp_c + fn_c + s)$, averaged
    over classes ($2\,tp + fp + fn = \sum p + \sum y$). Milletari, Navab & Ahmadi, "V-Net",
    3DV 2016.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.losses import SoftDiceLoss
    >>> y_true = np.array([[[1, 0], [1, 0], [0, 0]]], "float32")
    >>> y_pred = np.array([[[.9, .1], [.6, .2], [.2, .1]]], "float32")
    >>> round(float(SoftDiceLoss()(y_true, y_pred)), 3)
    0.595

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=SoftDiceLoss(per_sample=False))
    ```
    """

    def __init__(self, *, name: str = "soft_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def _index_loss(self, tp, fp, fn):
        return 1.0 - (2.0 * tp + self.smooth) / (2.0 * tp + fp + fn + self.smooth)


@_documented
class SoftJaccardLoss(_SoftOverlapLoss):
    r"""Soft Jaccard (IoU) loss $1 - (tp_c + s) / (tp_c + fp_c + fn_c + s)$, averaged
    over classes: the Tversky loss at $\alpha = \beta = 1$. MONAI's
    `DiceLoss(jaccard=True)` with `smooth_nr = smooth_dr = 2 s`.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.losses import SoftJaccardLoss
    >>> y_true = np.array([[[1, 0], [1, 0], [0, 0]]], "float32")
    >>> y_pred = np.array([[[.9, .1], [.6, .2], [.2, .1]]], "float32")
    >>> round(float(SoftJaccardLoss()(y_true, y_pred)), 3)
    0.659

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=SoftJaccardLoss(from_logits=True))
    ```
    """

    def __init__(self, *, name: str = "soft_jaccard_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def _index_loss(self, tp, fp, fn):
        return 1.0 - _tversky_index(tp, fp, fn, 1.0, 1.0, self.smooth)


@_documented
class FocalTverskyLoss(TverskyLoss):
    r"""Focal Tversky loss $(1 - TI_c)^\gamma$, averaged over classes.

    `gamma < 1` raises the loss of classes that are already well segmented less than that
    of hard ones (the paper's $1/\gamma$ with $\gamma = 4/3$ is `gamma=0.75`, the default).
    Abraham & Khan, "A novel focal Tversky loss function with improved attention U-Net for
    lesion segmentation", ISBI 2019. The base is floored at 1e-7 so that a perfect class
    has a zero, not an infinite, gradient.

    Args:
        alpha, beta: as in `TverskyLoss` (defaults 0.3, 0.7).
        gamma: the focal exponent, > 0.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.losses import FocalTverskyLoss
    >>> y_true = np.array([[[1, 0], [1, 0], [0, 0]]], "float32")
    >>> y_pred = np.array([[[.9, .1], [.6, .2], [.2, .1]]], "float32")
    >>> round(float(FocalTverskyLoss()(y_true, y_pred)), 3)
    0.658

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam", loss=FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=0.75))
    ```
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        *,
        name: str = "focal_tversky_loss",
        **kwargs,
    ):
        super().__init__(alpha, beta, name=name, **kwargs)
        self.gamma = check_number("gamma", gamma, positive=True)

    def _index_loss(self, tp, fp, fn):
        return ops.power(ops.maximum(super()._index_loss(tp, fp, fn), 1e-7), self.gamma)


@documented()
class WeightedBinaryCrossentropy(ConstructorConfig, keras.losses.Loss):
    r"""Binary cross-entropy per class with a weight on each class's positive term.

    $L = -\operatorname{mean}_{voxels, c}\,[w_c\,y \log p + (1 - y)\log(1 - p)]$, the
    `pos_weight` of `tf.nn.weighted_cross_entropy_with_logits` and
    `torch.nn.BCEWithLogitsLoss`. `class_weights="balanced"` sets
    $w_c = N^-_c / N^+_c$ from the batch's labels (negatives over positives, so both halves
    of class c weigh the same; 1 for a class without positives in the batch), never a
    hard-coded list.

    Args:
        class_weights: None (all 1), one weight >= 0 per class, or "balanced". (The
            older spelling "inverse_frequency" still works, with a DeprecationWarning: in
            the score averages that name means 1 / support, a different weight.)
        from_logits: y_pred holds logits (computed stably with log-sigmoid).
        axis: the class axis of y_pred.
        reduction, name, dtype: as for every Keras loss.

    Inputs: multi-hot `y_true` and `y_pred` `[B, ..., C]`; the loss is `[B]` before Keras'
    reduction.

    Standalone usage:

    >>> import numpy as np
    >>> from voxelmetrics.losses import WeightedBinaryCrossentropy
    >>> y_true = np.array([[[1, 0], [0, 0], [0, 0], [0, 1]]], "float32")
    >>> y_pred = np.array([[[.8, .1], [.3, .2], [.1, .1], [.4, .6]]], "float32")
    >>> loss = WeightedBinaryCrossentropy(class_weights="balanced")
    >>> round(float(loss(y_true, y_pred)), 3)
    0.451

    Usage with `compile()` API:

    ```python
    model.compile(optimizer="adam",
                  loss=WeightedBinaryCrossentropy(class_weights="balanced"))
    ```
    """

    def __init__(
        self,
        class_weights: Sequence[float] | str | None = None,
        *,
        from_logits: bool = False,
        axis: int = -1,
        reduction: str = "sum_over_batch_size",
        name: str = "weighted_binary_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if class_weights == "inverse_frequency":
            warnings.warn(
                'class_weights="inverse_frequency" of WeightedBinaryCrossentropy is now spelled '
                '"balanced" (negatives / positives per class); "inverse_frequency" means '
                "1 / support in the score averages.",
                DeprecationWarning,
                stacklevel=2,
            )
            class_weights = "balanced"
        if isinstance(class_weights, str):
            if class_weights != "balanced":
                raise ValueError(
                    f"class_weights must be per-class weights or 'balanced'; "
                    f"received {class_weights!r}."
                )
        elif class_weights is not None:
            class_weights = check_weight_list(class_weights)
        self.class_weights = class_weights
        self.from_logits = check_from_logits(from_logits, activations=False)
        self.axis = check_axis(axis)

    def call(self, y_true, y_pred):
        pred_shape = static_shape(y_pred)
        if len(static_shape(y_true)) != len(pred_shape):
            raise ValueError(
                f"y_true has shape {static_shape(y_true)}; expected multi-hot labels of "
                f"y_pred's shape {pred_shape}."
            )
        axis = normalize_axis(self.axis, len(pred_shape))
        y = ops.cast(y_true, "float32")
        z = ops.cast(y_pred, "float32")
        if self.from_logits:
            log_p, log_not_p = ops.log_sigmoid(z), ops.log_sigmoid(-z)
        else:
            eps = keras.backend.epsilon()
            p = ops.clip(z, eps, 1.0 - eps)
            log_p, log_not_p = ops.log(p), ops.log(1.0 - p)
        shape = [1] * len(pred_shape)
        shape[axis] = pred_shape[axis]
        weight = ops.reshape(self._positive_weights(y, axis), shape)
        voxel_loss = -(weight * y * log_p + (1.0 - y) * log_not_p)
        return ops.mean(voxel_loss, axis=tuple(range(1, len(pred_shape))))

    def _positive_weights(self, y, axis: int):
        num_classes = static_shape(y)[axis]
        if self.class_weights is None:
            return ops.ones((num_classes,), "float32")
        if isinstance(self.class_weights, list):
            if len(self.class_weights) != num_classes:
                raise ValueError(
                    f"class_weights has {len(self.class_weights)} weights; y_pred has "
                    f"{num_classes} classes."
                )
            return ops.convert_to_tensor(self.class_weights, "float32")
        others = tuple(a for a in range(len(static_shape(y))) if a != axis)
        positives = ops.sum(y, axis=others)
        negatives = ops.sum(1.0 - y, axis=others)
        return ops.where(positives > 0, negatives / ops.maximum(positives, 1.0), 1.0)
