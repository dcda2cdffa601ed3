"""Smoke run of `benchmarks/boundary.py` (CI: `VOXELMETRICS_BENCH_SIZE=small`): on each
phantom, ours under each convention equals the peer that defines it (MONAI,
surface-distance, MedPy) on every class (small phantoms whatever the size); and one worker
process reports its time and peak RSS."""

import json
import sys

import numpy as np
import pytest

from benchmarks import boundary


@pytest.fixture(scope="module", params=sorted(boundary.CASES))
def case(request):
    return boundary.phantom(request.param, small=True)  # full size: python -m benchmarks.boundary


@pytest.mark.parametrize("peer", ["monai", "surface-distance", "medpy"])
def test_ours_equals_each_peer_on_the_phantoms(case, peer):
    truth, pred, spacing, classes = case
    classes = classes[:12]  # enough for the smoke run
    convention = boundary.PEER_CONVENTION[peer]
    theirs = boundary.RUNNERS[peer](truth, pred, spacing, classes, convention)
    ours = boundary.run_ours(truth, pred, spacing, classes, convention)
    for c in classes:
        for mine, other in zip(ours[c], theirs[c], strict=True):
            if np.isfinite(other):
                # MONAI takes its percentiles in float32, surface-distance some areas
                assert mine == pytest.approx(other, rel=2e-5 if peer == "monai" else 1e-6)


def test_a_worker_reports_time_and_memory(tmp_path):
    boundary.save_case("b", tmp_path)
    argv = [sys.executable, "-m", "benchmarks.boundary", "--worker", str(tmp_path), "ours", "medpy"]
    result = boundary.measure(argv, timeout=300)
    assert not result["timed_out"] and result["status"] == 0 and result["peak_rss"] > 0
    assert json.loads(result["stdout"].splitlines()[-1])["seconds"] > 0
