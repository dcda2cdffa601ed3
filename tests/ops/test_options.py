"""`ops._options` and `ops.criterion`: each option checked in one place, by every layer."""

import re

import numpy as np
import pytest

import voxelmetrics as vm
from voxelmetrics import losses, metrics
from voxelmetrics.calibration import ThresholdCalibration
from voxelmetrics.ops._options import NUM_BINS, check_class_names, check_int
from voxelmetrics.ops.criterion import CRITERIA, Criterion


@pytest.mark.parametrize("value", [8, np.int64(8), np.int32(8), np.uint8(8)])
def test_integer_options_accept_numpy_integers(value):
    assert check_int("num_bins", value) == 8 and type(check_int("num_bins", value)) is int
    assert metrics.AveragePrecision(num_bins=value).num_bins == 8
    assert metrics.Recall(num_classes=value).num_classes == 8
    hist = vm.score_histogram(np.array([[1, 0]]), np.float32([[0.7, 0.2]]), value)
    assert tuple(hist.shape) == (2, 8, 2)


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "8", None])
def test_integer_options_refuse_the_rest(value):
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1"):
        check_int("num_bins", value)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1"):
        vm.score_histogram(np.array([[1]]), np.float32([[0.5]]), value)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["liver", "liver"], r"unique; \['liver'\]"),
        (["liver", "macro"], "reserved"),
        (["Micro"], "reserved"),
        (["a", "samplewise"], "reserved"),
        ("liver", "list of strings"),
    ],
)
def test_class_names_refuse_duplicates_and_reserved_names(names, message):
    with pytest.raises(ValueError, match=message):
        check_class_names(names)
    for metric in (
        metrics.Dice,
        metrics.SegmentationReport,
        metrics.AveragePrecision,
        metrics.SamplewiseDice,
        metrics.HausdorffDistance,
    ):
        with pytest.raises(ValueError, match=message):
            metric(class_names=names)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: metrics.Recall(from_logits=v),
        lambda v: losses.SoftDiceLoss(from_logits=v),
        lambda v: vm.ApplyThresholds(from_logits=v),
        lambda v: vm.confusion_counts(np.array([[1]]), np.float32([[0.5]]), from_logits=v),
    ],
)
def test_from_logits_is_checked_alike_everywhere(make):
    with pytest.raises(ValueError, match="from_logits must be"):
        make("relu")


def test_one_num_bins_default():
    assert NUM_BINS == 1024
    assert metrics.ROCAUC().num_bins == NUM_BINS
    assert ThresholdCalibration(([0], [0])).num_bins == NUM_BINS
    assert vm.score_histogram(np.array([[1]]), np.float32([[0.5]])).shape[1] == NUM_BINS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f1", Criterion()),
        ("fbeta:2", Criterion("fbeta", beta=2.0)),
        ("recall_at_precision:0.8", Criterion("recall_at_precision", min_precision=0.8)),
        ("precision_at_recall:0.25", Criterion("precision_at_recall", min_recall=0.25)),
        ("cost:1:5", Criterion("cost", cost_fp=1.0, cost_fn=5.0)),
        ("recall_at_specificity:0.95", Criterion("recall_at_specificity", min_specificity=0.95)),
        ("specificity_at_recall:0.9", Criterion("specificity_at_recall", min_recall=0.9)),
    ],
)
def test_criterion_parse_and_text_round_trip(text, expected):
    parsed = Criterion.parse(text)
    assert parsed == expected and hash(parsed) == hash(expected)
    assert Criterion.parse(str(parsed)) == parsed
    assert Criterion.of(text) == Criterion.of(expected.name, **expected.options) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recall", "not one of"),
        ("fbeta", "not one of"),
        ("fbeta:x", "needs numbers"),
        ("recall_at_precision:1.5", r"in \[0, 1\]"),
        ("fbeta:0", "beta must be > 0"),
        ("cost:0:0", "not both be 0"),
        ("recall_at_specificity", "not one of"),
        ("recall_at_specificity:2", r"min_specificity must be a number in \[0, 1\]"),
    ],
)
def test_criterion_parse_refuses_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        Criterion.parse(text)


def test_criterion_with_options_twice_is_refused():
    with pytest.raises(ValueError, match="already holds"):
        Criterion.of(Criterion("fbeta", beta=2.0), beta=3.0)
    with pytest.raises(ValueError, match="already holds"):
        Criterion.of("fbeta:2", beta=3.0)


def test_every_spelling_gives_the_same_threshold():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.3).astype(np.int32)
    s = np.clip(y * 0.3 + rng.random((200, 2)) * 0.7, 0, 1).astype(np.float32)
    hist = vm.score_histogram(y, s, 32)
    for name in CRITERIA:
        options = {"fbeta": {"beta": 2.0}, "cost": {"cost_fp": 1.0, "cost_fn": 4.0}}.get(name, {})
        options = {"recall_at_precision": {"min_precision": 0.4}}.get(name, options)
        options = {"precision_at_recall": {"min_recall": 0.6}}.get(name, options)
        options = {"specificity_at_recall": {"min_recall": 0.6}}.get(name, options)
        options = {"recall_at_specificity": {"min_specificity": 0.7}}.get(name, options)
        criterion = Criterion(name, **options)
        by_value = [np.asarray(a) for a in vm.optimal_threshold(hist, criterion)]
        by_text = [np.asarray(a) for a in vm.optimal_threshold(hist, str(criterion))]
        spellings = [by_text]
        if "min_specificity" not in options:  # the keywords before Criterion existed
            spellings.append([np.asarray(a) for a in vm.optimal_threshold(hist, name, **options)])
        for other in spellings:
            for a, b in zip(by_value, other, strict=True):
                np.testing.assert_array_equal(a, b)
        metric = metrics.OptimalThreshold(criterion, num_bins=32, num_classes=2)
        metric.update_state(y, s)
        np.testing.assert_array_equal(
            [float(v) for k, v in metric.result().items() if "/" in k][:2], by_value[0]
        )


def test_one_threshold_rule_for_the_surface_ops_the_metrics_and_the_engine():
    """Issue 22: `ops/surface.py` had its own threshold check (other count message, tuples);
    now the surface ops, `working_threshold` and the engine's vector share
    `check_threshold_values`."""
    from voxelmetrics.metrics._base import working_threshold
    from voxelmetrics.ops._options import check_threshold_values, threshold_per_class

    t = np.zeros((1, 4, 4, 1), bool)
    t[0, 1:3, 1:3] = True
    count = "threshold has 2 values but there are 1 classes"
    for check in (
        lambda v: vm.hausdorff_distance(t, np.float32(t), threshold=v, spatial_dims=2),
        lambda v: working_threshold(v, 1, "multilabel"),
        lambda v: check_threshold_values(v, 1),
        lambda v: threshold_per_class(v, 1),
    ):
        with pytest.raises(ValueError, match=count):
            check([0.5, 0.5])
        with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
            check(1.5)
    with pytest.raises(ValueError, match=r"\(from --num-classes\)"):
        threshold_per_class([0.1, 0.2], 3, classes_from="--num-classes")
    assert threshold_per_class([0.25], 3).tolist() == [0.25] * 3
    assert threshold_per_class(np.float32([0.2, 0.7]), 2).dtype == np.float64


def test_one_class_name_or_id_rule_for_exclude_and_the_surface_options():
    """Issue 22: `evaluate/surface.py` `class_id` resolved names and ids by its own rule and
    message; it now calls `class_index`, the rule of `check_exclude`."""
    from voxelmetrics.evaluate.surface import class_id
    from voxelmetrics.ops._options import check_exclude, class_index

    names = ["background", "liver", "tumour"]
    for item in ("liver", "2", 2, " 1"):
        want = class_index(item, names, None, name="--exclude")
        assert class_id(item, names, "--exclude") == want
        assert check_exclude([item], names, None, name="--exclude") == [want]
    assert class_id("class_2", [], "--exclude") == 2  # the default names, when none given
    for item, known, message in (
        ("kidney", names, "--exclude 'kidney' is neither a class name (background, liver"),
        ("liver", [], "--exclude 'liver' is neither a class id >= 0 nor a class name (none"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            class_id(item, known, "--exclude")
        with pytest.raises(ValueError, match=re.escape(message)):
            check_exclude([item], known or None, None, name="--exclude")


def test_one_default_class_name_rule_for_metrics_report_and_surface_options():
    """`class_N` was written by `evaluate/report.py`, `metrics/_base.py` and parsed again by
    `evaluate/surface.py`; `default_class_names` writes it, `class_index` reads it back."""
    from voxelmetrics.evaluate import report
    from voxelmetrics.metrics import Dice
    from voxelmetrics.ops._options import class_index, default_class_names

    assert default_class_names(3) == ["class_0", "class_1", "class_2"]
    assert report.default_class_names is default_class_names
    assert Dice(num_classes=2, average=None).names == default_class_names(2)
    for c, text in enumerate(default_class_names(3)):
        assert class_index(text, None, 3, name="-", default_names=True) == c
    with pytest.raises(ValueError, match="'class_3' is neither a class id in"):
        class_index("class_3", None, 3, name="-", default_names=True)
    with pytest.raises(ValueError, match="'class_1' is neither a class id"):
        class_index("class_1", None, 3, name="-")  # only where the caller says so


def test_lesion_options_are_the_shared_choice_and_fraction_rules():
    """`LesionRequest` and the CLI's `request_from_options` checked connectivity and the match
    threshold each with its own copy; both call `check_choice` / `check_fraction` now."""
    from voxelmetrics.evaluate.lesions import LesionRequest, request_from_options

    for make, prefix in (
        (lambda **k: LesionRequest("panoptica", **k), ""),
        (lambda **k: request_from_options("panoptica", **k), "--"),
    ):
        with pytest.raises(ValueError, match=f"{prefix}connectivity must be one of"):
            make(connectivity=8)
        with pytest.raises(ValueError, match=r"must be a number in \[0, 1\]"):
            make(match_threshold=1.5)


def test_surface_option_checks_live_in_options():
    from voxelmetrics.ops import _options, surface, surface_rules

    assert surface_rules.CONVENTIONS == _options.SURFACE_CONVENTIONS
    assert surface_rules.check_convention is _options.check_convention
    for name in ("check_spacing", "check_tolerance", "check_percentile"):
        assert getattr(surface, name) is getattr(_options, name)  # metrics/surface.py reads it
    with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3"):
        _options.check_spatial_dims(4)
