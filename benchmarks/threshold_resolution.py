"""How far the coarse (B=1024), refined (1/B^2) and exact optimal F1 differ on a synthetic volume.

2 x 128^3 x 4 multi-label volume: overlapping labels, noisy probabilities, one rare class.
Run: KERAS_BACKEND=jax python benchmarks/threshold_resolution.py
"""

import time

import numpy as np

import voxelmetrics as vm
from voxelmetrics.ops.thresholds import optimal_threshold, refine_threshold


def synthetic_volume(seed=0, shape=(2, 128, 128, 128)):
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(shape[0], 16, 16, 16, 4)).astype("float32")
    field = coarse.repeat(8, 1).repeat(8, 2).repeat(8, 3)  # smooth-ish blobs
    field[..., 2] = 0.6 * field[..., 0] + 0.8 * field[..., 2]  # class 2 overlaps class 0
    cut = np.float32([0.5, 1.0, 0.8, 2.6])  # prevalences ~30 %, ~16 %, ~21 %, ~0.5 % (rare)
    y = (field > cut).astype("uint8")
    noisy = field + rng.normal(scale=0.7, size=field.shape).astype("float32")
    y_pred = (1 / (1 + np.exp(-2.0 * (noisy - cut)))).astype("float32")
    return y, y_pred


def exact_best_f1(y, y_pred):
    """The best F1 over every distinct score as threshold (sort-based, exact counts)."""
    p, r, t = vm.exact_precision_recall_curve(y, y_pred)
    p, r, t = (np.asarray(a, np.float64) for a in (p, r, t))
    f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)
    k = np.argmax(f1, axis=-1)
    rows = np.arange(f1.shape[0])
    return t[rows, k], f1[rows, k]


def main():
    y, y_pred = synthetic_volume()
    print(f"volume {y_pred.shape}, prevalence per class {y.reshape(-1, 4).mean(0).round(4)}")
    timings = {}
    start = time.perf_counter()
    hist = vm.score_histogram(y, y_pred, num_bins=1024)
    coarse_t, coarse_f1 = (np.asarray(a) for a in optimal_threshold(hist, "f1"))
    timings["coarse"] = time.perf_counter() - start
    start = time.perf_counter()
    fine_t, fine_f1 = (np.asarray(a) for a in refine_threshold(y, y_pred, coarse_t, "f1"))
    timings["refine"] = time.perf_counter() - start
    _, wide_f1 = (np.asarray(a) for a in refine_threshold(y, y_pred, coarse_t, window=3))
    start = time.perf_counter()
    exact_t, exact_f1 = exact_best_f1(y, y_pred)
    timings["exact"] = time.perf_counter() - start
    print(
        f"{'class':>5} {'coarse t':>10} {'coarse F1':>10} {'refined t':>10} {'refined F1':>11}"
        f" {'exact t':>10} {'exact F1':>10} {'exact-coarse':>13} {'exact-refined':>14}"
        f" {'exact-refined(w=3)':>19}"
    )
    for c in range(4):
        print(
            f"{c:>5} {coarse_t[c]:>10.6f} {coarse_f1[c]:>10.7f} {fine_t[c]:>10.7f}"
            f" {fine_f1[c]:>11.7f} {exact_t[c]:>10.7f} {exact_f1[c]:>10.7f}"
            f" {exact_f1[c] - coarse_f1[c]:>13.2e} {exact_f1[c] - fine_f1[c]:>14.2e}"
            f" {exact_f1[c] - wide_f1[c]:>19.2e}"
        )
    print("seconds (incl. compilation):", {k: round(v, 2) for k, v in timings.items()})


if __name__ == "__main__":
    main()
