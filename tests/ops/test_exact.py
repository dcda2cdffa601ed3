"""Exact (sort-based) mode against scikit-learn on raw scores, ties and weights included."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

import voxelmetrics as vm
from tests.conftest import compiled, to_numpy


def tied_scores(rng, shape):
    """Labels and scores rounded to 0.05, so that most scores are tied with others."""
    truth = rng.random(shape) < 0.35
    scores = np.round(np.clip(0.25 * truth + 0.75 * rng.random(shape), 0, 1) * 20) / 20
    return truth, scores.astype(np.float32)


def sklearn_ap(truth, scores, weight=None):
    return np.array(
        [
            average_precision_score(truth[:, c], scores[:, c], sample_weight=weight)
            for c in range(truth.shape[1])
        ]
    )


def test_exact_average_precision_equals_sklearn_with_ties(rng):
    truth, scores = tied_scores(rng, (200, 3))
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, scores)), sklearn_ap(truth, scores), atol=1e-6
    )


def test_exact_average_precision_with_sample_weight(rng):
    truth, scores = tied_scores(rng, (150, 2))
    weight = rng.uniform(0.1, 2.0, 150).astype(np.float32)
    # Weighted counts are float32 cumulative sums: their rounding (order differs by
    # backend) allows a few 1e-6 of drift where integer counts are exact.
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, scores, sample_weight=weight)),
        sklearn_ap(truth, scores, weight),
        atol=1e-5,
    )


def test_exact_average_precision_channels_first_with_mask(rng):
    truth, scores = tied_scores(rng, (2, 3, 40))
    mask = rng.random((2, 40)) < 0.7
    result = vm.exact_average_precision(truth, scores, axis=1, mask=mask)
    kept_truth, kept_scores = np.moveaxis(truth, 1, -1)[mask], np.moveaxis(scores, 1, -1)[mask]
    np.testing.assert_allclose(to_numpy(result), sklearn_ap(kept_truth, kept_scores), atol=1e-6)


def test_exact_average_precision_averages(rng):
    truth, scores = tied_scores(rng, (120, 3))
    truth[:, 2] = False
    values = sklearn_ap(truth[:, :2], scores[:, :2])
    per_class = to_numpy(vm.exact_average_precision(truth, scores))
    assert np.isnan(per_class[2])
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, scores, average="macro")),
        values.mean(),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, scores, average="weighted")),
        np.average(values, weights=truth[:, :2].sum(0)),
        atol=1e-6,
    )


def test_exact_micro_average_precision_equals_sklearn(rng):
    truth, scores = tied_scores(rng, (120, 3))
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, scores, average="micro")),
        average_precision_score(truth, scores, average="micro"),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="class_weights"):
        vm.exact_average_precision(truth, scores, average="micro", class_weights=[1, 1, 1])


def test_exact_micro_average_precision_channels_first_weighted_and_masked(rng):
    truth, scores = tied_scores(rng, (2, 3, 40))
    mask = rng.random((2, 40)) < 0.7
    weight = rng.uniform(0.1, 2.0, (2, 40)).astype(np.float32)
    result = vm.exact_average_precision(
        truth, scores, axis=1, mask=mask, sample_weight=weight, average="micro"
    )
    kept_truth, kept_scores = np.moveaxis(truth, 1, -1)[mask], np.moveaxis(scores, 1, -1)[mask]
    repeated = np.repeat(weight[mask], 3)
    expected = average_precision_score(
        kept_truth.ravel(), kept_scores.ravel(), sample_weight=repeated
    )
    np.testing.assert_allclose(to_numpy(result), expected, atol=1e-5)


def test_exact_micro_average_precision_of_sparse_labels_is_one_hot(rng):
    ids = rng.integers(0, 4, 90)
    scores = rng.dirichlet(np.ones(4), 90).astype(np.float32)
    one_hot = np.eye(4, dtype=bool)[ids]
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(ids, scores, average="micro")),
        average_precision_score(one_hot, scores, average="micro"),
        atol=1e-6,
    )


def test_exact_curve_distinct_points_equal_sklearn(rng):
    truth, scores = tied_scores(rng, (90, 2))
    precision, recall, thresholds = (
        to_numpy(x) for x in vm.exact_precision_recall_curve(truth, scores)
    )
    assert precision.shape == recall.shape == thresholds.shape == (2, 90)
    for c in range(2):
        distinct, first = np.unique(thresholds[c], return_index=True)
        expected_p, expected_r, expected_t = precision_recall_curve(truth[:, c], scores[:, c])
        # sklearn appends the point (precision 1, recall 0) above every score.
        np.testing.assert_array_equal(distinct, expected_t)
        np.testing.assert_allclose(precision[c, first], expected_p[:-1], atol=1e-6)
        np.testing.assert_allclose(recall[c, first], expected_r[:-1], atol=1e-6)


def test_exact_mode_from_logits_equals_sklearn_on_probabilities(rng):
    truth = rng.random((80, 2)) < 0.4
    logits = rng.normal(0, 2, (80, 2)).astype(np.float32)
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(
        to_numpy(vm.exact_average_precision(truth, logits, from_logits=True)),
        sklearn_ap(truth, probabilities),
        atol=1e-6,
    )


def test_compiled_exact_average_precision_equals_eager(rng):
    truth, scores = tied_scores(rng, (60, 2))
    traced = compiled(vm.exact_average_precision)(truth, scores)
    np.testing.assert_allclose(to_numpy(traced), sklearn_ap(truth, scores), atol=1e-6)


def test_curve_and_average_precision_from_one_sort_equal_the_separate_calls(rng):
    truth, scores = tied_scores(rng, (120, 3))
    truth[:, 2] = False  # a class without positives: AP is NaN (zero_division)
    p, r, t, ap = (
        to_numpy(x)
        for x in vm.exact_precision_recall_curve(truth, scores, with_average_precision=True)
    )
    alone = [to_numpy(x) for x in vm.exact_precision_recall_curve(truth, scores)]
    for got, expected in zip((p, r, t), alone, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(ap[:2], sklearn_ap(truth[:, :2], scores[:, :2]), atol=1e-6)
    assert np.isnan(ap[2])


def test_adversarial_scores_sort_exactly(rng):
    """0.0, -0.0, 1.0, the smallest normal and neighbours of 0.5: ordered as numbers."""
    pool = np.float32([0.0, -0.0, 1.0, 0.5, np.finfo(np.float32).tiny, 1e-30])
    pool = np.concatenate([pool, np.nextafter(np.float32([0.5, 1.0]), np.float32(0))])
    truth = rng.random((300, 2)) < 0.5
    scores = rng.choice(pool, size=(300, 2)).astype(np.float32)
    for fn in (vm.exact_average_precision, compiled(vm.exact_average_precision)):
        np.testing.assert_allclose(
            to_numpy(fn(truth, scores)), sklearn_ap(truth, scores), atol=1e-6
        )
    _, _, thresholds = vm.exact_precision_recall_curve(truth, scores)
    assert (np.diff(to_numpy(thresholds), axis=1) >= 0).all()


def test_masked_voxels_leave_every_curve_point(rng):
    truth, scores = tied_scores(rng, (100, 2))
    mask = rng.random(100) < 0.6
    precision, recall, thresholds = (
        to_numpy(x) for x in vm.exact_precision_recall_curve(truth, scores, mask=mask)
    )
    for c in range(2):
        distinct, first = np.unique(thresholds[c], return_index=True)
        expected_p, expected_r, expected_t = precision_recall_curve(truth[mask, c], scores[mask, c])
        # Masked voxels sit at threshold 0 with no weight; only 0 may be extra.
        keep = np.isin(distinct, expected_t)
        np.testing.assert_array_equal(distinct[keep], expected_t)
        np.testing.assert_allclose(precision[c, first[keep]], expected_p[:-1], atol=1e-6)
        np.testing.assert_allclose(recall[c, first[keep]], expected_r[:-1], atol=1e-6)
