"""`exclude_from_average`: classes reported per class but left out of every average.

Each metric family's averages with a class left out equal the ops' averages over the
remaining classes' totals, its per-class values are unchanged, and the samplewise Dice
equals MONAI's `DiceMetric(include_background=False)`.
"""

import keras
import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

import voxelmetrics as vm
from tests.conftest import to_numpy
from tests.reference import assert_close, reference_counts, reference_histogram
from voxelmetrics import metrics

C, B = 4, 16
NAMES = ["background", "liver", "kidney", "tumour"]


def batch(rng, shape=(3, 5, 6, 4)):
    truth = (rng.random((*shape, C)) < 0.3).astype(np.int32)
    truth[..., 3] = 0  # no positives: undefined, skipped by macro
    scores = rng.random((*shape, C)).astype(np.float32)
    scores[..., 1] = rng.integers(0, B + 1, shape) / B  # on the bin edges
    return truth, scores


@pytest.mark.parametrize("exclude", [[0], ["background"], ["background", 2], ("tumour",)])
@pytest.mark.parametrize(
    ("make", "op", "kind"),
    [
        (lambda **kw: metrics.Recall(**kw), vm.recall, "counts"),
        (lambda **kw: metrics.Dice(**kw), vm.dice, "counts"),
        (lambda **kw: metrics.FBetaScore(beta=2.0, **kw), vm.fbeta_score, "counts"),
        (lambda **kw: metrics.AveragePrecision(num_bins=B, **kw), vm.average_precision, "hist"),
        (lambda **kw: metrics.ROCAUC(num_bins=B, **kw), vm.roc_auc, "hist"),
    ],
)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_averages_leave_the_excluded_classes_out(rng, make, op, kind, exclude, average):
    truth, scores = batch(rng)
    m = make(average=average, class_names=NAMES, exclude_from_average=exclude)
    per_class = make(average=None, class_names=NAMES, exclude_from_average=exclude)
    m.update_state(truth, scores)
    per_class.update_state(truth, scores)
    ids = [NAMES.index(x) if isinstance(x, str) else x for x in exclude]
    kept = [c for c in range(C) if c not in ids]
    if kind == "counts":
        totals = reference_counts(truth.astype(bool), scores >= np.float32(0.5))
    else:
        totals = reference_histogram(truth.astype(bool), scores, B)
    kwargs = {"beta": 2.0} if op is vm.fbeta_score else {}
    expected = to_numpy(op(totals[kept], average=average, **kwargs))
    assert_close(to_numpy(m.result()), expected, rtol=1e-5)
    every = to_numpy(op(totals, **kwargs))  # per class: every class, excluded or not
    got = per_class.result()
    assert_close([to_numpy(got[f"{per_class.name}/{n}"]) for n in NAMES], every, rtol=1e-5)


def test_class_weights_follow_the_classes_kept(rng):
    truth, scores = batch(rng)
    weights = [5.0, 1.0, 2.0, 3.0]
    m = metrics.Precision(average="weighted", class_weights=weights, exclude_from_average=[0])
    m.update_state(truth, scores)
    counts = reference_counts(truth.astype(bool), scores >= np.float32(0.5))
    expected = vm.precision(counts[1:], average="weighted", class_weights=weights[1:])
    assert_close(to_numpy(m.result()), to_numpy(expected), rtol=1e-6)


def test_segmentation_report_and_constrained_metrics(rng):
    truth, scores = batch(rng)
    report = metrics.SegmentationReport(
        average=["micro", "macro"], class_names=NAMES, exclude_from_average=["background"]
    )
    at = metrics.SensitivityAtSpecificity(0.8, num_bins=B, exclude_from_average=[0])
    report.update_state(truth, scores)
    at.update_state(truth, scores)
    counts = reference_counts(truth.astype(bool), scores >= np.float32(0.5))
    logs = report.result()
    assert_close(to_numpy(logs["dice/macro"]), to_numpy(vm.dice(counts[1:], average="macro")))
    assert_close(to_numpy(logs["recall/micro"]), to_numpy(vm.recall(counts[1:], average="micro")))
    assert_close(to_numpy(logs["dice/background"]), to_numpy(vm.dice(counts))[0])
    every = metrics.SensitivityAtSpecificity(0.8, num_bins=B, average=None)
    every.update_state(truth, scores)
    assert_close(to_numpy(at.result()), np.nanmean(to_numpy(every.result())[1:]), rtol=1e-6)


def test_samplewise_dice_equals_monai_without_background(rng):
    truth, scores = batch(rng, shape=(4, 6, 5, 3))
    truth[2, ..., 2] = 0  # one volume without kidney: NaN for it, skipped by both
    m = metrics.SamplewiseDice(exclude_from_average=[0])
    m.update_state(truth, scores)
    monai = DiceMetric(
        include_background=False, reduction="mean_batch", ignore_empty=True, get_not_nans=True
    )
    pred = torch.as_tensor(np.moveaxis(scores >= 0.5, -1, 1).astype(np.float32))
    monai(pred, torch.as_tensor(np.moveaxis(truth, -1, 1).astype(np.float32)))
    per_class, volumes = (x.numpy() for x in monai.aggregate())  # classes 1..3
    assert volumes.tolist() == [4, 3, 0]  # tumour has no truth: no volume counts
    ours = metrics.SamplewiseDice(ignore_empty=True, exclude_from_average=[0])
    ours.update_state(truth, scores)
    assert_close(to_numpy(ours.result()), per_class[volumes > 0].mean(), rtol=1e-6)
    assert np.isfinite(to_numpy(m.result()))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: metrics.Recall(exclude_from_average=["liver"]), "neither a class id"),
        (lambda: metrics.Recall(class_names=NAMES, exclude_from_average=["spleen"]), "spleen"),
        (lambda: metrics.Dice(num_classes=4, exclude_from_average=[4]), r"in \[0, 4\)"),
        (lambda: metrics.IoU(num_classes=2, exclude_from_average=[0, 1]), "every class"),
        (lambda: metrics.Recall(exclude_from_average=[-1]), "exclude_from_average '-1'"),
    ],
)
def test_bad_exclusions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_id_past_the_inferred_class_count_is_refused_at_the_first_batch(rng):
    truth, scores = batch(rng)
    m = metrics.Recall(exclude_from_average=[7])
    with pytest.raises(ValueError, match=r"exclude_from_average '7' .* in \[0, 4\)"):
        m.update_state(truth, scores)


def test_config_round_trip():
    m = metrics.AveragePrecision(class_names=NAMES, exclude_from_average=["background", 3])
    clone = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert clone.exclude_from_average == [0, 3] == m.exclude_from_average
    assert clone.get_config() == m.get_config()
