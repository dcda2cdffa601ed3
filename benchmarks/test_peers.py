"""Our fused report, counts and exact mode against the Keras built-ins, torchmetrics,
scikit-learn and the floor (one sum), on the same volume and backend (`voxelmetrics.bench`).

Each comparison is one pytest-benchmark group, so its table puts the peer beside us; the
ratios and targets are printed by `voxelmetrics bench`.
"""

import pytest

from benchmarks.conftest import BACKEND
from voxelmetrics import bench

GROUPS = {
    "report": ["ours_report", "keras_report", "sklearn", "floor"],
    "counts": ["ours_counts", "keras_counts"],
    "exact": ["ours_exact", "sklearn"],
    "histogram": ["ours_hist_scatter", "ours_hist_sort", "keras_auc"],
}
if BACKEND == "torch":
    GROUPS["counts"].append("tm_stat_scores")
    GROUPS["report"] += ["tm_prc_100", "tm_prc_1000"]

CASES = [(group, path) for group, names in GROUPS.items() for path in names]


@pytest.mark.parametrize(("group", "path"), CASES, ids=[f"{g}-{p}" for g, p in CASES])
def test_path(benchmark, paths, group: str, path: str) -> None:
    benchmark.group = f"{BACKEND}: {group}"
    benchmark.extra_info["what"] = bench.PATH_NOTES[path]
    paths[path]()  # warm-up: compilation is not timed
    benchmark.pedantic(paths[path], rounds=3, iterations=1)


@pytest.mark.parametrize("factor", [16, 4, 1], ids=["N", "4N", "16N"])
def test_scaling(benchmark, shape, factor: int) -> None:
    """Our report at N, 4N and 16N scores: times should grow linearly."""
    scaled = (shape[0], max(shape[1] // factor, 1), *shape[2:])
    y_true, y_pred = bench.synthetic_volume(scaled)
    report = bench.our_paths(y_true, y_pred)["ours_report"]
    benchmark.group = f"{BACKEND}: scaling of our report"
    benchmark.extra_info["scores"] = y_pred.size
    report()
    benchmark.pedantic(report, rounds=3, iterations=1)
