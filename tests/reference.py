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


# ----------------------------------------------------------------------------- labels, decisions


def sigmoid(z):
    """float64 logistic of `z`."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def softmax(z, axis=-1):
    """float64 softmax of `z` along `axis`."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def one_hot(ids, num_classes):
    """int32 `[..., C]` one-hot of integer ids `[...]`."""
    return (np.asarray(ids)[..., None] == np.arange(num_classes)).astype(np.int32)


def decisions(y_pred, mode="multilabel", threshold=None, from_logits=False):
    """bool `[..., C]`: the metric's positive decisions, class axis last.

    `threshold=None` is 0.5 for "multilabel" and the argmax over classes (ties to the lowest
    class) otherwise; a threshold (or one per class) compares float32 probabilities, the
    sigmoid (multilabel) or softmax (exclusive classes) of logits, with `>=`.
    """
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


def reference_batch_counts(
    batches, num_classes, mode, threshold=None, weights=None, ignore_index=None, from_logits=False
):
    """int64 (float64 with `weights`) `[C, 4]` counts summed over `(y_true, y_pred)` batches
    (class axis last); `weights[i]` broadcasts to batch i's voxel grid."""
    total = 0
    for i, (truth, scores) in enumerate(batches):
        labels, keep = labels_of(truth, num_classes, mode, ignore_index)
        w = keep.astype(np.int64)
        if weights is not None:
            w = w * np.broadcast_to(weights[i], keep.shape)
        total = total + reference_counts(labels, decisions(scores, mode, threshold, from_logits), w)
    return total


# ----------------------------------------------------------------------------- scores of counts


def ratio(num, den, zero_division=np.nan):
    """float64 `num / den`, `zero_division` where `den == 0`."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1), zero_division)


def _mcc(tp, fp, fn, tn):
    return tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


# Each score as (numerator, denominator) of the four counts (float64 arrays).
SCORES = {
    "recall": lambda tp, fp, fn, tn: (tp, tp + fn),
    "precision": lambda tp, fp, fn, tn: (tp, tp + fp),
    "specificity": lambda tp, fp, fn, tn: (tn, tn + fp),
    "dice": lambda tp, fp, fn, tn: (2 * tp, 2 * tp + fp + fn),
    "iou": lambda tp, fp, fn, tn: (tp, tp + fp + fn),
    "mcc": _mcc,
}


def score_values(counts, score, zero_division=np.nan, beta=1.0):
    """float64 `[...]` score of counts `[..., 4]` (`tp, fp, fn, tn` last): a name of
    `SCORES`, "fbeta" (with `beta`) or "balanced_accuracy" (NaN unless both rates exist)."""
    tp, fp, fn, tn = np.moveaxis(np.asarray(counts, np.float64), -1, 0)
    if score == "fbeta":
        b2 = beta * beta
        return ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_division)
    if score == "balanced_accuracy":
        value = 0.5 * (ratio(tp, tp + fn) + ratio(tn, tn + fp))
        return np.where(np.isnan(value), zero_division, value)
    return ratio(*SCORES[score](tp, fp, fn, tn), zero_division)


def class_weight_vector(support, class_weights=None):
    """float64 `[C]` weights of average="weighted": support, 1 / support (0 where none)
    for "inverse_frequency", or the given weights."""
    support = np.asarray(support, np.float64)
    if class_weights is None:
        return support
    if isinstance(class_weights, str):
        return ratio(1.0, support, 0.0)
    return np.asarray(class_weights, np.float64)


def average_values(values, support, average=None, class_weights=None):
    """Per-class values `[C]` combined as documented: None as they are; "macro" the mean of
    the defined (non-NaN) ones; "weighted" by `class_weight_vector` over the defined ones,
    the macro mean where those weights sum to 0 (scikit-learn's fallback)."""
    values = np.asarray(values, np.float64)
    if average is None:
        return values
    valid = ~np.isnan(values)
    clean = np.where(valid, values, 0.0)
    macro = ratio(clean.sum(), valid.sum())
    if average == "macro":
        return macro
    w = np.where(valid, class_weight_vector(support, class_weights), 0.0)
    return macro if w.sum() == 0 else ratio((w * clean).sum(), w.sum())


def kept_classes(num_classes, exclude=()):
    """The class ids that enter averages: all but `exclude` (ids)."""
    return [c for c in range(num_classes) if c not in exclude]


def reference_average(values, support, average, class_weights=None, exclude=()):
    """Per-class values `[C]` and support `[C]` averaged (not "micro") over the classes not
    in `exclude` (ids), whose `class_weights` (a list) go with them."""
    kept = kept_classes(len(values), exclude)
    if isinstance(class_weights, list | tuple):
        class_weights = [class_weights[c] for c in kept]
    values, support = np.asarray(values)[kept], np.asarray(support)[kept]
    return average_values(values, support, average, class_weights)


def reference_score(
    counts,
    score,
    average=None,
    zero_division=np.nan,
    class_weights=None,
    exclude=(),
    beta=1.0,
):
    """numpy float64 score of `[C, 4]` counts, averaged as the library documents: "micro"
    pools the counts, the others average per-class values; classes in `exclude` (ids) are
    left out of averages (and their `class_weights` with them)."""
    counts = np.asarray(counts, np.float64)
    if average is None:
        return score_values(counts, score, zero_division, beta)
    if average == "micro":
        kept = counts[kept_classes(len(counts), exclude)]
        return score_values(kept.sum(0), score, zero_division, beta)
    values = score_values(counts, score, zero_division, beta)
    return reference_average(values, counts[:, 0] + counts[:, 2], average, class_weights, exclude)


def assert_close(actual, expected, rtol=2e-6, atol=1e-7, err_msg=""):
    """float64 comparison; NaN equals NaN and inf equals inf."""
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        np.asarray(expected, np.float64),
        rtol=rtol,
        atol=atol,
        err_msg=err_msg,
    )


# ----------------------------------------------------------------------------- histogram curves


def histogram_counts(histogram):
    """float64 `[C, B + 1, 4]` tp, fp, fn, tn at each threshold k / B (bins k.. positive),
    the last row the point above every score (nothing predicted)."""
    h = np.asarray(histogram, np.float64)
    above = np.concatenate([h[:, ::-1].cumsum(1)[:, ::-1], np.zeros_like(h[:, :1])], axis=1)
    total = h.sum(1, keepdims=True)
    tp, fp = above[..., 1], above[..., 0]
    return np.stack([tp, fp, total[..., 1] - tp, total[..., 0] - fp], axis=-1)


def _average_precision(h, zero_division):
    """Per class: scikit-learn's step-wise sum `sum_k (R_k - R_{k+1}) P_k`."""
    counts = histogram_counts(h)
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    recall = ratio(tp, tp + fn)
    precision = ratio(tp, tp + fp, 1.0)
    steps = np.nan_to_num(recall[:, :-1] - recall[:, 1:])  # 0 where recall is undefined
    value = (steps * precision[:, :-1]).sum(1)
    return np.where(tp[:, 0] + fn[:, 0] > 0, value, zero_division)


def _roc_auc(h, zero_division):
    """Per class: trapezoids between consecutive (FPR, TPR) points, down to (0, 0)."""
    counts = histogram_counts(h)
    tp, fp, fn, tn = np.moveaxis(counts, -1, 0)
    tpr, fpr = ratio(tp, tp + fn), ratio(fp, fp + tn)
    area = ((fpr[:, :-1] - fpr[:, 1:]) * (tpr[:, :-1] + tpr[:, 1:]) / 2).sum(1)
    defined = (tp[:, 0] + fn[:, 0] > 0) & (fp[:, 0] + tn[:, 0] > 0)
    return np.where(defined, area, zero_division)


def _pr_auc(h, zero_division):
    """Per class: Davis & Goadrich interpolation between consecutive thresholds (Keras'
    `AUC(curve="PR")`): along each step tp is linear in the predicted positives p."""
    counts = histogram_counts(h)
    tp, p = counts[..., 0], counts[..., 0] + counts[..., 1]
    positives = tp[:, 0] + counts[:, 0, 2]
    out = np.zeros(len(h))
    for c in range(len(h)):
        for k in range(h.shape[1]):
            dtp, dp = tp[c, k] - tp[c, k + 1], p[c, k] - p[c, k + 1]
            slope = dtp / dp if dp > 0 else 0.0
            intercept = tp[c, k + 1] - slope * p[c, k + 1]
            log = np.log(p[c, k] / p[c, k + 1]) if p[c, k] > 0 and p[c, k + 1] > 0 else 0.0
            out[c] += slope * (dtp + intercept * log)
    return np.where(positives > 0, ratio(out, positives, 0.0), zero_division)


CURVES = {"average_precision": _average_precision, "roc_auc": _roc_auc, "pr_auc": _pr_auc}


def reference_at_floor(hist, criterion, floor, zero_division=np.nan):
    """Per class: the best rate of `criterion` over the thresholds where its floor holds
    (float32 ratios, as the library compares them), 0 where none does, `zero_division`
    for a class without positives."""
    counts = histogram_counts(hist)[:, :-1]
    tp, fp, fn, tn = (x.astype(np.float32) for x in np.moveaxis(counts, -1, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall, precision, specificity = tp / (tp + fn), tp / (tp + fp), tn / (tn + fp)
    ok, value = {
        "recall_at_precision": (precision >= np.float32(floor), recall),
        "precision_at_recall": (recall >= np.float32(floor), precision),
        "recall_at_specificity": (specificity >= np.float32(floor), recall),
        "specificity_at_recall": (recall >= np.float32(floor), specificity),
    }[criterion]
    ok = ok & ~np.isnan(value)
    best = np.where(ok, value, -np.inf).max(1)
    best = np.where(np.isinf(best), 0.0, best)
    return np.where(tp[:, 0] + fn[:, 0] > 0, best, zero_division)


def reference_curve_score(
    histogram, curve, average=None, zero_division=np.nan, class_weights=None, exclude=()
):
    """A curve score of a `[C, B, 2]` histogram (a name of `CURVES`, or a function of
    `(histogram, zero_division)`), averaged: "micro" scores the pooled histogram, the others
    average per-class values with the positives as support; `exclude` as `reference_score`."""
    fn = CURVES.get(curve, curve)
    h = np.asarray(histogram, np.int64)
    if average is None:
        return fn(h, zero_division)
    if average == "micro":
        return fn(h[kept_classes(len(h), exclude)].sum(0, keepdims=True), zero_division)[0]
    values = fn(h, zero_division)
    return reference_average(values, h[..., 1].sum(1), average, class_weights, exclude)


def _criterion_value(counts, name, options):
    """float32 `[C, K]` value of a threshold criterion and bool `[C, K]` allowed."""
    tp, fp, fn, tn = np.moveaxis(np.asarray(counts, np.float64), -1, 0)
    positives = tp + fn > 0
    if name == "cost":
        value = options["cost_fp"] * fp + options["cost_fn"] * fn
        return value.astype(np.float32), tp + fp + fn + tn > 0
    if name == "youden":
        value = ratio(tp, tp + fn) - ratio(fp, fp + tn)
    elif name in ("f1", "dice"):
        value = score_values(counts, "dice")
    elif name == "fbeta":
        value = score_values(counts, "fbeta", beta=options["beta"])
    elif name == "iou":
        value = score_values(counts, "iou")
    else:
        floor_at = {
            "recall_at_precision": ("recall", "precision", "min_precision"),
            "precision_at_recall": ("precision", "recall", "min_recall"),
            "recall_at_specificity": ("recall", "specificity", "min_specificity"),
            "specificity_at_recall": ("specificity", "recall", "min_recall"),
        }
        best, floored, option = floor_at[name]
        value = score_values(counts, best)
        rate = score_values(counts, floored).astype(np.float32)
        with np.errstate(invalid="ignore"):
            positives = positives & (rate >= np.float32(options[option]))
    value = value.astype(np.float32)
    return value, positives & ~np.isnan(value)


def reference_optimal_threshold(histogram, name, **options):
    """`(thresholds, values)` `[C]` each: per class the candidate k / B with the best float32
    criterion value (the lowest for "cost"), ties to the highest threshold, NaN and NaN
    where no candidate is allowed."""
    counts = histogram_counts(histogram)[:, :-1]
    value, allowed = _criterion_value(counts, name, options)
    num_bins = counts.shape[1]
    sign = -1.0 if name == "cost" else 1.0
    thresholds, values = [], []
    for v, ok in zip(value, allowed, strict=True):
        if not ok.any():
            thresholds.append(np.nan)
            values.append(np.nan)
            continue
        score = np.where(ok, sign * v, -np.inf)
        k = np.flatnonzero(score == score.max())[-1]
        thresholds.append(np.float32(k) / np.float32(num_bins))
        values.append(v[k])
    return np.array(thresholds, np.float64), np.array(values, np.float64)


# ----------------------------------------------------------------------------- per-volume means


def volume_mean(values, volume_weight=None):
    """Per class `[C]`: the (weighted) mean over volumes of `[N, C]` values, leaving out
    the NaN ones (NaN where none is defined); and how many volumes (weights) count."""
    values = np.asarray(values, np.float64)
    w = np.ones(len(values)) if volume_weight is None else np.asarray(volume_weight, np.float64)
    w = np.where(np.isnan(values), 0.0, w[:, None])
    with np.errstate(invalid="ignore"):
        total = (w * np.where(np.isnan(values), 0.0, values)).sum(0)
    return ratio(total, w.sum(0)), w.sum(0)


def samplewise_values(
    labels, predicted, score, zero_division=np.nan, ignore_empty=False, keep=None
):
    """`[N, C]` per-volume scores of bool `[N, ..., C]` labels and decisions (`keep`
    `[N, ...]` drops voxels); `ignore_empty` makes each volume without truth of a class NaN
    there (left out of the mean)."""
    values = []
    for n in range(len(labels)):
        weight = None if keep is None else keep[n].astype(np.int64)
        counts = reference_counts(labels[n], predicted[n], weight)
        value = score_values(counts, score, zero_division)
        if ignore_empty:
            value = np.where(counts[:, 0] + counts[:, 2] > 0, value, np.nan)
        values.append(value)
    return np.array(values)


def reference_samplewise(truth, scores, score, zero_division=np.nan, volume_weight=None):
    """Per class `[C]`: the (weighted) mean over volumes of the per-volume score of
    `[N, ..., C]` truth and scores thresholded at 0.5."""
    values = samplewise_values(
        np.asarray(truth, bool), np.asarray(scores) >= 0.5, score, zero_division
    )
    return volume_mean(values, volume_weight)[0]


# ----------------------------------------------------------------------------- boundaries


def reference_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside the mask or outside the volume."""
    padded = np.pad(mask, 1)
    interior = mask.copy()
    for axis in range(mask.ndim):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis)[(slice(1, -1),) * mask.ndim]
    return mask & ~interior


def reference_directed(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Distances from every boundary voxel of `a` to the nearest boundary voxel of `b`."""
    pa = np.argwhere(reference_boundary(a)) * np.asarray(spacing)
    pb = np.argwhere(reference_boundary(b)) * np.asarray(spacing)
    if len(pb) == 0:
        return np.full(len(pa), np.inf)
    return np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1)).min(1)


def reference_surface(t: np.ndarray, p: np.ndarray, spacing, fn) -> np.ndarray:
    """`fn(pred_to_true, true_to_pred)` per volume and class of bool `[N, *spatial, C]`
    masks, NaN where both are empty."""
    out = np.empty((t.shape[0], t.shape[-1]))
    for n in range(t.shape[0]):
        for c in range(t.shape[-1]):
            tc, pc = t[n, ..., c], p[n, ..., c]
            if not tc.any() and not pc.any():
                out[n, c] = np.nan
            else:
                out[n, c] = fn(
                    reference_directed(pc, tc, spacing), reference_directed(tc, pc, spacing)
                )
    return out


def ref_hausdorff(percentile=None, directed=False, pooled=False):
    """HD (`percentile=None`) or HD-p of the two directions' distances: the larger of the
    directed ones (MONAI's rule), or of both pooled (`pooled`, MedPy's); inf when one
    boundary is empty."""

    def reduce(d):
        return d.max() if percentile is None else np.percentile(d, percentile)

    def fn(pt, tp):
        if not len(pt) or not len(tp):
            return np.inf
        if directed:
            return reduce(pt)
        if pooled and percentile is not None:
            return reduce(np.concatenate([pt, tp]))
        return max(reduce(pt), reduce(tp))

    return fn


def ref_assd(pt, tp):
    """The mean of both directions' distances pooled; inf when one boundary is empty."""
    d = np.concatenate([pt, tp])
    return np.inf if np.isinf(d).any() or not len(pt) or not len(tp) else d.mean()


def ref_asd(pt, tp):
    """The mean distance from the prediction's boundary to the truth's."""
    return np.inf if not len(pt) or not len(tp) else pt.mean()


def ref_nsd(tol):
    """The share of both boundaries' voxels within `tol` of the other boundary."""
    return lambda pt, tp: ((pt <= tol).sum() + (tp <= tol).sum()) / (len(pt) + len(tp))


# ----------------------------------------------------------------------------- losses


def reference_tversky(y, p, alpha, beta, per_sample=True, smooth=1e-5, gamma=1.0):
    """The (focal) Tversky loss of float `[N, ..., C]` labels and probabilities: soft
    `tp, fp, fn` per volume and class (`per_sample`) or per class over the batch, the index
    `(tp + s) / (tp + alpha fp + beta fn + s)`, the loss `(1 - index) ** gamma` meaned over
    classes, then over volumes."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    axes = tuple(range(1, y.ndim - 1)) if per_sample else tuple(range(y.ndim - 1))
    tp = (p * y).sum(axes)
    fp = (p * (1 - y)).sum(axes)
    fn = ((1 - p) * y).sum(axes)
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    loss = np.maximum(1 - index, 1e-7) ** gamma if gamma != 1.0 else 1 - index
    loss = loss.mean(-1)
    return loss.mean() if per_sample else float(loss)


def reference_weighted_bce(y, q, class_weights=None):
    """Binary cross-entropy of float `[..., C]` labels and probabilities `q` (clipped in
    float32 to [1e-7, 1 - 1e-7], as Keras' epsilon) with a weight per class on the positive
    term: as given, 1 (None), or "balanced" (negatives / positives of the class, 1 where it
    has none)."""
    eps = np.float32(1e-7)
    q = np.clip(np.asarray(q, np.float32), eps, np.float32(1) - eps)
    y, not_q, q = (
        np.asarray(y, np.float64),
        (np.float32(1) - q).astype(np.float64),
        q.astype(np.float64),
    )
    c = y.shape[-1]
    if isinstance(class_weights, str):
        pos = y.reshape(-1, c).sum(0)
        w = np.where(pos > 0, (y.size / c - pos) / np.maximum(pos, 1), 1.0)
    else:
        w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    return -(w * y * np.log(q) + (1 - y) * np.log(not_q)).mean()
