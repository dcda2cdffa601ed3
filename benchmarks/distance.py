"""The in-graph exact distance transform against scipy's `distance_transform_edt`, on the
stray-voxel case of issue 20, under the active Keras backend.

The case: a label map of 21 labels (20 ellipsoid organs + background) at 96x160x160,
spacing 1.5x0.8x0.8; the prediction is the truth shifted by one voxel along the first axis
with 0.2% of its voxels relabelled at random (stray false positives far from the organs).
Two classes (1 and 2) are measured. Rows, each warm (compilation not timed) and checked
against scipy before timing:
- `transform`: `squared_distance_transform` of the four boundaries (prediction and truth
  of both classes, one batched call) vs four scipy EDTs of the same boundaries;
- `surface_metrics`: `vm.surface_metrics` (HD95, ASSD, NSD) of the two classes vs the four
  scipy EDTs it needs (each boundary's transform).
Under JAX, XLA's planned temporaries of each row per voxel and class; `--memory` also runs
each row in a child process and reports its peak RSS above the case's own arrays.

Usage: KERAS_BACKEND=jax python -m benchmarks.distance [--size small] [--memory]
(`VOXELMETRICS_BENCH_SIZE=small` as `--size small`: 24x40x40, CI's smoke run). Timings on
a shared machine are noisy: compare the rows of one run, not runs.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

SHAPES = {"default": (96, 160, 160), "small": (24, 40, 40)}
SPACING = (1.5, 0.8, 0.8)
CLASSES = (1, 2)
TOLERANCE = 2.0


def stray_voxel_case(shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(truth, pred)` bool `[1, *shape, 2]`: classes 1 and 2 of the 21-label case."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, float)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    truth = np.zeros(shape, np.uint8)
    for organ in range(1, 21):
        centre = size * rng.uniform(0.15, 0.85, 3)
        radii = size * rng.uniform(0.05, 0.19, 3)
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        truth[inside <= 1] = organ
    pred = np.zeros_like(truth)
    pred[1:] = truth[:-1]
    flat = pred.reshape(-1)
    chosen = rng.choice(flat.size, int(0.002 * flat.size), replace=False)
    flat[chosen] = rng.integers(0, 21, chosen.size)
    masks = [np.stack([labels == c for c in CLASSES], -1)[None] for labels in (truth, pred)]
    return masks[0], masks[1]


def boundaries(mask: np.ndarray) -> np.ndarray:
    """bool: mask voxels with a face neighbour outside the mask or the volume (MONAI's
    `mask ^ binary_erosion(mask)`)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def the_four_boundaries(truth, pred) -> np.ndarray:
    """bool `[4, *shape]`: truth and prediction boundaries of both classes."""
    return np.stack([boundaries(m[0, ..., c]) for m in (truth, pred) for c in range(len(CLASSES))])


def scipy_transforms(edges: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return np.stack([ndimage.distance_transform_edt(~e, sampling=SPACING) ** 2 for e in edges])


def ours_transform(edges):
    from keras import ops

    from voxelmetrics.ops.distance import squared_distance_transform

    return ops.convert_to_numpy(squared_distance_transform(edges, SPACING))


def ours_surface_metrics(truth, pred):
    from keras import ops

    import voxelmetrics as vm

    values = vm.surface_metrics(truth, pred, TOLERANCE, spacing=SPACING, percentile=95)
    return {k: ops.convert_to_numpy(v) for k, v in values.items()}


def best_of(fn, *args, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def timings(shape) -> dict[str, float]:
    """Seconds, best of three, warm; ours checked against scipy first."""
    truth, pred = stray_voxel_case(shape)
    edges = the_four_boundaries(truth, pred)
    expected = scipy_transforms(edges)
    np.testing.assert_allclose(ours_transform(edges), expected, rtol=1e-6, atol=1e-6)
    ours_surface_metrics(truth, pred)
    return {
        "scipy EDT x4": best_of(scipy_transforms, edges),
        "ours transform x4": best_of(ours_transform, edges),
        "ours surface_metrics (2 classes)": best_of(ours_surface_metrics, truth, pred),
    }


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def peak_memory(shape, row: str) -> list[float]:
    """Bytes per voxel and class that `row` (transform or surface_metrics) adds to the
    process's resident memory at its peak: `[first call (compilation included), warm]`.
    Linux: the peak is reset (`/proc/self/clear_refs`) once the case's arrays exist."""
    truth, pred = stray_voxel_case(shape)
    edges = the_four_boundaries(truth, pred)
    import keras  # noqa: F401  (the backend's own memory is not the op's)

    import voxelmetrics  # noqa: F401

    run = (
        (lambda: ours_transform(edges))
        if row == "transform"
        else (lambda: ours_surface_metrics(truth, pred))
    )
    peaks = []
    for _ in range(2):  # cold (compilation included), then warm
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = _status_bytes("VmRSS")
        run()
        peaks.append((_status_bytes("VmHWM") - before) / (np.prod(shape) * len(CLASSES)))
    return peaks


def xla_temporaries(shape) -> dict[str, float]:
    """JAX only: XLA's temporaries (`memory_analysis().temp_size_in_bytes`) of each of our
    rows compiled whole, bytes per voxel and class: the peak the program plans, without the
    allocator's and the compiler's noise in the RSS."""
    import jax

    from voxelmetrics.ops.distance import squared_distance_transform
    from voxelmetrics.ops.surface import surface_metrics

    truth, pred = stray_voxel_case(shape)
    edges = the_four_boundaries(truth, pred)
    rows = {
        "transform x4": (lambda e: squared_distance_transform(e, SPACING), (edges,)),
        "surface_metrics": (
            lambda t, p: surface_metrics(t, p, TOLERANCE, spacing=SPACING, percentile=95),
            (truth, pred),
        ),
    }
    per = np.prod(shape) * len(CLASSES)
    return {
        name: jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes / per
        for name, (fn, args) in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SHAPES, default=None)
    parser.add_argument("--memory", action="store_true", help="peak RSS per voxel and class")
    parser.add_argument("--row", choices=("transform", "surface_metrics"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size or os.environ.get("VOXELMETRICS_BENCH_SIZE", "default")
    shape = SHAPES["small" if size in ("small", "tiny") else "default"]
    import keras
    import torch

    torch.set_num_threads(1)
    backend = keras.backend.backend()
    if args.row:
        print(*peak_memory(shape, args.row))
        return
    print(f"{backend}, {shape} at {SPACING}, classes {CLASSES} (machine shared: noisy)")
    found = timings(shape)
    for name, seconds in found.items():
        print(f"| {name} | {seconds:.2f} s | {seconds / found['scipy EDT x4']:.2f}x scipy |")
    if backend == "jax":
        for name, per in xla_temporaries(shape).items():
            print(f"| XLA temporaries of ours {name} | {per:.0f} B/voxel/class |")
    if args.memory:
        for row in ("transform", "surface_metrics"):
            child = [sys.executable, "-m", "benchmarks.distance", "--size", size, "--row", row]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            cold, warm = (float(v) for v in out.split()[-2:])
            print(
                f"| peak RSS of ours {row}, warm (cold) | {warm:.0f} ({cold:.0f}) B/voxel/class |"
            )


if __name__ == "__main__":
    main()
