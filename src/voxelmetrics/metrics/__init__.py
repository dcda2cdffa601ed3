"""Keras 3 metrics for 3D segmentation: thin shells over one fused, exact, sum-merged state.

Counting metrics share a per-class `tp, fp, fn, tn` state, curve metrics a per-class score
histogram state; `SegmentationReport` gives every per-class and averaged score from one.
"""

from voxelmetrics.metrics.counting import (
    ConfusionCounts,
    Dice,
    F1Score,
    FBetaScore,
    IoU,
    Precision,
    Recall,
    Specificity,
)
from voxelmetrics.metrics.curves import (
    PRAUC,
    ROCAUC,
    AveragePrecision,
    BestFBeta,
    OptimalThreshold,
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from voxelmetrics.metrics.report import SegmentationReport
from voxelmetrics.metrics.samplewise import SamplewiseDice, SamplewiseIoU, SamplewiseRecall
from voxelmetrics.metrics.surface import AverageSurfaceDistance, HausdorffDistance, SurfaceDice

__all__ = [
    "PRAUC",
    "ROCAUC",
    "AveragePrecision",
    "AverageSurfaceDistance",
    "BestFBeta",
    "ConfusionCounts",
    "Dice",
    "F1Score",
    "FBetaScore",
    "HausdorffDistance",
    "IoU",
    "OptimalThreshold",
    "Precision",
    "PrecisionAtRecall",
    "Recall",
    "RecallAtPrecision",
    "SamplewiseDice",
    "SamplewiseIoU",
    "SamplewiseRecall",
    "SegmentationReport",
    "SensitivityAtSpecificity",
    "Specificity",
    "SpecificityAtSensitivity",
    "SurfaceDice",
]
