"""`voxelmetrics evaluate --surface` end to end on the host boundary path: the options of
issue 20 (`--surface-convention`, `--surface-missing`, per-class NSD tolerances, `--exclude`)
and the faults of issue 21 (11: `--spacing` with more axes than a NIfTI; 13: Ctrl-C during
the boundary phase; 14: `(X, Y, Z, 1)` NIfTIs, the boundary table cut at 80 columns when
piped, `--spacing` without `--surface`)."""

import contextlib
import json
import os
import signal
import threading
import time

import nibabel as nib
import numpy as np
import pytest

from voxelmetrics.cli import main
from voxelmetrics.evaluate import boundary
from voxelmetrics.evaluate.boundary import KEYS, mask_measures

SPACING = (0.8, 0.8, 2.5)
NAMES = ["background", "a_rather_long_liver_name", "a_rather_long_kidney_name"]


def _save(path, array, zooms=SPACING):
    image = nib.Nifti1Image(array, np.eye(4))
    image.header.set_zooms(zooms[: array.ndim] + (1.0,) * max(0, array.ndim - len(zooms)))
    nib.save(image, path)


def _folders(tmp_path, shape=(14, 12, 8), trailing=False):
    """Two cases of label maps (class 2 missed by the prediction in case1)."""
    rng = np.random.default_rng(3)
    maps = {}
    for folder in ("pred", "true"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        y_true = np.zeros(shape, np.uint8)
        y_true[3:10, 2:9, 2:6] = 1
        y_true[8:12, 6:11, 3:7] = 2
        y_pred = np.where(rng.random(shape) < 0.05, 0, y_true).astype(np.uint8)
        if i == 1:
            y_pred[y_pred == 2] = 0
        for folder, y in (("true", y_true), ("pred", y_pred)):
            _save(tmp_path / folder / f"case{i}.nii.gz", y[..., None] if trailing else y)
        maps[f"case{i}"] = (y_true, y_pred)
    return tmp_path / "pred", tmp_path / "true", maps


def _run(tmp_path, pred, true, *extra, out="out"):
    args = ["evaluate", str(pred), str(true), "--quiet", "--bootstrap", "0", *extra]
    status = main([*args, "--out", str(tmp_path / out)])
    report = tmp_path / out / "report.json"
    return status, json.loads(report.read_text()) if status == 0 else None


def _expected(maps, case, c, **kwargs):
    y_true, y_pred = maps[case]
    return mask_measures(y_true == c, y_pred == c, spacing=SPACING, **kwargs)


# ----------------------------------------------------------------------------- issue 21


def test_fault_11_spacing_with_more_axes_than_the_nifti_is_one_clear_line(tmp_path, capsys):
    pred, true, _ = _folders(tmp_path)
    status, _ = _run(tmp_path, pred, true, "--surface", "hd95", "--spacing", "1,1,1,1")
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "case0.nii.gz" in err and "3 spatial axes" in err and "4 voxel sizes" in err
    assert not (tmp_path / "out").exists()


def test_fault_14_a_trailing_singleton_nifti_axis_works_with_surface(tmp_path):
    plain = tmp_path / "plain"
    single = tmp_path / "single"
    plain.mkdir(), single.mkdir()
    a = _run(plain, *_folders(plain)[:2], "--surface", "hd95,assd,nsd:2", "--num-classes", "3")
    b = _run(
        single,
        *_folders(single, trailing=True)[:2],
        "--surface",
        "hd95,assd,nsd:2",
        "--num-classes",
        "3",
    )
    assert a[0] == 0 and b[0] == 0
    assert [c["classes"] for c in a[1]["cases"]] == [c["classes"] for c in b[1]["cases"]]


def test_fault_14_the_boundary_table_is_not_cut_when_piped(tmp_path, capsys):
    pred, true, _ = _folders(tmp_path)
    extra = ("--surface", "hd95,assd,nsd:2", "--class-names", ",".join(NAMES))
    assert _run(tmp_path, pred, true, *extra, "--bootstrap", "50")[0] == 0  # with CIs
    out = capsys.readouterr().out
    table = out[out.index("boundary: mean") :]
    for name in NAMES:
        assert name in table
    rows = [line for line in table.splitlines() if line.startswith(tuple(f"  {n}" for n in NAMES))]
    assert len(rows) == 3 and all("…" not in row and "..." not in row for row in rows)
    assert all(row.count("[") == row.count("]") == 3 for row in rows)


@pytest.mark.parametrize(
    "option",
    [["--spacing", "1,1,1"], ["--surface-missing", "nan"], ["--surface-convention", "medpy"]],
)
def test_fault_14_surface_options_without_surface_are_refused(tmp_path, capsys, option):
    pred, true, _ = _folders(tmp_path)
    status, _ = _run(tmp_path, pred, true, *option)
    err = capsys.readouterr().err
    assert status == 2 and option[0] in err and "--surface" in err
    assert not (tmp_path / "out").exists()


def test_fault_13_ctrl_c_during_the_boundary_phase_acts_at_once(tmp_path, monkeypatch, capsys):
    """A SIGINT in the middle of the boundary phase ends the run with 130 within 2 s, even
    when the exception is swallowed where it lands (as JAX's GC callbacks do): the next
    class's check point stops the run."""
    pred, true, _ = _folders(tmp_path)
    real = boundary.nearest_distances
    calls, sent = [], []

    def slow(*args):
        calls.append(time.monotonic())
        if len(calls) == 1:
            threading.Timer(
                0.1, lambda: sent.append(time.monotonic()) or os.kill(os.getpid(), signal.SIGINT)
            ).start()
        with contextlib.suppress(KeyboardInterrupt):  # swallowed where it landed
            time.sleep(0.5)  # a long class
        return real(*args)

    monkeypatch.setattr(boundary, "nearest_distances", slow)
    extra = ("--surface", "hd95", "--num-classes", "3")
    start = time.monotonic()
    status, _ = _run(tmp_path, pred, true, *extra)
    assert status == 130 and sent and time.monotonic() - sent[0] < 2.0
    assert len(calls) < 2 * 3 * 2  # stopped before every class of both cases was measured
    assert not (tmp_path / "out").exists() and time.monotonic() - start < 10


# ----------------------------------------------------------------------------- issue 20


def test_exclude_classes_are_not_measured_and_say_so(tmp_path, capsys, monkeypatch):
    pred, true, maps = _folders(tmp_path)
    asked = []
    real = boundary.case_boundary_measures
    monkeypatch.setattr(
        boundary,
        "case_boundary_measures",
        lambda t, p, classes, **k: asked.append(list(classes)) or real(t, p, classes, **k),
    )
    status, report = _run(
        tmp_path, pred, true, "--surface", "hd95", "--num-classes", "3", "--exclude", "0"
    )
    assert status == 0 and asked == [[1, 2], [1, 2]]
    assert report["config"]["surface_not_measured"] == [0]
    assert all(case["classes"]["class_0"]["hd95"] is None for case in report["cases"])
    assert "not measured" in capsys.readouterr().out
    got = report["cases"][0]["classes"]["class_1"]["hd95"]
    assert got == pytest.approx(_expected(maps, "case0", 1)["hausdorff"], rel=1e-6)


@pytest.mark.parametrize(
    "policy, value",
    [
        ("inf", "inf"),
        ("nan", None),
        ("374", 374.0),
        ("diagonal", float(np.hypot(np.hypot(14 * 0.8, 12 * 0.8), 8 * 2.5))),
    ],
)
def test_surface_missing_policy_and_the_cases_it_touched(tmp_path, capsys, policy, value):
    pred, true, _ = _folders(tmp_path)
    extra = ("--surface", "hd95,assd,nsd:2", "--num-classes", "3", "--surface-missing", policy)
    status, report = _run(tmp_path, pred, true, *extra)
    assert status == 0 and report["config"]["surface_missing"] == policy
    missed = report["cases"][1]["classes"]["class_2"]
    if value is None:
        assert missed["hd95"] is None and missed["assd"] is None
    else:
        assert missed["hd95"] == pytest.approx(value) and missed["assd"] == pytest.approx(value)
    assert missed["nsd"] == 0
    counts = [report["samplewise"][f"class_{c}"]["surface_missed_cases"] for c in range(3)]
    assert counts == [0, 0, 1]
    out = capsys.readouterr().out
    assert f"missed on one side (HD/ASSD scored {policy}), cases per class: class_2 in 1" in out


def test_per_class_nsd_tolerances_by_name_and_id(tmp_path):
    pred, true, maps = _folders(tmp_path)
    names = ",".join(NAMES)
    tolerances = f"nsd:background=1,{NAMES[1]}=5,2=0.5"
    status, report = _run(tmp_path, pred, true, "--surface", tolerances, "--class-names", names)
    assert status == 0
    assert report["config"]["nsd_tolerances"] == {"0": 1.0, "1": 5.0, "2": 0.5}
    for c, tol in enumerate((1.0, 5.0, 0.5)):
        want = _expected(maps, "case0", c, tolerance=tol)["surface_dice"]
        assert report["cases"][0]["classes"][NAMES[c]]["nsd"] == pytest.approx(want, rel=1e-6)


def test_per_class_nsd_tolerances_must_cover_every_measured_class(tmp_path, capsys):
    pred, true, _ = _folders(tmp_path)
    extra = ("--surface", "nsd:1=2", "--num-classes", "3")
    assert _run(tmp_path, pred, true, *extra)[0] == 2
    err = capsys.readouterr().err
    assert "--surface" in err and "none for 0, 2" in err
    assert _run(tmp_path, pred, true, *extra, "--exclude", "0,2")[0] == 0
    assert _run(tmp_path, pred, true, "--surface", "nsd:liver=2")[0] == 2
    assert "'liver' is neither a class id" in capsys.readouterr().err


@pytest.mark.parametrize("convention", ["monai", "deepmind", "medpy"])
def test_the_report_records_the_convention(tmp_path, convention):
    pred, true, maps = _folders(tmp_path)
    extra = (
        "--surface",
        "hd95,assd,nsd:2",
        "--num-classes",
        "3",
        "--surface-convention",
        convention,
    )
    status, report = _run(tmp_path, pred, true, *extra)
    assert status == 0 and report["config"]["surface_convention"] == convention
    want = _expected(maps, "case0", 1, convention=convention, tolerance=2.0)
    got = report["cases"][0]["classes"]["class_1"]
    for key, name in zip(KEYS, ("hd95", "assd", "nsd"), strict=True):
        assert got[name] == pytest.approx(want[key], rel=1e-6)


def test_a_partial_keeps_every_boundary_rule():
    from voxelmetrics.evaluate import Options
    from voxelmetrics.evaluate.partial import options_from_json, options_to_json
    from voxelmetrics.evaluate.surface import SurfaceRequest

    request = SurfaceRequest(
        ("hd95", "nsd"), None, ((1, 2.0), (2, 0.5)), "deepmind", "diagonal", (0,)
    )
    options = Options(surface=request, spacing=(1.0, 2.0, 3.0))
    assert options_from_json(options_to_json(options)) == options


def test_shards_merge_with_the_missed_counts(tmp_path):
    pred, true, _ = _folders(tmp_path)
    # class 1 (true positives everywhere) not measured: NaN passes the partial's checks
    extra = (
        "--surface",
        "hd95",
        "--num-classes",
        "3",
        "--surface-missing",
        "374",
        "--exclude",
        "1",
    )
    parts = [tmp_path / f"part-{i}.npz" for i in range(2)]
    for i, part in enumerate(parts):
        args = ["evaluate", str(pred), str(true), "--quiet", *extra]
        assert main([*args, "--shard", f"{i}/2", "--partial", str(part)]) == 0
    out = tmp_path / "merged"
    assert main(["merge", *map(str, parts), "--out", str(out), "--quiet"]) == 0
    merged = json.loads((out / "report.json").read_text())
    whole = _run(tmp_path, pred, true, *extra)[1]
    assert merged["cases"] == whole["cases"]
    assert merged["samplewise"]["class_2"]["surface_missed_cases"] == 1
    assert merged["config"]["surface_missing"] == "374"


def test_deepmind_needs_two_or_three_spatial_axes(tmp_path, capsys):
    for folder in ("pred", "true"):
        (tmp_path / folder).mkdir()
        np.save(tmp_path / folder / "case.npy", np.zeros((1, 2, 2, 3), np.uint8))
    extra = ("--surface", "hd95", "--spacing", "1,1,1,1", "--surface-convention", "deepmind")
    assert _run(tmp_path, tmp_path / "pred", tmp_path / "true", *extra)[0] == 2
    assert "2-D contours or 3-D surfaces" in capsys.readouterr().err
