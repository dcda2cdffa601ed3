"""Segmentation losses against numpy; gradients finite on empty classes, on every backend."""

import keras
import numpy as np
import pytest

from tests import harness
from tests.conftest import compiled, to_numpy
from tests.harness import LossCase
from tests.reference import (
    one_hot,
    reference_tversky,
    reference_weighted_bce,
    sigmoid,
    softmax,
)
from voxelmetrics import losses

BACKEND = keras.backend.backend()


def data(rng, shape=(3, 4, 5, 6, 2)):
    y = (rng.random(shape) < 0.3).astype(np.float32)
    y[0, ..., 1] = 0  # an empty class in one volume
    return y, rng.random(shape).astype(np.float32)


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1)])
def test_tversky_equals_numpy(rng, per_sample, alpha, beta):
    y, p = data(rng)
    loss = losses.TverskyLoss(alpha, beta, per_sample=per_sample)
    expected = reference_tversky(y, p, alpha, beta, per_sample)
    np.testing.assert_allclose(to_numpy(loss(y, p)), expected, rtol=1e-5)


def test_tversky_with_half_half_is_soft_dice_and_focal_is_its_power(rng):
    y, p = data(rng)
    soft_dice = to_numpy(losses.SoftDiceLoss()(y, p))
    np.testing.assert_allclose(to_numpy(losses.TverskyLoss(0.5, 0.5)(y, p)), soft_dice, rtol=1e-6)
    dice = 2 * (p * y).sum((1, 2, 3)) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)))
    np.testing.assert_allclose(soft_dice, (1 - dice).mean(), rtol=1e-4)
    focal = losses.FocalTverskyLoss(0.3, 0.7, gamma=0.75)
    expected = reference_tversky(y, p, 0.3, 0.7, gamma=0.75)
    np.testing.assert_allclose(to_numpy(focal(y, p)), expected, rtol=1e-5)


def test_beta_above_alpha_penalises_missed_voxels_more():
    y = np.zeros((1, 8, 1), np.float32)
    y[0, :4] = 1
    misses = np.where(y > 0, 0.2, 0.0).astype(np.float32)  # under-segmentation
    extras = np.where(y > 0, 1.0, 0.8).astype(np.float32)  # over-segmentation
    favours_recall, favours_precision = losses.TverskyLoss(0.3, 0.7), losses.TverskyLoss(0.7, 0.3)
    assert to_numpy(favours_recall(y, misses)) > to_numpy(favours_precision(y, misses))
    assert to_numpy(favours_recall(y, extras)) < to_numpy(favours_precision(y, extras))


def test_logits_sparse_labels_and_channels_first(rng):
    y, _ = data(rng)
    z = rng.normal(size=y.shape).astype(np.float32)
    expected = reference_tversky(y, sigmoid(z), 0.3, 0.7)
    loss = losses.TverskyLoss(0.3, 0.7, from_logits=True)
    np.testing.assert_allclose(to_numpy(loss(y, z)), expected, rtol=1e-5)
    first = losses.TverskyLoss(0.3, 0.7, from_logits=True, axis=1)
    got = first(np.moveaxis(y, -1, 1), np.moveaxis(z, -1, 1))
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-5)
    ids = rng.integers(0, 3, (2, 4, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 4, 3)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    one_hot = (ids[..., None] == np.arange(3)).astype(np.float32)
    expected = reference_tversky(one_hot, probs, 0.5, 0.5)
    sparse = losses.SoftDiceLoss(from_logits=True)
    np.testing.assert_allclose(to_numpy(sparse(ids, logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("class_weights", [None, [2.0, 0.5], "balanced"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_binary_crossentropy_equals_numpy(rng, class_weights, from_logits):
    y, p = data(rng)
    z = rng.normal(size=y.shape).astype(np.float32)
    scores = z if from_logits else p
    q = sigmoid(z) if from_logits else p.astype(np.float64)
    if class_weights == "balanced":
        pos = y.reshape(-1, 2).sum(0)
        w = np.where(pos > 0, (y.size / 2 - pos) / np.maximum(pos, 1), 1.0)
    else:
        w = np.ones(2) if class_weights is None else np.asarray(class_weights)
    q = np.clip(q, 1e-7, 1 - 1e-7)
    expected = -(w * y * np.log(q) + (1 - y) * np.log(1 - q)).mean()
    loss = losses.WeightedBinaryCrossentropy(class_weights, from_logits=from_logits)
    np.testing.assert_allclose(to_numpy(loss(y, scores)), expected, rtol=1e-4)
    if class_weights is None:
        bce = keras.losses.BinaryCrossentropy(from_logits=from_logits)
        np.testing.assert_allclose(to_numpy(loss(y, scores)), to_numpy(bce(y, scores)), 1e-4)


def gradient(loss, y, x):
    """d loss(y, x) / dx on the active backend."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: loss(y, v))(x))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = loss(y, v)
        return tape.gradient(value, v).numpy()
    import torch

    v = torch.tensor(x, requires_grad=True)
    loss(torch.tensor(y), v).backward()
    return v.grad.numpy()


@pytest.mark.parametrize(
    "loss",
    [
        losses.SoftDiceLoss(),
        losses.SoftDiceLoss(per_sample=False, smooth=1e-6),
        losses.TverskyLoss(0.3, 0.7),
        losses.FocalTverskyLoss(),
        losses.SoftJaccardLoss(),
        losses.WeightedBinaryCrossentropy("balanced"),
    ],
)
def test_gradients_are_finite_on_empty_classes(loss):
    y = np.zeros((2, 4, 4, 4, 2), np.float32)
    y[0, :2, :2, :2, 0] = 1  # class 1 is absent everywhere, class 0 from volume 1
    for x in (np.zeros_like(y), np.full_like(y, 0.5), y.copy(), np.ones_like(y)):
        grad = gradient(loss, y, x)
        assert np.isfinite(grad).all(), type(loss).__name__
        assert np.isfinite(to_numpy(loss(y, x)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: losses.TverskyLoss(alpha=-1), "alpha"),
        (lambda: losses.TverskyLoss(beta=float("nan")), "beta"),
        (lambda: losses.FocalTverskyLoss(gamma=0), "gamma"),
        (lambda: losses.SoftDiceLoss(from_logits="relu"), "from_logits"),
        (lambda: losses.SoftDiceLoss(per_sample="yes"), "per_sample"),
        (lambda: losses.SoftDiceLoss(smooth=-1), "smooth"),
        (lambda: losses.WeightedBinaryCrossentropy("uniform"), "balanced"),
        (lambda: losses.WeightedBinaryCrossentropy([[1.0]]), "1-D"),
    ],
)
def test_bad_configuration_fails_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_round_trip(rng):
    y, p = data(rng)
    for loss in (
        losses.FocalTverskyLoss(0.2, 0.8, gamma=0.5, per_sample=False, axis=-1),
        losses.WeightedBinaryCrossentropy([1.0, 3.0], from_logits=True),
    ):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        np.testing.assert_allclose(to_numpy(clone(y, p)), to_numpy(loss(y, p)), rtol=1e-6)


def test_old_balanced_spelling_warns_and_means_the_same(rng):
    y, p = data(rng)
    with pytest.warns(DeprecationWarning, match="balanced"):
        old = losses.WeightedBinaryCrossentropy("inverse_frequency")
    new = losses.WeightedBinaryCrossentropy("balanced")
    assert old.get_config() == new.get_config()
    np.testing.assert_array_equal(to_numpy(old(y, p)), to_numpy(new(y, p)))


@pytest.mark.parametrize("per_sample", [True, False])
def test_soft_jaccard_equals_monai_jaccard_dice_loss(rng, per_sample):
    import torch
    from monai.losses import DiceLoss

    y, p = data(rng)
    smooth = 1e-5
    monai = DiceLoss(jaccard=True, smooth_nr=2 * smooth, smooth_dr=2 * smooth, batch=not per_sample)
    # MONAI is channels-first: [B, C, spatial...].
    expected = monai(
        torch.from_numpy(np.moveaxis(p, -1, 1).astype(np.float64)),
        torch.from_numpy(np.moveaxis(y, -1, 1).astype(np.float64)),
    ).item()
    loss = losses.SoftJaccardLoss(per_sample=per_sample, smooth=smooth)
    np.testing.assert_allclose(to_numpy(loss(y, p)), expected, rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(loss(y, p)), reference_tversky(y, p, 1.0, 1.0, per_sample), rtol=1e-5
    )


# ----------------------------------------------------------------------------- the harness


def _labels_and_probabilities(y_true, y_pred, kw):
    """float labels and probabilities, class axis last: sparse ids one-hot; logits through
    the sigmoid (multi-hot labels) or the softmax (sparse ids)."""
    axis = kw.get("axis", -1)
    if axis != -1:
        y_true, y_pred = np.moveaxis(y_true, axis, -1), np.moveaxis(y_pred, axis, -1)
    sparse = y_true.ndim != y_pred.ndim
    labels = one_hot(y_true, y_pred.shape[-1]) if sparse else y_true
    if kw.get("from_logits", False):
        y_pred = softmax(y_pred) if sparse else sigmoid(y_pred)
    return labels, y_pred


def tversky(alpha=0.5, beta=0.5, gamma=1.0):
    """Reference of a soft overlap loss: `reference_tversky` with the loss's options."""

    def reference(y_true, y_pred, kw):
        y, p = _labels_and_probabilities(y_true, y_pred, kw)
        options = {"per_sample": kw.get("per_sample", True), "smooth": kw.get("smooth", 1e-5)}
        a, b, g = kw.get("alpha", alpha), kw.get("beta", beta), kw.get("gamma", gamma)
        return reference_tversky(y, p, a, b, gamma=g, **options)

    return reference


def weighted_bce(y_true, y_pred, kw):
    return reference_weighted_bce(
        *_labels_and_probabilities(y_true, y_pred, kw), kw.get("class_weights")
    )


LOSS_CASES = [
    LossCase(losses.TverskyLoss, {"alpha": 0.3, "beta": 0.7}, "multilabel", tversky()),
    LossCase(losses.TverskyLoss, {"per_sample": False, "from_logits": True}, "logits", tversky()),
    LossCase(losses.SoftDiceLoss, {}, "sparse", tversky()),
    LossCase(losses.SoftDiceLoss, {"axis": 1, "smooth": 1e-3}, "channels_first", tversky()),
    LossCase(losses.SoftJaccardLoss, {"per_sample": False}, "multilabel", tversky(1.0, 1.0)),
    LossCase(losses.FocalTverskyLoss, {"gamma": 0.5}, "one_hot", tversky(0.3, 0.7)),
    LossCase(
        losses.WeightedBinaryCrossentropy, {"class_weights": "balanced"}, "multilabel", weighted_bce
    ),
    LossCase(
        losses.WeightedBinaryCrossentropy,
        {"class_weights": [2.0, 0.5, 1.0], "axis": 1},
        "channels_first",
        weighted_bce,
    ),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=[case.name for case in LOSS_CASES])
def test_loss_case(case):
    harness.run_loss_case(case, compiled)


def test_every_public_loss_has_a_case():
    public = {
        name
        for name, obj in vars(losses).items()
        if isinstance(obj, type)
        and issubclass(obj, keras.losses.Loss)
        and obj.__module__ == losses.__name__
        and not name.startswith("_")
    }
    assert sorted(public - {case.cls.__name__ for case in LOSS_CASES}) == []
