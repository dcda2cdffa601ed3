"""The `voxelmetrics` CLI: evaluate end to end, the demo, and every bad input (exit status 2)."""

import gzip
import json
import runpy
import sys

import numpy as np
import pytest

from voxelmetrics.cli import main

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
    assert not any((out / name).exists() for name in REPORTS)
    return err


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


@pytest.mark.parametrize("option", [["--num-bins", "0"], ["--chunk-mb", "-1"]])
def test_bad_option_values_exit_2(tmp_path, option):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path), str(tmp_path), *option])
    assert exit_info.value.code == 2
