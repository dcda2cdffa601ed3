"""SegmentationReport (one state, every score) and the per-volume metrics against numpy."""

import keras
import numpy as np
import pytest

from tests.conftest import to_numpy
from tests.reference import (
    assert_close,
    decisions,
    labels_of,
    reference_counts,
    reference_samplewise,
    reference_score,
)
from voxelmetrics import metrics

C = 3
NAMES = ["liver", "kidney", "tumour"]


def volumes(rng, n=4, shape=(3, 4, 5)):
    truth = (rng.random((n, *shape, C)) < 0.3).astype(np.int32)
    scores = (rng.integers(0, 9, (n, *shape, C)) / 8).astype(np.float32)
    truth[0, ..., 1] = 0  # volume 0: class 1 absent, but predicted (false positives)
    truth[1, ..., 2], scores[1, ..., 2] = 0, 0.0  # volume 1: class 2 absent and not predicted
    return truth, scores


@pytest.mark.parametrize("average", [["macro"], ["micro", "macro", "weighted"], []])
def test_report_holds_every_score_per_class_and_averaged(rng, average):
    truth, scores = volumes(rng)
    report = metrics.SegmentationReport(
        class_names=NAMES, average=average, scores=["recall", "precision", "dice", "iou"]
    )
    report.update_state(truth[:2], scores[:2])
    report.update_state(truth[2:], scores[2:])
    counts = reference_counts(truth.astype(bool), scores >= 0.5)
    result = report.result()
    expected_keys = {f"{s}/{n}" for s in ("recall", "precision", "dice", "iou") for n in NAMES}
    expected_keys |= {f"{s}/{a}" for s in ("recall", "precision", "dice", "iou") for a in average}
    assert set(result) == expected_keys | {"invalid"}
    for score in ("recall", "precision", "dice", "iou"):
        per_class = reference_score(counts, score)
        assert_close([to_numpy(result[f"{score}/{n}"]) for n in NAMES], per_class)
        for a in average:
            assert_close(to_numpy(result[f"{score}/{a}"]), reference_score(counts, score, a))
    assert float(to_numpy(result["invalid"])) == 0


def test_report_in_sparse_mode_with_default_names_and_weighted_class_weights(rng):
    ids = rng.integers(0, C, (2, 4, 4, 4))
    scores = rng.random((2, 4, 4, 4, C)).astype(np.float32)
    report = metrics.SegmentationReport(
        mode="sparse",
        average=["weighted"],
        class_weights=[0.2, 0.3, 0.5],
        scores=["specificity", "mcc"],
    )
    report.update_state(ids, scores)
    labels, _ = labels_of(ids, C, "sparse")
    counts = reference_counts(labels, decisions(scores, "sparse"))
    result = report.result()
    assert "specificity/class_0" in result and "mcc/weighted" in result
    expected = reference_score(counts, "specificity", "weighted", class_weights=[0.2, 0.3, 0.5])
    assert_close(to_numpy(result["specificity/weighted"]), expected)
    tp, fp, fn, tn = counts.T.astype(np.float64)
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert_close([to_numpy(result[f"mcc/class_{c}"]) for c in range(C)], mcc, rtol=1e-5)


def test_samplewise_dice_tells_false_positives_on_empty_truth_from_both_empty(rng):
    truth, scores = volumes(rng, n=2)
    m = metrics.SamplewiseDice(average=None, num_classes=C)
    m.update_state(truth[:1], scores[:1])  # class 1: empty truth, false positives -> 0
    assert float(to_numpy(m.result())[1]) == 0.0
    m.reset_state()
    m.update_state(truth[1:], scores[1:])  # class 2: both empty -> NaN, left out
    assert np.isnan(to_numpy(m.result())[2])


def test_samplewise_volume_weights(rng):
    truth, scores = volumes(rng)
    w = np.float32([0.5, 1.0, 2.0, 0.0])
    m = metrics.SamplewiseDice(average=None)
    m.update_state(truth, scores, sample_weight=w)
    assert_close(
        to_numpy(m.result()), reference_samplewise(truth, scores, "dice", volume_weight=w), 1e-6
    )


def test_samplewise_rejects_micro_and_round_trips():
    with pytest.raises(ValueError, match="micro"):
        metrics.SamplewiseIoU(average="micro")
    m = metrics.SamplewiseRecall(class_names=["a", "b"], zero_division=1, threshold=0.3)
    clone = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert type(clone) is type(m) and clone.get_config() == m.get_config()


@pytest.mark.parametrize("ignore_empty", [True, False])
def test_samplewise_dice_equals_monai_dice_metric(ignore_empty):
    import torch
    from monai.metrics import DiceMetric

    rng = np.random.default_rng(3)
    y_true = (rng.random((6, 5, 4, 3)) < 0.2).astype(np.float32)
    y_true[0, ..., 1] = 0  # empty truth, some false positives
    y_true[1, ..., 2] = 0
    y_pred = rng.random((6, 5, 4, 3)).astype(np.float32)
    y_pred[1, ..., 2] = 0.1  # empty truth, empty prediction
    # MONAI scores an empty truth 1 (empty prediction) or 0 unless ignore_empty: our
    # zero_division=1 is that rule.
    options = {"ignore_empty": True} if ignore_empty else {"zero_division": 1}
    m = metrics.SamplewiseDice(average=None, **options)
    m.update_state(y_true, y_pred)
    monai = DiceMetric(include_background=True, reduction="mean_batch", ignore_empty=ignore_empty)
    monai(
        torch.from_numpy(np.moveaxis(y_pred >= 0.5, -1, 1).astype(np.float32)),
        torch.from_numpy(np.moveaxis(y_true, -1, 1)),
    )
    assert_close(to_numpy(m.result()), monai.aggregate().numpy(), rtol=1e-6)
    config = m.get_config()
    assert metrics.SamplewiseDice.from_config(config).get_config() == config
