"""Every public metric x its main options through the one harness (`tests/harness.py`):
eager batches equal numpy (`tests/reference.py`), the compiled model equals eager, the config
round-trips, `reset_state` starts over; with a partial last batch, on every backend."""

import functools

import numpy as np
import pytest

from tests import harness
from tests.harness import C, Case
from tests.reference import (
    decisions,
    labels_of,
    probabilities,
    ref_asd,
    ref_assd,
    ref_hausdorff,
    ref_nsd,
    reference_at_floor,
    reference_average,
    reference_counts,
    reference_curve_score,
    reference_histogram,
    reference_optimal_threshold,
    reference_score,
    reference_surface,
    samplewise_values,
    volume_mean,
)
from voxelmetrics import metrics

NAMES = ["background", "liver", "tumour"]
B = 16  # histogram bins: the grid scores k / 8 sit on their edges
SPACING = (1.0, 1.5, 2.0)


# ----------------------------------------------------------------------------- reading options


def _inputs(y_true, y_pred, kw):
    """`(labels, scores, keep, predicted)`, class axis last: bool labels `[..., C]`, float32
    probabilities, bool kept voxels `[...]` (`ignore_index`), the metric's bool decisions."""
    mode, axis, from_logits = (
        kw.get("mode", "multilabel"),
        kw.get("axis", -1),
        kw.get("from_logits", False),
    )
    if axis != -1:
        y_pred, y_true = np.moveaxis(y_pred, axis, -1), np.moveaxis(y_true, axis, -1)
    labels, keep = labels_of(y_true, C, mode, kw.get("ignore_index"))
    scores = probabilities(y_pred, -1, from_logits, sparse=mode != "multilabel")
    return labels, scores, keep, decisions(y_pred, mode, kw.get("threshold"), from_logits)


def _zero_division(kw):
    z = kw.get("zero_division", "nan")
    return np.nan if z == "nan" else z


def _exclude(kw):
    """The ids of `exclude_from_average` (names read through `class_names`)."""
    names = kw.get("class_names") or []
    return [names.index(x) if isinstance(x, str) else x for x in kw.get("exclude_from_average", ())]


def _averaging(kw):
    """Keywords of `reference_score` / `reference_curve_score` from the metric's."""
    return {
        "average": kw.get("average", "macro"),
        "zero_division": _zero_division(kw),
        "class_weights": kw.get("class_weights"),
        "exclude": _exclude(kw),
    }


def _counts(y_true, y_pred, kw):
    labels, _, keep, predicted = _inputs(y_true, y_pred, kw)
    return reference_counts(labels[keep], predicted[keep])


def _histogram(y_true, y_pred, kw):
    labels, scores, keep, _ = _inputs(y_true, y_pred, kw)
    return reference_histogram(labels, scores, kw["num_bins"], keep)


def _class_logs(prefix, values, kw):
    names = kw.get("class_names") or [f"class_{c}" for c in range(C)]
    return {f"{prefix}/{n}": values[c] for c, n in enumerate(names)}


# ----------------------------------------------------------------------------- references


def counting(score, beta=1.0):
    """Reference of a count score metric (`reference_score` of the brute-force counts)."""

    def reference(y_true, y_pred, kw):
        counts = _counts(y_true, y_pred, kw)
        return reference_score(counts, score, beta=kw.get("beta", beta), **_averaging(kw))

    return reference


def confusion(y_true, y_pred, kw):
    return _counts(y_true, y_pred, kw)


DEFAULT_SCORES = ("recall", "precision", "dice", "iou")


def report(y_true, y_pred, kw):
    """Every `{score}/{class}` and `{score}/{average}` entry, and `invalid` (0 here)."""
    counts, options = _counts(y_true, y_pred, kw), _averaging(kw)
    averages = kw.get("average", "macro")
    averages = [averages] if isinstance(averages, str) else averages
    logs = {}
    for score in kw.get("scores", DEFAULT_SCORES):
        logs |= _class_logs(
            score, reference_score(counts, score, None, options["zero_division"]), kw
        )
        for a in averages:
            weights = options["class_weights"] if a == "weighted" else None
            logs[f"{score}/{a}"] = reference_score(
                counts, score, a, options["zero_division"], weights, options["exclude"]
            )
    return logs | {"invalid": 0.0}


def curve(name):
    """Reference of a curve metric (`reference_curve_score` of the brute-force histogram)."""

    def reference(y_true, y_pred, kw):
        return reference_curve_score(_histogram(y_true, y_pred, kw), name, **_averaging(kw))

    return reference


def at_floor(criterion, floor):
    """Reference of a constrained metric: the best rate where the floor `kw[floor]` holds."""

    def reference(y_true, y_pred, kw):
        def per_class(h, zero_division):
            return reference_at_floor(h, criterion, kw[floor], zero_division)

        return reference_curve_score(_histogram(y_true, y_pred, kw), per_class, **_averaging(kw))

    return reference


CRITERION_OPTIONS = ("beta", "min_precision", "min_recall", "min_specificity", "cost_fp", "cost_fn")


def optimal(y_true, y_pred, kw):
    """`{name}/{class}` thresholds and `{name}_{criterion}/{class}` values."""
    criterion = kw.get("criterion", "f1")
    options = {k: kw[k] for k in CRITERION_OPTIONS if k in kw}
    thresholds, values = reference_optimal_threshold(
        _histogram(y_true, y_pred, kw), criterion, **options
    )
    name = kw["name"]
    return _class_logs(name, thresholds, kw) | _class_logs(f"{name}_{criterion}", values, kw)


def best_fbeta(y_true, y_pred, kw):
    """`{name}/{class}` best F-beta values and `{name}_threshold/{class}` thresholds."""
    hist = _histogram(y_true, y_pred, kw)
    thresholds, values = reference_optimal_threshold(hist, "fbeta", beta=kw.get("beta", 1.0))
    name = kw["name"]
    return _class_logs(f"{name}_threshold", thresholds, kw) | _class_logs(name, values, kw)


def _volume_average(values, kw):
    """The mean over volumes `[N, C]` -> `[C]`, averaged over classes by the volumes."""
    mean, volumes = volume_mean(values)
    options = _averaging(kw)
    if options["average"] is None:
        return mean
    return reference_average(
        mean, volumes, options["average"], options["class_weights"], options["exclude"]
    )


def samplewise(score):
    """Reference of a sample-wise metric: the mean over volumes of per-volume scores."""

    def reference(y_true, y_pred, kw):
        labels, _, keep, predicted = _inputs(y_true, y_pred, kw)
        values = samplewise_values(
            labels, predicted, score, _zero_division(kw), kw.get("ignore_empty", False), keep
        )
        return _volume_average(values, kw)

    return reference


def surface(measure):
    """Reference of a boundary metric: brute-force per-volume values `measure(kw, c)` (a
    function of the two directions' distances for class c), meaned over volumes."""

    def reference(y_true, y_pred, kw):
        labels, _, _, predicted = _inputs(y_true, y_pred, kw)
        spacing = kw.get("spacing") or (1.0, 1.0, 1.0)
        values = np.concatenate(
            [
                reference_surface(
                    labels[..., c : c + 1], predicted[..., c : c + 1], spacing, measure(kw, c)
                )
                for c in range(C)
            ],
            axis=-1,
        )
        return _volume_average(values, kw)

    return reference


def hausdorff(kw, c):
    pooled = kw.get("convention") == "medpy"
    return ref_hausdorff(kw.get("percentile", 95), kw.get("directed", False), pooled)


def assd(kw, c):
    return ref_assd if kw.get("symmetric", True) else ref_asd


def nsd(kw, c):
    tolerance = kw["tolerance"]
    return ref_nsd(tolerance[c] if isinstance(tolerance, list) else tolerance)


# ----------------------------------------------------------------------------- cases


def _cases():
    m, bins = metrics, {"num_bins": B}
    sparse, multiclass = {"mode": "sparse"}, {"mode": "multiclass"}
    ignored = {"mode": "sparse", "ignore_index": 255}
    return [
        # Count scores: every average, thresholds, logits, exclusive modes, names.
        Case(m.Recall, {"average": None}, "multilabel", counting("recall")),
        Case(m.Recall, {}, "multilabel", counting("recall")),  # macro skips the NaN class 2
        Case(m.Recall, {"average": "weighted", **ignored}, "sparse_ignored", counting("recall")),
        Case(
            m.Recall,
            {"average": "micro", "from_logits": True, "threshold": 0.5},
            "logits",
            counting("recall"),
        ),
        Case(
            m.Precision, {"average": None, "zero_division": 0}, "multilabel", counting("precision")
        ),
        Case(m.Precision, {"average": "macro", **multiclass}, "one_hot", counting("precision")),
        Case(
            m.Precision,
            {
                "average": "weighted",
                "class_weights": "inverse_frequency",
                "threshold": [0.25, 0.5, 0.75],
            },
            "multilabel",
            counting("precision"),
        ),
        Case(m.Specificity, {"average": "micro", **sparse}, "sparse", counting("specificity")),
        Case(
            m.Specificity, {"average": None, "axis": 1}, "channels_first", counting("specificity")
        ),
        Case(m.Dice, {"average": None, "class_names": NAMES}, "multilabel", counting("dice")),
        Case(m.Dice, {"exclude_from_average": [0], **multiclass}, "one_hot", counting("dice")),
        Case(
            m.Dice,
            {"average": "weighted", "from_logits": True, **sparse},
            "sparse_logits",
            counting("dice"),
        ),
        Case(
            m.IoU,
            {"average": "weighted", "class_weights": [0.2, 0.3, 0.5]},
            "multilabel",
            counting("iou"),
        ),
        Case(m.IoU, {"average": None, "threshold": 0.4, **multiclass}, "one_hot", counting("iou")),
        Case(m.IoU, {"average": "micro", "axis": 1}, "channels_first", counting("iou")),
        Case(m.FBetaScore, {"beta": 2.0, "average": None}, "multilabel", counting("fbeta")),
        Case(
            m.FBetaScore,
            {"beta": 0.5, "average": "micro", **ignored},
            "sparse_ignored",
            counting("fbeta"),
        ),
        Case(m.F1Score, {"zero_division": 1}, "multilabel", counting("dice")),
        Case(m.F1Score, {"average": None, "from_logits": True}, "logits", counting("dice")),
        Case(m.ConfusionCounts, {}, "multilabel", confusion),
        Case(m.ConfusionCounts, {**ignored}, "sparse_ignored", confusion),
        Case(
            m.ConfusionCounts,
            {"threshold": [0.0, 0.5, 1.0], "from_logits": True},
            "logits",
            confusion,
        ),
        Case(m.ConfusionCounts, {"axis": 1}, "channels_first", confusion),
        # One report per input kind (its entries are not prefixed by its name).
        Case(m.SegmentationReport, {"class_names": NAMES}, "multilabel", report),
        Case(
            m.SegmentationReport,
            {
                "scores": [
                    "recall",
                    "precision",
                    "specificity",
                    "dice",
                    "iou",
                    "balanced_accuracy",
                    "mcc",
                ],
                "average": ["micro", "macro", "weighted"],
                "class_names": NAMES,
                "exclude_from_average": ["background"],
                **ignored,
            },
            "sparse_ignored",
            report,
        ),
        Case(
            m.SegmentationReport,
            {
                "average": ["weighted"],
                "class_weights": [1.0, 2.0, 3.0],
                "zero_division": 0,
                **multiclass,
            },
            "one_hot",
            report,
        ),
        # Curves: bins on the grid scores' edges, every average, exclusive modes, logits.
        Case(
            m.AveragePrecision, {"average": None, **bins}, "multilabel", curve("average_precision")
        ),
        Case(
            m.AveragePrecision,
            {"average": "weighted", **ignored, **bins},
            "sparse_ignored",
            curve("average_precision"),
        ),
        Case(
            m.AveragePrecision,
            {"average": "micro", "from_logits": True, **bins},
            "logits",
            curve("average_precision"),
        ),
        Case(m.PRAUC, {"average": "macro", **bins}, "multilabel", curve("pr_auc")),
        Case(
            m.PRAUC,
            {"average": None, "from_logits": True, **sparse, **bins},
            "sparse_logits",
            curve("pr_auc"),
        ),
        Case(
            m.ROCAUC,
            {"average": None, "class_names": NAMES, **bins},
            "multilabel",
            curve("roc_auc"),
        ),
        Case(
            m.ROCAUC,
            {"average": "weighted", "class_weights": "inverse_frequency", **multiclass, **bins},
            "one_hot",
            curve("roc_auc"),
        ),
        Case(
            m.ROCAUC,
            {"exclude_from_average": [2], "axis": 1, **bins},
            "channels_first",
            curve("roc_auc"),
        ),
        Case(
            m.RecallAtPrecision,
            {"min_precision": 0.5, "average": None, **bins},
            "multilabel",
            at_floor("recall_at_precision", "min_precision"),
        ),
        Case(
            m.RecallAtPrecision,
            {"min_precision": 0.3, "average": "micro", **sparse, **bins},
            "sparse",
            at_floor("recall_at_precision", "min_precision"),
        ),
        Case(
            m.PrecisionAtRecall,
            {"min_recall": 0.75, "average": None, "from_logits": True, **bins},
            "logits",
            at_floor("precision_at_recall", "min_recall"),
        ),
        Case(
            m.SensitivityAtSpecificity,
            {"specificity": 0.8, "zero_division": 0, **bins},
            "multilabel",
            at_floor("recall_at_specificity", "specificity"),
        ),
        Case(
            m.SensitivityAtSpecificity,
            {"specificity": 1.0, "average": None, **ignored, **bins},
            "sparse_ignored",
            at_floor("recall_at_specificity", "specificity"),
        ),
        Case(
            m.SpecificityAtSensitivity,
            {"sensitivity": 1.0, "average": None, **bins},
            "multilabel",
            at_floor("specificity_at_recall", "sensitivity"),
        ),
        Case(
            m.SpecificityAtSensitivity,
            {"sensitivity": 0.5, "average": "weighted", **multiclass, **bins},
            "one_hot",
            at_floor("specificity_at_recall", "sensitivity"),
        ),
        Case(
            m.OptimalThreshold,
            {"criterion": "youden", "class_names": NAMES, **bins},
            "multilabel",
            optimal,
        ),
        Case(
            m.OptimalThreshold,
            {"criterion": "cost", "cost_fp": 1.0, "cost_fn": 5.0, **ignored, **bins},
            "sparse_ignored",
            optimal,
        ),
        Case(
            m.OptimalThreshold,
            {"criterion": "recall_at_precision", "min_precision": 0.6, "from_logits": True, **bins},
            "logits",
            optimal,
        ),
        Case(m.OptimalThreshold, {"from_logits": True, **sparse, **bins}, "sparse_logits", optimal),
        Case(m.BestFBeta, {"beta": 2.0, **bins}, "multilabel", best_fbeta),
        Case(m.BestFBeta, {"class_names": NAMES, **multiclass, **bins}, "one_hot", best_fbeta),
        # Per-volume means: the empty-class policy, ignore_empty, exclusive modes.
        Case(m.SamplewiseDice, {"average": None}, "multilabel", samplewise("dice")),
        Case(
            m.SamplewiseDice,
            {"zero_division": 1, "exclude_from_average": [0], **ignored},
            "sparse_ignored",
            samplewise("dice"),
        ),
        Case(
            m.SamplewiseDice,
            {"ignore_empty": True, "average": "weighted"},
            "multilabel",
            samplewise("dice"),
        ),
        Case(
            m.SamplewiseIoU,
            {"average": None, "zero_division": 0, **multiclass},
            "one_hot",
            samplewise("iou"),
        ),
        Case(
            m.SamplewiseIoU,
            {"average": "weighted", "class_weights": [1.0, 0.0, 2.0], "from_logits": True},
            "logits",
            samplewise("iou"),
        ),
        Case(
            m.SamplewiseRecall,
            {"average": None, "class_names": NAMES},
            "multilabel",
            samplewise("recall"),
        ),
        Case(m.SamplewiseRecall, {"threshold": 0.25, **sparse}, "sparse", samplewise("recall")),
        # Boundaries: percentiles, directed, conventions, spacing, tolerances, argmax.
        Case(m.HausdorffDistance, {"average": None}, "masks", surface(hausdorff)),
        Case(
            m.HausdorffDistance,
            {"percentile": None, "spacing": SPACING, "average": None},
            "multilabel",
            surface(hausdorff),
        ),
        Case(
            m.HausdorffDistance,
            {"percentile": 50, "directed": True, "exclude_from_average": [2]},
            "masks",
            surface(hausdorff),
        ),
        Case(
            m.HausdorffDistance,
            {"convention": "medpy", "average": None},
            "masks",
            surface(hausdorff),
        ),
        # A percentile of anisotropic distances, in a graph whose batch is unknown.
        Case(
            m.HausdorffDistance, {"spacing": SPACING, "average": None}, "masks", surface(hausdorff)
        ),
        Case(
            m.HausdorffDistance,
            {"convention": "medpy", "spacing": SPACING, "percentile": 90},
            "multilabel",
            surface(hausdorff),
        ),
        Case(
            m.AverageSurfaceDistance, {"spacing": SPACING, "average": None}, "masks", surface(assd)
        ),
        Case(
            m.AverageSurfaceDistance,
            {"symmetric": False, "average": None, **sparse},
            "sparse",
            surface(assd),
        ),
        Case(m.SurfaceDice, {"tolerance": 1.0, "average": "weighted"}, "masks", surface(nsd)),
        Case(
            m.SurfaceDice,
            {"tolerance": [1.0, 1.5, 2.0], "spacing": SPACING, "average": None, **multiclass},
            "one_hot",
            surface(nsd),
        ),
    ]


CASES = harness.named(_cases())


@functools.cache
def _compiled(kind: str) -> dict:
    """`compiled_logs` of every case of `kind`, built once per module run."""
    return harness.compiled_logs(kind, [case for case in CASES if case.kind == kind])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case):
    harness.run_case(case, _compiled(case.kind))


def test_every_public_metric_has_a_case():
    """A metric added to `voxelmetrics.metrics.__all__` without a harness case fails here."""
    covered = {case.cls.__name__ for case in CASES}
    assert sorted(set(metrics.__all__) - covered) == []


def test_every_input_kind_is_used():
    assert {case.kind for case in CASES} == set(harness.INPUTS)
