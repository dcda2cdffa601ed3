"""Our HD95 + ASSD + NSD (one `surface_metrics` call) against MONAI's three functions, on
four ellipsoid classes of one cubic volume (192^3 by default, 32^3 with
`VOXELMETRICS_BENCH_SIZE=small`), same process; the results must agree before timing."""

import os
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)

from benchmarks.conftest import BACKEND
from voxelmetrics.ops import surface_metrics

SIDES = {"tiny": 16, "small": 32, "default": 192, "large": 384}
TOLERANCE = 2.0
KEYS = ("hausdorff", "average_surface_distance", "surface_dice")


def ellipsoids(side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four ellipsoid classes `(1, side, side, side, 4)`; the prediction shifted by two
    voxels along the first axis and, for the last class, cut by a quarter."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).astype(np.float32)
    truth = np.zeros((1, side, side, side, 4), bool)
    for c in range(4):
        centre = side * (0.3 + 0.4 * rng.random(3))
        radii = side * (0.08 + 0.15 * rng.random(3))
        truth[0, ..., c] = (((grid - centre) / radii) ** 2).sum(-1) <= 1
    pred = np.roll(truth, 2, axis=1)
    pred[0, : side // 4, :, :, 3] = False
    return truth, pred


@pytest.fixture(scope="module")
def masks(request: pytest.FixtureRequest):
    size = "large" if request.config.getoption("--large") else None
    side = SIDES[size or os.environ.get("VOXELMETRICS_BENCH_SIZE", "default")]
    return ellipsoids(side)


def ours(truth, pred) -> list[np.ndarray]:
    values = surface_metrics(truth, pred, TOLERANCE, percentile=95)
    return [
        np.asarray(values[k]) for k in ("hausdorff", "average_surface_distance", "surface_dice")
    ]


def peer_monai(truth, pred) -> list[np.ndarray]:
    t, p = (torch.from_numpy(np.moveaxis(m, -1, 1).copy()) for m in (truth, pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            compute_hausdorff_distance(p, t, include_background=True, percentile=95).numpy(),
            compute_average_surface_distance(p, t, include_background=True, symmetric=True).numpy(),
            compute_surface_dice(p, t, [TOLERANCE] * 4, include_background=True).numpy(),
        ]


PATHS = {"ours_surface": ours, "monai_surface": peer_monai}


@pytest.mark.parametrize("path", PATHS)
def test_surface(benchmark, masks, path: str) -> None:
    benchmark.group = f"{BACKEND}: HD95 + ASSD + NSD"
    values = PATHS[path](*masks)  # warm-up: compilation is not timed
    if path == "ours_surface":  # equal results before any timing
        for mine, theirs in zip(values, peer_monai(*masks), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5)
    benchmark.pedantic(PATHS[path], args=masks, rounds=3, iterations=1)
