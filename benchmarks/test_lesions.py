"""`benchmarks/lesions.py` under pytest: the phantom with 50 lesions at 256^3 (64^3 with
`VOXELMETRICS_BENCH_SIZE=small`, as CI runs it), equal numbers to panoptica 2.1 before
anything is timed; `pytest benchmarks/test_lesions.py --benchmark-enable` times both."""

import os

import pytest

from benchmarks.lesions import check_equal, ours, phantom, theirs

SIDES = {"tiny": 48, "small": 64, "default": 256, "large": 256}


@pytest.fixture(scope="module")
def case():
    return phantom(SIDES[os.environ.get("VOXELMETRICS_BENCH_SIZE", "default")], 50)


@pytest.mark.parametrize("path", ["ours_lesions", "panoptica_lesions"])
def test_lesions(benchmark, case, path: str) -> None:
    benchmark.group = "lesion-wise panoptica: 50 lesions"
    if path == "ours_lesions":  # equal results before any timing
        check_equal(*case)
    fn = ours if path == "ours_lesions" else theirs
    benchmark.pedantic(fn, args=case, rounds=3, iterations=1)
