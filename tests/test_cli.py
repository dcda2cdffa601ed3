"""The `voxelmetrics` CLI: evaluate end to end, the demo, and every bad input (exit status 2)."""

import contextlib
import gzip
import json
import runpy
import sys

import numpy as np
import pytest

from voxelmetrics.cli import main
from voxelmetrics.ops import _options

REPORTS = ("report.json", "report.csv")


def _pair(tmp_path, shape=(9, 5, 4), c=3, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    y_pred = rng.random((*shape, c)).astype(np.float32)
    if sparse:
        y_true = rng.integers(0, c, shape).astype(np.int16)
    else:
        y_true = (rng.random((*shape, c)) < 0.3).astype(np.uint8)
    (tmp_path / "pred").mkdir(exist_ok=True)
    (tmp_path / "true").mkdir(exist_ok=True)
    np.save(tmp_path / "pred" / f"case{seed}.npy", y_pred)
    np.save(tmp_path / "true" / f"case{seed}.npy", y_true)
    return tmp_path / "pred", tmp_path / "true", y_pred, y_true


def test_evaluate_writes_reports_and_plots(tmp_path, capsys):
    pred, true, y_pred, y_true = _pair(tmp_path)
    _pair(tmp_path, seed=1)
    out = tmp_path / "out"
    args = [str(pred), str(true), "--out", str(out), "--plot", "--quiet", "--num-bins", "64"]
    args += ["--class-names", "x,y,z", "--criterion", "f1,youden", "--threshold", "0.5,0.4,0.6"]
    assert main(["evaluate", *args]) == 0
    printed = capsys.readouterr().out
    assert "pooled over 2 case(s)" in printed and "youden" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "distribution.png",
        "pr_curves.png",
        "report.csv",
        "report.json",
        "roc_curves.png",
    ]
    report = json.loads((out / "report.json").read_text())
    x = report["cases"][0]["classes"]["x"]
    assert x["tp"] == int(np.sum((y_pred[..., 0] >= 0.5) & (y_true[..., 0] == 1)))
    assert report["cases"][0]["classes"]["y"]["threshold"] == pytest.approx(0.4)
    assert (out / "pr_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_json_flag_prints_the_report_while_progress_goes_to_stderr(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path, sparse=True)
    assert main(["evaluate", str(pred), str(true), "--json", "--num-bins", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["num_classes"] == 3 and len(report["cases"]) == 1


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--cases", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "calcification" in printed and f"to {out}/" in printed
    assert {"report.json", "report.csv", "pr_curves.png", "roc_curves.png"} <= {
        p.name for p in out.iterdir()
    }


def test_python_dash_m_help_lists_every_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["voxelmetrics", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("voxelmetrics", run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("evaluate", "demo", "bench"))


def _bad(tmp_path, capsys, pred, true, *extra, name_in_message):
    out = tmp_path / "out"
    status = main(["evaluate", str(pred), str(true), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith("voxelmetrics: error:")
    assert str(name_in_message) in err
    assert not out.exists(), "--out must not be created when the inputs fail"
    return err.replace(str(tmp_path), "<tmp>")  # test names in the path must not match


def test_shape_mismatch(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    np.save(true / "case0.npy", np.zeros((9, 5, 3, 3), np.uint8))
    err = _bad(tmp_path, capsys, pred, true, name_in_message=true / "case0.npy")
    assert "(9, 5, 3, 3)" in err


def test_class_count_mismatch_between_cases(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path, seed=0)
    _pair(tmp_path, c=4, seed=1)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case1.npy")
    assert "4 classes" in err


def test_class_count_mismatch_with_num_classes(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    _bad(tmp_path, capsys, pred, true, "--num-classes", "2", name_in_message=pred / "case0.npy")


def test_sparse_label_beyond_the_classes(tmp_path, capsys):
    pred, true, _, y_true = _pair(tmp_path, sparse=True)
    y_true[3, 2, 1] = 7
    np.save(true / "case0.npy", y_true)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=true / "case0.npy")
    assert "(3, 2, 1)" in err and "[0, 3)" in err


def test_unknown_extension(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    (true / "notes.txt").write_text("hello")
    _bad(tmp_path, capsys, pred, true, name_in_message=true / "notes.txt")


def test_truncated_npy(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    path = pred / "case0.npy"
    path.write_bytes(path.read_bytes()[:-100])
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "truncated" in err


def test_corrupt_npy_header(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    path = pred / "case0.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00garbage" + path.read_bytes()[20:])
    _bad(tmp_path, capsys, pred, true, name_in_message=path)


def test_object_dtype_npy(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    path = pred / "case0.npy"
    np.save(path, np.array([[{"a": 1}]] * 9, dtype=object), allow_pickle=True)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "object" in err


def test_truncated_nii_gz(tmp_path, capsys):
    import nibabel

    pred, true, _y_pred, y_true = _pair(tmp_path, shape=(40, 30, 20))
    (true / "case0.npy").unlink()
    path = true / "case0.nii.gz"
    nibabel.save(nibabel.Nifti1Image(y_true, np.eye(4)), path)
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
    _bad(tmp_path, capsys, pred, true, name_in_message=path)


def test_nan_scores(tmp_path, capsys):
    pred, true, y_pred, _ = _pair(tmp_path)
    y_pred[4, 1, 2, 0] = np.nan
    np.save(pred / "case0.npy", y_pred)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case0.npy")
    assert "NaN" in err and "(4, 1, 2, 0)" in err


def test_scores_outside_unit_interval_need_from_logits(tmp_path, capsys):
    pred, true, y_pred, _ = _pair(tmp_path)
    np.save(pred / "case0.npy", y_pred * 6 - 3)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case0.npy")
    assert "--from-logits" in err
    args = ["evaluate", str(pred), str(true), "--from-logits", "--quiet", "--num-bins", "8"]
    assert main(args) == 0


def test_empty_directory(tmp_path, capsys):
    pred, _true, _, _ = _pair(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _bad(tmp_path, capsys, pred, empty, name_in_message=empty)
    assert "empty" in err


def test_case_without_partner(tmp_path, capsys):
    pred, true, y_pred, _ = _pair(tmp_path)
    np.save(pred / "lonely.npy", y_pred)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "lonely.npy")
    assert "partner" in err


def test_unwritable_out(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status = main(["evaluate", str(pred), str(true), "--out", str(blocker / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and str(blocker / "out") in err and len(err.splitlines()) == 1


def test_bench_is_wired_to_voxelmetrics_bench(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "usage: voxelmetrics bench" in capsys.readouterr().out


def test_threshold_count_mismatch(tmp_path, capsys):
    pred, true, _, _ = _pair(tmp_path)
    err = _bad(tmp_path, capsys, pred, true, "--threshold", "0.5,0.4", name_in_message=pred)
    assert "3 classes" in err and "--threshold" in err


@pytest.mark.parametrize(
    "option",
    [
        ["--num-bins", "0"],
        ["--chunk-mb", "-1"],
        ["--chunk-mb", "nan"],
        ["--chunk-mb", "inf"],
        ["--num-classes", "0"],
        ["--num-classes", "-3"],
        ["--class-names", "a,a,b"],
        ["--class-names", "a,micro"],
        ["--class-names", "a,,b"],
        ["--num-bins", "1.5"],
        ["--workers", "0"],
        ["--bootstrap", "-1"],
        ["--zero-division", "2"],
    ],
)
def test_bad_option_values_exit_2(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path), str(tmp_path), *option])
    assert exit_info.value.code == 2
    assert option[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "check"),
    [
        ("--num-bins", "0", lambda: _options.check_num_bins(0)),
        ("--bootstrap", "-1", lambda: _options.check_int("value", -1, minimum=0)),
        ("--chunk-mb", "inf", lambda: _options.check_number("value", float("inf"), positive=True)),
        ("--zero-division", "2", lambda: _options.check_zero_division("2")),
    ],
)
def test_number_flags_are_refused_by_the_library_rule_in_its_words(
    tmp_path, capsys, option, value, check
):
    """A flag and the keyword argument it stands for are refused by one check: argparse
    prints the library's message (what was expected, what arrived)."""
    with pytest.raises(ValueError) as library:
        check()
    expected = str(library.value).split(" must be ", 1)[1]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path), str(tmp_path), option, value])
    assert exit_info.value.code == 2
    assert expected in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("value", ["1.5", "0.3,-0.1", "nan"])
def test_threshold_outside_0_1_is_refused_by_the_library_rule(tmp_path, capsys, value):
    """--threshold is checked by `check_threshold_values`, as the ops and metrics are."""
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path), str(tmp_path), "--threshold", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threshold: threshold must lie in [0, 1] (score >= threshold)" in err


def _report_files(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _leftovers(out) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_a_blocked_output_replaces_nothing(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path)
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(true), "--out", str(out), "--quiet", "--num-bins", "8"]
    assert main(args) == 0
    before = _report_files(out)
    (out / "report.csv").unlink()
    (out / "report.csv").mkdir()  # the CSV cannot be written over a directory
    assert main([*args, "--threshold", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "report.csv" in err and "no file there was replaced" in err
    assert _report_files(out) == {"report.json": before["report.json"]}
    assert _leftovers(out) == []


def test_a_failing_plot_replaces_nothing(tmp_path, capsys, monkeypatch):
    import voxelmetrics.evaluate.plots as plots

    pred, true, *_ = _pair(tmp_path)
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(true), "--out", str(out), "--quiet", "--num-bins", "8"]
    assert main(args) == 0
    before = _report_files(out)

    def blocked(*_args):
        raise PermissionError(13, "Permission denied", "roc_curves.png")

    monkeypatch.setattr(plots, "plot_curves", blocked)
    assert main([*args, "--plot", "--threshold", "0.3"]) == 2
    assert _report_files(out) == before and _leftovers(out) == []


SIGNAL_DURING_WRITE = """
import os, signal, sys
import voxelmetrics.evaluate.formats as formats
from voxelmetrics.cli import main

def slow_csv(summary):
    os.kill(os.getpid(), signal.SIGTERM)
    return "never written"

formats.to_csv = slow_csv
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_writing_leaves_the_old_report_and_no_temporaries(tmp_path):
    import os
    import subprocess

    pred, true, *_ = _pair(tmp_path)
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(true), "--out", str(out), "--quiet", "--num-bins", "8"]
    assert main(args) == 0
    before = _report_files(out)
    stale = out / ".voxelmetrics-staging-999999999-x"  # left by a killed run (no such pid)
    stale.mkdir()
    live = out / f".voxelmetrics-staging-{os.getpid()}-y"  # a concurrent run's, still alive
    live.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", SIGNAL_DURING_WRITE, *args, "--threshold", "0.3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 143, run.stderr
    assert "SIGTERM" in run.stderr
    assert _report_files(out) == before
    assert _leftovers(out) == [live.name]


def test_ctrl_c_stops_the_run_even_when_the_interrupt_is_swallowed(tmp_path, monkeypatch):
    import os
    import signal

    import voxelmetrics.cli.running as running

    pred, true, *_ = _pair(tmp_path, shape=(30, 5, 4))
    out = tmp_path / "out"

    def swallowing(self, name, done, total):  # as JAX's GC callback does
        with contextlib.suppress(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(running._Progress, "on_chunk", swallowing)
    # Python's own handler first, whatever earlier tests left (the full suite was once seen
    # with SIGINT ignored here; the CLI must restore what it found either way).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = ["evaluate", str(pred), str(true), "--out", str(out), "--quiet"]
        assert main([*args, "--chunk-mb", "0.01"]) == 130
        assert not (out / "report.json").exists()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_hidden_files_are_named_when_skipped(tmp_path, capsys):
    pred, true, y_pred, _ = _pair(tmp_path)
    np.save(pred / ".b.npy", y_pred)
    assert main(["evaluate", str(pred), str(true), "--quiet", "--num-bins", "8"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and ".b.npy" in err and "hidden" in err


def _write_npz_member(path, header: bytes, data: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("arr_0.npy", header + data)


def _npy_header(shape, dtype) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def test_npz_whose_header_claims_a_huge_shape(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path)
    path = pred / "case0.npz"
    (pred / "case0.npy").unlink()
    _write_npz_member(path, _npy_header((10**6, 10**6, 3), "<f4"), b"\0" * 1000)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "corrupt" in err and "claims" in err


def test_nii_gz_whose_header_claims_a_huge_shape(tmp_path, capsys):
    import nibabel

    pred, true, *_ = _pair(tmp_path)
    header = nibabel.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((30000, 30000, 5, 3))
    header["vox_offset"] = 352
    path = true / "case0.nii.gz"
    (true / "case0.npy").unlink()
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1000))
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "corrupt" in err


def test_huge_num_bins_is_refused_before_allocating(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path)
    err = _bad(tmp_path, capsys, pred, true, "--num-bins", "1000000000", name_in_message="num_bins")
    assert "--num-bins" in err and "MiB" in err


@pytest.mark.parametrize("shape", [(0, 5, 4, 3), (9, 5, 4, 0)])
def test_zero_size_volume(tmp_path, capsys, shape):
    pred, true, *_ = _pair(tmp_path)
    np.save(pred / "case0.npy", np.zeros(shape, np.float32))
    np.save(true / "case0.npy", np.zeros(shape, np.uint8))
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case0.npy")
    assert "no voxels" in err


def test_unreadable_file(tmp_path, capsys, monkeypatch):
    import builtins

    import voxelmetrics.evaluate.readers as readers

    pred, true, *_ = _pair(tmp_path)
    locked = true / "case0.npy"

    def guarded_open(path, *args, **kwargs):  # chmod 000 does not stop root
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(readers, "open", guarded_open, raising=False)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=locked)
    assert "cannot be read" in err and "Permission denied" in err


def _flip_lowest_bit(data: bytearray, offset: int) -> None:
    data[offset] ^= 1  # the lowest mantissa bit of a little-endian float32: still in [0, 1]


def test_corrupt_gzip_data_and_cut_trailer_are_refused(tmp_path, capsys):
    import nibabel

    pred, true, y_pred, _ = _pair(tmp_path)
    (pred / "case0.npy").unlink()
    path = pred / "case0.nii.gz"
    nibabel.save(nibabel.Nifti1Image(y_pred, np.eye(4)), path)
    raw = gzip.decompress(path.read_bytes())
    stored = bytearray(gzip.compress(raw, compresslevel=0))  # one stored deflate block
    _flip_lowest_bit(stored, stored.index(raw[400:432]) + 48)
    path.write_bytes(bytes(stored))
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "corrupt" in err
    path.write_bytes(gzip.compress(raw)[:-8])  # the CRC and length trailer cut off
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "corrupt" in err


def test_corrupt_npz_member_is_refused(tmp_path, capsys):
    pred, true, y_pred, _ = _pair(tmp_path)
    (pred / "case0.npy").unlink()
    path = pred / "case0.npz"
    np.savez(path, y_pred)  # stored: a flipped byte still decodes, only the CRC tells
    data = bytearray(path.read_bytes())
    _flip_lowest_bit(data, data.index(y_pred.tobytes()[:64]) + 4 * 7)
    path.write_bytes(bytes(data))
    err = _bad(tmp_path, capsys, pred, true, name_in_message=path)
    assert "corrupt" in err


def test_swapped_pred_and_true_are_suggested(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path)
    err = _bad(tmp_path, capsys, true, pred, name_in_message=pred / "case0.npy")
    assert "PRED and TRUE are swapped" in err


def test_unpaired_cases_are_listed_from_both_sides(tmp_path, capsys):
    pred, true, y_pred, y_true = _pair(tmp_path)
    np.save(pred / "only_pred.npy", y_pred)
    np.save(true / "only_true.npy", y_true)
    err = _bad(tmp_path, capsys, pred, true, name_in_message="only_pred")
    assert "'only_true'" in err and "<tmp>/true only" in err and "<tmp>/pred only" in err


@pytest.mark.parametrize(
    "option", [["--num-classes", "2"], ["--class-names", "a,b"], ["--threshold", "0.1,0.2"]]
)
def test_class_count_mismatch_names_its_option(tmp_path, capsys, option):
    pred, true, *_ = _pair(tmp_path)
    err = _bad(tmp_path, capsys, pred, true, *option, name_in_message=pred / "case0.npy")
    assert option[0] in err and "3 classes" in err


def test_implausible_class_axis_is_flagged(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path, shape=(16, 16, 2), c=2)  # axis 0: 16 "classes"
    args = ["evaluate", str(pred), str(true), "--quiet", "--num-bins", "4", "--axis", "0"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "is --axis right?" in captured.err and "16 classes" in captured.err
    assert "class axis 0: 16 classes" in captured.out


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"]])
def test_help_imports_no_keras_jax_tensorflow_or_matplotlib(argv):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voxelmetrics", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: voxelmetrics" in run.stdout
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    heavy = {"keras", "jax", "tensorflow", "torch", "matplotlib"}
    assert not {m.split(".")[0] for m in imported} & heavy


def _label_maps(tmp_path, c=3, masks=False):
    """Two cases of NIfTI label maps (or 0/1 bool masks as .npy); case1 lacks class 2."""
    import nibabel as nib

    rng = np.random.default_rng(3)
    pairs = []
    for folder in ("pred", "true"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        y_true = rng.integers(0, c, (8, 6, 5)).astype(np.uint8)
        y_pred = np.where(rng.random(y_true.shape) < 0.8, y_true, 0).astype(np.uint8)
        if i == 1:
            y_true[y_true == 2], y_pred[y_pred == 2] = 1, 1
        if masks:
            t, p = (np.eye(c, dtype=np.uint8)[y] for y in (y_true, y_pred))
            np.save(tmp_path / "true" / f"case{i}.npy", t)
            np.save(tmp_path / "pred" / f"case{i}.npy", p.astype(bool))
        else:
            for folder, y in (("true", y_true), ("pred", y_pred)):
                nib.save(nib.Nifti1Image(y, np.eye(4)), tmp_path / folder / f"case{i}.nii.gz")
        pairs.append((y_true, y_pred))
    return tmp_path / "pred", tmp_path / "true", pairs


@pytest.mark.parametrize("masks", [False, True])
def test_label_maps_and_masks_evaluate_with_numpy_counts(tmp_path, capsys, masks):
    pred, true, pairs = _label_maps(tmp_path, masks=masks)
    out, per_case = tmp_path / "out", tmp_path / "elsewhere" / "cases.csv"
    per_case.parent.mkdir()
    args = [str(pred), str(true), "--out", str(out), "--quiet", "--exclude", "class_0"]
    assert main(["evaluate", *args, "--per-case", str(per_case), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "hard predictions rank nothing" in printed and "[95% bootstrap CI]" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["pred_kind"] == ("masks" if masks else "labels")
    for case, (y_true, y_pred) in zip(report["cases"], pairs, strict=True):
        for c in range(3):
            row = case["classes"][f"class_{c}"]
            t, p = y_true == c, y_pred == c
            assert [row[k] for k in ("tp", "fp", "fn", "tn")] == [
                int((t & p).sum()),
                int((~t & p).sum()),
                int((t & ~p).sum()),
                int((~t & ~p).sum()),
            ]
    assert "average_precision" not in report["pooled"]["averages"]["macro"]
    assert report["samplewise"]["class_2"]["statistics"]["dice"]["n_defined"] == 1
    lines = per_case.read_text().splitlines()
    assert lines[0].startswith("case,class,support,tp,fp,fn,tn") and len(lines) == 1 + 2 * 3
    assert "ci_low" in (out / "report.csv").read_text()


@pytest.mark.parametrize("option", [["--criterion", "f1"], ["--plot", "--out", "x"]])
def test_curve_options_with_label_maps_are_a_clear_error(tmp_path, capsys, option):
    pred, true, _ = _label_maps(tmp_path)
    assert main(["evaluate", str(pred), str(true), "--quiet", *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} needs scores" in err and "ranks nothing" in err
    assert "--from-logits" not in err
    assert not (tmp_path / "x").exists()


def test_label_maps_read_as_scores_get_label_advice_not_logits(tmp_path, capsys):
    pred, true, _ = _label_maps(tmp_path)
    args = [str(pred), str(true), "--quiet", "--pred-kind", "scores"]
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert "--from-logits" not in err and "pass --pred-kind labels" in err


def test_unknown_excluded_class_exits_2(tmp_path, capsys):
    pred, true, _ = _label_maps(tmp_path)
    assert main(["evaluate", str(pred), str(true), "--quiet", "--exclude", "liver"]) == 2
    assert "--exclude 'liver' is neither a class name" in capsys.readouterr().err


def _label_map_folders(tmp_path, zooms):
    """Two cases of NIfTI label maps (3 classes) whose headers say voxel size `zooms`;
    class 2 is missed entirely in the second prediction."""
    import nibabel as nib

    rng = np.random.default_rng(3)
    maps = {}
    for folder in ("pred", "true"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        y_true = np.zeros((14, 12, 8), np.uint8)
        y_true[3:10, 2:9, 2:6] = 1
        y_true[8:12, 6:11, 3:7] = 2
        y_pred = np.where(rng.random(y_true.shape) < 0.05, 0, y_true).astype(np.uint8)
        if i == 1:
            y_pred[y_pred == 2] = 0
        for folder, y in (("true", y_true), ("pred", y_pred)):
            image = nib.Nifti1Image(y, np.eye(4))
            image.header.set_zooms(zooms)
            nib.save(image, tmp_path / folder / f"case{i}.nii.gz")
        maps[f"case{i}"] = (y_true, y_pred)
    return tmp_path / "pred", tmp_path / "true", maps


def test_surface_measures_with_spacing_from_the_headers(tmp_path, capsys):
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    spacing = (0.8, 0.8, 2.5)
    pred, true, maps = _label_map_folders(tmp_path, spacing)
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(true), "--surface", "hd95,nsd:2", "--num-classes", "3"]
    assert main([*args, "--out", str(out), "--quiet", "--bootstrap", "0"]) == 0
    assert "HD95" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["surface"] == ["hd95", "nsd"] and report["config"]["nsd_tolerance"] == 2
    for case in report["cases"]:
        y_true, y_pred = (np.moveaxis(np.eye(3)[m], -1, 0)[None] for m in maps[case["name"]])
        yt, yp = torch.as_tensor(y_true), torch.as_tensor(y_pred)
        hd95 = compute_hausdorff_distance(
            yp, yt, include_background=True, percentile=95, spacing=list(spacing)
        )[0].numpy()
        nsd = compute_surface_dice(
            yp, yt, [2.0] * 3, include_background=True, spacing=list(spacing)
        )[0].numpy()
        for c, name in enumerate(("class_0", "class_1", "class_2")):
            row = case["classes"][name]
            if np.isnan(hd95[c]):  # MONAI: NaN for a missed structure; here inf, as its HD
                assert row["hd95"] == "inf" and case["name"] == "case1" and c == 2
            else:
                assert row["hd95"] == pytest.approx(hd95[c], rel=1e-6)
            assert row["nsd"] == pytest.approx(nsd[c], rel=1e-6, abs=1e-7)
    stats = report["samplewise"]["class_2"]["statistics"]["hd95"]
    assert stats["max"] == "inf" and stats["max_case"] == "case1"


def test_surface_of_label_maps_with_an_inferred_class_count(tmp_path, monkeypatch):
    """Without --num-classes a label map's C is inferred after every case: the boundary
    measures cover exactly those classes (a transform per present class, not 256)."""
    import voxelmetrics.evaluate.streaming as streaming

    measured = []
    real = streaming.case_measures
    monkeypatch.setattr(
        streaming,
        "case_measures",
        lambda *a, **k: measured.append(k["num_classes"]) or real(*a, **k),
    )
    pred, true, _ = _label_map_folders(tmp_path, (1.0, 1.0, 1.0))
    out = tmp_path / "out"
    args = [str(pred), str(true), "--surface", "hd95", "--out", str(out), "--quiet"]
    assert main(["evaluate", *args, "--bootstrap", "0"]) == 0
    inferred = json.loads((out / "report.json").read_text())
    assert inferred["config"]["num_classes"] == 3 and measured == [3, 3]
    assert main(["evaluate", *args, "--bootstrap", "0", "--num-classes", "3"]) == 0
    given = json.loads((out / "report.json").read_text())
    for a, b in zip(inferred["cases"], given["cases"], strict=True):
        assert [a["classes"][k]["hd95"] for k in a["classes"]] == [
            b["classes"][k]["hd95"] for k in b["classes"]
        ]


def test_surface_spacing_disagreeing_with_a_header_is_refused(tmp_path, capsys):
    pred, true, _ = _label_map_folders(tmp_path, (0.8, 0.8, 2.5))
    err = _bad(
        tmp_path,
        capsys,
        pred,
        true,
        "--surface",
        "hd95",
        "--spacing",
        "1,1,1",
        "--num-classes",
        "3",
        name_in_message="--spacing",
    )
    assert "voxel size" in err and "--spacing says (1.0, 1.0, 1.0)" in err


@pytest.mark.parametrize(
    "bad", [["--surface", "hd97"], ["--surface", "nsd"], ["--spacing", "1,0,1"]]
)
def test_surface_options_are_checked(tmp_path, capsys, bad):
    pred, true, _, _ = _pair(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(pred), str(true), "--quiet", *bad])
    assert exit_.value.code == 2
    assert bad[0] in capsys.readouterr().err


# Issue 21, fault 14: the advice given for label maps, and merge given something else.
def _label_pair(tmp_path, pred, true):
    for side, array in (("pred", pred), ("true", true)):
        (tmp_path / side).mkdir(exist_ok=True)
        np.save(tmp_path / side / "case0.npy", array)
    return tmp_path / "pred", tmp_path / "true"


def test_a_float32_label_map_gets_the_pred_kind_advice(tmp_path, capsys):
    y_true = np.random.default_rng(0).integers(0, 3, (6, 5, 4)).astype(np.uint8)
    pred, true = _label_pair(tmp_path, y_true.astype(np.float32), y_true)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case0.npy")
    assert "look like a label map stored as float32: pass --pred-kind labels" in err
    assert main(["evaluate", str(pred), str(true), "--pred-kind", "labels", "--quiet"]) == 0
    fractional = y_true.astype(np.float32) + 0.5  # not whole numbers: logits, maybe
    pred, true = _label_pair(tmp_path, fractional, y_true)
    err = _bad(tmp_path, capsys, pred, true, name_in_message=pred / "case0.npy")
    assert "pass --from-logits if these are logits" in err and "--pred-kind" not in err


@pytest.mark.parametrize("extra", [[], ["--num-classes", "3"]])
def test_a_negative_label_id_gets_the_ignore_index_advice(tmp_path, capsys, extra):
    rng = np.random.default_rng(1)
    y_pred = rng.integers(0, 3, (6, 5, 4)).astype(np.int16)
    y_true = np.where(rng.random(y_pred.shape) < 0.2, -1, y_pred).astype(np.int16)
    pred, true = _label_pair(tmp_path, y_pred, y_true)
    err = _bad(tmp_path, capsys, pred, true, *extra, name_in_message=true / "case0.npy")
    assert "pass --ignore-index -1 to skip its voxels" in err
    assert "pass --num-classes" not in err
    assert main(["evaluate", str(pred), str(true), *extra, "--ignore-index", "-1", "--quiet"]) == 0
    y_pred[np.unravel_index(np.argmax(y_true >= 0), y_true.shape)] = -1  # truth not ignored
    np.save(pred / "case0.npy", y_pred)  # there, -1 in the prediction: no option skips it
    err = _bad(tmp_path, capsys, pred, true, *extra, "--ignore-index", "-1", name_in_message=pred)
    assert "a predicted label map holds class ids only" in err and "pass --num-classes" not in err


def test_merge_given_a_report_or_a_volume_says_what_it_reads(tmp_path, capsys):
    pred, true, *_ = _pair(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", str(pred), str(true), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    for path in (out / "report.json", out / "report.csv", pred / "case0.npy"):
        assert main(["merge", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"voxelmetrics: error: {path}: is not an .npz archive: merge reads the parts "
            f"written by `voxelmetrics evaluate --shard I/N --partial part-I.npz` (not a "
            f"report or a volume)."
        )
