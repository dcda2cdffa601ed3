"""Counting metrics against numpy int64 counts, the ops, keras.metrics and torchmetrics."""

import keras
import numpy as np
import pytest

import voxelmetrics as vm
from tests.conftest import to_numpy
from tests.reference import (
    assert_close,
    decisions,
    labels_of,
    one_hot,
    reference_batch_counts,
    reference_counts,
    reference_score,
)
from voxelmetrics import metrics

C = 3


def batches(rng, mode, n=3, shape=(2, 3, 4, 5)):
    """A few (y_true, y_pred) batches of 3D volumes, class axis last, scores on a 1/8 grid
    so that many sit exactly on 0.5 (score >= threshold must count them)."""
    out = []
    for _ in range(n):
        scores = (rng.integers(0, 9, (*shape, C)) / 8).astype(np.float32)
        if mode == "multilabel":
            truth = (rng.random((*shape, C)) < 0.4).astype(np.int32)
            truth[..., 2] = 0  # an empty class: recall undefined, precision 0
        else:
            ids = rng.integers(0, C, shape)
            truth = ids if mode == "sparse" else one_hot(ids, C)
        out.append((truth, scores))
    return out


def reference(data, mode, threshold=None, weights=None, ignore_index=None, from_logits=False):
    return reference_batch_counts(data, C, mode, threshold, weights, ignore_index, from_logits)


@pytest.mark.parametrize("mode", ["multilabel", "multiclass", "sparse"])
def test_confusion_counts_are_exact_int64_and_match_the_ops(rng, mode):
    data = batches(rng, mode)
    m = metrics.ConfusionCounts(mode=mode, threshold=0.5)
    for truth, scores in data:
        m.update_state(truth, scores)
    result = m.result()
    assert isinstance(result, np.ndarray) and result.dtype == np.int64
    np.testing.assert_array_equal(result, reference(data, mode, threshold=0.5))
    ops_total = sum(to_numpy(vm.confusion_counts(t, s)).astype(np.int64) for t, s in data)
    np.testing.assert_array_equal(result, ops_total)


def test_per_class_thresholds_and_from_logits(rng):
    data = batches(rng, "multilabel")
    threshold = [0.0, 0.375, 1.0]
    m = metrics.ConfusionCounts(threshold=threshold)
    for truth, scores in data:
        m.update_state(truth, scores)
    np.testing.assert_array_equal(m.result(), reference(data, "multilabel", threshold))
    logits = [(t, rng.normal(size=s.shape).astype(np.float32) * 3) for t, s in data]
    m = metrics.ConfusionCounts(from_logits=True)
    for truth, z in logits:
        m.update_state(truth, z)
    np.testing.assert_array_equal(m.result(), reference(logits, "multilabel", from_logits=True))


def test_argmax_ties_go_to_the_lowest_class_and_softmax_thresholds_one_vs_rest(rng):
    truth = rng.integers(0, C, (4, 6))
    scores = np.full((4, 6, C), 1 / 3, np.float32)
    scores[0] = [0.2, 0.4, 0.4]
    m = metrics.ConfusionCounts(mode="sparse")
    m.update_state(truth, scores)
    np.testing.assert_array_equal(m.result(), reference([(truth, scores)], "sparse"))
    logits = rng.normal(size=(4, 6, C)).astype(np.float32)
    m = metrics.ConfusionCounts(mode="sparse", threshold=0.4, from_logits=True)
    m.update_state(truth, logits)
    probs = np.asarray(keras.ops.convert_to_numpy(keras.ops.softmax(logits)))
    labels, _ = labels_of(truth, C, "sparse")
    np.testing.assert_array_equal(m.result(), reference_counts(labels, probs >= np.float32(0.4)))


def test_masks_sample_weights_and_ignore_index(rng):
    data = batches(rng, "sparse", shape=(2, 3, 4))
    data = [(np.where(rng.random(t.shape) < 0.2, 255, t), s) for t, s in data]
    weights = [rng.random(2).astype(np.float32) for _ in data]
    masks = [rng.random((2, 3, 4)) < 0.7 for _ in data]
    m = metrics.ConfusionCounts(mode="sparse", ignore_index=255)
    for (truth, scores), w, mask in zip(data, weights, masks, strict=True):
        m.update_state(truth, scores, sample_weight=w, mask=mask)
    voxel_weights = [w[:, None, None] * mask for w, mask in zip(weights, masks, strict=True)]
    expected = reference(data, "sparse", weights=voxel_weights, ignore_index=255)
    result = m.result()
    assert result.dtype == np.float64
    assert_close(result, expected, rtol=1e-5)


def test_weighted_and_unweighted_batches_add_up(rng):
    data = batches(rng, "multilabel", n=2)
    m = metrics.Dice(average=None)
    m.update_state(*data[0])
    m.update_state(*data[1], sample_weight=np.float32([0.5, 2.0]))
    counts = reference(data[:1], "multilabel") + reference(
        data[1:], "multilabel", weights=[np.float64([0.5, 2.0])[:, None, None, None]]
    )
    assert_close(to_numpy(m.result()), reference_score(counts, "dice"), rtol=1e-5)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_class_weights_and_inverse_frequency_use_accumulated_support(rng, average):
    data = batches(rng, "sparse")
    counts = reference(data, "sparse")
    for class_weights in ([1.0, 0.0, 3.0], "inverse_frequency"):
        if average != "weighted":
            with pytest.raises(ValueError, match="class_weights"):
                metrics.Recall(average=average, class_weights=class_weights)
            continue
        m = metrics.Recall(average=average, class_weights=class_weights, mode="sparse")
        for truth, scores in data:
            m.update_state(truth, scores)
        expected = reference_score(counts, "recall", average, class_weights=class_weights)
        assert_close(to_numpy(m.result()), expected)


@pytest.mark.parametrize("zero_division", ["nan", 0, 1])
def test_zero_division_policy_for_an_empty_class(rng, zero_division):
    truth, scores = batches(rng, "multilabel", n=1)[0]
    scores[..., 2] = 0.0  # class 2: no truth and no prediction
    m = metrics.Recall(average=None, zero_division=zero_division)
    m.update_state(truth, scores)
    value = float(to_numpy(m.result())[2])
    assert np.isnan(value) if zero_division == "nan" else value == zero_division


@pytest.mark.parametrize("zero_division", [0, 1])
@pytest.mark.parametrize("class_weights", [None, "inverse_frequency"])
def test_weighted_average_without_support_follows_zero_division(zero_division, class_weights):
    """All-negative truth and predictions: weighted is zero_division, as scikit-learn (it
    was NaN); SegmentationReport's weighted entries follow the same rule."""
    truth, scores = np.zeros((3, 4, C), np.int32), np.zeros((3, 4, C), np.float32)
    options = {"average": "weighted", "class_weights": class_weights}
    m = metrics.Precision(zero_division=zero_division, **options)
    m.update_state(truth, scores)
    assert float(to_numpy(m.result())) == zero_division
    report = metrics.SegmentationReport(
        scores=["precision", "dice"], zero_division=zero_division, **options
    )
    report.update_state(truth, scores)
    for name in ("precision/weighted", "dice/weighted"):
        assert float(to_numpy(report.result()[name])) == zero_division, name


def test_fbeta_and_f1(rng):
    data = batches(rng, "multilabel")
    counts = reference(data, "multilabel").astype(np.float64)
    f2 = metrics.FBetaScore(beta=2.0, average=None)
    f1 = metrics.F1Score(average="micro")
    for truth, scores in data:
        f2.update_state(truth, scores)
        f1.update_state(truth, scores)
    tp, fp, fn, _ = counts.T
    with np.errstate(invalid="ignore"):
        assert_close(to_numpy(f2.result()), 5 * tp / (5 * tp + 4 * fn + fp))
    assert_close(to_numpy(f1.result()), reference_score(counts, "dice", "micro"))


def test_class_names_give_one_named_entry_per_class(rng):
    truth, scores = batches(rng, "multilabel", n=1)[0]
    m = metrics.IoU(average=None, class_names=["liver", "kidney", "tumour"], name="iou")
    m.update_state(truth, scores)
    result = m.result()
    assert list(result) == ["iou/liver", "iou/kidney", "iou/tumour"]
    expected = reference_score(reference([(truth, scores)], "multilabel"), "iou")
    assert_close([to_numpy(v) for v in result.values()], expected)


def test_channels_first_and_reset(rng):
    truth, scores = batches(rng, "multilabel", n=1)[0]
    m = metrics.ConfusionCounts(axis=1)
    m.update_state(np.moveaxis(truth, -1, 1), np.moveaxis(scores, -1, 1))
    np.testing.assert_array_equal(m.result(), reference([(truth, scores)], "multilabel"))
    m.reset_state()
    assert not m.result().any()


def test_agrees_with_keras_metrics_away_from_the_threshold(rng):
    """Keras predicts positive iff `score > threshold`; voxelmetrics iff `score >= threshold`.
    On continuous scores (none equal to the threshold) the two agree; on a score exactly at
    the threshold they differ by design."""
    truth = (rng.random((2, 4, 4, 4, C)) < 0.4).astype(np.float32)
    scores = rng.random((2, 4, 4, 4, C)).astype(np.float32)
    ours = metrics.SegmentationReport(average=["micro"], scores=["recall", "precision"])
    ours.update_state(truth, scores)
    result = ours.result()
    flat_t, flat_s = truth.reshape(-1, C), scores.reshape(-1, C)
    for c in range(C):
        for name, cls in (("recall", keras.metrics.Recall), ("precision", keras.metrics.Precision)):
            theirs = cls(thresholds=0.5, class_id=c)
            theirs.update_state(flat_t, flat_s)
            assert_close(to_numpy(result[f"{name}/class_{c}"]), to_numpy(theirs.result()))
    micro = keras.metrics.Recall(thresholds=0.5)
    micro.update_state(flat_t, flat_s)
    assert_close(to_numpy(result["recall/micro"]), to_numpy(micro.result()))
    f1 = keras.metrics.F1Score(average=None, threshold=0.5)
    f1.update_state(flat_t, flat_s)
    ours_f1 = metrics.F1Score(average=None)
    ours_f1.update_state(truth, scores)
    assert_close(to_numpy(ours_f1.result()), to_numpy(f1.result()), rtol=1e-5)
    iou = keras.metrics.OneHotIoU(num_classes=C, target_class_ids=list(range(C)))
    one_hot_truth = one_hot(truth.argmax(-1), C).reshape(-1, C)
    iou.update_state(one_hot_truth, flat_s)
    ours_iou = metrics.IoU(mode="multiclass", average="macro")
    ours_iou.update_state(one_hot_truth, flat_s)
    assert_close(to_numpy(ours_iou.result()), to_numpy(iou.result()), rtol=1e-5)
    at_threshold = np.full((1, C), 0.5, np.float32)
    ours_at, theirs_at = metrics.ConfusionCounts(), keras.metrics.TruePositives(thresholds=0.5)
    ours_at.update_state(np.ones((1, C)), at_threshold)
    theirs_at.update_state(np.ones((1, C)), at_threshold)
    assert ours_at.result()[:, 0].sum() == C and float(to_numpy(theirs_at.result())) == 0


def test_agrees_with_torchmetrics_multilabel_stat_scores(rng):
    import torch
    from torchmetrics.classification import MultilabelStatScores

    truth = (rng.random((3, C, 4, 5, 6)) < 0.3).astype(np.int64)
    scores = rng.random((3, C, 4, 5, 6)).astype(np.float32)  # continuous: > and >= agree
    theirs = MultilabelStatScores(num_labels=C, threshold=0.5, average=None)
    stats = theirs(torch.from_numpy(scores), torch.from_numpy(truth)).numpy()
    ours = metrics.ConfusionCounts(axis=1)
    ours.update_state(truth, scores)
    tp, fp, tn, fn = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    np.testing.assert_array_equal(ours.result(), np.stack([tp, fp, fn, tn], -1))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: metrics.Recall(average="median"), "average"),
        (lambda: metrics.Recall(num_classes=2, class_names=["a", "b", "c"]), "class_names"),
        (lambda: metrics.Recall(class_names=["a", "a"]), "unique"),
        (lambda: metrics.Recall(class_names="liver"), "list of strings"),
        (lambda: metrics.Recall(num_classes=0), "num_classes"),
        (lambda: metrics.Recall(threshold=1.5), "threshold"),
        (lambda: metrics.Recall(threshold=[0.5, 0.5], num_classes=3), "threshold"),
        (lambda: metrics.Recall(mode="binary"), "mode"),
        (lambda: metrics.Recall(zero_division=2), "zero_division"),
        (lambda: metrics.Recall(ignore_index=0), "ignore_index"),
        (lambda: metrics.Recall(from_logits="yes"), "from_logits"),
        (lambda: metrics.Recall(class_weights=[1, 2]), "class_weights"),
        (lambda: metrics.Recall(average="weighted", class_weights="uniform"), "class_weights"),
        (lambda: metrics.Recall(average="weighted", class_weights=[1, 2], num_classes=3), "one"),
        (lambda: metrics.FBetaScore(beta=0), "beta"),
        (lambda: metrics.SegmentationReport(scores=["recall", "hausdorff"]), "hausdorff"),
        (lambda: metrics.SegmentationReport(average=[None]), "average"),
    ],
)
def test_bad_configuration_fails_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_inputs_that_do_not_fit_the_mode_fail_clearly(rng):
    truth, scores = batches(rng, "sparse", n=1)[0]
    with pytest.raises(ValueError, match="mode='multilabel'"):
        metrics.Recall().update_state(truth, scores)
    m = metrics.Recall(num_classes=4, mode="sparse")
    with pytest.raises(ValueError, match="4 classes"):
        m.update_state(truth, scores)


INVALID_CASES = {
    "nan_score": (
        "multilabel",
        lambda t, s: (t, np.where(np.arange(s.size).reshape(s.shape) % 7 == 0, np.nan, s)),
    ),
    "score_above_one": (
        "multilabel",
        lambda t, s: (t, np.where(np.arange(s.size).reshape(s.shape) % 5 == 0, 1.5, s)),
    ),
    "multi_hot_two": (
        "multilabel",
        lambda t, s: (np.where(np.arange(t.size).reshape(t.shape) % 6 == 0, 2, t), s),
    ),
    "sparse_id_out_of_range": (
        "sparse",
        lambda t, s: (np.where(np.arange(t.size).reshape(t.shape) % 4 == 0, 7, t), s),
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_metrics_tally_invalid_values_eagerly_as_when_traced(rng, case):
    """Issue 12 item 7: one behaviour on every backend. Metrics never raise on values (a
    traced update cannot): an eager update, like `fit` under any backend, leaves them out and
    counts them in `invalid_count()` / the report's `invalid`; the scores equal numpy over the
    valid voxels."""
    mode, corrupt = INVALID_CASES[case]
    truth, scores = corrupt(*batches(rng, mode, n=1)[0])
    labels, _ = labels_of(np.where(truth > C - 1, 0, truth), C, mode)
    if mode == "sparse":
        valid = np.broadcast_to((truth <= C - 1)[..., None], scores.shape)
    else:
        valid = (truth <= 1) & (scores >= 0) & (scores <= 1)
    predicted = decisions(np.where(valid, scores, 0), mode)
    expected_counts = reference_counts(labels & valid, predicted & valid, None)
    expected_counts[:, 3] -= (~valid).reshape(-1, C).sum(0)  # invalid voxels are in no count
    for metric in (
        metrics.ConfusionCounts(mode=mode),
        metrics.SegmentationReport(mode=mode),
        metrics.AveragePrecision(mode=mode, num_bins=8),
        metrics.SamplewiseDice(mode=mode),
    ):
        metric.update_state(truth, scores.astype(np.float32))
        np.testing.assert_array_equal(metric.invalid_count(), (~valid).reshape(-1, C).sum(0))
    counts = metrics.ConfusionCounts(mode=mode)
    counts.update_state(truth, scores.astype(np.float32))
    np.testing.assert_array_equal(counts.result(), expected_counts)
    report = metrics.SegmentationReport(mode=mode)
    report.update_state(truth, scores.astype(np.float32))
    assert int(to_numpy(report.result()["invalid"])) == int((~valid).sum())
