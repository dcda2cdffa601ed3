"""The benchmark's volumes: multi-hot truth with noisy scores, and the scaling sizes."""

import numpy as np

SIZES = {
    "tiny": (1, 16, 16, 16, 4),
    "small": (1, 32, 32, 32, 4),
    "default": (2, 128, 128, 128, 4),
    "large": (1, 384, 384, 384, 4),
}


def synthetic_volume(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot truth (overlapping labels, prevalence 30%..1%) and noisy float32 scores.

    Filled in slabs of 2**20 voxels, so that generating a large volume adds little to the
    process' peak memory (the memory benchmark measures each path above it).
    """
    rng = np.random.default_rng(seed)
    c = shape[-1]
    prevalence = np.geomspace(0.3, 0.01, c).astype(np.float32)
    y_true = np.empty(shape, bool)
    y_pred = np.empty(shape, np.float32)
    truth_rows, score_rows = y_true.reshape(-1, c), y_pred.reshape(-1, c)
    for start in range(0, len(truth_rows), 1 << 20):
        stop = min(start + (1 << 20), len(truth_rows))
        truth = rng.random((stop - start, c), dtype=np.float32) < prevalence
        noise = rng.random((stop - start, c), dtype=np.float32)
        truth_rows[start:stop] = truth
        score_rows[start:stop] = np.where(truth, 0.35 + 0.65 * noise, 0.7 * noise)
    return y_true, y_pred


def scaling_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes of N, 4N and 16N voxels, 16N being `shape` (the second axis divided)."""
    d = shape[1]
    return [(shape[0], max(d // f, 1), *shape[2:]) for f in (16, 4, 1)]
