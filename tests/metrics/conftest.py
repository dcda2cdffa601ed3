"""Independent numpy references for the metrics tests (int64 counts, float64 scores)."""

import keras
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def to_numpy(x):
    """A backend tensor, variable or numpy value as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def one_hot(ids, num_classes):
    return (np.asarray(ids)[..., None] == np.arange(num_classes)).astype(np.int32)


def decisions(y_pred, mode="multilabel", threshold=None, from_logits=False):
    """bool `[..., C]`: the metric's positive decisions, class axis last."""
    y_pred = np.asarray(y_pred)
    if threshold is None and mode != "multilabel":
        scores = y_pred.astype(np.float64)
        return np.arange(y_pred.shape[-1]) == scores.argmax(-1)[..., None]
    if from_logits:
        probs = sigmoid(y_pred) if mode == "multilabel" else softmax(y_pred)
        # The metric compares float32 probabilities; keep far from the threshold in tests.
        return probs.astype(np.float32) >= np.float32(0.5 if threshold is None else threshold)
    return y_pred.astype(np.float32) >= np.asarray(
        0.5 if threshold is None else threshold, np.float32
    )


def labels_of(y_true, num_classes, mode="multilabel", ignore_index=None):
    """(bool `[..., C]` labels, bool `[...]` keep) from multi-hot / one-hot / sparse truth."""
    y_true = np.asarray(y_true)
    if mode == "sparse":
        ids = y_true[..., 0] if y_true.ndim and y_true.shape[-1] == 1 else y_true
        keep = np.ones(ids.shape, bool) if ignore_index is None else ids != ignore_index
        return one_hot(ids, num_classes).astype(bool), keep
    return y_true.astype(bool), np.ones(y_true.shape[:-1], bool)


def ratio(num, den, zero_division=np.nan):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1), zero_division)


SCORES = {
    "recall": lambda tp, fp, fn, tn: (tp, tp + fn),
    "precision": lambda tp, fp, fn, tn: (tp, tp + fp),
    "specificity": lambda tp, fp, fn, tn: (tn, tn + fp),
    "dice": lambda tp, fp, fn, tn: (2 * tp, 2 * tp + fp + fn),
    "iou": lambda tp, fp, fn, tn: (tp, tp + fp + fn),
}


def reference_score(counts, score, average=None, zero_division=np.nan, class_weights=None):
    """numpy float64 score of `[C, 4]` counts, averaged as the library documents."""
    counts = np.asarray(counts, np.float64)
    if average == "micro":
        return ratio(*SCORES[score](*counts.sum(0)), zero_division)
    values = ratio(*SCORES[score](*counts.T), zero_division)
    if average is None:
        return values
    valid = ~np.isnan(values)
    if average == "macro":
        w = valid.astype(float)
    else:
        support = counts[:, 0] + counts[:, 2]
        if class_weights is None:
            w = support
        elif isinstance(class_weights, str):
            w = ratio(1.0, support, 0.0)
        else:
            w = np.asarray(class_weights, np.float64)
        w = np.where(valid, w, 0.0)
    return ratio((w * np.where(valid, values, 0)).sum(), w.sum())


def assert_close(actual, expected, rtol=2e-6, atol=1e-7, err_msg=""):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        np.asarray(expected, np.float64),
        rtol=rtol,
        atol=atol,
        err_msg=err_msg,
    )
