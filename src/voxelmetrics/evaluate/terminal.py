"""The report in a terminal: the pooled table, the per-case means with their CIs, the
boundary measures and the optimal thresholds (rich tables, read from a summary).
"""


def format_number(x, digits: int = 4) -> str:
    """A number with `digits` decimals; "-" for undefined, "inf" as it is."""
    if isinstance(x, str):
        return x
    return "-" if x is None else f"{x:.{digits}f}"


TABLE_METRICS = {
    "recall": "recall",
    "precision": "prec",
    "dice": "dice",
    "average_precision": "AP",
    "roc_auc": "AUC",
}
HARD_TABLE_METRICS = {"recall": "recall", "precision": "prec", "dice": "dice", "iou": "IoU"}


def with_interval(stats: dict) -> str:
    """`0.943 [0.931, 0.952]`: the mean over cases and its bootstrap CI (when computed)."""
    text = format_number(stats["mean"], 3)
    if stats.get("ci_low") is not None:
        text += f" [{format_number(stats['ci_low'], 3)}, {format_number(stats['ci_high'], 3)}]"
    return text


SURFACE_LABELS = {"hd": "HD", "hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}


def _render_surface(summary: dict, console) -> None:
    """The boundary measures per class and for the macro average: mean over cases [CI]."""
    from rich import box
    from rich.table import Table

    config = summary["config"]
    spacing = config["spacing"] or "from headers"
    tolerance = f", NSD tol. {config['nsd_tolerance']:g}" if config["nsd_tolerance"] else ""
    table = Table(
        title=f"boundary: mean over cases [95% CI], spacing {spacing}{tolerance}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("class", no_wrap=True)
    for measure in config["surface"]:
        table.add_column(SURFACE_LABELS[measure], justify="right", no_wrap=True)
    names = config["class_names"]
    not_measured = {names[c] for c in config.get("surface_not_measured", ())}
    for name, row in summary["samplewise"].items():
        stats = row["statistics"]
        if name in not_measured:
            table.add_row(name, *(["not measured"] * len(config["surface"])))
        else:
            table.add_row(name, *(with_interval(stats[m]) for m in config["surface"]))
    _print_whole(table, console)
    missed = [
        f"{name} in {row['surface_missed_cases']}"
        for name, row in summary["samplewise"].items()
        if row.get("surface_missed_cases")
    ]
    if missed:
        policy = config.get("surface_missing", "inf")
        console.print(
            f"missed on one side (HD/ASSD scored {policy}), cases per class: {', '.join(missed)}"
        )


def _print_whole(table, console) -> None:
    """Print `table` at its natural width even past the console's (80 columns when the
    output is piped): a cut class name or CI is lost, a long line is not."""
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    width = console.width
    console.width = max(width, needed)  # print(width=...) is capped at the console's width
    try:
        console.print(table)
    finally:
        console.width = width


def render_table(summary: dict, console) -> None:
    """Print the pooled per-class metrics and averages, the per-case Dice and IoU (mean
    and 95% bootstrap CI over cases, per class and for the macro average), then the
    optimal thresholds (scores only).

    Fits 80 columns; every count and metric (tp, fp, fn, tn, iou, specificity, per case,
    every statistic) is in report.json and report.csv.
    """
    from rich import box
    from rich.table import Table

    config = summary["config"]
    pooled, samples = summary["pooled"], summary["samplewise"]
    hard = "curves" in config
    shown = HARD_TABLE_METRICS if hard else TABLE_METRICS
    if hard:
        how = f"of {config['pred_kind']} (hard predictions)"
    else:
        thresholds = ", ".join(f"{t:g}" for t in dict.fromkeys(config["threshold"]))
        how = f"at threshold {thresholds}; class axis {config['axis']}"
    excluded = f"; averages without {', '.join(config['exclude'])}" if config["exclude"] else ""
    # The title on its own line: a table's title wraps at the table's width.
    console.print(
        f"pooled over {config['num_cases']} case(s) {how}: "
        f"{config['num_classes']} classes{excluded}"
    )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("class", no_wrap=True)
    for column in ("support", *shown.values()):
        table.add_column(column, justify="right")
    for name, row in pooled["classes"].items():
        table.add_row(name, f"{row['support']:,}", *(format_number(row[k], 3) for k in shown))
    table.add_section()
    for average, row in pooled["averages"].items():
        table.add_row(average, "", *(format_number(row[k], 3) for k in shown))
    console.print(table)
    per_case = Table(
        title=f"per case: mean over {config['num_cases']} case(s) [95% bootstrap CI]",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    per_case.add_column("class", no_wrap=True)
    for column in ("dice/vol", "iou/vol"):
        per_case.add_column(column, justify="right", no_wrap=True)
    for name, row in samples.items():
        stats = row["statistics"]
        per_case.add_row(name, with_interval(stats["dice"]), with_interval(stats["iou"]))
    console.print(per_case)
    if config.get("surface"):
        _render_surface(summary, console)
    if "lesions" in summary:
        from voxelmetrics.evaluate.lesion_report import render_lesions

        render_lesions(summary, console)
    if hard:
        console.print(config["curves"])
        return
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
        best.add_row(
            name,
            *(
                f"{format_number(o['value'], 3)} @ {format_number(o['threshold'], 3)}"
                for o in cells
            ),
        )
    console.print(best)
