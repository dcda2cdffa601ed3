"""Curve metrics against numpy histograms, the ops and scikit-learn."""

import keras
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import voxelmetrics as vm
from tests.conftest import to_numpy
from tests.reference import (
    assert_close,
    labels_of,
    one_hot,
    reference_histogram,
    softmax,
)
from voxelmetrics import metrics
from voxelmetrics.ops.thresholds import optimal_threshold

C, B = 3, 16


def batches(rng, n=3, shape=(2, 3, 4, 5)):
    out = []
    for _ in range(n):
        truth = (rng.random((*shape, C)) < 0.3).astype(np.int32)
        truth[..., 2] = 0  # no positives: NaN per class, skipped by macro
        scores = rng.random((*shape, C)).astype(np.float32)
        scores[..., 0] = rng.integers(0, B + 1, shape) / B  # on the bin edges
        out.append((truth, scores))
    return out


def quantised(scores):
    """Each score mapped to its bin's lower edge (the binned curves' scores)."""
    edges = np.arange(B, dtype=np.float32) / np.float32(B)
    return edges[np.searchsorted(edges, scores, side="right") - 1]


def total_histogram(data):
    return sum(reference_histogram(t.astype(bool), s, B) for t, s in data)


@pytest.mark.parametrize(
    ("cls", "fn", "sklearn_fn"),
    [
        (metrics.AveragePrecision, vm.average_precision, average_precision_score),
        (metrics.ROCAUC, vm.roc_auc, roc_auc_score),
        (metrics.PRAUC, vm.pr_auc, None),
    ],
)
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_curve_metrics_equal_the_ops_and_sklearn(rng, cls, fn, sklearn_fn, average):
    data = batches(rng)
    m = cls(num_bins=B, average=average)
    for truth, scores in data:
        m.update_state(truth, scores)
    hist = total_histogram(data)
    np.testing.assert_array_equal(m._exact("histogram_total"), hist)
    assert_close(to_numpy(m.result()), to_numpy(fn(hist, average=average)), rtol=1e-5)
    if sklearn_fn is not None and average in (None, "micro"):
        truth = np.concatenate([t.reshape(-1, C) for t, _ in data])
        q = quantised(np.concatenate([s.reshape(-1, C) for _, s in data]))
        if average == "micro":
            expected = sklearn_fn(truth.ravel(), q.ravel())
        else:
            expected = [sklearn_fn(truth[:, c], q[:, c]) for c in range(C - 1)] + [np.nan]
        assert_close(to_numpy(m.result()), expected, rtol=1e-5)


def test_pr_auc_agrees_with_keras_auc_pr(rng):
    truth = (rng.random((4, 8, 8, 8, 1)) < 0.3).astype(np.float32)
    scores = rng.random((4, 8, 8, 8, 1)).astype(np.float32)
    scores = np.clip(scores + 0.3 * truth, 0, 1)
    ours = metrics.PRAUC(num_bins=200)
    ours.update_state(truth, scores)
    theirs = keras.metrics.AUC(curve="PR", num_thresholds=200)
    theirs.update_state(truth.reshape(-1), scores.reshape(-1))
    # Keras' thresholds are (k + 0.5-ish)/199 with `>`, ours k/200 with `>=`: close, not equal.
    assert abs(float(to_numpy(ours.result())) - float(to_numpy(theirs.result()))) < 0.01


KERAS_CASES = [([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], None)]
KERAS_CASES += [(*KERAS_CASES[0][:2], [1, 1, 2, 2, 1]), (*KERAS_CASES[0][:2], [1, 1, 2, 2, 2])]


@pytest.mark.parametrize(
    ("ours", "theirs", "documented"),
    [
        (metrics.SensitivityAtSpecificity, keras.metrics.SensitivityAtSpecificity, [0.5, 1 / 3]),
        (metrics.SpecificityAtSensitivity, keras.metrics.SpecificityAtSensitivity, [2 / 3, 0.5]),
    ],
)
def test_keras_documented_cases(ours, theirs, documented):
    results = []
    for y, s, w in KERAS_CASES:
        m, k = ours(0.5, num_bins=10), theirs(0.5)
        m.update_state(np.array(y)[:, None], np.float32(s)[:, None], sample_weight=w)
        k.update_state(y, s, sample_weight=w)
        assert float(to_numpy(m.result())) == pytest.approx(float(to_numpy(k.result())), abs=1e-6)
        results.append(float(to_numpy(m.result())))
    # Keras' docstrings: the unweighted case, and one weighted case each.
    weighted = results[1] if ours is metrics.SensitivityAtSpecificity else results[2]
    assert [results[0], weighted] == pytest.approx(documented, abs=1e-6)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (metrics.SensitivityAtSpecificity, keras.metrics.SensitivityAtSpecificity),
        (metrics.SpecificityAtSensitivity, keras.metrics.SpecificityAtSensitivity),
    ],
)
@pytest.mark.parametrize("floor", [0.0, 0.3, 0.75, 0.99, 1.0])
def test_equal_keras_per_class_id_on_random_batches(rng, ours, theirs, floor):
    shape, b = (3, 6, 5, 4, C), 40
    truth = (rng.random(shape) < 0.35).astype(np.float32)
    # Scores off the grid points k / b: there `>` (Keras) and `>=` (here) agree.
    scores = (rng.integers(0, b, shape) + rng.uniform(0.05, 0.95, shape)) / b
    scores = np.clip(scores + 0.2 * truth, 0, 0.999).astype(np.float32)
    weights = rng.integers(0, 3, shape[:-1]).astype(np.float32)
    m = ours(floor, num_bins=b, average=None)
    for i in range(shape[0]):
        m.update_state(truth[i : i + 1], scores[i : i + 1], sample_weight=weights[i : i + 1])
    got = to_numpy(m.result())
    for c in range(C):
        k = theirs(floor, num_thresholds=b + 1, class_id=c)
        w = weights.reshape(-1, 1)
        k.update_state(truth.reshape(-1, C), scores.reshape(-1, C), sample_weight=w)
        expected = float(to_numpy(k.result()))
        if floor == 0 and ours is metrics.SpecificityAtSensitivity:
            # Keras' extra threshold 1.0 predicts nothing: sensitivity 0 meets a 0 floor
            # there, specificity 1. Here the thresholds stop at (b - 1) / b (documented).
            assert expected == 1.0 and got[c] < 1.0
            continue
        assert got[c] == pytest.approx(expected, abs=1e-6), c


def test_optimal_threshold_and_best_fbeta_are_the_ops_choice_as_named_entries(rng):
    data = batches(rng)
    names = ["liver", "kidney", "tumour"]
    best = metrics.OptimalThreshold("youden", num_bins=B, class_names=names)
    f2 = metrics.BestFBeta(beta=2.0, num_bins=B, class_names=names, name="best_f2")
    for truth, scores in data:
        best.update_state(truth, scores)
        f2.update_state(truth, scores)
    hist = total_histogram(data)
    thresholds, values = (to_numpy(x) for x in optimal_threshold(hist, "youden"))
    result = best.result()
    for i, name in enumerate(names):
        assert_close(to_numpy(result[f"optimal_threshold/{name}"]), thresholds[i])
        assert_close(to_numpy(result[f"optimal_threshold_youden/{name}"]), values[i])
    thresholds, values = (to_numpy(x) for x in optimal_threshold(hist, "fbeta", beta=2.0))
    result = f2.result()
    assert sorted(result) == sorted(
        [f"best_f2/{n}" for n in names] + [f"best_f2_threshold/{n}" for n in names]
    )
    assert_close([to_numpy(result[f"best_f2/{n}"]) for n in names], values)
    assert_close([to_numpy(result[f"best_f2_threshold/{n}"]) for n in names], thresholds)
    assert np.isnan(to_numpy(result["best_f2/tumour"]))  # no positives: no threshold


def test_exclusive_modes_use_softmax_one_vs_rest(rng):
    logits = rng.normal(size=(2, 4, 5, C)).astype(np.float32)
    ids = rng.integers(0, C, (2, 4, 5))
    ids[0, 0] = 255
    sparse = metrics.AveragePrecision(
        num_bins=B, mode="sparse", from_logits=True, ignore_index=255, average=None
    )
    sparse.update_state(ids, logits)
    dense = metrics.AveragePrecision(num_bins=B, mode="multiclass", from_logits=True, average=None)
    keep = ids != 255
    dense.update_state(one_hot(ids, C), logits, mask=keep)
    probs = np.asarray(keras.ops.convert_to_numpy(keras.ops.softmax(logits)))
    labels, _ = labels_of(ids, C, "sparse", 255)
    hist = reference_histogram(labels, probs, B, keep)
    expected = to_numpy(vm.average_precision(hist))
    assert_close(to_numpy(sparse.result()), expected, rtol=1e-5)
    assert_close(to_numpy(dense.result()), expected, rtol=1e-5)
    assert_close(softmax(logits).sum(-1), 1.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: metrics.AveragePrecision(num_bins=0), "num_bins"),
        (lambda: metrics.ROCAUC(num_bins=2.5), "num_bins"),
        (lambda: metrics.PRAUC(average="mean"), "average"),
        (lambda: metrics.RecallAtPrecision(1.2), "min_precision"),
        (lambda: metrics.PrecisionAtRecall(-0.1), "min_recall"),
        (lambda: metrics.SensitivityAtSpecificity(1.5), "specificity must be"),
        (lambda: metrics.SpecificityAtSensitivity("0.9"), "sensitivity must be"),
        (lambda: metrics.OptimalThreshold("max_recall"), "criterion"),
        (lambda: metrics.OptimalThreshold("f1", min_precision=0.9), "min_precision"),
        (lambda: metrics.BestFBeta(beta=-1.0), "beta"),
    ],
)
def test_bad_configuration_fails_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()
