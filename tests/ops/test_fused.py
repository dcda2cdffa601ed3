"""counts_and_histogram: the same integers as the two separate ops, from one pass when it can."""

import numpy as np
import pytest

import voxelmetrics as vm
from tests.conftest import BACKEND, compiled, to_numpy
from tests.ops.test_counting import reference_counts
from tests.reference import reference_histogram
from voxelmetrics.ops.fused import counts_at_bins, threshold_bins

C = 3


def _volume(rng, shape=(2, 9, 7, C)):
    y_true = (rng.random(shape) < 0.4).astype(np.int32)
    y_pred = (rng.integers(0, 17, shape) / 16).astype(np.float32)  # many scores on edges
    y_pred.reshape(-1, C)[:3] = [[0.0, 1.0, 0.5], [1.0, 0.0, 0.25], [0.3, 0.7, 0.1]]
    return y_true, y_pred


@pytest.mark.parametrize(
    "threshold",
    [
        0.5,  # an edge of every even B: read off the histogram
        np.float32([0.0, 0.25, 0.75]),  # per class, all on the grid (0.0 included)
        np.float32([0.5, 0.3, 0.5]),  # one class off the grid: direct count for all
        1.0,  # not an edge (edges stop at (B-1)/B): direct count
        0.3,
    ],
)
@pytest.mark.parametrize("num_bins", [16, 10, 1024])
@pytest.mark.parametrize("traced", [False, True])
def test_equals_the_separate_ops_and_numpy(rng, threshold, num_bins, traced):
    y_true, y_pred = _volume(rng)
    fn = lambda t, p: vm.counts_and_histogram(t, p, threshold, num_bins)  # noqa: E731
    counts, hist = (compiled(fn) if traced else fn)(y_true, y_pred)
    np.testing.assert_array_equal(to_numpy(counts), reference_counts(y_true, y_pred, threshold))
    np.testing.assert_array_equal(to_numpy(hist), reference_histogram(y_true, y_pred, num_bins))
    np.testing.assert_array_equal(
        to_numpy(counts), to_numpy(vm.confusion_counts(y_true, y_pred, threshold))
    )
    np.testing.assert_array_equal(
        to_numpy(hist), to_numpy(vm.score_histogram(y_true, y_pred, num_bins))
    )


def test_threshold_bins_find_edges_exactly():
    k, on_grid = threshold_bins(np.float32([0.0, 0.5, 0.9990234375]), 3, 1024)
    assert to_numpy(k).tolist() == [0, 512, 1023] and bool(to_numpy(on_grid))
    # One ulp above an edge is not an edge; nor is 1.0 (it falls in the last bin).
    above = np.nextafter(np.float32(0.5), np.float32(1))
    assert not bool(to_numpy(threshold_bins(np.float32([0.0, above, 0.5]), 3, 1024)[1]))
    assert not bool(to_numpy(threshold_bins(np.float32(1.0), 3, 1024)[1]))
    # B = 10: the host-divided edge float32(3) / float32(10) is float32(0.3).
    k, on_grid = threshold_bins(np.float32(0.3), 3, 10)
    assert to_numpy(k).tolist() == [3, 3, 3] and bool(to_numpy(on_grid))


def test_counts_at_bins_equal_brute_force(rng):
    hist = rng.integers(0, 50, (C, 8, 2))
    k = np.int32([0, 3, 7])
    got = to_numpy(counts_at_bins(hist, k))
    for c in range(C):
        tp = hist[c, k[c] :, 1].sum()
        predicted = hist[c, k[c] :].sum()
        positives = hist[c, :, 1].sum()
        fp, fn = predicted - tp, positives - tp
        assert got[c].tolist() == [tp, fp, fn, hist[c].sum() - tp - fp - fn]


def test_traced_nan_scores_are_tallied_once_and_counted_nowhere(rng):
    y_true, y_pred = _volume(rng)
    y_pred[0, 0, 0] = np.nan
    fn = compiled(lambda t, p: vm.counts_and_histogram(t, p, 0.5, 16, with_invalid=True))
    if BACKEND == "torch":  # no traced mode: eager calls raise on NaN instead
        with pytest.raises(ValueError, match="3 NaN score"):
            fn(y_true, y_pred)
        return
    counts, hist, invalid = fn(y_true, y_pred)
    assert to_numpy(invalid).tolist() == [1, 1, 1]
    clean = np.ones(y_pred.shape[:-1], bool)
    clean[0, 0, 0] = False
    expected = reference_counts(y_true[clean], y_pred[clean])
    np.testing.assert_array_equal(to_numpy(counts), expected)
    assert to_numpy(hist).sum() == (y_pred.size - C)


def test_sparse_labels_mask_and_weights_match_the_separate_ops(rng):
    labels = rng.integers(0, C + 1, (2, 6, 5)).astype(np.int32)  # C is the void label
    y_pred = rng.random((2, 6, 5, C)).astype(np.float32)
    mask = rng.random((2, 6)) < 0.8
    weight = rng.random((2, 6, 5)).astype(np.float32)
    for options in ({"mask": mask}, {"sample_weight": weight}):
        options = {"ignore_index": C, **options}
        counts, hist = vm.counts_and_histogram(labels, y_pred, 0.5, 8, **options)
        # Integer counts are equal; float32 weight sums are equal up to summation order,
        # which a GPU's scatter-add does not fix (1 ulp apart seen on an H200).
        rtol = 1e-6 if "sample_weight" in options else 0
        np.testing.assert_allclose(
            to_numpy(counts),
            to_numpy(vm.confusion_counts(labels, y_pred, 0.5, **options)),
            rtol=rtol,
        )
        np.testing.assert_allclose(
            to_numpy(hist), to_numpy(vm.score_histogram(labels, y_pred, 8, **options)), rtol=rtol
        )


def test_bad_arguments_raise_clear_errors(rng):
    y_true, y_pred = _volume(rng)
    with pytest.raises(ValueError, match="num_bins"):
        vm.counts_and_histogram(y_true, y_pred, 0.5, 0)
    with pytest.raises(ValueError, match="threshold"):
        vm.counts_and_histogram(y_true, y_pred, np.float32([0.5, 0.5]))
    y_pred[1, 2, 3, 0] = 1.5
    with pytest.raises(ValueError, match="outside"):
        vm.counts_and_histogram(y_true, y_pred)
