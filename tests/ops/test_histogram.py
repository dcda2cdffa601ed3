"""The bin rule (docs/design.md): counts at every t_k equal a direct `score >= t_k` count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import voxelmetrics as vm
from tests.conftest import compiled, to_numpy, unit_floats

BIN_COUNTS = [1, 3, 7, 10, 16, 1000, 1024]


def float32_edges(num_bins: int) -> np.ndarray:
    """t_k = float32(k) / float32(B), divided by numpy (IEEE), independently of the library."""
    return np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)


def edge_scores(rng, num_bins: int) -> np.ndarray:
    """Every edge, both float32 neighbours of every edge, 0, 1 and random scores, shuffled."""
    t = float32_edges(num_bins)
    scores = np.concatenate(
        [
            t,
            np.nextafter(t, np.float32(-1)),
            np.nextafter(t, np.float32(2)),
            [0.0, 1.0, np.nextafter(np.float32(1), np.float32(0))],
            rng.random(64),
        ]
    ).astype(np.float32)
    return rng.permutation(scores[(scores >= 0) & (scores <= 1)])


def direct_counts(truth, scores, thresholds):
    """`[B, 2]` numpy count of (negatives, positives) with `score >= t_k`, for every k."""
    above = scores[None, :] >= thresholds[:, None]
    return np.stack([(above & ~truth).sum(1), (above & truth).sum(1)], axis=-1)


def brute_force_bin(scores, edges):
    """The largest k with `edges[k] <= s`, by comparing s with every edge (float32)."""
    return (scores[:, None] >= edges[None, :]).sum(1) - 1


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_bin_thresholds_are_float32_k_over_b(num_bins):
    thresholds = to_numpy(vm.bin_thresholds(num_bins))
    assert thresholds.dtype == np.float32
    np.testing.assert_array_equal(thresholds, float32_edges(num_bins))


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_bin_index_is_the_largest_edge_at_or_below_the_score(rng, num_bins):
    scores = edge_scores(rng, num_bins)
    expected = brute_force_bin(scores, float32_edges(num_bins))
    np.testing.assert_array_equal(to_numpy(vm.bin_index(scores, num_bins)), expected)


def test_bin_index_of_scores_below_zero_is_minus_one():
    scores = np.float32([-2.0, -0.5, -1e-3, 0.0])
    np.testing.assert_array_equal(to_numpy(vm.bin_index(scores, 4)), [-1, -1, -1, 0])


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_counts_at_every_edge_equal_direct_counts(rng, num_bins):
    scores = np.stack([edge_scores(rng, num_bins), edge_scores(rng, num_bins)], axis=-1)
    truth = rng.random(scores.shape) < 0.5
    curves = to_numpy(vm.curve_counts(vm.score_histogram(truth, scores, num_bins)))
    t = float32_edges(num_bins)
    for c in range(2):
        direct = direct_counts(truth[:, c], scores[:, c], t)
        np.testing.assert_array_equal(curves[c, :, 1], direct[:, 0], err_msg="fp")
        np.testing.assert_array_equal(curves[c, :, 0], direct[:, 1], err_msg="tp")


@pytest.mark.parametrize("num_bins", [7, 1000])
def test_compiled_histogram_keeps_the_bin_rule(rng, num_bins):
    # XLA rewrites an in-graph `k / B` as `k * (1 / B)`; the rule must survive compilation.
    scores = edge_scores(rng, num_bins)[:, None]
    truth = rng.random(scores.shape) < 0.5

    def histogram_fn(y_true, y_pred):
        return vm.score_histogram(y_true, y_pred, num_bins)

    histogram = to_numpy(compiled(histogram_fn)(truth, scores))
    np.testing.assert_array_equal(histogram, to_numpy(histogram_fn(truth, scores)))
    curves = vm.curve_counts(histogram)
    direct = direct_counts(truth[:, 0], scores[:, 0], float32_edges(num_bins))
    np.testing.assert_array_equal(to_numpy(curves)[0, :, 1::-1], direct)


def test_histogram_equals_numpy_bincount(rng):
    y_true = rng.random((2, 5, 6, 3)) < 0.3
    y_pred = rng.random((2, 5, 6, 3)).astype(np.float32)
    histogram = to_numpy(vm.score_histogram(y_true, y_pred, 10))
    for c in range(3):
        bins = brute_force_bin(y_pred[..., c].ravel(), float32_edges(10))
        truth = y_true[..., c].ravel()
        np.testing.assert_array_equal(histogram[c, :, 0], np.bincount(bins[~truth], minlength=10))
        np.testing.assert_array_equal(histogram[c, :, 1], np.bincount(bins[truth], minlength=10))


def test_custom_logit_edges_with_from_logits(rng):
    num_bins = 16
    t = float32_edges(num_bins)[1:].astype(np.float64)
    edges = np.concatenate([[-np.inf], np.log(t / (1 - t))]).astype(np.float32)
    logits = np.concatenate(
        [edges[1:], np.nextafter(edges[1:], np.float32(-np.inf)), rng.normal(0, 3, 80)]
    ).astype(np.float32)
    # XLA and TensorFlow flush subnormals to zero: the neighbour below the edge 0 would
    # compare as 0 there. Subnormal logits are not a case worth a slower comparison.
    logits = logits[(logits == 0) | (np.abs(logits) >= np.finfo(np.float32).tiny)]
    y_pred = np.stack([logits, rng.permutation(logits)], axis=-1)
    y_true = rng.random(y_pred.shape) < 0.4
    histogram = to_numpy(vm.score_histogram(y_true, y_pred, edges=edges, from_logits=True))
    assert histogram.shape == (2, num_bins, 2)
    for c in range(2):
        bins = np.searchsorted(edges, y_pred[:, c], side="right") - 1
        truth = y_true[:, c]
        for label in (0, 1):
            np.testing.assert_array_equal(
                histogram[c, :, label],
                np.bincount(bins[truth == label], minlength=num_bins),
            )


def test_channels_first_and_sparse_labels_with_ignore_index(rng):
    labels = rng.integers(0, 3, (2, 5, 4))
    labels[1, 0] = 9
    y_pred = rng.random((2, 3, 5, 4)).astype(np.float32)
    histogram = to_numpy(vm.score_histogram(labels, y_pred, 8, axis=1, ignore_index=9))
    keep = labels != 9
    for c in range(3):
        scores, truth = y_pred[:, c][keep], labels[keep] == c
        bins = brute_force_bin(scores, float32_edges(8))
        np.testing.assert_array_equal(histogram[c, :, 1], np.bincount(bins[truth], minlength=8))
        np.testing.assert_array_equal(histogram[c, :, 0], np.bincount(bins[~truth], minlength=8))


def test_mask_and_sample_weight(rng):
    y_true = rng.random((4, 6, 2)) < 0.5
    y_pred = rng.random((4, 6, 2)).astype(np.float32)
    mask = rng.random((4, 6)) < 0.6
    weight = rng.random(4).astype(np.float32)
    histogram = to_numpy(vm.score_histogram(y_true, y_pred, 5, mask=mask, sample_weight=weight))
    voxel_weight = (weight[:, None] * mask).ravel()
    for c in range(2):
        bins = brute_force_bin(y_pred[..., c].ravel(), float32_edges(5))
        truth = y_true[..., c].ravel()
        for label in (0, 1):
            expected = np.bincount(bins, weights=voxel_weight * (truth == label), minlength=5)
            np.testing.assert_allclose(histogram[c, :, label], expected, rtol=1e-5)


@pytest.mark.slow
def test_one_bin_above_2_pow_24_counts_exactly():
    n = 2**24 + 3
    y_true = np.ones((n, 1), np.int8)
    y_pred = np.full((n, 1), 0.9, np.float32)
    histogram = to_numpy(vm.score_histogram(y_true, y_pred, 10))
    expected = np.zeros((1, 10, 2), np.int64)
    expected[0, 9, 1] = n
    np.testing.assert_array_equal(histogram, expected)


def scores_near_edges(num_bins: int):
    """Scores drawn from the edges, their float32 neighbours, 0, 1 and anywhere in [0, 1]."""
    t = float32_edges(num_bins)
    special = np.unique(
        np.clip(
            np.concatenate([t, np.nextafter(t, np.float32(-1)), np.nextafter(t, np.float32(2))]),
            0,
            1,
        )
    )
    return st.one_of(
        st.sampled_from([*special.tolist(), 1.0]),
        unit_floats(),
    )


@st.composite
def histogram_cases(draw):
    num_bins = draw(st.sampled_from([1, 3, 7, 10]))
    scores = draw(hnp.arrays(np.float32, (24, 2), elements=scores_near_edges(num_bins)))
    truth = draw(hnp.arrays(np.bool_, (24, 2)))
    mask = draw(hnp.arrays(np.bool_, (24,)))
    return num_bins, truth, scores, mask


@settings(max_examples=25, deadline=None)
@given(histogram_cases())
def test_property_histogram_total_is_the_number_of_valid_voxels(case):
    num_bins, truth, scores, mask = case
    histogram = to_numpy(vm.score_histogram(truth, scores, num_bins, mask=mask))
    np.testing.assert_array_equal(histogram.sum(axis=(1, 2)), [mask.sum()] * 2)
    np.testing.assert_array_equal(histogram[..., 1].sum(1), (truth & mask[:, None]).sum(0))


@settings(max_examples=25, deadline=None)
@given(histogram_cases())
def test_property_curve_counts_at_every_edge_equal_direct_counts(case):
    num_bins, truth, scores, mask = case
    curves = to_numpy(vm.curve_counts(vm.score_histogram(truth, scores, num_bins, mask=mask)))
    t = float32_edges(num_bins)
    for c in range(2):
        direct = direct_counts(truth[mask, c], scores[mask, c], t)
        np.testing.assert_array_equal(curves[c, :, :2], direct[:, ::-1])
        positives, negatives = direct[0, 1], direct[0, 0]
        np.testing.assert_array_equal(curves[c, :, 2], positives - direct[:, 1])
        np.testing.assert_array_equal(curves[c, :, 3], negatives - direct[:, 0])
