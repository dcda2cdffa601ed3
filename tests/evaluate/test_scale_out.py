"""Evaluation past one process: `--workers`, a dask cluster, shards merged, all one report.

Every way must write the same bytes as one process: the report holds no timing or host
field. Worker processes import Keras and its backend (seconds each), so the whole module
starts one `--workers 2` pool and one dask `LocalCluster` (shared by a module fixture).
"""

import json
import multiprocessing
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest

import distributed
from voxelmetrics.cli import main
from voxelmetrics.evaluate import InputError, Options, evaluate
from voxelmetrics.evaluate.executors import exited, process_pool, run_case_task
from voxelmetrics.evaluate.partial import FORMAT_VERSION

BACKEND = keras.backend.backend()
CASES = 5
REPORTS = ("report.json", "report.csv", "cases.csv")


def _write_dataset(root, labels: bool):
    """5 cases of 16^3 (x 3 scores, or label maps whose largest id differs by case)."""
    rng = np.random.default_rng(7)
    pred, true = root / "pred", root / "true"
    pred.mkdir(parents=True), true.mkdir(parents=True)
    for i in range(CASES):
        if labels:
            y_true = rng.integers(0, 2 + i % 3, (16, 16, 16)).astype(np.uint8)
            y_pred = np.where(rng.random(y_true.shape) < 0.8, y_true, 1).astype(np.uint8)
        else:
            y_true = (rng.random((16, 16, 16, 3)) < 0.3).astype(np.uint8)
            noise = rng.random(y_true.shape)
            y_pred = np.clip(0.6 * y_true + 0.5 * noise, 0, 1).astype(np.float32)
        np.save(pred / f"case{i}.npy", y_pred)
        np.save(true / f"case{i}.npy", y_true)
    return str(pred), str(true)


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    return _write_dataset(tmp_path_factory.mktemp("scores"), labels=False)


@pytest.fixture(scope="module")
def label_maps(tmp_path_factory):
    return _write_dataset(tmp_path_factory.mktemp("labels"), labels=True)


@pytest.fixture(scope="module")
def cluster():
    """A dask cluster of 2 worker processes on this machine, on this backend."""
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        env={"KERAS_BACKEND": BACKEND},
    ) as local:
        yield local


SCORE_ARGS = ("--num-bins", "64", "--surface", "hd95", "--criterion", "f1,youden")


def _run(out, *args) -> dict[str, bytes]:
    """The report files of one `voxelmetrics evaluate` (or `merge`) run into `out`."""
    assert main([*args, "--quiet", "--out", str(out), "--per-case", str(out / "cases.csv")]) == 0
    return {name: (out / name).read_bytes() for name in REPORTS}


def _sharded(tmp_path, pred, true, count: int, *args) -> list[str]:
    parts = []
    for index in range(count):
        part = str(tmp_path / f"part-{index}.npz")
        shard = ["--shard", f"{index}/{count}", "--partial", part]
        assert main(["evaluate", pred, true, *args, *shard, "--quiet"]) == 0
        parts.append(part)
    return parts


def test_scores_give_one_report_every_way(scores, cluster, tmp_path):
    pred, true = scores
    evaluate_args = ["evaluate", pred, true, *SCORE_ARGS]
    one = _run(tmp_path / "one", *evaluate_args)
    # The workers check that they run this process's Keras backend (run_case_task).
    assert _run(tmp_path / "workers", *evaluate_args, "--workers", "2") == one
    scheduler = ["--scheduler", cluster.scheduler_address]
    assert _run(tmp_path / "dask", *evaluate_args, *scheduler) == one
    parts = _sharded(tmp_path, pred, true, 3, *SCORE_ARGS)
    assert _run(tmp_path / "merged", "merge", *reversed(parts)) == one
    report = json.loads(one["report.json"])
    assert [c["name"] for c in report["cases"]] == [f"case{i}" for i in range(CASES)]
    assert report["config"]["surface"] == ["hd95"]


def test_label_maps_without_a_class_count_merge_at_the_dataset_count(label_maps, cluster, tmp_path):
    """Shards see different largest ids (and one sees no case); the merge pads to the
    dataset's class count, as one run cuts to it."""
    pred, true = label_maps
    one = _run(tmp_path / "one", "evaluate", pred, true, "--surface", "hd95")
    assert json.loads(one["report.json"])["config"]["num_classes"] == 4
    scheduler = ["--scheduler", cluster.scheduler_address]
    assert _run(tmp_path / "dask", "evaluate", pred, true, "--surface", "hd95", *scheduler) == one
    parts = _sharded(tmp_path, pred, true, CASES + 1, "--surface", "hd95")
    with np.load(parts[0]) as first, np.load(parts[1]) as second:
        assert first["matrix"].shape[1:] != second["matrix"].shape[1:]  # 3 and 4 ids seen
    with np.load(parts[-1]) as empty:
        assert empty.files == ["metadata"]
    assert _run(tmp_path / "merged", "merge", *parts) == one


def test_an_executor_of_arrays_gives_the_totals_of_this_process(cluster, rng):
    cases = []
    for i in range(3):
        y_true = (rng.random((6, 5, 4, 2)) < 0.4).astype(np.uint8)
        cases.append((f"c{i}", y_true, rng.random(y_true.shape).astype(np.float32)))
    options = Options(num_bins=16)
    with distributed.Client(cluster) as client:
        spread = evaluate(cases=cases, options=options, executor=client.get_executor(pure=False))
    here = evaluate(cases=cases, options=options)
    assert [c.name for c in spread.cases] == ["c0", "c1", "c2"]
    for a, b in zip(here.cases, spread.cases, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.histogram, b.histogram)


def test_a_failing_case_in_a_worker_is_named_and_no_report_is_written(
    scores, cluster, tmp_path, capsys
):
    """The first failing case in case order, whichever worker finished first."""
    pred, true = (tmp_path / side for side in ("pred", "true"))
    pred.mkdir(), true.mkdir()
    for i in range(4):
        values = np.load(f"{scores[0]}/case{i}.npy")
        if i in (1, 3):
            values[2, 3, 4, 0] = np.nan
        np.save(pred / f"case{i}.npy", values)
        np.save(true / f"case{i}.npy", np.load(f"{scores[1]}/case{i}.npy"))
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(true), "--out", str(out), "--quiet"]
    assert main([*args, "--scheduler", cluster.scheduler_address]) == 2
    message = capsys.readouterr().err
    assert f"{pred / 'case1.npy'}: holds NaN scores, the first at index (2, 3, 4, 0)" in message
    assert not out.exists()


def test_input_errors_cross_processes_whole():
    error = pickle.loads(pickle.dumps(InputError("pred/case3.npy", "holds NaN scores.")))
    assert (error.path, error.problem) == ("pred/case3.npy", "holds NaN scores.")
    assert str(error) == "pred/case3.npy: holds NaN scores."


def test_a_worker_on_another_backend_is_refused():
    y_true = np.zeros((4, 2), np.uint8)
    threshold = np.float32([0.5, 0.5])
    with pytest.raises(InputError, match="start the workers with KERAS_BACKEND=other"):
        run_case_task("c0", y_true.astype(np.float32), y_true, Options(), threshold, "", "other")


def test_an_interrupted_pool_stops_its_workers_at_once():
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        assert pool.submit(os.getenv, "KERAS_BACKEND").result() == BACKEND  # spawned
        futures = [pool.submit(time.sleep, 60) for _ in range(4)]
        while not futures[0].running():
            time.sleep(0.05)
        processes = list(pool._processes.values())
        raise KeyboardInterrupt
    for process in processes:
        assert exited(process, 10)  # its sentinel: is_alive() trusts waitpid, see `exited`
    assert time.perf_counter() - start < 30
    while not all(f.done() for f in futures):  # cancelled, or failed with the pool
        assert time.perf_counter() - start < 30
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2", "--devices", "2"], "one of them must be 1"),
        (["--workers", "2", "--scheduler", "tcp://x:1"], "drop --workers and --devices"),
        (["--shard", "0/2"], "--shard I/N needs --partial"),
        (["--partial", "p.npz", "--json"], "give --json to voxelmetrics merge"),
    ],
)
def test_scale_out_options_are_checked(scores, tmp_path, capsys, extra, message):
    assert main(["evaluate", *scores, *extra, "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("shard", ["2/2", "-1/2", "1", "a/b"])
def test_a_shard_is_i_of_n(scores, capsys, shard):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *scores, f"--shard={shard}", "--partial", "p.npz"])
    assert exit_info.value.code == 2
    assert "expected I/N with 0 <= I < N" in capsys.readouterr().err


def _merge_fails(capsys, *parts) -> str:
    assert main(["merge", *map(str, parts), "--quiet"]) == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def parts(scores, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    return _sharded(folder, *scores, 2, "--num-bins", "32")


def _rewrite(source, target, **changes) -> None:
    """Copy a partial with its metadata changed (or arrays replaced)."""
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(bytes(arrays["metadata"]).decode())
    for key, value in changes.pop("meta", {}).items():
        meta[key] = value
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(target, **(arrays | changes))


def test_merge_refuses_parts_of_other_runs(parts, scores, tmp_path, capsys):
    other = _sharded(tmp_path, *scores, 2, "--num-bins", "64")
    message = _merge_fails(capsys, parts[0], other[1])
    assert f"{other[1]}: does not belong with {parts[0]}: other options (num_bins 32 vs 64)" in (
        message
    )


def test_merge_refuses_a_shard_twice_and_a_missing_shard(parts, tmp_path, capsys):
    assert "a shard given twice" in _merge_fails(capsys, parts[0], parts[0])
    message = _merge_fails(capsys, parts[1])
    assert "cut into 2 shard(s) of 5 case(s); missing: shard(s) 0 (case indices 0, 2, 4)" in (
        message
    )


def test_merge_refuses_a_case_twice(parts, tmp_path, capsys):
    forged = tmp_path / "forged.npz"
    with np.load(parts[0]) as archive:
        cases = json.loads(bytes(archive["metadata"]).decode())["cases"]
    _rewrite(parts[0], forged, meta={"shard": [1, 2], "cases": cases})
    assert "holds case 0 (case0), as does" in _merge_fails(capsys, parts[0], forged)


def test_merge_refuses_another_format_version_and_corrupt_files(parts, tmp_path, capsys):
    future = tmp_path / "future.npz"
    _rewrite(parts[0], future, meta={"version": FORMAT_VERSION + 1})
    assert f"is a partial of format version {FORMAT_VERSION + 1}" in _merge_fails(
        capsys, future, parts[1]
    )
    cut = tmp_path / "cut.npz"
    cut.write_bytes(Path(parts[0]).read_bytes()[:300])
    assert f"{cut}: is not a readable voxelmetrics partial" in _merge_fails(capsys, cut, parts[1])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, metadata=np.frombuffer(b"{}", np.uint8))
    assert "but not a voxelmetrics partial" in _merge_fails(capsys, foreign, parts[1])
    hollow = tmp_path / "hollow.npz"
    _rewrite(parts[0], hollow, counts=np.zeros((1, 3, 4), np.int64))
    assert f"{hollow}: is a corrupt voxelmetrics partial" in _merge_fails(capsys, hollow, parts[1])


def test_merge_plots_scores_only(label_maps, tmp_path, capsys):
    parts = _sharded(tmp_path, *label_maps, 1)
    out = tmp_path / "out"
    assert main(["merge", *parts, "--plot", "--out", str(out)]) == 2
    assert "is a hard prediction (a label map): --plot needs scores" in capsys.readouterr().err
    assert not out.exists()


def test_a_partial_that_cannot_be_written_leaves_nothing(scores, tmp_path, capsys):
    (tmp_path / "part.npz").mkdir()
    args = ["--shard", "0/2", "--partial", str(tmp_path / "part.npz"), "--quiet"]
    assert main(["evaluate", *scores, "--num-bins", "32", *args]) == 2
    assert "part.npz: writing the partial failed" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["part.npz"]


def test_two_shards_given_one_partial_path_are_refused(scores, tmp_path, capsys):
    part, other = tmp_path / "part.npz", tmp_path / "other.npz"
    args = ["evaluate", *scores, "--num-bins", "32", "--quiet", "--partial"]
    assert main([*args, str(part), "--shard", "0/2"]) == 0
    first = part.read_bytes()
    assert main([*args, str(part), "--shard", "1/2"]) == 2
    assert "part.npz: holds the partial of shard 0/2, not 1/2" in capsys.readouterr().err
    assert part.read_bytes() == first
    assert main([*args, str(part), "--shard", "0/2"]) == 0  # a rerun replaces its own
    other.write_bytes(b"not a partial")
    assert main([*args, str(other), "--shard", "0/2"]) == 2
    assert "other.npz: exists and is not a voxelmetrics partial" in capsys.readouterr().err
    assert other.read_bytes() == b"not a partial"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz", "part.npz"]


def test_a_shard_finishing_second_on_one_path_is_refused_at_commit(tmp_path):
    """Both shards passed the check at their start; the second to commit finds the first."""
    from voxelmetrics.evaluate.partial import save_partial

    part = tmp_path / "part.npz"
    empty = {"evaluation": None, "options": Options(), "dataset": [], "indices": [], "report": {}}
    save_partial(part, shard=(0, 2), **empty)
    first = part.read_bytes()
    with pytest.raises(InputError, match="holds the partial of shard 0/2, not 1/2"):
        save_partial(part, shard=(1, 2), **empty)
    assert part.read_bytes() == first and [p.name for p in tmp_path.iterdir()] == ["part.npz"]


def test_ctrl_c_during_a_scheduler_run_stops_with_130_and_no_traceback(scores, cluster, tmp_path):
    from tests.test_signals import _run

    out = tmp_path / "out"
    args = ["evaluate", *scores, "--scheduler", cluster.scheduler_address, "--out", str(out)]
    for moment in ("import:keras", "swallowed:call:voxelmetrics.evaluate.engine.run_on"):
        run = _run(moment, *args, "--quiet")
        assert run.returncode == 130, run.stderr
        assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
        assert not out.exists()


def test_dask_workers_take_their_share_of_the_cores(cluster):
    from voxelmetrics._threads import case_threads, thread_settings
    from voxelmetrics.evaluate.executors import dask_executor

    with dask_executor(cluster.scheduler_address) as executor:
        settings = [executor.submit(thread_settings).result() for _ in range(4)]
    expected = case_threads(2)  # 2 workers of 1 thread on this machine
    for worker in settings:
        assert worker["OMP_NUM_THREADS"] == str(expected)
        if BACKEND == "torch":
            assert worker["torch"][0] == expected
        if BACKEND == "tensorflow":
            assert worker["tensorflow"][0] == expected


def test_a_forking_pool_and_devices_with_an_executor_are_refused():
    y_true = np.zeros((4, 2), np.uint8)
    cases = [("c0", y_true, y_true.astype(np.float32))]
    forking = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    with pytest.raises(ValueError, match="get_context\\('spawn'\\)"):
        evaluate(cases=cases, executor=forking)
    forking.shutdown()
    with pytest.raises(ValueError, match="pass devices=1"):
        evaluate(cases=cases, options=Options(devices=2), executor=forking)


# Issue 21, fault 7: parts of other runs (another model's folder, another dataset with as
# many cases, a file changed between shards) are refused, naming the first difference.
def _copy_dataset(source: str, target: Path, rename=lambda name: name, change=None) -> str:
    target.mkdir(parents=True)
    for path in sorted(Path(source).iterdir()):
        array = np.load(path)
        np.save(target / rename(path.name), change(array) if change else array)
    return str(target)


def test_merge_refuses_a_leftover_shard_of_another_model(parts, scores, tmp_path, capsys):
    pred, true = scores
    other_model = _copy_dataset(
        pred, tmp_path / "model_b", change=lambda a: (a * 0.9).astype(a.dtype)
    )
    stale = _sharded(tmp_path, other_model, true, 2, "--num-bins", "32")
    message = _merge_fails(capsys, parts[0], stale[1])
    assert f"{stale[1]}: does not belong with {parts[0]}: other cases (case 0: pred " in message
    assert f"'{Path(pred).resolve() / 'case0.npy'}' vs '{tmp_path / 'model_b' / 'case0.npy'}'" in (
        message
    )


def test_merge_refuses_another_dataset_of_as_many_cases(parts, scores, tmp_path, capsys):
    renamed = [
        _copy_dataset(folder, tmp_path / side, rename=lambda name: "x" + name)
        for folder, side in zip(scores, ("pred", "true"), strict=True)
    ]
    other = _sharded(tmp_path, *renamed, 2, "--num-bins", "32")
    assert "other cases (case 0: name 'case0' vs 'xcase0'" in _merge_fails(
        capsys, parts[0], other[1]
    )


def test_merge_refuses_a_case_file_changed_between_shards(scores, tmp_path, capsys):
    pred = _copy_dataset(scores[0], tmp_path / "pred")
    first = _sharded(tmp_path / "a", pred, scores[1], 2, "--num-bins", "32")
    np.save(Path(pred) / "case3.npy", np.load(Path(pred) / "case3.npy").astype(np.float64))
    second = _sharded(tmp_path / "b", pred, scores[1], 2, "--num-bins", "32")
    message = _merge_fails(capsys, first[0], second[1])
    assert "other cases (case 3: pred bytes 49280 vs 98432)" in message


def test_merge_refuses_parts_of_format_version_1(parts, tmp_path, capsys):
    old = tmp_path / "old.npz"
    _rewrite(parts[0], old, meta={"version": 1})
    message = _merge_fails(capsys, old, parts[1])
    assert f"{old}: is a partial of format version 1; this voxelmetrics reads version 2" in message


def test_a_class_count_mismatch_between_parts_names_the_counts_only(scores, tmp_path, capsys):
    """Issue 21, fault 14: the message showed `'--class-names (0 names)'` for no option."""
    given = _sharded(tmp_path / "a", *scores, 2, "--num-bins", "32", "--num-classes", "3")
    inferred = _sharded(tmp_path / "b", *scores, 2, "--num-bins", "32")
    message = _merge_fails(capsys, given[0], inferred[1])
    assert "other options (num_classes 3 vs None); merge the parts of one run." in message
    assert "names)" not in message


# Issue 21, fault 8: every array of a partial is checked before it is used; a negative
# count hung the merge (exact_linear looped forever), floats and NaN passed silently.
class _Hung(BaseException):
    """Raised by the alarm: not an Exception, so nothing on the way catches it."""


@pytest.fixture
def alarm():
    """Fail a test that runs over 60 s (the old merge of a negative count never ended)."""
    import signal

    def hung(*_):
        raise _Hung("still running after 60 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def label_parts(label_maps, tmp_path_factory):
    return _sharded(tmp_path_factory.mktemp("label_parts"), *label_maps, 2, "--surface", "hd95")


def _negative(name):
    def change(arrays):
        array = arrays[name].copy()
        array.flat[1] = -5
        return {name: array}

    return change


TAMPERINGS = {
    "negative matrix": (_negative("matrix"), "array 'matrix' holds a negative count (-5 at index"),
    "negative counts": (_negative("counts"), "array 'counts' holds a negative count (-5 at index"),
    "float matrix": (
        lambda a: {"matrix": a["matrix"].astype(np.float64)},
        "array 'matrix' has dtype float64; expected int64",
    ),
    "all-NaN surface": (
        lambda a: {"surface": np.full_like(a["surface"], np.nan)},
        "surface hd95 is nan for the partial's case 0, class 0, which has",
    ),
    "negative surface": (
        lambda a: {"surface": -a["surface"] - 1},
        "surface hd95 holds -",
    ),
    "cut matrix": (
        lambda a: {"matrix": a["matrix"][:, :-1]},
        "array 'matrix' has shape",
    ),
    "threshold outside [0, 1]": (
        lambda a: {"threshold": a["threshold"] + 2},
        "array 'threshold' holds",
    ),
    "counts beyond the grid": (
        lambda a: {"counts": a["counts"] * 5},
        "counts 20480 voxels in a class, more than its grid [16, 16, 16] holds",
    ),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_merge_refuses_a_partial_with_bad_arrays(label_parts, tmp_path, capsys, alarm, tampering):
    change, expected = TAMPERINGS[tampering]
    bad = tmp_path / "bad.npz"
    with np.load(label_parts[0]) as archive:
        arrays = {name: archive[name] for name in archive.files}
    _rewrite(label_parts[0], bad, **change(arrays))
    message = _merge_fails(capsys, bad, label_parts[1])
    assert message.startswith(f"voxelmetrics: error: {bad}: is a corrupt voxelmetrics partial: ")
    assert expected in message
    assert len(message.strip().splitlines()) == 1


def test_merge_refuses_a_negative_histogram(parts, tmp_path, capsys, alarm):
    bad = tmp_path / "bad.npz"
    with np.load(parts[0]) as archive:
        histogram = archive["histogram"].copy()
    histogram[0, 1, 2, 1] = -1
    _rewrite(parts[0], bad, histogram=histogram)
    assert "array 'histogram' holds a negative count (-1 at index (0, 1, 2, 1))" in (
        _merge_fails(capsys, bad, parts[1])
    )


def test_exact_linear_refuses_a_negative_value_instead_of_looping(alarm):
    from voxelmetrics.ops.accumulate import exact_counts, exact_linear

    with pytest.raises(ValueError, match="counts >= 0; got -3"):
        exact_linear(lambda x: x.sum(keepdims=True), np.int64([2**40, -3]), 2)
    with pytest.raises(ValueError, match="counts >= 0"):
        exact_counts(np.int64([[1, -1], [0, 2]]))
