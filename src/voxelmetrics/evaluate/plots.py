"""PR and ROC curves per class, with the operating points marked, as PNG (matplotlib, headless).

The curves come from the pooled histogram through the ops; no pyplot state is touched.
"""

import numpy as np
from keras import ops

from voxelmetrics.ops.curves import precision_recall_curve, roc_curve
from voxelmetrics.ops.scores import precision, recall, specificity

MARKERS = "os^Dvp*h"


def _curves(histogram: np.ndarray):
    h = histogram.astype(np.float32)
    precision, recall, _ = precision_recall_curve(h)
    fpr, tpr, _ = roc_curve(h)
    return (np.asarray(ops.convert_to_numpy(x), np.float64) for x in (precision, recall, fpr, tpr))


def _operating_points(summary: dict) -> list[tuple[str, list]]:
    """Per class, `(label, threshold, recall, precision, fpr)` at the working threshold and at
    each criterion's optimum, from the report's exact counts (precision 1 where nothing is
    predicted positive, as on the curve)."""
    points = []
    for name, row in summary["pooled"]["classes"].items():
        marks = [("threshold", row["threshold"], row)]
        marks += [
            (crit, o["threshold"], o)
            for crit, o in row["optimal"].items()
            if o["threshold"] is not None
        ]
        counts = np.float32([[m[k] for k in ("tp", "fp", "fn", "tn")] for _, _, m in marks])
        r = np.asarray(ops.convert_to_numpy(recall(counts)))
        p = np.asarray(ops.convert_to_numpy(precision(counts, zero_division=1)))
        f = 1.0 - np.asarray(ops.convert_to_numpy(specificity(counts)))
        rows = [(label, t, r[i], p[i], f[i]) for i, (label, t, _) in enumerate(marks)]
        points.append((name, rows))
    return points


def log_fpr_floor(fpr: np.ndarray) -> float:
    """The left end of a log-scale FPR axis: half the smallest positive FPR (at most 0.1).

    In segmentation nearly every voxel is a true negative, so every operating point sits
    at FPR well below 0.1; on a linear axis they all crowd against x = 0. Points at FPR 0
    are drawn at this floor.

    Example:
        >>> log_fpr_floor(np.array([0.0, 2e-4, 0.03, 1.0]))
        0.0001
    """
    positive = fpr[np.isfinite(fpr) & (fpr > 0)]
    return float(min(0.1, positive.min() / 2)) if positive.size else 1e-6


def plot_curves(summary: dict, histogram: np.ndarray, kind: str, file) -> None:
    """Write one PNG with a curve per class and its operating points to `file`.

    Args:
        summary: the report from `summarize` (class names, thresholds, optimal points).
        histogram: pooled `[C, B, 2]` histogram.
        kind: "pr" (precision over recall) or "roc" (TPR over a log-scale FPR).
        file: a path or a binary file object.
    """
    draw_curves(summary, histogram, kind).savefig(file, format="png")


def draw_curves(summary: dict, histogram: np.ndarray, kind: str):
    """The matplotlib `Figure` that `plot_curves` writes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    prec, rec, fpr, tpr = _curves(histogram)
    operating_points = _operating_points(summary)
    floor = log_fpr_floor(
        np.concatenate([fpr.ravel(), [m[4] for _, ms in operating_points for m in ms]])
    )
    figure = Figure(figsize=(8.4, 5.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.08, 0.1, 0.58, 0.82))
    labels: list[str] = []
    score = "average_precision" if kind == "pr" else "roc_auc"
    classes = summary["pooled"]["classes"]
    for c, (name, marks) in enumerate(operating_points):
        x, y = (rec[c], prec[c]) if kind == "pr" else (np.maximum(fpr[c], floor), tpr[c])
        keep = ~(np.isnan(x) | np.isnan(y))
        area = classes[name][score]
        label = f"{name} ({'AP' if kind == 'pr' else 'AUC'} {area:.3f})" if area else name
        (line,) = axes.plot(x[keep], y[keep], label=label, linewidth=1.6)
        for label, _, r, p, f in marks:
            if label not in labels:
                labels.append(label)
            px, py = (r, p) if kind == "pr" else (max(f, floor), r)
            marker = MARKERS[labels.index(label) % len(MARKERS)]
            axes.plot(px, py, marker, color=line.get_color(), markeredgecolor="black", ms=7)
    if kind == "pr":
        axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (pooled)")
        axes.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    else:
        chance = np.geomspace(floor, 1.0, 200)
        axes.plot(chance, chance, ":", color="grey", linewidth=1)
        axes.set_xscale("log")
        axes.set(xlim=(floor, 1.0), ylim=(-0.02, 1.02), ylabel="true positive rate")
        axes.set(xlabel="false positive rate (log scale)", title="ROC (pooled)")
    axes.grid(alpha=0.3)
    curves = axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="class")
    axes.add_artist(curves)
    points = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=MARKERS[i % len(MARKERS)],
            color="white",
            markeredgecolor="black",
            ms=7,
        )
        for i in range(len(labels))
    ]
    names = ["working threshold" if x == "threshold" else f"best {x}" for x in labels]
    axes.legend(
        points,
        names,
        loc="lower left",
        bbox_to_anchor=(1.02, 0.0),
        fontsize=8,
        title="operating points",
    )
    return figure
