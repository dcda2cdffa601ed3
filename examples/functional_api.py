"""Counts, scores, a histogram, curves, AP and AUC in a few calls (README: "Functional API")."""

import numpy as np

import voxelmetrics as vm

import keras  # isort: skip  (after voxelmetrics, which picks JAX unless you chose a backend)

print("backend", keras.backend.backend())
rng = np.random.default_rng(0)
y_true = rng.random((2, 32, 32, 32, 3)) < [0.3, 0.1, 0.01]  # multi-hot, overlapping labels
y_pred = np.clip(0.3 * y_true + 0.7 * rng.random(y_true.shape), 0, 1).astype("float32")

counts = vm.confusion_counts(y_true, y_pred, threshold=[0.5, 0.5, 0.6])  # [C, 4]: tp fp fn tn
print(np.asarray(counts))
print(vm.recall(counts), vm.recall(counts, average="weighted", class_weights="inverse_frequency"))

hist = vm.score_histogram(y_true, y_pred, num_bins=1024)  # [C, 1024, 2]
precision, recall, thresholds = vm.precision_recall_curve(hist)  # aligned [C, B], [B]
print(vm.average_precision(hist), vm.roc_auc(hist, average="macro"))
