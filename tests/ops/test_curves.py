"""Binned curves and AUCs against scikit-learn on quantised scores and against Keras' AUC."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import average_precision_score, roc_auc_score

import voxelmetrics as vm
from tests.conftest import compiled, to_numpy, unit_floats

NUM_BINS = 20


def float32_edges(num_bins: int) -> np.ndarray:
    return np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)


def quantise(scores, num_bins: int):
    """q(s): each score replaced by its bin's lower edge t_k (largest t_k <= s)."""
    edges = float32_edges(num_bins)
    return edges[(scores[..., None] >= edges).sum(-1) - 1]


def labelled_scores(rng, shape=(300, 3), positive_rate=(0.1, 0.3, 0.6)):
    truth = rng.random(shape) < np.asarray(positive_rate)
    # Positives score higher on average, with many voxels sharing a bin.
    scores = np.clip(0.3 * truth + 0.7 * rng.random(shape), 0, 1).astype(np.float32)
    return truth, scores


def per_class(metric, truth, scores):
    return np.array([metric(truth[:, c], scores[:, c]) for c in range(truth.shape[1])])


@pytest.fixture
def binned(rng):
    truth, scores = labelled_scores(rng)
    return truth, scores, vm.score_histogram(truth, scores, NUM_BINS)


@pytest.mark.parametrize(
    ("binned_fn", "sklearn_fn"),
    [(vm.average_precision, average_precision_score), (vm.roc_auc, roc_auc_score)],
)
def test_binned_scores_equal_sklearn_on_quantised_scores(binned, binned_fn, sklearn_fn):
    truth, scores, histogram = binned
    q = quantise(scores, NUM_BINS)
    np.testing.assert_allclose(
        to_numpy(binned_fn(histogram)), per_class(sklearn_fn, truth, q), atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(binned_fn(histogram, average="micro")),
        sklearn_fn(truth.ravel(), q.ravel()),
        atol=1e-6,
    )


@pytest.mark.parametrize("binned_fn", [vm.average_precision, vm.roc_auc, vm.pr_auc])
def test_macro_and_weighted_averages_of_curve_scores(binned, binned_fn):
    truth, _, histogram = binned
    values = to_numpy(binned_fn(histogram)).astype(np.float64)
    support = truth.sum(0)
    weights = np.float32([0.2, 0.0, 3.0])
    expected = {
        "macro": (values.mean(), {}),
        "weighted": (np.average(values, weights=support), {}),
        "inverse": (
            np.average(values, weights=1 / support),
            {"class_weights": "inverse_frequency"},
        ),
        "array": (np.average(values, weights=weights), {"class_weights": weights}),
    }
    for name, (value, kwargs) in expected.items():
        average = "macro" if name == "macro" else "weighted"
        result = to_numpy(binned_fn(histogram, average=average, **kwargs))
        np.testing.assert_allclose(result, value, rtol=1e-5, err_msg=name)


def test_classes_without_positives_follow_zero_division_and_macro_skips_them(rng):
    truth, scores = labelled_scores(rng)
    truth[:, 1] = False
    histogram = vm.score_histogram(truth, scores, NUM_BINS)
    q = quantise(scores, NUM_BINS)
    for binned_fn in (vm.average_precision, vm.roc_auc, vm.pr_auc):
        values = to_numpy(binned_fn(histogram))
        assert np.isnan(values[1])
        assert to_numpy(binned_fn(histogram, zero_division=0))[1] == 0
        assert to_numpy(binned_fn(histogram, zero_division=1))[1] == 1
        np.testing.assert_allclose(
            to_numpy(binned_fn(histogram, average="macro")), np.mean(values[[0, 2]]), rtol=1e-6
        )
    expected_ap = [average_precision_score(truth[:, c], q[:, c]) for c in (0, 2)]
    np.testing.assert_allclose(to_numpy(vm.average_precision(histogram))[[0, 2]], expected_ap)


def keras_pr_auc(truth, scores, num_bins: int) -> float:
    metric = keras.metrics.AUC(curve="PR", thresholds=[k / num_bins for k in range(1, num_bins)])
    metric.update_state(truth.astype(np.float32), scores)
    return float(to_numpy(metric.result()))


def test_pr_auc_equals_keras_auc_pr(rng):
    truth = rng.random((400, 2)) < [0.2, 0.5]
    # Keras predicts positive on `score > t`, this library on `score >= t`: identical when
    # no score sits on an edge, so keep every score inside its bin.
    inside = rng.integers(0, NUM_BINS, truth.shape) + rng.uniform(0.05, 0.95, truth.shape)
    scores = np.clip(inside / NUM_BINS + 0.15 * truth, 0, 0.999).astype(np.float32)
    histogram = vm.score_histogram(truth, scores, NUM_BINS)
    expected = [keras_pr_auc(truth[:, c], scores[:, c], NUM_BINS) for c in range(2)]
    np.testing.assert_allclose(to_numpy(vm.pr_auc(histogram)), expected, atol=1e-5)


def direct_curve_counts(truth, scores, thresholds):
    """numpy `[B, 4]` tp, fp, fn, tn of `score >= t_k` for one class."""
    predicted = scores[None, :] >= thresholds[:, None]
    tp, fp = (predicted & truth).sum(1), (predicted & ~truth).sum(1)
    return np.stack([tp, fp, truth.sum() - tp, (~truth).sum() - fp], axis=-1)


def test_curves_are_aligned_and_match_direct_counts(binned):
    truth, scores, histogram = binned
    t = float32_edges(NUM_BINS)
    precision, recall, thresholds = (to_numpy(x) for x in vm.precision_recall_curve(histogram))
    fpr, tpr, roc_thresholds = (to_numpy(x) for x in vm.roc_curve(histogram))
    assert precision.shape == recall.shape == fpr.shape == tpr.shape == (3, NUM_BINS)
    np.testing.assert_array_equal(thresholds, t)
    np.testing.assert_array_equal(roc_thresholds, t)
    curves = to_numpy(vm.curve_counts(histogram))
    for c in range(3):
        tp, fp, fn, tn = direct_curve_counts(truth[:, c], scores[:, c], t).T
        np.testing.assert_array_equal(curves[c], np.stack([tp, fp, fn, tn], axis=-1))
        np.testing.assert_allclose(precision[c], tp / (tp + fp), rtol=1e-6)
        np.testing.assert_allclose(recall[c], tp / (tp + fn), rtol=1e-6)
        np.testing.assert_allclose(fpr[c], fp / (fp + tn), rtol=1e-6)
        np.testing.assert_allclose(tpr[c], tp / (tp + fn), rtol=1e-6)


def test_precision_is_one_where_nothing_is_predicted_positive():
    histogram = np.array([[[2, 1], [0, 0]]])  # nothing scores in the top bin
    precision, recall, _ = vm.precision_recall_curve(histogram)
    np.testing.assert_allclose(to_numpy(precision), [[1 / 3, 1.0]])
    np.testing.assert_allclose(to_numpy(recall), [[1.0, 0.0]])


def test_curves_with_custom_edges_return_those_edges(rng):
    edges = np.float32([-np.inf, -1.0, 0.0, 2.0])
    logits = rng.normal(0, 2, (50, 1)).astype(np.float32)
    truth = rng.random((50, 1)) < 0.5
    histogram = vm.score_histogram(truth, logits, edges=edges, from_logits=True)
    _, _, thresholds = vm.precision_recall_curve(histogram, edges=edges)
    np.testing.assert_array_equal(to_numpy(thresholds), edges)
    _, tpr, _ = vm.roc_curve(histogram, edges=edges)
    for k, edge in enumerate(edges):
        expected = (truth[:, 0] & (logits[:, 0] >= edge)).sum() / truth.sum()
        np.testing.assert_allclose(to_numpy(tpr)[0, k], expected, rtol=1e-6)


def test_compiled_curves_equal_eager(binned):
    truth, scores, _ = binned

    def report(y_true, y_pred):
        histogram = vm.score_histogram(y_true, y_pred, NUM_BINS)
        return (
            vm.average_precision(histogram),
            vm.roc_auc(histogram, average="macro"),
            vm.pr_auc(histogram),
            vm.precision_recall_curve(histogram)[0],
        )

    for traced, eager in zip(compiled(report)(truth, scores), report(truth, scores), strict=True):
        np.testing.assert_allclose(to_numpy(traced), to_numpy(eager), rtol=1e-6)


@st.composite
def counting_cases(draw):
    num_bins = draw(st.sampled_from([1, 4, 10]))
    k = draw(st.integers(0, num_bins - 1))
    t = float32_edges(num_bins)
    score = st.one_of(st.sampled_from([*t.tolist(), 1.0]), unit_floats())
    scores = draw(hnp.arrays(np.float32, (30, 2), elements=score))
    truth = draw(hnp.arrays(np.bool_, (30, 2)))
    return num_bins, k, truth, scores


@settings(max_examples=25, deadline=None)
@given(counting_cases())
def test_property_confusion_counts_at_t_k_are_curve_counts_row_k(case):
    num_bins, k, truth, scores = case
    threshold = float32_edges(num_bins)[k]
    counts = to_numpy(vm.confusion_counts(truth, scores, threshold))
    curves = to_numpy(vm.curve_counts(vm.score_histogram(truth, scores, num_bins)))
    np.testing.assert_array_equal(counts, curves[:, k])
    np.testing.assert_array_equal(counts.sum(-1), [30, 30])


@pytest.mark.parametrize("max_fpr", [0.05, 0.3, 0.77, 1.0])
def test_partial_roc_auc_equals_sklearn_mcclish(binned, max_fpr):
    truth, scores, histogram = binned
    q = quantise(scores, NUM_BINS)

    def expected(y, s):
        return roc_auc_score(y, s, max_fpr=max_fpr)

    np.testing.assert_allclose(
        to_numpy(vm.roc_auc(histogram, max_fpr=max_fpr)), per_class(expected, truth, q), atol=2e-5
    )
    np.testing.assert_allclose(
        to_numpy(vm.roc_auc(histogram, max_fpr=max_fpr, average="micro")),
        expected(truth.ravel(), q.ravel()),
        atol=2e-5,
    )


@pytest.mark.parametrize("max_fpr", [0.0, 1.5, True, "0.1"])
def test_partial_roc_auc_refuses_bad_max_fpr(binned, max_fpr):
    with pytest.raises(ValueError, match="max_fpr"):
        vm.roc_auc(binned[2], max_fpr=max_fpr)


@pytest.mark.parametrize("binned_fn", [vm.average_precision, vm.roc_auc, vm.pr_auc])
@pytest.mark.parametrize("class_weights", [None, "inverse_frequency"])
def test_weighted_average_without_positives_follows_zero_division(rng, binned_fn, class_weights):
    """No class has positives: the weighted average is zero_division (it was NaN)."""
    _, scores = labelled_scores(rng)
    histogram = vm.score_histogram(np.zeros(scores.shape, bool), scores, NUM_BINS)
    for zero_division in (0, 1):
        result = binned_fn(
            histogram, average="weighted", class_weights=class_weights, zero_division=zero_division
        )
        assert to_numpy(result) == zero_division
    assert np.isnan(to_numpy(binned_fn(histogram, average="weighted")))
