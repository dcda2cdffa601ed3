"""confusion_counts and the sparse confusion matrix against numpy int64 and scikit-learn."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import confusion_matrix, multilabel_confusion_matrix

import voxelmetrics as vm
from tests.conftest import BACKEND, compiled, to_numpy, unit_floats
from tests.reference import reference_counts as shared_counts

NUM_CLASSES = 3


def reference_counts(truth, scores, threshold=0.5, weight=None):
    """numpy `[C, 4]` counts of `scores >= threshold`, class axis last (`tests.reference`)."""
    decided = np.asarray(scores) >= np.asarray(threshold, np.float32)
    return shared_counts(truth, decided, weight)


def multi_hot(rng, shape, p=0.4):
    return (rng.random(shape) < p).astype(np.int32)


def quantised_scores(rng, shape):
    """Probabilities on a 1/8 grid, so that many scores sit exactly on the thresholds."""
    return (rng.integers(0, 9, shape) / 8).astype(np.float32)


@pytest.mark.parametrize(
    "shape", [(1, NUM_CLASSES), (11, 3), (2, 7, 3), (2, 4, 5, 3), (2, 3, 4, 2, 3)]
)
def test_multi_hot_counts_equal_numpy_at_any_rank(rng, shape):
    y_true, y_pred = multi_hot(rng, shape), quantised_scores(rng, shape)
    counts = vm.confusion_counts(y_true, y_pred)
    np.testing.assert_array_equal(to_numpy(counts), reference_counts(y_true, y_pred))
    assert "int" in str(to_numpy(counts).dtype)


def test_per_class_thresholds_count_score_equal_to_threshold_as_positive(rng):
    y_true, y_pred = multi_hot(rng, (4, 9, 3)), quantised_scores(rng, (4, 9, 3))
    threshold = np.float32([0.0, 0.375, 1.0])
    counts = vm.confusion_counts(y_true, y_pred, threshold)
    np.testing.assert_array_equal(to_numpy(counts), reference_counts(y_true, y_pred, threshold))


def test_channels_first_equals_channels_last(rng):
    y_true, y_pred = multi_hot(rng, (2, 3, 4, 5)), quantised_scores(rng, (2, 3, 4, 5))
    counts = vm.confusion_counts(y_true, y_pred, [0.25, 0.5, 0.75], axis=1)
    expected = reference_counts(
        np.moveaxis(y_true, 1, -1), np.moveaxis(y_pred, 1, -1), np.float32([0.25, 0.5, 0.75])
    )
    np.testing.assert_array_equal(to_numpy(counts), expected)


def test_sparse_labels_with_ignore_index(rng):
    labels = rng.integers(0, NUM_CLASSES, (2, 6, 5))
    labels[0, :2] = 255
    y_pred = quantised_scores(rng, (2, 6, 5, NUM_CLASSES))
    counts = vm.confusion_counts(labels, y_pred, 0.5, ignore_index=255)
    keep = labels != 255
    one_hot = np.eye(NUM_CLASSES, dtype=np.int32)[labels[keep]]
    np.testing.assert_array_equal(to_numpy(counts), reference_counts(one_hot, y_pred[keep]))


@pytest.mark.parametrize("mask_shape", [(2, 6, 5), (2,)])
def test_mask_drops_voxels(rng, mask_shape):
    y_true, y_pred = multi_hot(rng, (2, 6, 5, 3)), quantised_scores(rng, (2, 6, 5, 3))
    mask = rng.random(mask_shape) < 0.6
    counts = vm.confusion_counts(y_true, y_pred, mask=mask)
    grid_mask = np.broadcast_to(mask.reshape(mask_shape + (1,) * (3 - len(mask_shape))), (2, 6, 5))
    np.testing.assert_array_equal(
        to_numpy(counts), reference_counts(y_true[grid_mask], y_pred[grid_mask])
    )


@pytest.mark.parametrize("weight_shape", [(2, 6, 5), (2,)])
def test_sample_weight_sums_weights(rng, weight_shape):
    y_true, y_pred = multi_hot(rng, (2, 6, 5, 3)), quantised_scores(rng, (2, 6, 5, 3))
    weight = rng.random(weight_shape).astype(np.float32)
    counts = vm.confusion_counts(y_true, y_pred, sample_weight=weight)
    grid_weight = weight.reshape(weight_shape + (1,) * (3 - len(weight_shape)))
    np.testing.assert_allclose(
        to_numpy(counts), reference_counts(y_true, y_pred, weight=grid_weight), rtol=1e-5
    )


def test_sample_weight_and_mask_combine(rng):
    y_true, y_pred = multi_hot(rng, (30, 3)), quantised_scores(rng, (30, 3))
    weight, mask = rng.random(30).astype(np.float32), rng.random(30) < 0.5
    counts = vm.confusion_counts(y_true, y_pred, sample_weight=weight, mask=mask)
    expected = reference_counts(y_true, y_pred, weight=weight * mask)
    np.testing.assert_allclose(to_numpy(counts), expected, rtol=1e-5)


def test_per_sample_keeps_the_leading_axis(rng):
    y_true, y_pred = multi_hot(rng, (4, 5, 6, 3)), quantised_scores(rng, (4, 5, 6, 3))
    counts = vm.confusion_counts(y_true, y_pred, per_sample=True)
    expected = np.stack([reference_counts(t, p) for t, p in zip(y_true, y_pred, strict=True)])
    np.testing.assert_array_equal(to_numpy(counts), expected)


def test_per_sample_channels_first(rng):
    y_true, y_pred = multi_hot(rng, (4, 3, 6)), quantised_scores(rng, (4, 3, 6))
    counts = vm.confusion_counts(y_true, y_pred, axis=1, per_sample=True)
    expected = np.stack([reference_counts(t.T, p.T) for t, p in zip(y_true, y_pred, strict=True)])
    np.testing.assert_array_equal(to_numpy(counts), expected)


def test_from_logits_applies_sigmoid(rng):
    y_true = multi_hot(rng, (50, 3))
    logits = rng.normal(0, 3, (50, 3)).astype(np.float32)
    counts = vm.confusion_counts(y_true, logits, 0.3, from_logits=True)
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_array_equal(to_numpy(counts), reference_counts(y_true, probabilities, 0.3))


def test_from_logits_with_sparse_labels_applies_softmax(rng):
    labels = rng.integers(0, 3, (40,))
    logits = rng.normal(0, 2, (40, 3)).astype(np.float32)
    counts = vm.confusion_counts(labels, logits, 0.4, from_logits=True)
    e = np.exp(logits.astype(np.float64))
    probabilities = e / e.sum(-1, keepdims=True)
    expected = reference_counts(np.eye(3)[labels], probabilities, 0.4)
    np.testing.assert_array_equal(to_numpy(counts), expected)


def test_single_voxel():
    counts = vm.confusion_counts(np.array([[1, 0, 1]]), np.float32([[0.5, 0.5, 0.2]]))
    np.testing.assert_array_equal(to_numpy(counts), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])


def test_python_lists_are_accepted():
    y_true, y_pred = [[1, 0], [0, 1], [1, 1]], [[0.7, 0.2], [0.1, 0.9], [0.5, 0.4]]
    expected = reference_counts(np.array(y_true), np.float32(y_pred))
    np.testing.assert_array_equal(to_numpy(vm.confusion_counts(y_true, y_pred)), expected)
    histogram = to_numpy(vm.score_histogram(y_true, y_pred, 2))
    np.testing.assert_array_equal(histogram.sum(axis=(1, 2)), [3, 3])


def test_empty_classes_have_zero_positives(rng):
    y_true, y_pred = multi_hot(rng, (20, 3)), quantised_scores(rng, (20, 3))
    y_true[:, 1] = 0
    y_pred[:, 2] = 0.0
    counts = to_numpy(vm.confusion_counts(y_true, y_pred))
    np.testing.assert_array_equal(counts, reference_counts(y_true, y_pred))
    assert counts[1, 0] == counts[1, 2] == 0
    assert counts[2, 0] == counts[2, 1] == 0


@pytest.mark.slow
def test_one_class_above_2_pow_24_counts_exactly():
    # float32 counting stops at 2**24: 2**24 + 3 is not a float32, so it would round.
    n = 2**24 + 3
    y_true = np.ones((n, 1), np.int8)
    y_pred = np.full((n, 1), 0.9, np.float32)
    counts = to_numpy(vm.confusion_counts(y_true, y_pred))
    assert counts.tolist() == [[n, 0, 0, 0]]


def test_compiled_counts_equal_eager(rng):
    y_true, y_pred = multi_hot(rng, (2, 5, 4, 3)), quantised_scores(rng, (2, 5, 4, 3))
    mask = rng.random((2, 5, 4)) < 0.7

    def counts_fn(y_true, y_pred, mask):
        return vm.confusion_counts(y_true, y_pred, [0.25, 0.5, 1.0], mask=mask, per_sample=True)

    eager = to_numpy(counts_fn(y_true, y_pred, mask))
    np.testing.assert_array_equal(to_numpy(compiled(counts_fn)(y_true, y_pred, mask)), eager)
    expected = np.stack(
        [
            reference_counts(t[m], p[m], np.float32([0.25, 0.5, 1.0]))
            for t, p, m in zip(y_true, y_pred, mask, strict=True)
        ]
    )
    np.testing.assert_array_equal(eager, expected)


def sklearn_matrix(labels, predicted, weight=None):
    return confusion_matrix(labels, predicted, labels=range(NUM_CLASSES), sample_weight=weight)


def test_sparse_confusion_matrix_from_scores_equals_sklearn(rng):
    labels = rng.integers(0, NUM_CLASSES, (3, 8, 5))
    y_pred = rng.random((3, 8, 5, NUM_CLASSES)).astype(np.float32)
    matrix = vm.sparse_confusion_matrix(labels, y_pred, NUM_CLASSES)
    expected = sklearn_matrix(labels.ravel(), y_pred.argmax(-1).ravel())
    np.testing.assert_array_equal(to_numpy(matrix), expected)


def test_sparse_confusion_matrix_channels_first_with_ignore_index_and_mask(rng):
    labels = rng.integers(0, NUM_CLASSES, (3, 8))
    labels[0] = -1
    y_pred = rng.random((3, NUM_CLASSES, 8)).astype(np.float32)
    mask = rng.random((3, 8)) < 0.7
    matrix = vm.sparse_confusion_matrix(
        labels, y_pred, NUM_CLASSES, axis=1, ignore_index=-1, mask=mask
    )
    keep = (labels != -1) & mask
    expected = sklearn_matrix(labels[keep], y_pred.argmax(1)[keep])
    np.testing.assert_array_equal(to_numpy(matrix), expected)


def test_sparse_confusion_matrix_from_integer_predictions_with_weights(rng):
    labels, predicted = rng.integers(0, NUM_CLASSES, (2, 40))
    weight = rng.random(40).astype(np.float32)
    matrix = vm.sparse_confusion_matrix(labels, predicted, NUM_CLASSES, sample_weight=weight)
    expected = sklearn_matrix(labels, predicted, weight)
    np.testing.assert_allclose(to_numpy(matrix), expected, rtol=1e-5)


def test_counts_from_confusion_matrix_equal_sklearn_one_vs_rest(rng):
    labels, predicted = rng.integers(0, NUM_CLASSES, (2, 60))
    counts = vm.counts_from_confusion_matrix(sklearn_matrix(labels, predicted))
    # sklearn's per-class matrices are [[tn, fp], [fn, tp]].
    (tn, fp), (fn, tp) = np.moveaxis(
        multilabel_confusion_matrix(labels, predicted, labels=range(NUM_CLASSES)), 0, -1
    )
    np.testing.assert_array_equal(to_numpy(counts), np.stack([tp, fp, fn, tn], axis=-1))
    # A batch [N, C, C] gives each matrix's counts [N, C, 4].
    batch = np.stack([sklearn_matrix(*rng.integers(0, NUM_CLASSES, (2, 40))) for _ in range(3)])
    expected = [to_numpy(vm.counts_from_confusion_matrix(m)) for m in batch]
    np.testing.assert_array_equal(to_numpy(vm.counts_from_confusion_matrix(batch)), expected)


def test_compiled_sparse_confusion_matrix_equals_eager(rng):
    labels = rng.integers(0, NUM_CLASSES, (2, 12))
    y_pred = rng.random((2, 12, NUM_CLASSES)).astype(np.float32)

    def matrix_fn(labels, y_pred):
        return vm.sparse_confusion_matrix(labels, y_pred, NUM_CLASSES)

    np.testing.assert_array_equal(
        to_numpy(compiled(matrix_fn)(labels, y_pred)), to_numpy(matrix_fn(labels, y_pred))
    )


@st.composite
def counting_cases(draw):
    grid = draw(st.sampled_from([(12,), (3, 4)]))
    scores = draw(hnp.arrays(np.float32, (*grid, 2), elements=unit_floats()))
    truth = draw(hnp.arrays(np.bool_, (*grid, 2)))
    mask = draw(hnp.arrays(np.bool_, grid))
    threshold = draw(hnp.arrays(np.float32, (2,), elements=unit_floats()))
    return truth, scores, mask, threshold


@settings(max_examples=25, deadline=None)
@given(counting_cases())
def test_property_counts_equal_numpy_and_add_up_to_the_counted_voxels(case):
    truth, scores, mask, threshold = case
    counts = to_numpy(vm.confusion_counts(truth, scores, threshold, mask=mask))
    np.testing.assert_array_equal(counts, reference_counts(truth[mask], scores[mask], threshold))
    np.testing.assert_array_equal(counts.sum(-1), [mask.sum()] * 2)


def unknown_batch(fn, *arrays):
    """`fn` compiled with the leading dimension unknown until run time where the backend can
    say so (TensorFlow: a `None` batch in the input signature, as Keras' partial last batch);
    `jax.jit` and torch see concrete shapes."""
    if BACKEND != "tensorflow":
        return compiled(fn)(*arrays)
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in arrays]
    return tf.function(fn, input_signature=signature)(*arrays)


def test_every_kernel_accepts_a_batch_size_unknown_until_run_time(rng):
    """Issue 12 item 1: Python arithmetic on a symbolic batch size crashed under tf.function."""
    shape = (5, 4, 6, 3)
    y_true, y_pred = multi_hot(rng, shape), quantised_scores(rng, shape)
    ids = rng.integers(0, 3, shape[:-1]).astype(np.int32)
    weight = rng.random(5).astype(np.float32)

    def kernels(y_true, y_pred, ids, weight):
        return (
            vm.confusion_counts(y_true, y_pred),
            vm.confusion_counts(y_true, y_pred, per_sample=True),
            vm.confusion_counts(y_true, y_pred, sample_weight=weight),
            vm.confusion_counts(ids, y_pred),
            vm.score_histogram(y_true, y_pred, 8),
            vm.sparse_confusion_matrix(ids, y_pred, 3),
        )

    got = unknown_batch(kernels, y_true, y_pred, ids, weight)
    expected = kernels(y_true, y_pred, ids, weight)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(to_numpy(g), to_numpy(e), rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(got[0]), reference_counts(y_true, y_pred))
