"""CI's smoke run of `benchmarks/distance.py`: the small stray-voxel case, the in-graph
transform checked against scipy's EDT before each timed row."""

from benchmarks.distance import SHAPES, timings


def test_distance_benchmark_small() -> None:
    found = timings(SHAPES["small"])
    assert set(found) == {"scipy EDT x4", "ours transform x4", "ours surface_metrics (2 classes)"}
    assert all(seconds > 0 for seconds in found.values())
