"""Scores from counts against scikit-learn: averages, class weights and the empty-class policy."""

import numpy as np
import pytest
from sklearn import metrics

import voxelmetrics as vm
from tests.conftest import to_numpy

AVERAGES = [None, "micro", "macro", "weighted"]
POLICIES = {"nan": np.nan, 0: 0, 1: 1}


@pytest.fixture
def labels(rng):
    """Multi-label truth and predictions `[300, 5]` with every kind of degenerate class.

    Class 2 is never predicted, class 3 is never true but predicted (false positives only),
    class 4 is neither true nor predicted.
    """
    truth = rng.random((300, 5)) < [0.3, 0.1, 0.2, 0.0, 0.0]
    predicted = (rng.random((300, 5)) < 0.3) ^ (truth & (rng.random((300, 5)) < 0.7))
    predicted[:, 2] = False
    predicted[:, 4] = False
    return truth, predicted


def counts_of(truth, predicted):
    """`[C, 4]` tp, fp, fn, tn from scikit-learn's per-class `[[tn, fp], [fn, tp]]`."""
    (tn, fp), (fn, tp) = np.moveaxis(metrics.multilabel_confusion_matrix(truth, predicted), 0, -1)
    return np.stack([tp, fp, fn, tn], axis=-1)


SKLEARN_EQUIVALENTS = [
    (vm.recall, metrics.recall_score, {}),
    (vm.precision, metrics.precision_score, {}),
    (vm.dice, metrics.f1_score, {}),
    (vm.iou, metrics.jaccard_score, {}),
    (vm.fbeta_score, metrics.fbeta_score, {"beta": 2.0}),
    (vm.fbeta_score, metrics.fbeta_score, {"beta": 0.5}),
]


# sklearn's jaccard_score has no NaN policy: test_iou_nan_policy checks that one.
SKLEARN_CASES = [
    (*equivalent, average, zero_division)
    for equivalent in SKLEARN_EQUIVALENTS
    for average in AVERAGES
    for zero_division in POLICIES
    if not (equivalent[1] is metrics.jaccard_score and zero_division == "nan")
]


@pytest.mark.parametrize(
    ("score_fn", "sklearn_fn", "kwargs", "average", "zero_division"), SKLEARN_CASES
)
def test_scores_equal_sklearn(labels, score_fn, sklearn_fn, kwargs, average, zero_division):
    truth, predicted = labels
    result = score_fn(
        counts_of(truth, predicted), average=average, zero_division=zero_division, **kwargs
    )
    expected = sklearn_fn(
        truth,
        predicted,
        average=average,
        zero_division=POLICIES[zero_division],
        **kwargs,
    )
    np.testing.assert_allclose(to_numpy(result), expected, rtol=1e-6)


def test_iou_nan_policy(labels):
    truth, predicted = labels
    counts = counts_of(truth, predicted)
    tp, fp, fn, _ = counts.T.astype(np.float64)
    with np.errstate(invalid="ignore"):
        expected = tp / (tp + fp + fn)
    per_class = to_numpy(vm.iou(counts))
    np.testing.assert_allclose(per_class, expected, rtol=1e-6)
    assert np.isnan(per_class[4])
    np.testing.assert_allclose(
        to_numpy(vm.iou(counts, average="macro")), np.nanmean(expected), rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(vm.iou(counts, average="micro")), tp.sum() / (tp + fp + fn).sum(), rtol=1e-6
    )


def test_specificity_equals_numpy(labels):
    truth, predicted = labels
    expected = (~truth & ~predicted).sum(0) / (~truth).sum(0)
    np.testing.assert_allclose(to_numpy(vm.specificity(counts_of(truth, predicted))), expected)


def test_balanced_accuracy_equals_sklearn_per_class(labels):
    truth, predicted = labels
    result = to_numpy(vm.balanced_accuracy(counts_of(truth, predicted)))
    expected = [metrics.balanced_accuracy_score(truth[:, c], predicted[:, c]) for c in range(3)]
    np.testing.assert_allclose(result[:3], expected, rtol=1e-6)
    # Classes 3 and 4 have no positives: recall, and so balanced accuracy, is undefined.
    assert np.isnan(result[3:]).all()


def test_matthews_corrcoef_equals_sklearn_per_class(labels):
    truth, predicted = labels
    result = to_numpy(vm.matthews_corrcoef(counts_of(truth, predicted)))
    expected = [metrics.matthews_corrcoef(truth[:, c], predicted[:, c]) for c in range(2)]
    np.testing.assert_allclose(result[:2], expected, rtol=1e-5)
    # sklearn returns 0 for a zero denominator; here that is the zero_division policy.
    assert np.isnan(result[2:]).all()
    zeros = to_numpy(vm.matthews_corrcoef(counts_of(truth, predicted), zero_division=0))
    np.testing.assert_array_equal(zeros[2:], 0.0)


def test_matthews_corrcoef_does_not_overflow_on_large_counts():
    counts = np.array([[2**30, 2**29, 2**28, 2**30 + 12345]], np.int32)
    tp, fp, fn, tn = counts[0].astype(np.float64)
    expected = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    np.testing.assert_allclose(to_numpy(vm.matthews_corrcoef(counts)), [expected], rtol=1e-5)


@pytest.mark.parametrize(
    "score_fn",
    [
        vm.recall,
        vm.precision,
        vm.specificity,
        vm.dice,
        vm.iou,
        vm.fbeta_score,
        vm.balanced_accuracy,
        vm.matthews_corrcoef,
    ],
)
def test_class_weights_array_and_inverse_frequency(labels, score_fn):
    truth, predicted = labels
    counts = counts_of(truth, predicted)
    values = to_numpy(score_fn(counts)).astype(np.float64)
    valid = ~np.isnan(values)
    support = truth.sum(0).astype(np.float64)
    weights = np.float32([0.5, 2.0, 1.0, 4.0, 3.0])
    inverse = np.divide(1.0, support, out=np.zeros(5), where=support > 0)
    for class_weights, w in ((weights, weights), ("inverse_frequency", inverse)):
        result = score_fn(counts, average="weighted", class_weights=class_weights)
        expected = np.average(values[valid], weights=w[valid])
        np.testing.assert_allclose(to_numpy(result), expected, rtol=1e-5)


def test_macro_skips_nan_classes_and_counts_the_valid_ones(labels):
    truth, predicted = labels
    counts = counts_of(truth, predicted)
    per_class = to_numpy(vm.recall(counts))
    assert int(to_numpy(vm.num_valid_classes(per_class))) == 3
    np.testing.assert_allclose(
        to_numpy(vm.recall(counts, average="macro")), np.mean(per_class[:3]), rtol=1e-6
    )
    # With zero_division=0 the empty classes become defined zeros and count in the mean.
    np.testing.assert_allclose(
        to_numpy(vm.recall(counts, average="macro", zero_division=0)),
        np.sum(per_class[:3]) / 5,
        rtol=1e-6,
    )


@pytest.mark.parametrize("zero_division", list(POLICIES))
def test_false_positives_on_empty_truth_differ_from_both_empty(labels, zero_division):
    truth, predicted = labels
    counts = counts_of(truth, predicted)
    for score_fn in (vm.dice, vm.iou, vm.fbeta_score):
        result = to_numpy(score_fn(counts, zero_division=zero_division))
        assert result[3] == 0.0  # nothing true, something predicted: a real miss
        np.testing.assert_equal(result[4], POLICIES[zero_division])  # nothing at all


def test_per_sample_counts_give_per_sample_scores(rng):
    truth = rng.random((3, 40, 2)) < 0.4
    predicted = rng.random((3, 40, 2)) < 0.5
    counts = np.stack([counts_of(t, p) for t, p in zip(truth, predicted, strict=True)])
    per_volume = to_numpy(vm.dice(counts))
    assert per_volume.shape == (3, 2)
    for n in range(3):
        np.testing.assert_allclose(
            per_volume[n], metrics.f1_score(truth[n], predicted[n], average=None), rtol=1e-6
        )
    np.testing.assert_allclose(
        to_numpy(vm.dice(counts, average="macro")), per_volume.mean(-1), rtol=1e-6
    )


def test_safe_ratio_and_average_scores_directly():
    ratio = to_numpy(vm.safe_ratio(np.float32([1, 0, 3]), np.float32([2, 0, 0]), 1))
    np.testing.assert_array_equal(ratio, [0.5, 1.0, 1.0])
    values, support = np.float32([0.5, np.nan, 1.0]), np.float32([1, 0, 3])
    np.testing.assert_allclose(
        to_numpy(vm.average_scores(values, support, average="weighted")), 0.875
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"average": "mean"}, ["average must be one of", "'mean'"]),
        ({"zero_division": 2}, ["zero_division must be", "received 2"]),
        ({"zero_division": True}, ["zero_division must be", "received True"]),
        ({"class_weights": [1.0, 2.0]}, ["class_weights applies to average='weighted'"]),
        (
            {"average": "weighted", "class_weights": "balanced"},
            ["'inverse_frequency'", "'balanced'"],
        ),
        (
            {"average": "weighted", "class_weights": np.ones(3)},
            ["class_weights has shape (3,)", "expected one weight per class, (2,)"],
        ),
    ],
)
def test_bad_options_raise_saying_what_was_expected(kwargs, words):
    counts = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    with pytest.raises(ValueError) as error:
        vm.recall(counts, **kwargs)
    for word in words:
        assert word in str(error.value)


def test_fbeta_refuses_non_positive_beta():
    with pytest.raises(ValueError, match="beta must be > 0; received 0"):
        vm.fbeta_score(np.array([[1, 2, 3, 4]]), beta=0)


@pytest.mark.parametrize(("score_fn", "sklearn_fn", "kwargs"), SKLEARN_EQUIVALENTS)
@pytest.mark.parametrize("zero_division", [0, 1])
def test_weighted_average_of_classes_without_support_follows_zero_division(
    score_fn, sklearn_fn, kwargs, zero_division
):
    """No class has support: the weights sum to 0 and weighted falls back to the mean of the
    per-class values, as scikit-learn, so zero_division decides (it gave NaN)."""
    truth = np.zeros((20, 3), bool)
    counts = counts_of(truth, truth)
    expected = sklearn_fn(truth, truth, average="weighted", zero_division=zero_division, **kwargs)
    for class_weights in (None, "inverse_frequency"):
        result = score_fn(
            counts,
            average="weighted",
            class_weights=class_weights,
            zero_division=zero_division,
            **kwargs,
        )
        assert to_numpy(result) == expected == zero_division
    assert np.isnan(to_numpy(score_fn(counts, average="weighted", **kwargs)))
