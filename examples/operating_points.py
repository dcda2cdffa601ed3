"""Choose per-class operating points from one histogram (README: "Choose your operating point")."""

import numpy as np

import voxelmetrics as vm

import keras  # isort: skip  (after voxelmetrics, which picks JAX unless you chose a backend)

print("backend", keras.backend.backend())

rng = np.random.default_rng(0)
field = rng.normal(size=(2, 32, 32, 32, 3)).astype("float32")
y_true = (field > np.float32([0.5, 1.0, 2.3])).astype("uint8")  # class 2 is rare (~1 %)
noisy = field + rng.normal(scale=0.6, size=field.shape).astype("float32")
y_pred = 1 / (1 + np.exp(-2 * (noisy - np.float32([0.5, 1.0, 2.3]))))

hist = vm.score_histogram(y_true, y_pred, num_bins=1024)  # one pass, [C, B, 2]
np.set_printoptions(precision=3, suppress=True)
for criterion, options in [
    ("f1", {}),
    ("fbeta", {"beta": 2.0}),
    ("recall_at_precision", {"min_precision": 0.8}),
    ("precision_at_recall", {"min_recall": 0.95}),
    ("youden", {}),
    ("cost", {"cost_fp": 1.0, "cost_fn": 10.0}),
]:
    t, v = vm.optimal_threshold(hist, criterion, **options)
    print(f"{criterion:<20} thresholds {np.asarray(t)}  values {np.asarray(v)}")

t, v = vm.optimal_threshold(hist, "f1", refine=(y_true, y_pred))  # resolution 1/1024**2
print("f1 refined", np.asarray(t), np.asarray(v))
counts = vm.confusion_counts(y_true, y_pred, threshold=t)  # per-class thresholds
print("dice at those thresholds", np.asarray(vm.dice(counts)))
