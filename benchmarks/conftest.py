"""Benchmark fixtures: one synthetic volume per session and every timed path on it.

The size comes from `--large`, else `VOXELMETRICS_BENCH_SIZE` (tiny, small, default, large;
default "default" = 2x128^3x4). CI runs `VOXELMETRICS_BENCH_SIZE=small pytest benchmarks`
under each backend (pytest-benchmark is disabled by the project's addopts there, so each
path runs once); the numbers come from `pytest benchmarks --benchmark-enable [--large]` or
from `voxelmetrics bench`.
"""

import os

import keras
import pytest

from voxelmetrics import bench

BACKEND = keras.backend.backend()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--large", action="store_true", help=f"benchmark the large volume {bench.SIZES['large']}"
    )


def bench_shape(config: pytest.Config) -> tuple[int, ...]:
    """The volume shape this session benchmarks."""
    if config.getoption("--large"):
        return bench.SIZES["large"]
    size = os.environ.get("VOXELMETRICS_BENCH_SIZE", "default")
    if size not in bench.SIZES:
        raise pytest.UsageError(
            f"VOXELMETRICS_BENCH_SIZE={size!r}; expected one of {sorted(bench.SIZES)}"
        )
    return bench.SIZES[size]


@pytest.fixture(scope="session")
def shape(request: pytest.FixtureRequest) -> tuple[int, ...]:
    return bench_shape(request.config)


@pytest.fixture(scope="session")
def paths(shape: tuple[int, ...]) -> dict:
    """Every path of `voxelmetrics bench` for the active backend, on the session's volume."""
    y_true, y_pred = bench.synthetic_volume(shape)
    return bench.all_paths(y_true, y_pred)
