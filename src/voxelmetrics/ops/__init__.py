"""Pure, backend-agnostic (`keras.ops`) kernels: counting, histograms, curves and scores."""

from voxelmetrics.ops.accumulate import accumulate, empty_total, exact_total, total_as_float
from voxelmetrics.ops.counting import (
    confusion_counts,
    counts_from_confusion_matrix,
    sparse_confusion_matrix,
)
from voxelmetrics.ops.criterion import Criterion
from voxelmetrics.ops.curves import (
    average_precision,
    curve_counts,
    pr_auc,
    precision_recall_curve,
    roc_auc,
    roc_curve,
)
from voxelmetrics.ops.exact import exact_average_precision, exact_precision_recall_curve
from voxelmetrics.ops.fused import counts_and_histogram
from voxelmetrics.ops.histogram import bin_index, bin_thresholds, score_histogram
from voxelmetrics.ops.labels import label_confusion_matrix
from voxelmetrics.ops.scores import (
    average_scores,
    balanced_accuracy,
    dice,
    fbeta_score,
    iou,
    matthews_corrcoef,
    num_valid_classes,
    precision,
    recall,
    safe_ratio,
    specificity,
)
from voxelmetrics.ops.surface import (
    SurfaceDistances,
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_distances,
    surface_metrics,
)
from voxelmetrics.ops.thresholds import optimal_threshold, refine_threshold

__all__ = [
    "Criterion",
    "SurfaceDistances",
    "accumulate",
    "average_precision",
    "average_scores",
    "average_surface_distance",
    "balanced_accuracy",
    "bin_index",
    "bin_thresholds",
    "confusion_counts",
    "counts_and_histogram",
    "counts_from_confusion_matrix",
    "curve_counts",
    "dice",
    "empty_total",
    "exact_average_precision",
    "exact_precision_recall_curve",
    "exact_total",
    "fbeta_score",
    "hausdorff_distance",
    "iou",
    "label_confusion_matrix",
    "matthews_corrcoef",
    "normalized_surface_dice",
    "num_valid_classes",
    "optimal_threshold",
    "pr_auc",
    "precision",
    "precision_recall_curve",
    "recall",
    "refine_threshold",
    "roc_auc",
    "roc_curve",
    "safe_ratio",
    "score_histogram",
    "sparse_confusion_matrix",
    "specificity",
    "surface_distances",
    "surface_metrics",
    "total_as_float",
]
