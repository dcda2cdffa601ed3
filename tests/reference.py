"""The suite's one numpy reference: confusion counts and score histograms by brute force.

Independent of voxelmetrics (numpy int64 / float64 only); every test layer (ops, metrics,
evaluate, distributed) compares against these.
"""

import numpy as np


def reference_counts(labels, predicted, weight=None):
    """numpy `[C, 4]` tp, fp, fn, tn of bool `[..., C]` labels and decisions (class axis
    last): int64, or float64 sums of `weight` (broadcast to the voxel grid `[...]`)."""
    labels = np.asarray(labels, bool)
    c = labels.shape[-1]
    predicted = np.asarray(predicted, bool).reshape(-1, c)
    if weight is None:
        w = np.ones(len(predicted), np.int64)
    else:
        w = np.broadcast_to(np.asarray(weight, np.float64), labels.shape[:-1]).reshape(-1)
    labels, w = labels.reshape(-1, c), w[:, None]
    return np.stack(
        [
            (w * (labels & predicted)).sum(0),
            (w * (~labels & predicted)).sum(0),
            (w * (labels & ~predicted)).sum(0),
            (w * (~labels & ~predicted)).sum(0),
        ],
        axis=-1,
    )


def reference_histogram(labels, scores, num_bins, keep=None):
    """`[C, B, 2]` int64: bin k holds float32 scores with k/B <= s < (k+1)/B (1.0 in B-1),
    split by label; class axis last; `keep` (bool voxel grid) drops voxels."""
    c = np.shape(labels)[-1]
    labels = np.asarray(labels).reshape(-1, c)
    scores = np.asarray(scores, np.float32).reshape(-1, c)
    if keep is not None:
        keep = np.asarray(keep).reshape(-1)
        labels, scores = labels[keep], scores[keep]
    edges = np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)
    bins = np.searchsorted(edges, scores, side="right") - 1
    hist = np.zeros((c, num_bins, 2), np.int64)
    for j in range(c):
        np.add.at(hist[j], (bins[:, j], labels[:, j].astype(int)), 1)
    return hist


def reference_counts_at_bins(histogram, k):
    """`[C, 4]` int64 tp, fp, fn, tn of a `[C, B, 2]` histogram at bin `k[c]` of each class:
    the bins from `k[c]` up predicted positive."""
    neg, pos = np.asarray(histogram, np.int64)[..., 0], np.asarray(histogram, np.int64)[..., 1]
    return np.array(
        [
            [pos[c, j:].sum(), neg[c, j:].sum(), pos[c, :j].sum(), neg[c, :j].sum()]
            for c, j in enumerate(np.asarray(k).tolist())
        ],
        np.int64,
    ).reshape(-1, 4)


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
    """float32 scores: softmax (sparse labels) or sigmoid of logits, else as given."""
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
    scores, labels, counted = (np.moveaxis(a, axis, -1) for a in (scores, labels, counted))
    keep = counted.all(-1)  # ignore_index drops whole voxels
    predicted = scores >= np.float32(threshold)
    counts = reference_counts(labels[keep], predicted[keep])
    return counts, reference_histogram(labels, scores, num_bins, keep)
