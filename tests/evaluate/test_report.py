"""Reports against sklearn and numpy references; JSON/CSV shape; all-or-nothing writes."""

import csv
import io
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.evaluate.reference import counts_and_histogram
from voxelmetrics.evaluate import Options, evaluate
from voxelmetrics.evaluate.atomic_writes import write_atomically
from voxelmetrics.evaluate.formats import STATISTICS, to_csv, to_json
from voxelmetrics.evaluate.report import parse_criterion, summarize

NUM_BINS = 32


def _cases(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y_true = (rng.random((6, 7, 5, 3)) < [0.3, 0.1, 0.05]).astype(np.uint8)
        if i == 0:
            y_true[..., 2] = 0  # class 2 absent from case 0: undefined per-case scores
        y_pred = np.clip(0.35 * y_true + rng.random(y_true.shape) * 0.7, 0, 1).astype(np.float32)
        out.append((f"case{i}", y_pred, y_true))
    return out


@pytest.fixture(scope="module")
def report():
    cases = _cases()
    ev = evaluate(
        cases=[(n, t, p) for n, p, t in cases], options=Options(num_bins=NUM_BINS, chunk_mb=0.002)
    )
    criteria = ["f1", "youden", "recall_at_precision:0.5"]
    return cases, summarize(ev, class_names=["a", "b", "c"], criteria=criteria)


def _quantized(scores):
    edges = np.arange(NUM_BINS, dtype=np.float32) / np.float32(NUM_BINS)
    return edges[np.searchsorted(edges, scores, side="right") - 1]


def test_pooled_metrics_match_sklearn_and_numpy(report):
    cases, summary = report
    y = np.concatenate([t.reshape(-1, 3) for _, _, t in cases])
    s = np.concatenate([p.reshape(-1, 3) for _, p, _ in cases])
    for c, name in enumerate(["a", "b", "c"]):
        row = summary["pooled"]["classes"][name]
        tp = int(np.sum((s[:, c] >= 0.5) & (y[:, c] == 1)))
        fp = int(np.sum((s[:, c] >= 0.5) & (y[:, c] == 0)))
        fn = int(np.sum((s[:, c] < 0.5) & (y[:, c] == 1)))
        assert (row["tp"], row["fp"], row["fn"]) == (tp, fp, fn)
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == len(y)
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-6)
        assert row["recall"] == pytest.approx(tp / (tp + fn), rel=1e-6)
        q = _quantized(s[:, c])
        assert row["average_precision"] == pytest.approx(average_precision_score(y[:, c], q), 1e-5)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y[:, c], q), rel=1e-5)


def test_optimal_threshold_is_the_best_bin_and_its_counts_are_exact(report):
    cases, summary = report
    y_true = np.concatenate([t for _, _, t in cases])
    y_pred = np.concatenate([p for _, p, _ in cases])
    edges = np.arange(NUM_BINS, dtype=np.float32) / np.float32(NUM_BINS)
    for c, name in enumerate(["a", "b", "c"]):
        f1 = []
        for t in edges:
            counts, _ = counts_and_histogram(y_true, y_pred, threshold=t, num_bins=NUM_BINS)
            tp, fp, fn, _ = counts[c]
            f1.append((2 * tp / (2 * tp + fp + fn), counts[c]))
        best = summary["pooled"]["classes"][name]["optimal"]["f1"]
        k = int(np.flatnonzero(edges == np.float32(best["threshold"]))[0])
        assert best["value"] == pytest.approx(max(v for v, _ in f1), rel=1e-5)
        assert [best[key] for key in ("tp", "fp", "fn", "tn")] == f1[k][1].tolist()


def test_averages_and_samplewise_follow_the_empty_class_policy(report):
    _, summary = report
    empty = summary["cases"][0]["classes"]["c"]
    assert empty["recall"] is None  # no positives: recall undefined, not 0
    assert empty["fp"] > 0 and empty["dice"] == 0.0  # false positives on empty truth
    averages = summary["cases"][0]["averages"]["macro"]
    per_class = [summary["cases"][0]["classes"][n]["recall"] for n in "ab"]
    assert averages["recall"] == pytest.approx(np.mean(per_class), rel=1e-6)
    assert averages["valid_classes"]["recall"] == 2
    recall_c = [case["classes"]["c"]["recall"] for case in summary["cases"][1:]]
    assert summary["samplewise"]["c"]["recall"] == pytest.approx(np.mean(recall_c), rel=1e-6)
    assert summary["samplewise"]["c"]["recall_cases"] == 2
    micro = summary["pooled"]["averages"]["micro"]
    rows = summary["pooled"]["classes"].values()
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    assert micro["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-6)


def test_json_is_strict_and_csv_has_every_row(report):
    _, summary = report

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    loaded = json.loads(to_json(summary), parse_constant=refuse)
    assert loaded["config"]["class_names"] == ["a", "b", "c"]
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    # per case: 3 classes + 3 averages; pooled the same; samplewise 3 classes and the
    # macro average, each with its mean row and one row per statistic
    statistics = len(STATISTICS)
    assert len(rows) == 3 * 6 + 6 + 4 + 4 * statistics
    ci = [r for r in rows if r["scope"] == "samplewise" and r["case"] == "ci_low"]
    assert [r["class"] for r in ci] == ["a", "b", "c", "macro"]
    pooled_a = next(r for r in rows if r["scope"] == "pooled" and r["class"] == "a")
    assert int(pooled_a["tp"]) == summary["pooled"]["classes"]["a"]["tp"]
    assert "recall_at_precision:0.5_threshold" in pooled_a
    empty = next(r for r in rows if r["case"] == "case0" and r["class"] == "c")
    assert empty["recall"] == ""


def test_write_atomically_leaves_nothing_on_error(tmp_path):
    (tmp_path / "report.json").write_text("old")

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path, {"report.json": lambda f: f.write(b"new"), "x.csv": broken})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert (tmp_path / "report.json").read_text() == "old"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f1", ("f1", {})),
        ("fbeta:2", ("fbeta", {"beta": 2.0})),
        ("cost:1:5", ("cost", {"cost_fp": 1.0, "cost_fn": 5.0})),
    ],
)
def test_parse_criterion(text, expected):
    assert parse_criterion(text) == expected


@pytest.mark.parametrize("text", ["recall", "fbeta", "recall_at_precision:x", "f1:2"])
def test_parse_criterion_rejects(text):
    with pytest.raises(ValueError, match="criterion"):
        parse_criterion(text)


def test_nan_never_reaches_json(report):
    _, summary = report
    text = to_json(summary)
    assert "NaN" not in text and summary["cases"][0]["classes"]["c"]["average_precision"] is None


def test_write_atomically_restores_every_file_when_a_move_fails(tmp_path, monkeypatch):
    import os

    for name in ("a.json", "b.csv"):
        (tmp_path / name).write_text(f"old {name}")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst) == str(tmp_path / "b.csv") and ".previous" not in str(src):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    writers = {"a.json": lambda f: f.write(b"new a"), "b.csv": lambda f: f.write(b"new b")}
    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path, writers)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a.json": "old a.json",
        "b.csv": "old b.csv",
    }


@pytest.mark.parametrize(
    ("names", "problem"),
    [(["a", "a", "b"], "unique"), (["a", "micro", "b"], "reserved"), (["a", "", "b"], "empty")],
)
def test_summarize_refuses_class_names_that_would_collide(report, names, problem):
    evaluation, _ = report
    with pytest.raises(ValueError, match=problem):
        summarize(evaluation, class_names=names)
