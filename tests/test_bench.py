"""`voxelmetrics bench` end to end in tiny mode: a worker per backend, a table, valid JSON;
its arithmetic on injected timings; the `bench` extra named when a peer is missing."""

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BACKEND
from voxelmetrics import bench
from voxelmetrics.bench import command, extra
from voxelmetrics.bench import engine as bench_engine


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def results() -> dict:
    """One tiny run of the active backend's worker, in its own process, as JSON."""
    return command._spawn(
        BACKEND,
        [
            "--worker",
            json.dumps(
                {"shape": [1, 8, 8, 8, 3], "repeats": 1, "budget": 30.0, "scaling": True, "seed": 0}
            ),
        ],
    )


def test_worker_times_every_path(results):
    assert results["backend"] == BACKEND
    expected = {"floor", "ours_report", "ours_counts", "ours_exact", "sklearn"}
    expected |= {"keras_report", "keras_counts", "keras_auc"}
    if BACKEND == "torch":
        expected |= {"tm_stat_scores", "tm_prc_100", "tm_prc_1000"}
    assert expected <= set(results["times"])
    assert all(t["seconds"] > 0 for t in results["times"].values())
    assert len(results["scaling"]["scores"]) == 3
    assert np.isfinite(results["scaling"]["exponent"])


def test_table_lists_every_comparison(results):
    full = {"machine": bench.machine(), "shape": [1, 8, 8, 8, 3], "backends": {BACKEND: results}}
    full["comparisons"] = bench.compare(full["backends"])
    table = bench.format_table(full)
    assert "Keras AUC+F1+P/R(class_id) / our report" in table
    assert "our report / floor" in table
    header = next(line for line in table.splitlines() if line.startswith("comparison"))
    assert BACKEND in header
    markdown = bench.format_markdown(full)
    assert f"| comparison | target | {BACKEND} |" in markdown
    json.dumps(full)  # what --json prints


def test_run_prints_json(capsys, monkeypatch, results):
    monkeypatch.setattr(command, "_spawn", lambda backend, argv: results)  # spawned above
    code = bench.run(_args("--size", "tiny", "--backends", BACKEND, "--repeats", "1", "--json"))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["shape"] == list(bench.SIZES["tiny"])
    ratios = {row["comparison"]: row["ratios"] for row in out["comparisons"]}
    assert ratios["Keras P/R(class_id) / our fused counts"][BACKEND] > 0


def test_our_report_matches_sklearn_on_the_volume():
    """The benchmarked report computes what it claims (binned AP vs sklearn on binned scores)."""
    from sklearn.metrics import average_precision_score

    y_true, y_pred = bench.synthetic_volume((1, 8, 8, 8, 3))
    report = bench.our_report(y_true, y_pred, np.full(3, 0.5, np.float32))
    binned = np.floor(y_pred * bench.NUM_BINS) / bench.NUM_BINS
    for c in range(3):
        expected = average_precision_score(y_true[..., c].ravel(), binned[..., c].ravel())
        assert float(np.asarray(report["average_precision"])[c]) == pytest.approx(expected, 1e-5)


def test_scaling_helpers():
    assert bench.scaling_shapes((2, 128, 64, 64, 4)) == [
        (2, 8, 64, 64, 4),
        (2, 32, 64, 64, 4),
        (2, 128, 64, 64, 4),
    ]
    assert bench.scaling_exponent([1, 4, 16], [2.0, 8.0, 32.0]) == pytest.approx(1.0)


def test_unknown_backend_is_refused():
    with pytest.raises(SystemExit, match="unknown backend"):
        bench.run(_args("--backends", "mxnet"))


def _fake_results(shape: list[int]) -> dict:
    times = {"floor": {"seconds": 0.001}, "ours_report": {"seconds": 0.0125}}
    full = {"machine": bench.machine(), "shape": shape, "backends": {"jax": {"times": times}}}
    full["comparisons"] = bench.compare(full["backends"])
    return full


def test_small_volumes_get_no_verdicts_and_an_honest_size():
    small = _fake_results([1, 16, 16, 16, 4])
    for text in (bench.format_table(small), bench.format_markdown(small)):
        assert "16,384 scores" in text and "0.0M" not in text
        assert "no verdicts" in text
        assert " MISS" not in text and " ok" not in text
    large = _fake_results([2, 128, 128, 128, 4])
    table = bench.format_table(large)
    assert "16.8M scores" in table and "no verdicts" not in table
    assert "12.5x MISS" in table  # report / floor, target <= 10x


def test_table_columns_are_aligned():
    lines = bench.format_table(_fake_results([1, 16, 16, 16, 4])).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("path (best time"))
    column = lines[header].index("jax")
    for line in lines[header + 1 : header + 3]:
        assert line[column - 2 : column] == "  " and line[column] != " ", line


def test_workers_report_progress_as_they_go(capfd):
    request = {"shape": [1, 4, 4, 4, 2], "repeats": 1, "budget": 30.0, "scaling": False, "seed": 0}
    out = command._spawn(BACKEND, ["--worker", json.dumps({**request, "paths": ["floor"]})])
    assert set(out["times"]) == {"floor"}
    assert f"{BACKEND}: timing floor" in capfd.readouterr().err


def _scripted(values: list[float]):
    """A stand-in timer that still runs what it times (so a broken path fails) and returns
    the next of `values` as its seconds: the ratios become numbers known in advance."""
    script = iter(values)

    def best(fn, repeats=3):
        fn()
        return next(script)

    return best


def test_engine_ratios_are_the_injected_timings_ratios(monkeypatch):
    """(a), (b), (c) and the label-map ratio against hand-computed values of chosen timings
    (not the formula `engine_ratios` uses, re-typed): each ratio must take the right two
    timings, and none may be swapped or dropped."""
    monkeypatch.setattr(bench_engine, "ENGINE_EDGE", 8)
    # _best, in call order: in-memory kernel, warm evaluate, numpy bincount, warm labels.
    monkeypatch.setattr(bench_engine, "_best", _scripted([2.0, 6.0, 0.5, 1.5]))
    # _once: evaluate (first call), report, report again, labels (first call).
    once = _scripted([7.0, 0.3, 0.2, 1.9])
    monkeypatch.setattr(bench_engine, "_once", lambda fn: (once(fn), None))
    # _cli_seconds: python + imports, then the whole CLI run (not run: a subprocess each).
    cli = iter([1.5, 9.0])
    monkeypatch.setattr(bench_engine, "_cli_seconds", lambda argv: next(cli))
    results = bench.engine_ratios(label_size=8)
    assert results["ratios"] == pytest.approx(
        {
            "a_evaluate_over_kernel": 3.0,  # 6.0 / 2.0
            "b_report_over_evaluate": 0.05,  # 0.3 / 6.0
            "c_cli_over_import_plus_evaluate": 1.2,  # 9.0 / (1.5 + 6.0)
            "labels_over_bincount": 3.0,  # 1.5 / 0.5
        }
    )
    assert (results["evaluate_cold_s"], results["report_warm_s"]) == (7.0, 0.2)
    text = bench.format_engine(results)
    for label, _ in bench.ENGINE_TARGETS.values():
        assert label in text
    assert "3.00  (target < 3)" in text and "1.20  (target < 2)" in text


def test_compare_divides_the_peer_by_ours_on_injected_timings():
    times = {
        "keras_counts": {"seconds": 0.9},
        "ours_counts": {"seconds": 0.3},
        "ours_report": {"seconds": 0.05},
        "floor": {"seconds": 0.01},
        "sklearn": {"error": "MemoryError"},  # an error gives no ratio, not a crash
    }
    rows = {r["comparison"]: r for r in bench.compare({"jax": {"times": times}})}
    assert rows["Keras P/R(class_id) / our fused counts"]["ratios"] == {"jax": pytest.approx(3.0)}
    assert rows["our report / floor (lower is better)"]["ratios"] == {"jax": pytest.approx(5.0)}
    assert rows["our counts / floor (lower is better)"]["ratios"] == {"jax": pytest.approx(30.0)}
    assert rows["sklearn mcm+PR curves+AP / our report"]["ratios"] == {}


def test_a_missing_peer_names_the_bench_extra(monkeypatch, capsys):
    """No worker starts: one line on stderr naming the package and `voxelmetrics[bench]`."""
    for module in ("sklearn", "sklearn.metrics"):  # as if not installed (even if imported)
        monkeypatch.setitem(sys.modules, module, None)
    spawned = []
    monkeypatch.setattr(command, "_spawn", lambda backend, argv: spawned.append(backend))
    assert bench.run(_args("--backends", "jax", "--size", "tiny")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "voxelmetrics bench: error: voxelmetrics bench needs scikit-learn (not installed): "
        "pip install 'voxelmetrics[bench]'"
    )
    assert spawned == []
    y_true, y_pred = bench.synthetic_volume((1, 4, 4, 4, 2))
    with pytest.raises(bench.MissingExtra, match=r"scikit-learn.*voxelmetrics\[bench\]"):
        bench.path_builders(y_true, y_pred)["sklearn"]()  # what a worker would raise


def test_our_paths_need_no_extra(monkeypatch, results):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    monkeypatch.setattr(command, "_spawn", lambda backend, argv: results)
    args = _args("--backends", "torch", "--paths", "floor,ours_report", "--size", "tiny", "--json")
    assert bench.run(args) == 0


def test_the_bench_extra_declares_what_bench_imports():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    declared = {r.split(">")[0].split("=")[0].strip() for r in extras["bench"]}
    assert declared == set(extra.PACKAGES.values())
    assert "voxelmetrics[bench]" in extras["test"]
