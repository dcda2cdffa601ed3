"""A deterministic synthetic 3D phantom: overlapping labelled structures and noisy predictions.

Used by `voxelmetrics demo` and the tests; no download, no randomness beyond the seed.
"""

import numpy as np

CLASS_NAMES = ("organ", "lesion", "vessel", "calcification")


def _ellipsoid(grid, centre, radii) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _tube(grid, centre, radius, axis: int) -> np.ndarray:
    """A cylinder along `axis` whose centre line drifts in a slow sine."""
    others = [a for a in range(3) if a != axis]
    t = grid[axis] / max(grid[axis].max(), 1)
    a, b = others
    ca = centre[a] + 0.12 * radius * 40 * np.sin(2 * np.pi * t)
    return (grid[a] - ca) ** 2 + (grid[b] - centre[b]) ** 2 <= radius**2


def _smooth_noise(rng, shape, scale: int) -> np.ndarray:
    """Gaussian noise on a coarse grid, repeated up to `shape`: correlated, blob-like errors."""
    coarse = rng.normal(size=tuple(-(-s // scale) for s in shape))
    for axis in range(3):
        coarse = np.repeat(coarse, scale, axis=axis)
    return coarse[: shape[0], : shape[1], : shape[2]]


def make_labels(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Multi-hot uint8 `[D, H, W, 4]`: organ, lesion (overlapping the organ), vessel (through
    both), calcification (a few tiny specks: the rare class)."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    size = np.asarray(shape, float)
    jitter = rng.uniform(-0.05, 0.05, 3) * size
    organ = _ellipsoid(grid, size / 2 + jitter, size * [0.32, 0.36, 0.30])
    lesion_centre = size / 2 + jitter + size * [0.12, 0.18, -0.05]
    lesion = _ellipsoid(grid, lesion_centre, size * rng.uniform(0.09, 0.14, 3))
    vessel = _tube(grid, size / 2 + jitter, radius=max(1.5, size.min() * 0.05), axis=0)
    calcification = np.zeros(shape, bool)
    for _ in range(6):
        centre = size * rng.uniform(0.2, 0.8, 3)
        calcification |= _ellipsoid(grid, centre, [1.2, 1.2, 1.2])
    labels = np.stack(np.broadcast_arrays(organ, lesion, vessel, calcification), axis=-1)
    return labels.astype(np.uint8)


def make_case(shape: tuple[int, int, int] = (48, 64, 64), seed: int = 0):
    """One phantom case: `(y_pred float32 [D, H, W, 4] probabilities, y_true uint8 multi-hot)`.

    Each class's score is `sigmoid(gain * (2y - 1) + blobs + speckle)`: smooth blob noise
    makes spatially coherent mistakes, white noise speckle; the rare class gets the weakest
    gain, so its operating point matters most.

    Example:
        >>> y_pred, y_true = make_case((8, 8, 8), seed=1)
        >>> y_pred.shape, y_true.shape, y_pred.dtype.name, y_true.dtype.name
        ((8, 8, 8, 4), (8, 8, 8, 4), 'float32', 'uint8')
    """
    rng = np.random.default_rng(seed)
    y_true = make_labels(shape, rng)
    gains = np.asarray([3.0, 2.6, 2.4, 2.4])
    biases = np.asarray([0.0, -0.6, -0.6, -1.0])
    logits = np.empty(y_true.shape, np.float32)
    for c in range(y_true.shape[-1]):
        signal = gains[c] * (2.0 * y_true[..., c] - 1.0) + biases[c]
        noise = 1.1 * _smooth_noise(rng, shape, 4) + 0.9 * rng.normal(size=shape)
        logits[..., c] = signal + noise
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32), y_true


def write_phantom(directory, *, num_cases: int = 3, shape=(48, 64, 64), seed: int = 0):
    """Save `num_cases` phantom cases as `pred/case_XX.npy` and `true/case_XX.npy`.

    Returns:
        `(pred_dir, true_dir)` paths.
    """
    from pathlib import Path

    pred_dir, true_dir = Path(directory, "pred"), Path(directory, "true")
    pred_dir.mkdir(parents=True, exist_ok=True)
    true_dir.mkdir(parents=True, exist_ok=True)
    for i in range(num_cases):
        y_pred, y_true = make_case(tuple(shape), seed=seed + i)
        np.save(pred_dir / f"case_{i:02d}.npy", y_pred)
        np.save(true_dir / f"case_{i:02d}.npy", y_true)
    return pred_dir, true_dir
