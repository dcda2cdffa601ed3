"""The validation funnel: clear errors for bad input, and NaN never counted silently."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import voxelmetrics as vm
from tests.conftest import BACKEND, compiled, to_numpy
from tests.reference import reference_counts

# PyTorch has no graph mode that Keras traces through: `compiled` runs eagerly there, so
# the in-graph NaN path is checked under JAX and TensorFlow, the eager error everywhere.
TRACES = BACKEND != "torch"


@pytest.fixture
def dirty(rng):
    """Multi-hot truth and scores `[6, 3]` with NaN at (1, 0) and (4, 0), 1.5 at (2, 1)."""
    y_true = (rng.random((6, 3)) < 0.5).astype(np.int32)
    y_pred = rng.random((6, 3)).astype(np.float32)
    y_pred[1, 0] = y_pred[4, 0] = np.nan
    y_pred[2, 1] = 1.5
    return y_true, y_pred


def valid_counts(y_true, y_pred, threshold=0.5):
    """numpy `[C, 4]` over the voxels whose score is a probability, class by class."""
    valid = (y_pred >= 0) & (y_pred <= 1)
    truth, predicted = y_true.astype(bool), y_pred >= threshold
    return np.stack(
        [
            (valid & truth & predicted).sum(0),
            (valid & ~truth & predicted).sum(0),
            (valid & truth & ~predicted).sum(0),
            (valid & ~truth & ~predicted).sum(0),
        ],
        axis=-1,
    )


@pytest.mark.parametrize(
    "entry_point",
    [
        vm.confusion_counts,
        vm.score_histogram,
        vm.exact_average_precision,
        vm.exact_precision_recall_curve,
    ],
)
def test_eager_nan_raises_with_count_and_first_index(dirty, entry_point):
    y_true, y_pred = dirty
    with pytest.raises(ValueError) as error:
        entry_point(y_true, y_pred)
    assert "2 NaN score(s)" in str(error.value)
    assert "index (1, 0)" in str(error.value)


def test_eager_nan_in_sparse_confusion_matrix_scores_raises(rng):
    y_pred = rng.random((5, 3)).astype(np.float32)
    y_pred[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN score\(s\), the first at index \(3, 2\)"):
        vm.sparse_confusion_matrix(np.zeros(5, np.int32), y_pred, 3)


def test_masked_out_nan_is_accepted_and_not_counted(dirty):
    y_true, y_pred = dirty
    y_pred[2, 1] = 0.5
    mask = np.ones(6, bool)
    mask[[1, 4]] = False
    counts = vm.confusion_counts(y_true, y_pred, mask=mask)
    np.testing.assert_array_equal(to_numpy(counts), valid_counts(y_true[mask], y_pred[mask]))


def test_clean_data_reports_zero_invalid(rng):
    y_true = (rng.random((2, 5, 3)) < 0.5).astype(np.int32)
    y_pred = rng.random((2, 5, 3)).astype(np.float32)
    _, invalid = vm.confusion_counts(y_true, y_pred, with_invalid=True)
    np.testing.assert_array_equal(to_numpy(invalid), [0, 0, 0])
    _, invalid = vm.score_histogram(y_true, y_pred, 8, with_invalid=True)
    np.testing.assert_array_equal(to_numpy(invalid), [0, 0, 0])
    _, invalid = vm.sparse_confusion_matrix(y_true[..., 0], y_pred, 3, with_invalid=True)
    assert int(to_numpy(invalid)) == 0


def test_traced_nan_and_out_of_range_scores_land_in_no_count(dirty):
    y_true, y_pred = dirty

    def counts_and_histogram(y_true, y_pred):
        counts, invalid = vm.confusion_counts(y_true, y_pred, with_invalid=True)
        histogram, hist_invalid = vm.score_histogram(y_true, y_pred, 4, with_invalid=True)
        return counts, invalid, histogram, hist_invalid

    if not TRACES:
        with pytest.raises(ValueError, match="NaN"):
            compiled(counts_and_histogram)(y_true, y_pred)
        return
    counts, invalid, histogram, hist_invalid = (
        to_numpy(x) for x in compiled(counts_and_histogram)(y_true, y_pred)
    )
    np.testing.assert_array_equal(counts, valid_counts(y_true, y_pred))
    np.testing.assert_array_equal(invalid, [2, 1, 0])
    np.testing.assert_array_equal(hist_invalid, [2, 1, 0])
    np.testing.assert_array_equal(histogram.sum(axis=(1, 2)), [4, 5, 6])
    valid = (y_pred >= 0) & (y_pred <= 1)
    np.testing.assert_array_equal(histogram[..., 1].sum(1), (y_true.astype(bool) & valid).sum(0))


def test_traced_out_of_range_sparse_ids_land_in_no_count(rng):
    labels = rng.integers(0, 3, 10)
    labels[[2, 7]] = 5
    y_pred = rng.random((10, 3)).astype(np.float32)

    def counts_fn(labels, y_pred):
        return vm.confusion_counts(labels, y_pred, with_invalid=True)

    if not TRACES:
        with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
            compiled(counts_fn)(labels, y_pred)
        return
    counts, invalid = (to_numpy(x) for x in compiled(counts_fn)(labels, y_pred))
    np.testing.assert_array_equal(invalid, [2, 2, 2])
    keep = labels != 5
    np.testing.assert_array_equal(
        counts, valid_counts(np.eye(3, dtype=np.int32)[labels[keep]], y_pred[keep])
    )


def test_traced_exact_average_precision_skips_nan(dirty):
    y_true, y_pred = dirty
    if not TRACES:
        with pytest.raises(ValueError, match="NaN"):
            compiled(vm.exact_average_precision)(y_true, y_pred)
        return
    result = to_numpy(compiled(vm.exact_average_precision)(y_true, y_pred))
    valid = (y_pred >= 0) & (y_pred <= 1)
    expected = [
        average_precision_score(y_true[valid[:, c], c], y_pred[valid[:, c], c]) for c in range(3)
    ]
    np.testing.assert_allclose(result, expected, atol=1e-6)


def expect_error(words, fn, *args, **kwargs):
    """Call `fn` and check that it raises ValueError whose message contains every word."""
    with pytest.raises(ValueError) as error:
        fn(*args, **kwargs)
    for word in words:
        assert word in str(error.value), f"{word!r} not in {error.value}"


def test_shape_mismatch_names_both_shapes():
    expect_error(
        ["y_true has shape (4, 3)", "y_pred has shape (4, 2)", "expected multi-hot labels"],
        vm.confusion_counts,
        np.zeros((4, 3)),
        np.zeros((4, 2), np.float32),
    )


def test_class_axis_mismatch():
    # Channels-first scores described as channels-last: the grids disagree.
    expect_error(
        ["class axis 3", "sparse integer labels of shape (2, 3, 4)"],
        vm.score_histogram,
        np.zeros((2, 4, 5), np.int32),
        np.zeros((2, 3, 4, 5), np.float32),
    )
    expect_error(
        ["axis=2 is out of range", "rank 2"],
        vm.confusion_counts,
        np.zeros((4, 3)),
        np.zeros((4, 3), np.float32),
        axis=2,
    )
    expect_error(
        ["num_classes=4", "3 classes"],
        vm.sparse_confusion_matrix,
        np.zeros(6, np.int32),
        np.zeros((6, 3), np.float32),
        4,
    )


def test_non_binary_multi_hot_truth():
    y_true = np.zeros((4, 2))
    y_true[1, 0] = 2
    expect_error(
        ["only 0 and 1", "found 2", "index (1, 0)"],
        vm.confusion_counts,
        y_true,
        np.zeros((4, 2), np.float32),
    )


def test_probabilities_outside_unit_interval_without_from_logits():
    y_pred = np.float32([[0.2, 1.5], [-0.1, 0.3]])
    expect_error(
        ["2 probabilities outside [0, 1]", "index (0, 1)", "from_logits=True"],
        vm.score_histogram,
        np.zeros((2, 2)),
        y_pred,
    )
    # The same values are fine as logits.
    vm.score_histogram(np.zeros((2, 2)), y_pred, from_logits=True)


@pytest.mark.parametrize("num_bins", [0, -3, 2.5, True])
def test_num_bins_must_be_a_positive_integer(num_bins):
    expect_error(
        ["num_bins must be an integer >= 1", f"received {num_bins!r}"],
        vm.score_histogram,
        np.zeros((3, 1)),
        np.zeros((3, 1), np.float32),
        num_bins,
    )
    expect_error(["num_bins must be an integer >= 1"], vm.bin_thresholds, num_bins)


def test_bad_threshold_shape_and_range():
    y_true, y_pred = np.zeros((4, 3)), np.zeros((4, 3), np.float32)
    expect_error(
        ["threshold must be a scalar or one value per class (3,)", "got shape (2,)"],
        vm.confusion_counts,
        y_true,
        y_pred,
        [0.5, 0.5],
    )
    expect_error(["threshold must lie in [0, 1]"], vm.confusion_counts, y_true, y_pred, 1.5)


def test_bad_sparse_labels():
    y_pred = np.zeros((3, 3), np.float32)
    expect_error(
        ["1 id(s) outside [0, 3)", "5 at index (2,)", "ignore_index"],
        vm.confusion_counts,
        np.array([0, 1, 5]),
        y_pred,
    )
    expect_error(["integer class ids"], vm.confusion_counts, np.array([0, 1.5, 2]), y_pred)
    expect_error(
        ["ignore_index applies to sparse"],
        vm.confusion_counts,
        np.zeros((3, 3)),
        y_pred,
        ignore_index=255,
    )


def test_bad_options():
    y_true, y_pred = np.zeros((4, 3)), np.zeros((4, 3), np.float32)
    expect_error(
        ["from_logits must be True, False, 'sigmoid' or 'softmax'", "'relu'"],
        vm.confusion_counts,
        y_true,
        y_pred,
        from_logits="relu",
    )
    expect_error(
        ["sample_weight has shape (5,)", "voxel grid (4,)"],
        vm.confusion_counts,
        y_true,
        y_pred,
        sample_weight=np.ones(5),
    )
    expect_error(
        ["per_sample=True needs a leading sample axis"],
        vm.confusion_counts,
        y_true,
        y_pred,
        axis=0,
        per_sample=True,
    )
    expect_error(["must have a class axis", "scalar"], vm.confusion_counts, 0, np.float32(0.5))


def test_bad_edges():
    y_true, y_pred = np.zeros((4, 1)), np.zeros((4, 1), np.float32)
    expect_error(
        ["strictly increasing"], vm.score_histogram, y_true, y_pred, edges=np.float32([0, 0.5, 0.2])
    )
    expect_error(
        ["non-empty 1-D", "(2, 2)"], vm.score_histogram, y_true, y_pred, edges=np.zeros((2, 2))
    )


def test_bad_sparse_confusion_matrix_arguments():
    labels = np.zeros(4, np.int32)
    expect_error(
        ["num_classes must be an integer >= 1", "received 0"],
        vm.sparse_confusion_matrix,
        labels,
        labels,
        0,
    )
    expect_error(
        ["y_pred has shape (5,)", "integer predictions of the labels' shape (4,)"],
        vm.sparse_confusion_matrix,
        labels,
        np.zeros(5, np.int32),
        3,
    )
    expect_error(
        ["integer predictions", "outside [0, 3)"],
        vm.sparse_confusion_matrix,
        labels,
        np.array([0, 1, 2, 3]),
        3,
    )


@pytest.mark.parametrize("curve_score", [vm.average_precision, vm.roc_auc, vm.pr_auc])
def test_curve_scores_refuse_unknown_average_and_zero_division(curve_score):
    histogram = np.ones((2, 4, 2), np.int32)
    expect_error(["average must be one of", "'samples'"], curve_score, histogram, average="samples")
    expect_error(["zero_division must be", "'zero'"], curve_score, histogram, zero_division="zero")


def softmax_limit(logits):
    """numpy float64 softmax with the limits of infinite logits: a lone +inf takes
    probability 1, -inf takes 0."""
    winner = np.isposinf(logits).any(-1, keepdims=True)
    logits = np.where(winner, np.where(np.isposinf(logits), 0.0, -np.inf), logits)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def infinite_logits(rng):
    """Sparse ids `[12]` and logits `[12, 3]`: a lone +inf, -inf entries, a +inf beside -inf."""
    logits = rng.normal(size=(12, 3)).astype(np.float32) * 3
    logits[0, 1] = logits[3, 2] = np.inf
    logits[1, 0] = logits[3, 0] = logits[5, :2] = -np.inf
    return rng.integers(0, 3, 12), logits


@pytest.mark.parametrize("run", [lambda f: f, compiled], ids=["eager", "compiled"])
def test_infinite_logits_are_their_limits_on_every_backend(infinite_logits, run):
    """Issue 12 item 4: a row with one +inf logit was dropped without a word (softmax NaN);
    it is a one-hot winner, -inf a zero probability, and sigmoid(+-inf) is 1 / 0."""
    ids, logits = infinite_logits
    truth = np.eye(3, dtype=np.int32)[ids]

    def counts(ids, truth, logits):
        return (
            vm.confusion_counts(ids, logits, from_logits=True, with_invalid=True),
            vm.confusion_counts(truth, logits, from_logits=True, with_invalid=True),
        )

    (softmax, softmax_invalid), (sigmoid, sigmoid_invalid) = run(counts)(ids, truth, logits)
    expected = valid_counts(truth, softmax_limit(logits.astype(np.float64)))
    np.testing.assert_array_equal(to_numpy(softmax), expected)
    with np.errstate(over="ignore"):
        probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_array_equal(to_numpy(sigmoid), valid_counts(truth, probabilities))
    np.testing.assert_array_equal(to_numpy(softmax_invalid), [0, 0, 0])
    np.testing.assert_array_equal(to_numpy(sigmoid_invalid), [0, 0, 0])


def test_undefined_softmax_raises_eagerly_and_is_tallied_when_traced(infinite_logits):
    """Several +inf, or every logit -inf, decide no class: an eager call says so; a traced
    call tallies the voxel as invalid in every class and counts the others."""
    ids, logits = infinite_logits
    logits[7] = [np.inf, np.inf, 0]
    logits[9] = -np.inf

    def counts_fn(ids, logits):
        return vm.confusion_counts(ids, logits, from_logits=True, with_invalid=True)

    with pytest.raises(ValueError, match=r"2 voxel\(s\) whose softmax is undefined"):
        counts_fn(ids, logits)
    with pytest.raises(ValueError, match="softmax is undefined"):
        vm.sparse_confusion_matrix(ids, logits, 3)
    if not TRACES:
        return
    counts, invalid = (to_numpy(x) for x in compiled(counts_fn)(ids, logits))
    keep = np.ones(12, bool)
    keep[[7, 9]] = False
    np.testing.assert_array_equal(invalid, [2, 2, 2])
    truth = np.eye(3, dtype=np.int32)[ids[keep]]
    np.testing.assert_array_equal(counts, valid_counts(truth, softmax_limit(logits[keep])))
    matrix, matrix_invalid = compiled(
        lambda i, s: vm.sparse_confusion_matrix(i, s, 3, with_invalid=True)
    )(ids, logits)
    assert int(to_numpy(matrix_invalid)) == 2 and int(to_numpy(matrix).sum()) == 10


@pytest.mark.parametrize(
    "entry_point",
    [
        vm.confusion_counts,
        lambda t, p: vm.score_histogram(t, p, 8),
        vm.exact_average_precision,
        lambda t, p: vm.metrics.Recall().update_state(t, p),
        lambda t, p: vm.metrics.AveragePrecision().update_state(t, p),
    ],
)
def test_one_dimensional_inputs_are_refused_with_the_way_to_pass_them(entry_point):
    """A `(N,)` binary problem used to become N classes of one voxel (issue 12 item 5)."""
    y_true, y_pred = np.int32([0, 1, 1, 0]), np.float32([0.2, 0.8, 0.4, 0.9])
    with pytest.raises(ValueError, match=r"1-D array .* pass y_true\[\.\.\., None\]"):
        entry_point(y_true, y_pred)
    counts = vm.confusion_counts(y_true[:, None], y_pred[:, None])
    np.testing.assert_array_equal(to_numpy(counts), valid_counts(y_true[:, None], y_pred[:, None]))


def test_traced_multi_hot_label_two_is_invalid_not_positive(rng):
    """Issue 12 item 6: a multi-hot 2 counted as positive with invalid = 0 under jit."""
    y_true = (rng.random((10, 3)) < 0.5).astype(np.int32)
    y_true[[1, 6], [0, 2]] = 2
    y_pred = rng.random((10, 3)).astype(np.float32)

    def counts_fn(y_true, y_pred):
        counts, invalid = vm.confusion_counts(y_true, y_pred, with_invalid=True)
        histogram, hist_invalid = vm.score_histogram(y_true, y_pred, 4, with_invalid=True)
        return counts, invalid, histogram, hist_invalid

    with pytest.raises(ValueError, match="found 2 at index"):
        counts_fn(y_true, y_pred)
    if not TRACES:
        return
    counts, invalid, histogram, hist_invalid = (
        to_numpy(x) for x in compiled(counts_fn)(y_true, y_pred)
    )
    valid = y_true <= 1
    np.testing.assert_array_equal(invalid, [1, 0, 1])
    np.testing.assert_array_equal(hist_invalid, [1, 0, 1])
    np.testing.assert_array_equal(counts, valid_counts(y_true, np.where(valid, y_pred, np.nan)))
    np.testing.assert_array_equal(histogram[..., 1].sum(1), (y_true == 1).sum(0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_bad_sample_weight_raises_eagerly_and_is_excluded_when_traced(rng, bad):
    """A NaN, infinite or negative weight: eager error; traced, the voxel counts nowhere and
    is tallied as invalid with weight 1."""
    y_true = (rng.random((8, 2)) < 0.5).astype(np.int32)
    y_pred = rng.random((8, 2)).astype(np.float32)
    weight = rng.random(8).astype(np.float32)
    weight[3] = bad

    def counts_fn(y_true, y_pred, weight):
        return vm.confusion_counts(y_true, y_pred, sample_weight=weight, with_invalid=True)

    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0; found"):
        counts_fn(y_true, y_pred, weight)
    if not TRACES:
        return
    counts, invalid = (to_numpy(x) for x in compiled(counts_fn)(y_true, y_pred, weight))
    keep = np.arange(8) != 3
    expected = reference_counts(y_true[keep], y_pred[keep] >= 0.5, weight[keep])
    np.testing.assert_allclose(counts, expected, rtol=1e-6)
    np.testing.assert_array_equal(invalid, [1.0, 1.0])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("run", [lambda f: f, compiled], ids=["eager", "compiled"])
def test_half_precision_scores_count_as_their_float32_values(rng, dtype, run):
    """Issue 12 item 15: TensorFlow's eager bfloat16 y_pred crashed in `value_range`."""
    import keras

    y_true = (rng.random((4, 5, 3)) < 0.5).astype(np.int32)
    scores = keras.ops.cast(rng.random((4, 5, 3)).astype(np.float32), dtype)
    weight = keras.ops.cast(rng.random(4).astype(np.float32), dtype)
    as_float32 = to_numpy(keras.ops.cast(scores, "float32"))

    def entry_points(y_true, scores, weight):
        return (
            vm.confusion_counts(y_true, scores),
            vm.score_histogram(y_true, scores, 8),
            vm.confusion_counts(y_true, scores, sample_weight=weight),
        )

    counts, histogram, weighted = run(entry_points)(y_true, scores, weight)
    expected = valid_counts(y_true.reshape(-1, 3), as_float32.reshape(-1, 3))
    np.testing.assert_array_equal(to_numpy(counts), expected)
    np.testing.assert_array_equal(
        to_numpy(histogram), to_numpy(vm.score_histogram(y_true, as_float32, 8))
    )
    w = to_numpy(keras.ops.cast(weight, "float32"))[:, None]
    expected = reference_counts(y_true, as_float32 >= 0.5, w)
    np.testing.assert_allclose(to_numpy(weighted), expected, rtol=1e-6)
    dirty = keras.ops.cast(np.where(np.arange(60).reshape(4, 5, 3) == 7, np.nan, 0.5), dtype)
    with pytest.raises(ValueError, match=r"1 NaN score\(s\), the first at index \(0, 2, 1\)"):
        vm.confusion_counts(y_true, dirty)


def test_zero_classes_and_a_mask_of_the_wrong_class_count_are_clear_errors():
    """Issue 12 item 16: these gave backend-internal errors (or silent empty results)."""
    with pytest.raises(ValueError, match=r"0 classes on the class axis 1; expected at least"):
        vm.confusion_counts(np.zeros((4, 0)), np.zeros((4, 0), np.float32))
    with pytest.raises(ValueError, match=r"0 classes on the class axis 1"):
        vm.metrics.AveragePrecision().update_state(np.zeros((4, 0)), np.zeros((4, 0), np.float32))
    y_true, y_pred = np.zeros((4, 3)), np.zeros((4, 3), np.float32)
    for call in (
        lambda: vm.confusion_counts(y_true, y_pred, mask=np.ones((4, 2), bool)),
        lambda: vm.score_histogram(y_true, y_pred, 8, sample_weight=np.ones((4, 2))),
    ):
        with pytest.raises(ValueError, match=r"size 1 or 3 on the class axis 1"):
            call()
    empty = vm.confusion_counts(np.zeros((0, 3)), np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(to_numpy(empty), np.zeros((3, 4)))


def test_an_axis_out_of_range_in_a_metric_config_is_a_clear_error():
    config = {**vm.metrics.Recall().get_config(), "axis": 9}
    metric = vm.metrics.Recall.from_config(config)
    with pytest.raises(ValueError, match="axis=9 is out of range for y_pred of rank 3"):
        metric.update_state(np.zeros((2, 4, 3)), np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="axis must be an integer"):
        vm.metrics.Recall.from_config({**config, "axis": "9"})


def test_label_dtype_is_read_without_copying_the_tensor_to_the_host():
    """A GPU tensor cannot become a numpy array: reading its dtype must not try (found on a
    CUDA device, where every eager op under torch failed in this check)."""
    from voxelmetrics.ops._inputs import _integers_in_range

    class DeviceLabels:
        dtype = "bool"

        def __array__(self, *args, **kwargs):
            raise AssertionError("the labels were copied to the host")

    assert _integers_in_range(DeviceLabels(), 0, 1)
