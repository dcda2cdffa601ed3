"""Independent numpy int64 references for the evaluation tests (no voxelmetrics code)."""

import numpy as np


def one_hot_truth(y_true: np.ndarray, y_pred: np.ndarray, axis: int, ignore_index=None):
    """`(labels bool, counted bool)`, both of `y_pred`'s shape, class axis at `axis`."""
    c = y_pred.shape[axis]
    if y_true.ndim == y_pred.ndim:
        labels = y_true.astype(bool)
        counted = np.ones(y_pred.shape, bool)
    else:
        ids = np.expand_dims(y_true.astype(np.int64), axis)
        shape = [1] * y_pred.ndim
        shape[axis] = c
        labels = ids == np.arange(c).reshape(shape)
        counted = np.broadcast_to(ids != ignore_index, y_pred.shape)
    return np.broadcast_to(labels, y_pred.shape), counted


def probabilities(y_pred: np.ndarray, axis: int, from_logits: bool, sparse: bool):
    x = y_pred.astype(np.float32)
    if not from_logits:
        return x
    if sparse:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
    return (1 / (1 + np.exp(-x))).astype(np.float32)


def counts_and_histogram(
    y_true, y_pred, *, threshold=0.5, num_bins=16, axis=-1, from_logits=False, ignore_index=None
):
    """int64 `[C, 4]` counts at `threshold` and `[C, B, 2]` histogram, by brute force."""
    axis = axis % y_pred.ndim
    sparse = y_true.ndim != y_pred.ndim
    scores = probabilities(y_pred, axis, from_logits, sparse)
    labels, counted = one_hot_truth(y_true, y_pred, axis, ignore_index)
    scores, labels, counted = (np.moveaxis(a, axis, 0) for a in (scores, labels, counted))
    c = scores.shape[0]
    t = np.broadcast_to(np.float32(threshold), (c,))
    edges = np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)
    counts = np.zeros((c, 4), np.int64)
    hist = np.zeros((c, num_bins, 2), np.int64)
    for k in range(c):
        s, y = scores[k][counted[k]], labels[k][counted[k]]
        p = s >= t[k]
        counts[k] = [np.sum(p & y), np.sum(p & ~y), np.sum(~p & y), np.sum(~p & ~y)]
        bins = np.searchsorted(edges, s, side="right") - 1
        np.add.at(hist[k], (bins, y.astype(np.int64)), 1)
    return counts, hist
