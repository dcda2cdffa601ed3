"""ROC plots are readable for segmentation: a log-scale FPR axis reaching below every point."""

import numpy as np

from voxelmetrics.evaluate.plots import draw_curves, log_fpr_floor


def _summary(rows: dict) -> dict:
    return {"pooled": {"classes": rows}}


def test_roc_axis_is_log_scale_and_shows_the_operating_points():
    rng = np.random.default_rng(0)
    negatives = rng.integers(0, 10**6, size=(2, 64))
    positives = np.sort(rng.integers(0, 10**3, size=(2, 64)), axis=1)  # positives score high
    histogram = np.stack([negatives[:, ::-1] * (np.arange(64) < 8), positives], -1)
    row = {"threshold": 0.5, "tp": 900, "fp": 40, "fn": 100, "tn": 10**7, "optimal": {}}
    row |= {"roc_auc": 0.99, "average_precision": 0.9}
    summary = _summary({"a": row, "b": row})
    figure = draw_curves(summary, histogram, "roc")
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    low, high = axes.get_xlim()
    point_fpr = 40 / (40 + 10**7)
    assert low <= point_fpr / 2 + 1e-15 and high == 1.0
    assert draw_curves(summary, histogram, "pr").axes[0].get_xscale() == "linear"


def test_log_fpr_floor_edge_cases():
    assert log_fpr_floor(np.array([0.0, np.nan])) == 1e-6  # nothing positive
    assert log_fpr_floor(np.array([0.5, 1.0])) == 0.1  # never above 0.1
    assert log_fpr_floor(np.array([0.0, 3e-7, 1.0])) == 1.5e-7
