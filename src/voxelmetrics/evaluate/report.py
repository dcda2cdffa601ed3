"""Reports from an `Evaluation`: the summary dict, report.json, report.csv and a terminal table.

Every number comes from the ops (scores, curves, optimal thresholds); this module only
arranges them. Files are committed all or nothing: every output is written into a staging
directory beside its target first, and only then moved into place.
"""

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from keras import ops

from voxelmetrics.evaluate.engine import Evaluation
from voxelmetrics.ops.curves import average_precision, roc_auc
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
from voxelmetrics.ops.thresholds import CRITERIA, make_criterion, optimal_threshold

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
STAGING_PREFIX = ".voxelmetrics-staging-"


def check_class_names(names: Sequence[str]) -> list[str]:
    """The names as a list, or a ValueError for an empty, duplicate or reserved name.

    Class names key the report's rows beside the averages (`micro`, `macro`, `weighted`),
    so they must be distinct from each other and from those.
    """
    names = list(names)
    empty = [i for i, n in enumerate(names) if not str(n).strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    reserved = [n for n in names if n in AVERAGES]
    if empty:
        raise ValueError(f"class names must not be empty; name {empty[0]} of {names} is.")
    if repeated:
        raise ValueError(f"class names must be distinct; {repeated} appear more than once.")
    if reserved:
        raise ValueError(
            f"class names {reserved} are reserved for the averages ({', '.join(AVERAGES)}); "
            f"choose other names."
        )
    return names


def parse_criterion(text: str) -> tuple[str, dict]:
    """`"f1"`, `"fbeta:2"`, `"recall_at_precision:0.9"`, `"precision_at_recall:0.8"`,
    `"cost:1:5"` (cost of a false positive, of a false negative) -> `(name, options)`.

    Example:
        >>> parse_criterion("recall_at_precision:0.9")
        ('recall_at_precision', {'min_precision': 0.9})
    """
    name, *values = text.split(":")
    keys = {
        "fbeta": ("beta",),
        "recall_at_precision": ("min_precision",),
        "precision_at_recall": ("min_recall",),
        "cost": ("cost_fp", "cost_fn"),
    }.get(name, ())
    if name not in CRITERIA or len(values) != len(keys):
        raise ValueError(
            f"criterion {text!r} is not one of: f1, dice, iou, youden, fbeta:BETA, "
            f"recall_at_precision:MIN_PRECISION, precision_at_recall:MIN_RECALL, cost:FP:FN."
        )
    try:
        options = {k: float(v) for k, v in zip(keys, values, strict=True)}
    except ValueError:
        raise ValueError(f"criterion {text!r} needs numbers after its name.") from None
    make_criterion(name, **options)
    return name, options


def _floats(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _number(x):
    """A JSON-ready Python number: ints stay ints, NaN becomes None."""
    if isinstance(x, int | np.integer):
        return int(x)
    x = float(x)
    return None if math.isnan(x) else x


def _counts_at(histogram: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Exact int64 `[C, 4]` counts at bin thresholds `t_k` (score >= t_k is positive)."""
    rows = []
    for c, kc in enumerate(k):
        neg, pos = histogram[c, :, 0], histogram[c, :, 1]
        tp, fp = int(pos[kc:].sum()), int(neg[kc:].sum())
        rows.append([tp, fp, int(pos.sum()) - tp, int(neg.sum()) - fp])
    return np.asarray(rows, np.int64)


def _optimal(histogram: np.ndarray, criteria: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per criterion: thresholds `[C]`, values `[C]` and exact counts `[C, 4]` there."""
    result = {}
    num_bins = histogram.shape[1]
    for text in criteria:
        name, options = parse_criterion(text)
        t, v = optimal_threshold(histogram.astype(np.float32), name, **options)
        t, v = _floats(t), _floats(v)
        found = ~np.isnan(t)
        k = np.asarray(
            ops.convert_to_numpy(bin_index(np.where(found, t, 0).astype("f4"), num_bins))
        )
        counts = np.where(found[:, None], _counts_at(histogram, k), -1)
        result[text] = {"threshold": t, "value": v, "counts": counts}
    return result


def class_metrics(counts: np.ndarray, histogram: np.ndarray, zero_division="nan") -> dict:
    """Per-class metrics `{name: float64 [C]}` from exact counts and a histogram."""
    c32, h32 = counts.astype(np.float32), histogram.astype(np.float32)
    out = {k: _floats(f(c32, zero_division=zero_division)) for k, f in COUNT_METRICS.items()}
    out |= {k: _floats(f(h32, zero_division=zero_division)) for k, f in CURVE_METRICS.items()}
    return out


def averaged_metrics(counts, histogram, zero_division="nan") -> dict:
    """`{average: {metric: float, "valid_classes": int}}` for micro, macro and weighted."""
    c32, h32 = counts.astype(np.float32), histogram.astype(np.float32)
    per_class = class_metrics(counts, histogram, zero_division)
    out = {}
    for average in AVERAGES:
        row = {
            k: float(_floats(f(c32, average=average, zero_division=zero_division)))
            for k, f in COUNT_METRICS.items()
        }
        row |= {
            k: float(_floats(f(h32, average=average, zero_division=zero_division)))
            for k, f in CURVE_METRICS.items()
        }
        if average == "macro":
            row["valid_classes"] = {
                k: int(ops.convert_to_numpy(num_valid_classes(v.astype(np.float32))))
                for k, v in per_class.items()
            }
        out[average] = row
    return out


def _optimal_row(optimal: dict, c: int) -> dict:
    row = {"threshold": _number(optimal["threshold"][c]), "value": _number(optimal["value"][c])}
    if row["threshold"] is not None:
        row |= dict(zip(("tp", "fp", "fn", "tn"), map(int, optimal["counts"][c]), strict=True))
    return row


def _class_rows(names, counts, histogram, threshold, optimal, zero_division) -> dict:
    metrics = class_metrics(counts, histogram, zero_division)
    rows = {}
    for c, name in enumerate(names):
        tp, fp, fn, tn = (int(x) for x in counts[c])
        row = {"support": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
        row["threshold"] = float(threshold[c])
        row |= {k: _number(v[c]) for k, v in metrics.items()}
        row["optimal"] = {crit: _optimal_row(o, c) for crit, o in optimal.items()}
        rows[name] = row
    return rows


def _scope(counts, histogram, names, threshold, criteria, zero_division) -> dict:
    optimal = _optimal(histogram, criteria)
    averages = averaged_metrics(counts, histogram, zero_division)
    return {
        "classes": _class_rows(names, counts, histogram, threshold, optimal, zero_division),
        "averages": {
            a: {k: _number(v) if k != "valid_classes" else v for k, v in row.items()}
            for a, row in averages.items()
        },
    }


def samplewise(evaluation: Evaluation, names, zero_division="nan") -> dict:
    """Per class, the mean over cases of each per-case metric; undefined cases are skipped.

    The skipping rule is the macro rule of `average_scores` applied across cases.
    """
    per_case = [class_metrics(c.counts, c.histogram, zero_division) for c in evaluation.cases]
    out = {}
    for c, name in enumerate(names):
        row = {}
        for metric in METRICS:
            values = np.float32([m[metric][c] for m in per_case])
            mean = average_scores(values, np.ones_like(values), average="macro")
            row[metric] = _number(_floats(mean))
            row[f"{metric}_cases"] = int(ops.convert_to_numpy(num_valid_classes(values)))
        out[name] = row
    return out


def default_class_names(num_classes: int) -> list[str]:
    return [f"class_{c}" for c in range(num_classes)]


def summarize(
    evaluation: Evaluation,
    *,
    class_names: Sequence[str] | None = None,
    criteria: Sequence[str] = ("f1",),
    zero_division="nan",
) -> dict:
    """The full report as a JSON-ready dict: config, per case, pooled, samplewise.

    Per class (per case and pooled): `support, tp, fp, fn, tn, threshold, recall, precision,
    specificity, dice, iou, average_precision, roc_auc` and `optimal[criterion]` with the
    threshold, the criterion's value and the exact counts there. Undefined values are None
    (JSON null), per the empty-class policy `zero_division`. Averages: micro pools counts,
    macro skips undefined classes (and says how many were valid), weighted by support.

    Example:
        >>> import numpy as np
        >>> from voxelmetrics.evaluate.engine import Options, evaluate
        >>> ev = evaluate(np.float32([[0.9], [0.2]]), np.array([[1], [0]]), Options(num_bins=4))
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
    return {
        "config": {
            "num_classes": evaluation.num_classes,
            "class_names": names,
            "threshold": [float(x) for x in t],
            "num_bins": options.num_bins,
            "from_logits": options.from_logits,
            "axis": options.axis,
            "ignore_index": options.ignore_index,
            "criteria": list(criteria),
            "zero_division": zero_division,
            "num_cases": len(evaluation.cases),
        },
        "cases": [
            {
                "name": case.name,
                "pred": case.pred,
                "true": case.true,
                "grid_shape": list(case.grid_shape),
                **_scope(case.counts, case.histogram, names, t, criteria, zero_division),
            }
            for case in evaluation.cases
        ],
        "pooled": _scope(
            evaluation.counts, evaluation.histogram, names, t, criteria, zero_division
        ),
        "samplewise": samplewise(evaluation, names, zero_division),
    }


def to_json(summary: dict) -> str:
    """The summary as strict JSON (undefined values are already null)."""
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


CSV_COUNTS = ("support", "tp", "fp", "fn", "tn", "threshold")


def to_csv(summary: dict) -> str:
    """One row per (scope, case, class): per-case and pooled classes and averages, samplewise.

    Columns: `scope, case, class`, the counts, the metrics, then per criterion
    `<criterion>_threshold` and `<criterion>_value`. Cells that do not apply are empty.
    """
    criteria = summary["config"]["criteria"]
    columns = ["scope", "case", "class", *CSV_COUNTS, *METRICS]
    columns += [f"{c}_{k}" for c in criteria for k in ("threshold", "value")]
    rows = []

    def scope_rows(scope, case, block):
        for name, row in block["classes"].items():
            flat = {k: row[k] for k in (*CSV_COUNTS, *METRICS)}
            for crit, o in row["optimal"].items():
                flat[f"{crit}_threshold"], flat[f"{crit}_value"] = o["threshold"], o["value"]
            rows.append({"scope": scope, "case": case, "class": name, **flat})
        for average, row in block["averages"].items():
            rows.append(
                {"scope": scope, "case": case, "class": average, **{k: row[k] for k in METRICS}}
            )

    for case in summary["cases"]:
        scope_rows("case", case["name"], case)
    scope_rows("pooled", "", summary["pooled"])
    for name, row in summary["samplewise"].items():
        rows.append(
            {"scope": "samplewise", "case": "", "class": name, **{k: row[k] for k in METRICS}}
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def check_writable(out_dir) -> Path:
    """Raise OSError unless `out_dir` is, or can be created as, a writable directory.

    Creates nothing: a run that fails on its inputs leaves no directory behind.
    """
    out = Path(out_dir)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "permission denied", str(existing))
    return out


def _default_file_mode() -> int:
    """0o666 less the umask: what `open(path, "w")` would have given (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out: Path) -> None:
    """Remove staging directories left in `out` by runs that were killed (their process is
    gone); those of live runs (concurrent ones into the same `out`) are left alone."""
    for staging in out.glob(STAGING_PREFIX + "*"):
        pid = staging.name[len(STAGING_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _check_targets(out: Path, names) -> None:
    for name in names:
        target = out / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise IsADirectoryError(
                errno.EISDIR, "exists and is not a regular file; move it away", str(target)
            )


def _move_into_place(staging: Path, out: Path, names) -> None:
    """Swap every staged file into `out`, the previous ones set aside in `staging/.previous`.

    On success the previous files are deleted; on any failure they are put back (a file
    that cannot be put back stays in `.previous`, named in the error).
    """
    backups = staging / ".previous"
    backups.mkdir()
    done: list[str] = []
    try:
        for name in names:
            if (out / name).exists():
                os.replace(out / name, backups / name)
            done.append(name)
            os.replace(staging / name, out / name)
    except BaseException:
        for name in reversed(done):
            if (backups / name).exists():
                try:
                    os.replace(backups / name, out / name)
                except OSError as e:
                    raise OSError(f"{name} could not be put back; it is in {backups}") from e
            else:
                with contextlib.suppress(OSError):
                    (out / name).unlink()
        raise
    for name in done:
        with contextlib.suppress(OSError):
            (backups / name).unlink()


def _remove_staging(staging: Path) -> None:
    """Remove the staging directory, unless it keeps a previous file that was not restored."""
    previous = staging / ".previous"
    if previous.is_dir() and any(previous.iterdir()):
        for path in staging.iterdir():
            if path != previous:
                path.unlink()
        return
    shutil.rmtree(staging, ignore_errors=True)


def write_atomically(
    out_dir, writers: dict[str, Callable[[io.BufferedWriter], None]]
) -> list[Path]:
    """Write every `{file name: writer(binary file)}` into `out_dir`, all or nothing.

    `out_dir` is created if needed. Each writer fills a file in a staging directory inside
    `out_dir` (the same filesystem); only when all succeeded are they moved into place
    (`os.replace`, the previous files kept aside until every move succeeded). On any error,
    including a signal turned into an exception, the targets keep their previous content
    (or stay absent) and the staging directory is removed. Staging directories of killed
    earlier runs are removed first.

    Raises:
        OSError: a file could not be written or moved, or a target is a directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    _check_targets(out, writers)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        mode = _default_file_mode()
        for name, write in writers.items():
            with open(staging / name, "wb") as f:
                write(f)
            os.chmod(staging / name, mode)
        _move_into_place(staging, out, writers)
    finally:
        _remove_staging(staging)
    return [out / name for name in writers]


def _fmt(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


TABLE_METRICS = {
    "recall": "recall",
    "precision": "prec",
    "dice": "dice",
    "average_precision": "AP",
    "roc_auc": "AUC",
}


def render_table(summary: dict, console) -> None:
    """Print the pooled per-class metrics and averages, then the optimal thresholds.

    Fits 80 columns; every count and metric (tp, fp, fn, tn, iou, specificity, per case) is
    in report.json and report.csv.
    """
    from rich import box
    from rich.table import Table

    config = summary["config"]
    pooled, samples = summary["pooled"], summary["samplewise"]
    thresholds = ", ".join(f"{t:g}" for t in dict.fromkeys(config["threshold"]))
    table = Table(
        title=f"pooled over {config['num_cases']} case(s) at threshold {thresholds}; "
        f"class axis {config['axis']}: {config['num_classes']} classes",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("class", no_wrap=True)
    for column in ("support", *TABLE_METRICS.values(), "dice/vol"):
        table.add_column(column, justify="right")
    for name, row in pooled["classes"].items():
        metrics = [_fmt(row[k], 3) for k in TABLE_METRICS]
        table.add_row(name, f"{row['support']:,}", *metrics, _fmt(samples[name]["dice"], 3))
    table.add_section()
    for average, row in pooled["averages"].items():
        table.add_row(average, "", *(_fmt(row[k], 3) for k in TABLE_METRICS), "")
    console.print(table)
    criteria = config["criteria"]
    best = Table(
        title="optimal thresholds (pooled): value @ threshold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    best.add_column("class", no_wrap=True)
    for crit in criteria:
        best.add_column(crit, justify="right")
    for name, row in pooled["classes"].items():
        cells = [row["optimal"][c] for c in criteria]
        best.add_row(name, *(f"{_fmt(o['value'], 3)} @ {_fmt(o['threshold'], 3)}" for o in cells))
    console.print(best)
