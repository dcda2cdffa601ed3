"""The report's numbers on the host: nothing compiled, the same numbers as the compiled
program of the same formulas, and a cost linear in the number of cases."""

import keras
import numpy as np
import pytest

from tests.evaluate.test_report import NUM_BINS, _cases
from tests.reference import reference_counts_at_bins
from voxelmetrics.backends import compile_kernel
from voxelmetrics.evaluate import Options, evaluate, report
from voxelmetrics.ops import _host, thresholds

CRITERIA = ("f1", "youden", "recall_at_precision:0.5", "precision_at_recall:0.99", "cost:1:5")
RTOL, ATOL = 2e-6, 1e-7  # float32 in-graph against float64 on the host


def _evaluation(n: int, seed: int = 0, hard: bool = False):
    cases = _cases(n, seed)
    if hard:
        cases = [(name, (p >= 0.5).astype(np.uint8), t) for name, p, t in cases]
    options = Options(num_bins=NUM_BINS, num_classes=3 if hard else None)
    return evaluate(cases=[(name, t, p) for name, p, t in cases], options=options)


class _NoGraph:
    def __getattr__(self, name):
        raise AssertionError(f"keras.ops.{name} called while building the report")


def _no_compiled_search(*args, **kwargs):
    raise AssertionError("the compiled threshold search ran while building the report")


def _compile_events():
    """Backend compilations (JAX) recorded while the list is registered; None elsewhere."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    events = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    return events, lambda: jax.monitoring.unregister_event_duration_listener(listen)


@pytest.mark.parametrize("hard", [False, True])
def test_summarize_compiles_nothing_and_calls_no_keras_op(monkeypatch, hard):
    evaluation = _evaluation(3, hard=hard)
    monkeypatch.setattr(_host, "GRAPH", _NoGraph())
    monkeypatch.setattr(thresholds, "_compiled_search", _no_compiled_search)
    listening = _compile_events()
    try:
        if listening is not None:  # the listener sees a compilation when there is one
            import jax

            jax.jit(lambda x: x * 3 + 1)(np.float32(2)).block_until_ready()
            assert listening[0], "no compilation event seen: the check below would be vacuous"
            listening[0].clear()
        summary = report.summarize(evaluation, criteria=CRITERIA, exclude=[0], bootstrap=50)
        if listening is not None:
            assert listening[0] == []
    finally:
        if listening is not None:
            listening[1]()
    assert summary["pooled"]["classes"]["class_1"]["dice"] is not None


def _compiled_numbers(counts, histogram, exclude, criteria, zero_division):
    """The report's formulas as one compiled program (how the report ran before)."""
    kernel = compile_kernel(
        report._numbers, static_argnames=("zero_division", "exclude", "criteria")
    )
    h32 = None if histogram is None else histogram.astype(np.float32)
    numbers = kernel(
        counts.astype(np.float32),
        h32,
        zero_division=zero_division,
        exclude=tuple(exclude),
        criteria=tuple(criteria),
    )
    return _leaves(numbers)


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        return {k: v for key in tree for k, v in _leaves(tree[key], (*path, key)).items()}
    return {path: np.asarray(keras.ops.convert_to_numpy(tree))}


@pytest.mark.parametrize("zero_division", ["nan", 0, 1])
@pytest.mark.parametrize("hard", [False, True])
def test_host_numbers_equal_the_compiled_program(zero_division, hard):
    evaluation = _evaluation(3, hard=hard)
    criteria = () if hard else CRITERIA
    scopes = [(c.counts, c.histogram) for c in evaluation.cases]
    scopes.append((evaluation.counts, evaluation.histogram))
    for counts, histogram in scopes:
        host = report.scope_numbers(counts, histogram, zero_division, [2], criteria)
        graph = _compiled_numbers(counts, histogram, [2], criteria, zero_division)
        host_leaves = _leaves(host)
        counts_leaves = {p: v for p, v in host_leaves.items() if p[-1] == "counts"}
        assert set(host_leaves) - set(counts_leaves) == set(graph)
        for path, value in graph.items():
            assert host_leaves[path].dtype.kind != "f" or host_leaves[path].dtype == np.float64
            if path[-1] == "bin":
                np.testing.assert_array_equal(host_leaves[path], value, err_msg=str(path))
            else:
                np.testing.assert_allclose(
                    host_leaves[path], value, RTOL, ATOL, equal_nan=True, err_msg=str(path)
                )
        for path, value in counts_leaves.items():  # exact int64 counts at the chosen bins
            o = host["optimal"][path[1]]
            assert value.dtype == np.int64
            rows = np.flatnonzero(~np.isnan(o["threshold"]))
            expected = reference_counts_at_bins(histogram[rows], o["bin"][rows])
            np.testing.assert_array_equal(value[rows], expected)
            assert (np.delete(value, rows, axis=0) == -1).all()


class _Counting:
    """`_host.HOST` counting every call: the report's work, case by case."""

    def __init__(self, host):
        self.host, self.calls = host, 0

    def __getattr__(self, name):
        fn = getattr(self.host, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return fn(*args, **kwargs)

        return counted


def test_report_numpy_calls_do_not_grow_with_the_cases(monkeypatch):
    """Every case and the pooled totals go through the formulas in one batch: the number of
    host calls is the same for 1 and 5 cases; only the arrays grow (n + 1 scopes)."""
    sizes = (1, 2, 3, 5)
    calls, tables, scopes = [], [], []
    real_table, real_numbers = report.case_statistics_table, report._numbers
    for n in sizes:
        evaluation = _evaluation(n, seed=n)
        counting = _Counting(_host.HOST)
        monkeypatch.setattr(_host, "HOST", counting)

        def table(values, names, **kwargs):
            tables.append(values.shape)
            return real_table(values, names, **kwargs)

        def numbers(counts, histogram, **kwargs):
            scopes.append((counts.shape[0], histogram.shape[0]))
            return real_numbers(counts, histogram, **kwargs)

        monkeypatch.setattr(report, "case_statistics_table", table)
        monkeypatch.setattr(report, "_numbers", numbers)
        report.summarize(evaluation, criteria=CRITERIA, bootstrap=20)
        calls.append(counting.calls)
        monkeypatch.undo()
    assert calls[0] > 0 and calls == [calls[0]] * len(sizes), calls
    assert scopes == [(n + 1, n + 1) for n in sizes]
    # the statistics: one vectorised call per report, every (row, metric) over the n cases
    assert tables == [(4 * 7, n) for n in sizes]


def test_scope_numbers_takes_int64_totals_beyond_float32_and_int32():
    h = np.zeros((1, 4, 2), np.int64)
    h[0, :, 0] = [2**40, 2**38, 3, 1]
    h[0, :, 1] = [1, 5, 2**35, 7]  # best f1 at bin 2
    neg, pos = h[0, :, 0], h[0, :, 1]
    counts = np.array([[pos[2:].sum(), neg[2:].sum(), pos[:2].sum(), neg[:2].sum()]])
    numbers = report.scope_numbers(counts, h, criteria=["f1"])
    tp, fp, fn, _ = (int(x) for x in counts[0])
    assert numbers["classes"]["dice"][0] == 2 * tp / (2 * tp + fp + fn)  # float64 division
    o = numbers["optimal"]["f1"]
    assert o["bin"].tolist() == [2] and o["counts"].tolist() == counts.tolist()


@pytest.mark.parametrize("hard", [False, True])
def test_scopes_in_one_batch_equal_each_scope_alone(hard):
    evaluation = _evaluation(4, seed=11, hard=hard)
    criteria = () if hard else (*CRITERIA, "recall_at_specificity:0.9")
    per_case, pooled = report._all_scopes(evaluation, "nan", [1], criteria)
    scopes = [(c.counts, c.histogram) for c in evaluation.cases]
    scopes.append((evaluation.counts, evaluation.histogram))
    for batched, (counts, histogram) in zip([*per_case, pooled], scopes, strict=True):
        alone = report.scope_numbers(counts, histogram, "nan", [1], criteria)
        _assert_same_tree(batched, alone)


def _assert_same_tree(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_tree(a[k], b[k], f"{path}/{k}")
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, err_msg=path)
