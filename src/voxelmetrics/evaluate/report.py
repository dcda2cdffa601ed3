"""The report's numbers from an `Evaluation`: the summary dict behind report.json, report.csv
and the terminal table.

Every number comes from the ops (scores, curves, optimal thresholds); this module only
arranges them. The files are written by `formats` (JSON, CSV) and committed by
`atomic_writes`; `terminal` prints the table.
"""

import math
from collections.abc import Sequence

import numpy as np

from voxelmetrics.defaults import BOOTSTRAP, CRITERION, ZERO_DIVISION
from voxelmetrics.evaluate.records import NO_CURVES, Evaluation
from voxelmetrics.evaluate.statistics import case_statistics_table
from voxelmetrics.evaluate.surface import MEASURES as SURFACE_MEASURES
from voxelmetrics.evaluate.surface import MISSED as SURFACE_MISSED
from voxelmetrics.ops import _options
from voxelmetrics.ops._host import on_host, xp
from voxelmetrics.ops._options import default_class_names as default_class_names  # cli reads it
from voxelmetrics.ops.criterion import Criterion
from voxelmetrics.ops.curves import average_precision, roc_auc
from voxelmetrics.ops.fused import counts_at_bins
from voxelmetrics.ops.histogram import bin_index
from voxelmetrics.ops.scores import (
    average_scores,
    dice,
    iou,
    num_valid_classes,
    precision,
    recall,
    specificity,
)
from voxelmetrics.ops.thresholds import optimal_threshold

COUNT_METRICS = {
    "recall": recall,
    "precision": precision,
    "specificity": specificity,
    "dice": dice,
    "iou": iou,
}
CURVE_METRICS = {"average_precision": average_precision, "roc_auc": roc_auc}
METRICS = (*COUNT_METRICS, *CURVE_METRICS)
AVERAGES = ("micro", "macro", "weighted")


def check_class_names(names: Sequence[str]) -> list[str]:
    """The names as a list, or a ValueError for an empty, repeated or reserved name.

    The rule is the ops' one (`_options.check_class_names`: unique, none of the averages'
    names); the report adds that a name must not be blank, as it keys a CSV row.
    """
    names = [str(n) for n in names]
    empty = [i for i, n in enumerate(names) if not n.strip()]
    if empty:
        raise ValueError(f"class names must not be empty; name {empty[0]} of {names} is.")
    return _options.check_class_names(names)


def parse_criterion(text: str) -> tuple[str, dict]:
    """`"f1"`, `"fbeta:2"`, `"recall_at_precision:0.9"`, `"precision_at_recall:0.8"`,
    `"cost:1:5"` -> `(name, options)`, through `Criterion.parse` (the one spelling rule).

    Example:
        >>> parse_criterion("recall_at_precision:0.9")
        ('recall_at_precision', {'min_precision': 0.9})
    """
    criterion = Criterion.parse(text)
    return criterion.name, criterion.options


def json_number(x):
    """A JSON-ready value: ints stay ints, NaN becomes None, +-inf the strings "inf" and
    "-inf" (strict JSON has no infinity; a missed structure's Hausdorff distance is one),
    and every other float its shortest decimal that reads back as the same float32 (the
    precision the scores are computed in): 0.6, not 0.6000000238418579.

    Example:
        >>> [json_number(x) for x in (np.float32(0.6), np.float64("nan"), np.inf, 3)]
        [0.6, None, 'inf', 3]
    """
    if isinstance(x, int | np.integer):
        return int(x)
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(str(np.float32(x)))


def metric_names(hard: bool, surface: Sequence[str] = ()) -> tuple[str, ...]:
    """The reported metrics: every one for scores, the count metrics for hard predictions,
    then the boundary measures asked for (`--surface`)."""
    return (*(COUNT_METRICS if hard else METRICS), *surface)


def _surface_measures(evaluation: Evaluation) -> tuple[str, ...]:
    request = evaluation.options.surface
    return () if request is None else request.measures


def add_surface(numbers: dict, surface: dict[str, np.ndarray], exclude: Sequence[int]) -> dict:
    """One case's `scope_numbers` with its boundary measures added: per class, and the
    macro mean over the defined classes not in `exclude` (micro and weighted averages pool
    counts, which distances have not)."""
    for name, values in surface.items():
        if name == SURFACE_MISSED:  # which classes were missed on one side: not a measure
            continue
        kept = np.delete(np.asarray(values, np.float64), list(exclude))
        numbers["classes"][name] = np.asarray(values, np.float64)
        with on_host():
            macro = average_scores(kept, np.ones_like(kept), average="macro")
            numbers["averages"]["macro"][name] = np.float64(macro)
            numbers["valid"][name] = int(num_valid_classes(kept))
    return numbers


def _numbers(counts, histogram, *, zero_division, exclude, criteria):
    """Every float of one or several scopes from counts `[..., C, 4]` and histograms
    `[..., C, B, 2]` (None for hard predictions): per-class metrics `[..., C]`, the averages
    over the classes not in `exclude` `[...]`, how many were valid, and each criterion's
    threshold, value and bin `[..., C]`.

    The ops' own formulas through `_host.xp`: run inside `on_host()` (as `scope_numbers`
    does) they are numpy float64 on int64 totals; outside, the same code traces in-graph.
    """
    c = xp.shape(counts)[-2]
    kept = np.array([i for i in range(c) if i not in exclude], np.int32)
    # (name, formula, totals, the totals' class axis)
    pairs = [(k, f, counts, -2) for k, f in COUNT_METRICS.items()]
    if histogram is not None:
        pairs += [(k, f, histogram, -3) for k, f in CURVE_METRICS.items()]
    classes = {k: f(x, zero_division=zero_division) for k, f, x, _ in pairs}
    averages = {
        average: {
            k: f(xp.take(x, kept, axis=axis), average=average, zero_division=zero_division)
            for k, f, x, axis in pairs
        }
        for average in AVERAGES
    }
    valid = {k: num_valid_classes(xp.take(v, kept, axis=-1)) for k, v in classes.items()}
    optimal = {}
    for text in criteria:
        t, v = optimal_threshold(histogram, Criterion.parse(text))
        k = bin_index(xp.where(xp.isnan(t), 0.0, t), xp.shape(histogram)[-2])
        optimal[text] = {"threshold": t, "value": v, "bin": k}
    return {"classes": classes, "averages": averages, "valid": valid, "optimal": optimal}


def scopes_numbers(counts, histogram, zero_division=ZERO_DIVISION, exclude=(), criteria=()) -> list:
    """`_numbers` of S scopes at once on the host, one dict per scope: int64 totals
    `[S, C, 4]` and `[S, C, B, 2]` in, numpy float64 out (bins and valid counts int64),
    nothing compiled; plus the exact int64 counts at each criterion's threshold
    (`counts_at_bins` on the int64 histograms; -1 where no threshold was found).

    One call for every case and the pooled totals: the host's numpy calls do not grow with
    the number of cases, only the arrays do.
    """
    counts = np.asarray(counts, np.int64)
    histogram = None if histogram is None else np.asarray(histogram, np.int64)
    with on_host():
        numbers = _numbers(
            counts,
            histogram,
            zero_division=zero_division,
            exclude=tuple(exclude),
            criteria=tuple(criteria),
        )
        for o in numbers["optimal"].values():
            exact = counts_at_bins(histogram, o["bin"])
            o["counts"] = np.where(np.isnan(o["threshold"])[..., None], -1, exact)
    return [_scope_of(numbers, s) for s in range(counts.shape[0])]


def _scope_of(tree, s: int):
    """Scope `s` of every array of a `_numbers` tree."""
    if isinstance(tree, dict):
        return {k: _scope_of(v, s) for k, v in tree.items()}
    return np.asarray(tree)[s]


def scope_numbers(counts, histogram, zero_division=ZERO_DIVISION, exclude=(), criteria=()) -> dict:
    """`scopes_numbers` of one scope: counts `[C, 4]`, histogram `[C, B, 2]` or None.

    Example:
        >>> counts = np.array([[8, 2, 2, 88], [0, 0, 0, 100]])
        >>> float(scope_numbers(counts, None, exclude=[1])["averages"]["macro"]["dice"])
        0.8
    """
    histogram = None if histogram is None else np.asarray(histogram)[None]
    return scopes_numbers(np.asarray(counts)[None], histogram, zero_division, exclude, criteria)[0]


def _all_scopes(evaluation: Evaluation, zero_division, exclude, criteria=()) -> tuple[list, dict]:
    """`(per case, pooled)` numbers, from one `scopes_numbers` call over every case and the
    pooled totals."""
    cases = evaluation.cases
    counts = np.stack([c.counts for c in cases] + [evaluation.counts])
    histogram = None
    if not evaluation.hard:
        histogram = np.stack([c.histogram for c in cases] + [evaluation.histogram])
    numbers = scopes_numbers(counts, histogram, zero_division, exclude, criteria)
    return numbers[:-1], numbers[-1]


def class_metrics(
    counts: np.ndarray, histogram: np.ndarray | None, zero_division=ZERO_DIVISION
) -> dict:
    """Per-class metrics `{name: float64 [C]}` from exact counts and a histogram (curve
    metrics only with a histogram)."""
    return scope_numbers(counts, histogram, zero_division)["classes"]


def averaged_metrics(
    counts, histogram, zero_division=ZERO_DIVISION, exclude: Sequence[int] = ()
) -> dict:
    """`{average: {metric: float, "valid_classes": int}}` for micro, macro and weighted.

    Classes in `exclude` (indices) are left out of every average (reported per class only).
    """
    return _averages(scope_numbers(counts, histogram, zero_division, exclude))


def _in_order(row: dict) -> dict:
    """`row` with its metrics in report order, boundary measures last."""
    return {k: row[k] for k in (*METRICS, *SURFACE_MEASURES) if k in row}


def _averages(numbers: dict) -> dict:
    out = {a: {k: float(v) for k, v in _in_order(numbers["averages"][a]).items()} for a in AVERAGES}
    out["macro"]["valid_classes"] = {k: int(v) for k, v in _in_order(numbers["valid"]).items()}
    return out


def _optimal_row(optimal: dict, c: int) -> dict:
    row = {
        "threshold": json_number(optimal["threshold"][c]),
        "value": json_number(optimal["value"][c]),
    }
    if row["threshold"] is not None:
        row |= dict(zip(("tp", "fp", "fn", "tn"), map(int, optimal["counts"][c]), strict=True))
    return row


def _class_rows(names, counts, histogram, threshold, numbers, criteria) -> dict:
    rows = {}
    for c, name in enumerate(names):
        tp, fp, fn, tn = (int(x) for x in counts[c])
        row = {"support": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
        row["threshold"] = None if histogram is None else json_number(threshold[c])
        row |= {k: json_number(v[c]) for k, v in _in_order(numbers["classes"]).items()}
        optimal = numbers["optimal"]
        row["optimal"] = {crit: _optimal_row(optimal[crit], c) for crit in criteria}
        rows[name] = row
    return rows


def _scope(counts, histogram, numbers, *, names, threshold, criteria) -> dict:
    return {
        "classes": _class_rows(names, counts, histogram, threshold, numbers, criteria),
        "averages": {
            a: {k: json_number(v) if k != "valid_classes" else v for k, v in row.items()}
            for a, row in _averages(numbers).items()
        },
    }


def samplewise(
    evaluation: Evaluation,
    names,
    zero_division=ZERO_DIVISION,
    *,
    exclude: Sequence[int] = (),
    bootstrap: int = BOOTSTRAP,
    numbers: Sequence[dict] | None = None,
) -> dict:
    """Per class, and for the per-case macro average over the classes not in `exclude`
    (key `"macro"`): the mean over cases of each per-case metric (undefined cases skipped,
    the macro rule of `average_scores` applied across cases), the number of cases where it
    was defined (`<metric>_cases`), and `statistics[metric]`: `case_statistics` (sd,
    median, quartiles, extremes with their case, bootstrap CI of the mean).

    On the host, vectorised over rows and metrics: one `average_scores` call (cases on its
    class axis) and one `case_statistics_table`, whose bootstrap shares one seeded draw.
    """
    hard = evaluation.hard
    metrics = metric_names(hard, _surface_measures(evaluation))
    if numbers is None:
        numbers, _ = _all_scopes(evaluation, zero_division, exclude)
    case_names = [c.name for c in evaluation.cases]
    rows = [*names, "macro"]
    # [rows, metrics, cases]: each class's per-case values, then each case's macro average.
    values = np.array(
        [[[n["classes"][m][c] for n in numbers] for m in metrics] for c in range(len(names))]
        + [[[n["averages"]["macro"][m] for n in numbers] for m in metrics]],
        np.float64,
    )
    with on_host():
        means = average_scores(values, np.ones_like(values), average="macro")
        defined = num_valid_classes(values)
    flat = values.reshape(-1, len(case_names))
    table = case_statistics_table(flat, case_names, bootstrap=bootstrap)
    out = {}
    for r, name in enumerate(rows):
        row = {}
        for i, metric in enumerate(metrics):
            row[metric] = json_number(means[r, i])
            row[f"{metric}_cases"] = int(defined[r, i])
        row["statistics"] = {
            metric: {
                k: v if isinstance(v, str | None) else json_number(v) for k, v in stats.items()
            }
            for metric, stats in zip(metrics, table[r * len(metrics) :], strict=False)
        }
        out[name] = row
    return out


def exclude_indices(exclude: Sequence, names: Sequence[str]) -> list[int]:
    """Class indices from names or ids (ints or digit strings), e.g. `["background"]`, `[0]`
    (`check_exclude`, the rule the metrics' `exclude_from_average` follows too).

    Raises:
        ValueError: a name that is no class, or an id outside `[0, C)`.
    """
    return _options.check_exclude(exclude, names, len(names), name="--exclude")


def summarize(
    evaluation: Evaluation,
    *,
    class_names: Sequence[str] | None = None,
    criteria: Sequence[str] = (CRITERION,),
    zero_division=ZERO_DIVISION,
    exclude: Sequence = (),
    bootstrap: int = BOOTSTRAP,
) -> dict:
    """The full report as a JSON-ready dict: config, per case, pooled, samplewise.

    Hard predictions (label maps, masks) give counts and count metrics only (no threshold,
    curve metrics or optimal thresholds; `config["curves"]` says why). Classes in `exclude`
    (names or ids) are reported per class and left out of every average. `samplewise`
    holds, per class and for the per-case macro average, the per-case statistics
    (`bootstrap` resamples for the 95% CI of the mean; 0 leaves the CI out).

    Per class (per case and pooled): `support, tp, fp, fn, tn, threshold, recall, precision,
    specificity, dice, iou, average_precision, roc_auc` and `optimal[criterion]` with the
    threshold, the criterion's value and the exact counts there. Undefined values are None
    (JSON null), per the empty-class policy `zero_division`. Averages: micro pools counts,
    macro skips undefined classes (and says how many were valid), weighted by support.

    Example:
        >>> import numpy as np
        >>> from voxelmetrics.evaluate.engine import Options, evaluate
        >>> y_true, y_pred = np.array([[1], [0]]), np.float32([[0.9], [0.2]])
        >>> ev = evaluate(y_true=y_true, y_pred=y_pred, options=Options(num_bins=4))
        >>> summarize(ev)["pooled"]["classes"]["class_0"]["dice"]
        1.0
    """
    names = (
        check_class_names(class_names)
        if class_names
        else default_class_names(evaluation.num_classes)
    )
    if len(names) != evaluation.num_classes:
        raise ValueError(
            f"{len(names)} class names given ({', '.join(names)}) but the data has "
            f"{evaluation.num_classes} classes."
        )
    t = evaluation.threshold
    options = evaluation.options
    hard = evaluation.hard
    criteria = [] if hard else list(criteria)
    excluded = exclude_indices(exclude, names)
    scope = {"names": names, "threshold": t, "criteria": criteria}

    per_case, pooled = _all_scopes(evaluation, zero_division, excluded, criteria)
    if options.surface is not None:
        per_case = [
            add_surface(n, case.surface, excluded)
            for case, n in zip(evaluation.cases, per_case, strict=True)
        ]
    return {
        "config": {
            "num_classes": evaluation.num_classes,
            "class_names": names,
            "threshold": [json_number(x) for x in t],
            "num_bins": options.num_bins,
            "from_logits": options.from_logits,
            "axis": options.axis,
            "ignore_index": options.ignore_index,
            "criteria": list(criteria),
            "zero_division": zero_division,
            "num_cases": len(evaluation.cases),
            "pred_kind": evaluation.pred_kind,
            "exclude": [names[c] for c in excluded],
            "bootstrap": bootstrap,
            **_surface_config(options),
            **({"regions": dict(options.regions)} if options.regions else {}),
            **({"curves": NO_CURVES} if hard else {}),
        },
        "cases": [
            {
                "name": case.name,
                "pred": case.pred,
                "true": case.true,
                "grid_shape": list(case.grid_shape),
                **_scope(case.counts, case.histogram, n, **scope),
            }
            for case, n in zip(evaluation.cases, per_case, strict=True)
        ],
        "pooled": _scope(
            evaluation.counts,
            evaluation.histogram,
            pooled,
            **scope,
        ),
        "samplewise": _with_missed(
            samplewise(
                evaluation,
                names,
                zero_division,
                exclude=excluded,
                bootstrap=bootstrap,
                numbers=per_case,
            ),
            surface_missed_cases(evaluation),
        ),
        **_lesion_part(evaluation, names, bootstrap),
    }


def _lesion_part(evaluation, names, bootstrap: int) -> dict:
    """`{"lesions": ...}` with `--lesions` (see evaluate/lesion_report.py), else nothing."""
    if evaluation.options.lesions is None:
        return {}
    from voxelmetrics.evaluate.lesion_report import lesion_block

    return {"lesions": lesion_block(evaluation, names, bootstrap=bootstrap)}


def _with_missed(rows: dict, missed: list[int] | None) -> dict:
    """Each class row with `surface_missed_cases` (see `surface_missed_cases`)."""
    if missed is not None:
        for row, count in zip(rows.values(), missed, strict=False):
            row["surface_missed_cases"] = count
    return rows


def _surface_config(options) -> dict:
    """The boundary measures, the NSD tolerance and the spacing asked for, if any."""
    request = options.surface
    if request is None:
        return {}
    spacing = None if options.spacing is None else list(options.spacing)
    return {
        "surface": list(request.measures),
        "nsd_tolerance": request.tolerance,
        "spacing": spacing,
        **surface_rules_config(request),
    }


def surface_rules_config(request) -> dict:
    """The boundary rules of a run, for `config`: the convention, the missed-structure
    policy, per-class NSD tolerances, and the classes not measured (`--exclude`)."""
    return {
        "surface_convention": request.convention,
        "surface_missing": request.missing,
        "nsd_tolerances": {str(c): t for c, t in request.class_tolerances} or None,
        "surface_not_measured": list(request.exclude),
    }


def surface_missed_cases(evaluation: Evaluation) -> list[int] | None:
    """Per class, how many cases missed it on one side (one mask empty): the cases whose
    HD / HD95 / ASSD are the `--surface-missing` value (None without `--surface`)."""
    if evaluation.options.surface is None or not evaluation.cases:
        return None
    missed = np.array([case.surface[SURFACE_MISSED] for case in evaluation.cases])
    return [int(n) for n in np.nansum(missed, axis=0)]
