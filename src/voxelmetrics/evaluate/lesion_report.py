"""The lesion-wise part of the report (`--lesions`): the `lesions` block of report.json, its
rows in report.csv, the terminal table and the `--per-lesion` CSV.

Per class and case the counts and scores of `lesions.lesion_scores`; pooled, the scores of
the counts summed over cases (false positives per case over every case); samplewise, the
mean over cases of each per-case score with `statistics.case_statistics` (spread, extremes,
seeded bootstrap CI). A class not evaluated (the background of label maps) is left out.
"""

import numpy as np

from voxelmetrics.evaluate.formats import STATISTICS, csv_text
from voxelmetrics.evaluate.lesions import (
    COUNT_FIELDS,
    FIELDS,
    LESION_COLUMNS,
    froc,
    lesion_scores,
    score_names,
)
from voxelmetrics.evaluate.report import json_number
from voxelmetrics.evaluate.statistics import case_statistics_table
from voxelmetrics.evaluate.terminal import format_number, with_interval


def _scores(counts: np.ndarray, convention: str, cases: int = 1) -> dict:
    values = dict(zip(FIELDS, counts.tolist(), strict=True))
    out = {k: int(values[k]) for k in COUNT_FIELDS}
    scores = lesion_scores(values, convention, cases=cases)
    return {**out, **{k: json_number(v) for k, v in scores.items()}}


def lesion_block(evaluation, names, *, bootstrap: int) -> dict | None:
    """The report's `lesions` block, or None without `--lesions`.

    Returns:
        `{"config": the request's constants and the score names, "cases": [{"name",
        "classes": {class: counts and scores}}], "pooled": {"classes": ...},
        "samplewise": {class: {score: mean, <score>_cases, "statistics": {score: ...}}}}`.
    """
    request = evaluation.options.lesions
    if request is None:
        return None
    convention = request.convention
    metrics = score_names(convention)
    counts = np.stack([case.lesions.counts for case in evaluation.cases])  # [n, C, F]
    shown = [c for c in range(len(names)) if not np.isnan(counts[:, c]).all()]
    cases = [
        {
            "name": case.name,
            "classes": {names[c]: _scores(counts[i, c], convention) for c in shown},
        }
        for i, case in enumerate(evaluation.cases)
    ]
    n = len(evaluation.cases)
    pooled = {names[c]: _scores(counts[:, c].sum(0), convention, cases=n) for c in shown}
    scores = [  # [classes][cases] -> {metric: value}, each computed once
        [lesion_scores(dict(zip(FIELDS, k, strict=True)), convention) for k in counts[:, c]]
        for c in shown
    ]
    per_case = np.array(
        [[[case[m] for case in row] for m in metrics] for row in scores], np.float64
    ).reshape(len(shown) * len(metrics), n)
    table = case_statistics_table(
        per_case, [case.name for case in evaluation.cases], bootstrap=bootstrap
    )
    samplewise = {}
    for r, c in enumerate(shown):
        row, stats = {}, {}
        for i, metric in enumerate(metrics):
            spread = table[r * len(metrics) + i]  # its mean: over the defined cases
            row[metric] = json_number(spread["mean"]) if spread["n_defined"] else None
            row[f"{metric}_cases"] = spread["n_defined"]
            stats[metric] = {
                k: v if isinstance(v, str | None) else json_number(v) for k, v in spread.items()
            }
        samplewise[names[c]] = {**row, "statistics": stats}
    block = {
        "config": {**request.describe(), "metrics": list(metrics)},
        "cases": cases,
        "pooled": {"classes": pooled},
        "samplewise": samplewise,
    }
    if evaluation.pred_kind == "scores":
        block["froc"] = {names[c]: class_froc(evaluation, c) for c in shown}
    return block


def class_froc(evaluation, c: int) -> dict:
    """`lesions.froc` of class c pooled over every case, from the per-lesion rows."""
    rows = [r for case in evaluation.cases for r in case.lesions.rows if r["class"] == c]
    truth = [r["score"] for r in rows if r["side"] == "true" and r["scored"]]
    matched = [r["score"] for r in rows if r["side"] == "pred" and r["matched"]]
    false = [r["score"] for r in rows if r["side"] == "pred" and not r["matched"]]
    curve = froc(np.array(truth), np.array(matched), np.array(false), cases=len(evaluation.cases))
    return _jsonable(curve)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, str) else json_number(value)


def csv_part(summary: dict) -> tuple[list[str], list[dict]]:
    """The columns (`lesions_<name>`) and rows (scopes `lesions_case`, `lesions_pooled`,
    `lesions_samplewise`) that report.csv gains with `--lesions`; nothing without it."""
    block = summary.get("lesions")
    if block is None:
        return [], []
    metrics = block["config"]["metrics"]
    fields = [*COUNT_FIELDS, *metrics]
    columns = [f"lesions_{k}" for k in fields]

    def flat(row: dict) -> dict:
        return {f"lesions_{k}": row.get(k) for k in fields}

    rows = [
        {"scope": "lesions_case", "case": case["name"], "class": name, **flat(row)}
        for case in block["cases"]
        for name, row in case["classes"].items()
    ]
    rows += [
        {"scope": "lesions_pooled", "case": "", "class": name, **flat(row)}
        for name, row in block["pooled"]["classes"].items()
    ]
    for name, row in block["samplewise"].items():
        rows.append({"scope": "lesions_samplewise", "case": "", "class": name, **flat(row)})
        for stat in STATISTICS:
            if stat in row["statistics"][metrics[0]]:
                values = {f"lesions_{k}": row["statistics"][k][stat] for k in metrics}
                rows.append({"scope": "lesions_samplewise", "case": stat, "class": name, **values})
    return columns, rows


PER_LESION_COLUMNS = ("case", "class", *LESION_COLUMNS)


def to_per_lesion_csv(evaluation, names) -> str:
    """`--per-lesion`: one row per truth and per predicted lesion of every case and class.

    Columns: `case, class, side` (`true`/`pred`), `lesion` (its component id), `voxels`,
    `volume_mm3`, `centroid` (voxel indices, `;`-separated), `matched` (the ids on the
    other side, `;`-separated; empty: missed or a false positive), `scored` (False: a
    BraTS lesion at or below the floor), for truth lesions `dice, iou, hd95, assd`, and
    `score` (probability maps: a predicted lesion's maximum, a truth lesion's best match's).
    """
    rows = []
    for case in evaluation.cases:
        for row in case.lesions.rows:
            cells = {k: row[k] for k in LESION_COLUMNS}
            cells["centroid"] = ";".join(f"{x:.6g}" for x in row["centroid"])
            cells["matched"] = ";".join(str(m) for m in row["matched"])
            if row["side"] == "pred":
                cells.update(dice="", iou="", hd95="", assd="")
            rows.append({"case": case.name, "class": names[row["class"]], **cells})
    return csv_text(PER_LESION_COLUMNS, rows)


TABLE = {
    "n_true": "lesions",
    "recall": "recall",
    "precision": "prec",
    "f1": "F1",
    "fp_per_case": "FP/case",
    "lesion_dice": "dice",
    "lesion_hd95": "HD95",
}


def render_lesions(summary: dict, console) -> None:
    """The pooled lesion-wise scores per class, then each class's mean per-case F1 and
    lesion-wise Dice with their 95% bootstrap CI (fits 80 columns)."""
    from rich import box
    from rich.table import Table

    block = summary.get("lesions")
    if block is None:
        return
    config = block["config"]
    how = config["convention"] + (f" {config['challenge']}" if "challenge" in config else "")
    table = Table(
        title=f"lesions ({how}, {config['connectivity']}-connected), pooled over cases",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("class", no_wrap=True)
    for label in TABLE.values():
        table.add_column(label, justify="right", no_wrap=True)
    for name, row in block["pooled"]["classes"].items():
        cells = [str(row["n_true"])] + [format_number(row[k], 3) for k in list(TABLE)[1:]]
        table.add_row(name, *cells)
    console.print(table)
    per_case = Table(
        title="lesions per case: mean [95% bootstrap CI]",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    per_case.add_column("class", no_wrap=True)
    per_case.add_column("F1", justify="right", no_wrap=True)
    per_case.add_column("dice", justify="right", no_wrap=True)
    for name, row in block["samplewise"].items():
        stats = row["statistics"]
        per_case.add_row(name, with_interval(stats["f1"]), with_interval(stats["lesion_dice"]))
    console.print(per_case)


def plot_froc(summary: dict, file) -> None:
    """`froc.png`: each class's FROC (sensitivity over FPs per case, log scale), its best-F1
    point marked and the CPM in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.4, 5.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.08, 0.1, 0.58, 0.82))
    curves = summary["lesions"]["froc"]
    rates = [r for curve in curves.values() for r in curve["fp_per_case"] if r and r > 0]
    floor = min(0.05, min(rates) / 2) if rates else 0.05
    for name, curve in curves.items():
        x = np.maximum(np.array(curve["fp_per_case"], np.float64), floor)
        y = np.array([np.nan if v is None else v for v in curve["sensitivity"]], np.float64)
        cpm = curve["cpm"]
        label = f"{name} (CPM {cpm:.3f})" if cpm is not None else name
        (line,) = axes.step(x, y, where="post", label=label, linewidth=1.6)
        best = curve["best_f1"]
        if best is not None:
            axes.plot(
                max(best["fp_per_case"], floor),
                best["sensitivity"],
                "o",
                color=line.get_color(),
                markeredgecolor="black",
                ms=7,
            )
    axes.set_xscale("log")
    axes.set(xlabel="false positives per case (log scale)", ylabel="lesion sensitivity")
    axes.set(ylim=(-0.02, 1.02), title="FROC (pooled; o: best lesion-wise F1)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="class")
    figure.savefig(file, format="png")
