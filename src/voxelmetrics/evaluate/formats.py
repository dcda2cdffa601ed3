"""The report's files from a summary (`report.summarize`): report.json (strict JSON),
report.csv (every scope, class and statistic) and the `--per-case` CSV.
"""

import csv
import io
import json
from collections.abc import Sequence

from voxelmetrics.evaluate.records import HARD_KINDS
from voxelmetrics.evaluate.report import metric_names


def to_json(summary: dict) -> str:
    """The summary as strict JSON (undefined values are already null)."""
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


CSV_COUNTS = ("support", "tp", "fp", "fn", "tn", "threshold")


STATISTICS = ("mean", "std", "median", "q25", "q75", "min", "min_case", "max", "max_case")
STATISTICS += ("n_defined", "n_cases", "ci_low", "ci_high")


def csv_text(columns: Sequence[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def _metrics_of(summary: dict) -> tuple[str, ...]:
    config = summary["config"]
    return metric_names(config["pred_kind"] in HARD_KINDS, config.get("surface", ()))


def to_csv(summary: dict) -> str:
    """One row per (scope, case, class): per-case and pooled classes and averages, samplewise.

    Columns: `scope, case, class`, the counts, the metrics, then per criterion
    `<criterion>_threshold` and `<criterion>_value`. Cells that do not apply are empty.
    Samplewise rows (per class and `macro`): `case` empty holds the mean over cases; then
    one row per statistic of `case_statistics` (`case` = `std`, `median`, `ci_low`, ...).
    """
    criteria = summary["config"]["criteria"]
    metrics = _metrics_of(summary)
    columns = ["scope", "case", "class", *CSV_COUNTS, *metrics]
    columns += [f"{c}_{k}" for c in criteria for k in ("threshold", "value")]
    rows = []

    def scope_rows(scope, case, block):
        for name, row in block["classes"].items():
            flat = {k: row.get(k) for k in (*CSV_COUNTS, *metrics)}
            for crit, o in row["optimal"].items():
                flat[f"{crit}_threshold"], flat[f"{crit}_value"] = o["threshold"], o["value"]
            rows.append({"scope": scope, "case": case, "class": name, **flat})
        for average, row in block["averages"].items():
            rows.append(
                {"scope": scope, "case": case, "class": average, **{k: row.get(k) for k in metrics}}
            )

    for case in summary["cases"]:
        scope_rows("case", case["name"], case)
    scope_rows("pooled", "", summary["pooled"])
    for name, row in summary["samplewise"].items():
        rows.append(
            {"scope": "samplewise", "case": "", "class": name, **{k: row[k] for k in metrics}}
        )
    for name, row in summary["samplewise"].items():
        for stat in STATISTICS:
            if stat in row["statistics"][metrics[0]]:
                values = {k: row["statistics"][k][stat] for k in metrics}
                rows.append({"scope": "samplewise", "case": stat, "class": name, **values})
    if "lesions" in summary:
        from voxelmetrics.evaluate.lesion_report import csv_part

        more_columns, more_rows = csv_part(summary)
        columns, rows = columns + more_columns, rows + more_rows
    return csv_text(columns, rows)


def to_per_case_csv(summary: dict) -> str:
    """One row per case and class, for users who do their own statistics: `case, class`,
    the counts and the metrics (the per-case rows of `to_csv`, without averages)."""
    metrics = _metrics_of(summary)
    columns = ["case", "class", "support", "tp", "fp", "fn", "tn", *metrics]
    rows = [
        {"case": case["name"], "class": name, **{k: row[k] for k in columns[2:]}}
        for case in summary["cases"]
        for name, row in case["classes"].items()
    ]
    return csv_text(columns, rows)
