"""`distribution.png` (`--plot`): the per-case scores of each class as box and points, the
figure papers and leaderboards show: Dice always, then the boundary measures asked for
(`--surface`) and the lesion-wise F1 (`--lesions`). Matplotlib, headless."""

import numpy as np

LABELS = {
    "dice": "Dice",
    "hd": "HD",
    "hd95": "HD95",
    "assd": "ASSD",
    "nsd": "NSD",
    "lesion_f1": "lesion-wise F1",
}


def per_case_scores(summary: dict) -> dict[str, dict[str, np.ndarray]]:
    """`{measure: {class: float64 [cases]}}` from the report (None and "inf" as NaN / inf).

    Example:
        >>> summary = {"config": {}, "cases": [{"classes": {"a": {"dice": 0.5}}}]}
        >>> per_case_scores(summary)["dice"]["a"].tolist()
        [0.5]
    """

    def value(v):
        return np.nan if v is None else float(v)  # "inf" reads back as inf

    measures = ["dice", *summary["config"].get("surface", ())]
    out = {}
    for m in measures:
        names = summary["cases"][0]["classes"] if summary["cases"] else {}
        out[m] = {
            name: np.array([value(case["classes"][name][m]) for case in summary["cases"]])
            for name in names
        }
    lesions = summary.get("lesions")
    if lesions is not None and lesions["cases"]:
        names = lesions["cases"][0]["classes"]
        out["lesion_f1"] = {
            name: np.array([value(case["classes"][name]["f1"]) for case in lesions["cases"]])
            for name in names
        }
    return out


def plot_distribution(summary: dict, file) -> None:
    """Write one PNG, a panel per measure, a box (quartiles, whiskers at 1.5 IQR) and the
    jittered per-case points per class; undefined cases left out, infinite distances (a
    missed structure) counted in the panel's title, not drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = per_case_scores(summary)
    figure = Figure(figsize=(3.2 * len(scores) + 0.8, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    rng = np.random.default_rng(0)
    for k, (measure, by_class) in enumerate(scores.items()):
        axes = figure.add_subplot(1, len(scores), k + 1)
        names = list(by_class)
        finite = [v[np.isfinite(v)] for v in by_class.values()]
        infinite = sum(int(np.isinf(v).sum()) for v in by_class.values())
        if any(v.size for v in finite):
            axes.boxplot([v if v.size else [np.nan] for v in finite], showfliers=False, widths=0.5)
        for i, v in enumerate(finite):
            x = i + 1 + rng.uniform(-0.15, 0.15, v.size)
            axes.plot(x, v, "o", ms=3.5, alpha=0.6, color="tab:blue", markeredgewidth=0)
        axes.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
        title = LABELS.get(measure, measure)
        axes.set_title(title + (f" ({infinite} inf)" if infinite else ""), fontsize=10)
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(f"per case: {len(summary['cases'])} case(s)", fontsize=10)
    figure.tight_layout()
    figure.savefig(file, format="png")
