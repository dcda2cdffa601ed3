"""The formulas on the host (`_host.on_host`: numpy float64 / int64) against the same
formulas through `keras.ops`, on random and adversarial counts and histograms.

Differences allowed: a few float32 ulps in floats (the in-graph side rounds to float32),
and a different optimal threshold only where the in-graph criterion values of both
choices tie within that rounding.
"""

import numpy as np
import pytest

import voxelmetrics  # noqa: F401  (sets the default backend before keras is used)
from tests.conftest import to_numpy
from tests.reference import reference_counts_at_bins
from voxelmetrics.ops._host import is_on_host, on_host
from voxelmetrics.ops.criterion import CRITERIA, OPTIONS, Criterion
from voxelmetrics.ops.curves import average_precision, curve_counts, pr_auc, roc_auc
from voxelmetrics.ops.fused import counts_at_bins
from voxelmetrics.ops.histogram import bin_index, bin_thresholds
from voxelmetrics.ops.scores import (
    average_scores,
    balanced_accuracy,
    dice,
    fbeta_score,
    iou,
    matthews_corrcoef,
    num_valid_classes,
    precision,
    recall,
    specificity,
)
from voxelmetrics.ops.thresholds import criterion_value, optimal_threshold

RTOL, ATOL = 2e-6, 1e-7  # a few float32 ulps
B = 16
COUNT_SCORES = [recall, precision, specificity, dice, iou, fbeta_score]
COUNT_SCORES += [balanced_accuracy, matthews_corrcoef]
CURVE_SCORES = [average_precision, roc_auc, pr_auc]


def averages(num_classes: int) -> list[dict]:
    """Every average, weighted by support, inverse frequency and given weights (some 0)."""
    weights = np.resize(np.float32([0.0, 1.0, 2.0, 0.5, 3.0]), num_classes)
    out = [{"average": a} for a in (None, "micro", "macro", "weighted")]
    return out + [
        {"average": "weighted", "class_weights": w} for w in ("inverse_frequency", weights)
    ]


ZERO_DIVISION = ["nan", 0, 1]
# Option values for every criterion of `criterion.py` (a floor not listed gets 0.5).
SAMPLE_OPTIONS = {"beta": 2.0, "min_precision": 0.8, "min_recall": 0.6, "cost_fp": 1.0}
SAMPLE_OPTIONS |= {"cost_fn": 5.0}


def adversarial_histogram() -> np.ndarray:
    """`[7, B, 2]`: a mixed class, an empty one, all negatives, a single positive voxel,
    all positives, a single negative voxel, and one whose precision is 0.2 at every
    threshold (no precision floor above it is reachable)."""
    h = np.zeros((7, B, 2), np.int64)
    h[0] = [[9 - k // 2, k // 3] for k in range(B)]
    h[2, :, 0] = np.arange(B) % 3
    h[3, 5, 1] = 1
    h[4, :, 1] = np.arange(B) % 4
    h[5, 11, 0] = 1
    h[6] = [4, 1]
    return h


def random_histogram(rng) -> np.ndarray:
    """`[7, B, 2]` counts, sparse (many empty bins: exact ties) and dense."""
    sparse = rng.integers(0, 3, (4, B, 2)) * (rng.random((4, B, 2)) < 0.4)
    dense = rng.integers(0, 1000, (3, B, 2))
    return np.concatenate([sparse, dense]).astype(np.int64)


@pytest.fixture(params=["adversarial", "random"])
def histogram(request, rng) -> np.ndarray:
    return adversarial_histogram() if request.param == "adversarial" else random_histogram(rng)


def counts_of(histogram) -> np.ndarray:
    """`[7, 4]` counts at one bin per class, plus a row of each degenerate kind."""
    k = np.arange(len(histogram)) * 5 % B
    rows = curve_counts(histogram)
    counts = np.asarray(to_numpy(rows))[np.arange(len(histogram)), k]
    degenerate = np.array([[0, 0, 0, 0], [0, 0, 0, 9], [1, 0, 0, 0], [0, 3, 0, 0], [0, 0, 2, 0]])
    return np.concatenate([counts, degenerate]).astype(np.int64)


def on_the_host(fn, *args, **kwargs):
    """`fn` inside `on_host()`; its results must be numpy, floats float64."""
    with on_host():
        out = fn(*args, **kwargs)
    for x in out if isinstance(out, tuple) else (out,):
        assert isinstance(x, np.ndarray | np.generic), type(x)
        assert x.dtype.kind != "f" or x.dtype == np.float64
    return out


def in_graph(fn, *args, **kwargs):
    assert not is_on_host()
    out = fn(*args, **kwargs)
    return tuple(map(to_numpy, out)) if isinstance(out, tuple) else to_numpy(out)


def assert_close(host, graph):
    np.testing.assert_allclose(host, graph, rtol=RTOL, atol=ATOL, equal_nan=True)


def criteria() -> list[Criterion]:
    """Every criterion kind, each with sample options, plus unreachable floors."""
    out = [
        Criterion(name, **{k: SAMPLE_OPTIONS.get(k, 0.5) for k in OPTIONS.get(name, ())})
        for name in CRITERIA
    ]
    floors = [Criterion.parse(t) for t in ("recall_at_precision:0.99", "precision_at_recall:1")]
    return out + floors + [Criterion.parse("fbeta:0.5"), Criterion.parse("cost:3:1")]


@pytest.mark.parametrize("score", COUNT_SCORES, ids=lambda f: f.__name__)
def test_count_scores_on_the_host_equal_keras_ops(score, histogram):
    counts = counts_of(histogram)
    for options in averages(len(counts)):
        for z in ZERO_DIVISION:
            host = on_the_host(score, counts, zero_division=z, **options)
            assert_close(host, in_graph(score, counts.astype(np.int32), zero_division=z, **options))


@pytest.mark.parametrize("score", CURVE_SCORES, ids=lambda f: f.__name__)
def test_curve_scores_on_the_host_equal_keras_ops(score, histogram):
    extra = [{}, {"max_fpr": 0.3}] if score is roc_auc else [{}]
    for options in averages(len(histogram)):
        for more in extra:
            for z in ZERO_DIVISION:
                kw = {**options, **more, "zero_division": z}
                host = on_the_host(score, histogram, **kw)
                assert_close(host, in_graph(score, histogram.astype(np.int32), **kw))


def test_average_scores_and_valid_classes_on_the_host(rng):
    values = rng.random((3, 5)).astype(np.float32)
    values[0, [1, 3]] = np.nan
    values[2] = np.nan  # no valid class: every average NaN
    support = np.float32([[3, 0, 2, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    for average in ("macro", "weighted"):
        host = on_the_host(average_scores, values, support, average=average)
        assert np.isnan(host[2]) and not np.isnan(host[:2]).any()
        assert_close(host, in_graph(average_scores, values, support, average=average))
    host = on_the_host(num_valid_classes, values)
    assert host.tolist() == [3, 5, 0]
    np.testing.assert_array_equal(host, in_graph(num_valid_classes, values))


def test_curve_counts_and_counts_at_bins_on_the_host_are_exact_int64(histogram, rng):
    k = rng.integers(0, B, len(histogram))
    big = histogram * 2**31 + 1  # beyond int32 and float32: the int64 sums stay exact
    host = on_the_host(counts_at_bins, big, k)
    assert host.dtype == np.int64
    np.testing.assert_array_equal(host, reference_counts_at_bins(big, k))
    graph = in_graph(counts_at_bins, histogram.astype(np.int32), k)
    np.testing.assert_array_equal(on_the_host(counts_at_bins, histogram, k), graph)


@pytest.mark.parametrize("num_bins", [10, 16, 1000])
def test_bin_index_on_the_host_equals_keras_ops(num_bins, rng):
    edges = np.asarray(to_numpy(bin_thresholds(num_bins)), np.float32)
    below = np.nextafter(edges, np.float32(-1))
    scores = np.concatenate([edges, below[1:], rng.random(200, np.float32), np.float32([1.0])])
    host = on_the_host(bin_index, scores, num_bins)
    np.testing.assert_array_equal(host, in_graph(bin_index, scores, num_bins))
    np.testing.assert_array_equal(host[:num_bins], np.arange(num_bins))  # each edge its bin


@pytest.mark.parametrize("criterion", criteria(), ids=str)
def test_optimal_threshold_on_the_host_equals_keras_ops(criterion, histogram):
    t_host, v_host = on_the_host(optimal_threshold, histogram, criterion)
    t_graph, v_graph = in_graph(optimal_threshold, histogram.astype(np.int32), criterion)
    assert_close(v_host, v_graph)
    np.testing.assert_array_equal(np.isnan(t_host), np.isnan(t_graph))
    # A different bin only where the in-graph values of both bins tie within rounding.
    value, _ = in_graph(criterion_value, curve_counts(histogram.astype(np.int32)), criterion)
    found = ~np.isnan(t_graph)
    rows = np.flatnonzero(found)
    k_host = np.asarray(to_numpy(bin_index(np.float32(t_host[found]), B)))
    k_graph = np.asarray(to_numpy(bin_index(np.float32(t_graph[found]), B)))
    assert_close(value[rows, k_host], value[rows, k_graph])
    if np.array_equal(histogram, adversarial_histogram()):
        np.testing.assert_array_equal(t_host, t_graph)  # exact ties only: the same bins


def test_unreachable_floors_and_empty_classes_give_nan_on_the_host():
    h = adversarial_histogram()
    t, v = on_the_host(optimal_threshold, h, "recall_at_precision:0.99")
    assert np.isnan(t[[1, 2, 6]]).all() and np.isnan(v[[1, 2, 6]]).all()
    assert t[3] == 5 / B and v[3] == 1.0  # the single positive voxel alone, at its bin
