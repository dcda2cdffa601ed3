"""`voxelmetrics evaluate ... --lesions`: the report's lesion block against panoptica per class
and case, label maps, masks and probability maps, shards merged, --per-lesion, and the
option errors (exit 2, one line, no file written)."""

import csv
import io
import json

import nibabel
import numpy as np
import pytest

from tests.evaluate.test_lesions import blobs, panoptica_numbers, perturbed
from voxelmetrics.cli import main
from voxelmetrics.defaults import SURFACE_CONVENTION
from voxelmetrics.evaluate import lesions
from voxelmetrics.evaluate.lesions import (
    LesionRequest,
    MinVolume,
    class_lesions,
    lesion_scores,
    request_from_options,
)

SHAPE = (12, 12, 12)


@pytest.fixture(scope="module")
def label_maps(tmp_path_factory):
    """Three cases of label maps with classes 1 and 2 (lesions of both, touching ones too)."""
    root = tmp_path_factory.mktemp("lesions")
    rng = np.random.default_rng(7)
    cases = {}
    for i in range(3):
        truth = np.zeros(SHAPE, np.uint8)
        pred = np.zeros(SHAPE, np.uint8)
        for c in (1, 2):
            t = blobs(rng, 4)
            truth[t] = c
            pred[perturbed(rng, t)] = c
        (root / "pred").mkdir(exist_ok=True)
        (root / "true").mkdir(exist_ok=True)
        np.save(root / "pred" / f"case{i}.npy", pred)
        np.save(root / "true" / f"case{i}.npy", truth)
        cases[f"case{i}"] = (truth, pred)
    return root, cases


def run(*args) -> int:
    return main(["evaluate", *map(str, args), "--quiet"])


def test_label_maps_give_panopticas_numbers_per_class_and_case(label_maps, tmp_path, capsys):
    root, cases = label_maps
    out = tmp_path / "out"
    assert (
        run(
            root / "pred",
            root / "true",
            "--lesions",
            "panoptica",
            "--out",
            out,
            "--per-lesion",
            out / "lesions.csv",
        )
        == 0
    )
    block = json.loads((out / "report.json").read_text())["lesions"]
    assert block["config"]["convention"] == "panoptica"
    assert block["config"]["match_threshold"] == 0.5
    for case in block["cases"]:
        truth, pred = cases[case["name"]]
        assert set(case["classes"]) == {"class_1", "class_2"}  # background: no lesions
        for c in (1, 2):
            got = case["classes"][f"class_{c}"]
            expected, _ = panoptica_numbers(truth == c, pred == c)
            assert (got["tp"], got["fp"], got["fn"]) == (
                expected["tp"],
                expected["fp"],
                expected["fn"],
            )
            for ours, theirs in (
                ("rq", "rq"),
                ("sq", "sq"),
                ("pq", "pq"),
                ("sq_dice", "sq_dsc"),
                ("sq_hd95", "sq_hd95"),
                ("sq_assd", "sq_assd"),
            ):
                value = got[ours]
                value = np.inf if value == "inf" else np.nan if value is None else value
                np.testing.assert_allclose(value, expected[theirs], rtol=1e-6, err_msg=ours)
    # pooled: the counts summed over cases
    for name, row in block["pooled"]["classes"].items():
        assert row["fp"] == sum(case["classes"][name]["fp"] for case in block["cases"])
        assert row["fp_per_case"] == pytest.approx(row["fp"] / 3)
    stats = block["samplewise"]["class_1"]["statistics"]["f1"]
    assert stats["n_cases"] == 3 and stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
    rows = list(csv.DictReader(io.StringIO((out / "lesions.csv").read_text())))
    assert {r["side"] for r in rows} == {"true", "pred"}
    n_true = sum(row["n_true"] for row in block["pooled"]["classes"].values())
    assert sum(r["side"] == "true" for r in rows) == n_true
    report_rows = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    pooled = [r for r in report_rows if r["scope"] == "lesions_pooled"]
    assert [r["class"] for r in pooled] == ["class_1", "class_2"]
    assert "lesions (panoptica" in capsys.readouterr().out


def test_shards_merged_equal_one_run(label_maps, tmp_path):
    root, _ = label_maps
    args = [root / "pred", root / "true", "--lesions", "brats2023:MET"]
    assert run(*args, "--out", tmp_path / "one", "--per-lesion", tmp_path / "one.csv") == 0
    for i in (0, 1):
        assert run(*args, "--shard", f"{i}/2", "--partial", tmp_path / f"p{i}.npz") == 0
    parts = [str(tmp_path / f"p{i}.npz") for i in (0, 1)]
    status = main(
        [
            "merge",
            *parts,
            "--out",
            str(tmp_path / "merged"),
            "--quiet",
            "--per-lesion",
            str(tmp_path / "merged.csv"),
        ]
    )
    assert status == 0
    one = json.loads((tmp_path / "one" / "report.json").read_text())["lesions"]
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())["lesions"]
    assert one == merged and one["config"]["dilation_iterations"] == 1
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "merged.csv").read_text()


def test_probability_maps_and_spacing_from_headers(tmp_path):
    rng = np.random.default_rng(3)
    truth = np.stack([blobs(rng, 4), blobs(rng, 3)], -1)
    scores = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.35, 0, 1).astype(np.float32)
    spacing = (0.8, 1.0, 2.0)
    for folder, array in (("pred", scores), ("true", truth.astype(np.uint8))):
        (tmp_path / folder).mkdir()
        image = nibabel.Nifti1Image(array, np.diag([*spacing, 1.0]))
        image.header.set_zooms((*spacing, 1.0))
        nibabel.save(image, tmp_path / folder / "a.nii.gz")
    out = tmp_path / "out"
    args = ["--lesions", "overlap", "--min-lesion-volume", "pred=2mm3", "--threshold", "0.6"]
    assert run(tmp_path / "pred", tmp_path / "true", *args, "--out", out, "--plot") == 0
    assert (out / "froc.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "distribution.png").read_bytes()[:4] == b"\x89PNG"
    block = json.loads((out / "report.json").read_text())["lesions"]
    for c in (0, 1):  # the FROC of probability maps: sensitivity never falls with the FPs
        curve = block["froc"][f"class_{c}"]
        assert np.all(np.diff(curve["sensitivity"]) >= 0) and curve["threshold"][-1] >= 0.6
    assert block["config"]["min_lesion_volume_pred"] == {"value": 2.0, "unit": "mm3"}
    request = LesionRequest("overlap", min_pred=MinVolume(2.0, "mm3"))
    for c in (0, 1):
        found = class_lesions(truth[..., c], scores[..., c] >= 0.6, request, spacing=spacing)
        expected = lesion_scores(found.counts, "overlap")
        got = block["cases"][0]["classes"][f"class_{c}"]
        assert got["n_pred"] == found.counts["n_pred"] and got["tp"] == found.counts["tp"]
        np.testing.assert_allclose(got["lesion_dice"], expected["lesion_dice"], rtol=1e-6)
        np.testing.assert_allclose(got["lesion_hd95"], expected["lesion_hd95"], rtol=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--connectivity", "26"], "--connectivity needs --lesions"),
        (["--lesions", "overlap", "--match-threshold", "0.3"], "--match-threshold is panoptica"),
        (
            ["--lesions", "panoptica", "--connectivity", "8"],
            "--connectivity must be one of [6, 18, 26]",
        ),
        (["--lesions", "panoptica", "--min-lesion-volume", "5cm3"], "--min-lesion-volume"),
        (["--lesions", "dice"], "--lesions 'dice'"),
        (["--per-lesion", "x.csv"], "--per-lesion x.csv needs --lesions"),
    ],
)
def test_option_errors_exit_2_with_one_line_and_no_files(
    label_maps, tmp_path, capsys, extra, message
):
    root, _ = label_maps
    out = tmp_path / "out"
    assert run(root / "pred", root / "true", "--out", out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_distribution_scores_per_measure_and_class():
    from voxelmetrics.evaluate.distribution import per_case_scores

    summary = {
        "config": {"surface": ["hd95"]},
        "cases": [
            {"classes": {"a": {"dice": 0.5, "hd95": "inf"}, "b": {"dice": None, "hd95": 2.0}}},
            {"classes": {"a": {"dice": 0.7, "hd95": 1.0}, "b": {"dice": 0.1, "hd95": 3.0}}},
        ],
        "lesions": {"cases": [{"classes": {"a": {"f1": 1.0}}}, {"classes": {"a": {"f1": 0.0}}}]},
    }
    scores = per_case_scores(summary)
    assert list(scores) == ["dice", "hd95", "lesion_f1"]
    np.testing.assert_array_equal(scores["dice"]["b"], [np.nan, 0.1])
    np.testing.assert_array_equal(scores["hd95"]["a"], [np.inf, 1.0])
    np.testing.assert_array_equal(scores["lesion_f1"]["a"], [1.0, 0.0])


def test_overlap_takes_the_surface_convention_and_spacing(label_maps, tmp_path):
    root, cases = label_maps
    out = tmp_path / "out"
    args = ["--lesions", "overlap", "--surface-convention", "medpy", "--spacing", "1,0.5,2"]
    assert run(root / "pred", root / "true", *args, "--out", out) == 0
    block = json.loads((out / "report.json").read_text())["lesions"]
    assert block["config"]["boundary_convention"] == "medpy"
    truth, pred = cases["case0"]
    request = LesionRequest("overlap", surface_convention="medpy")
    found = class_lesions(truth == 1, pred == 1, request, spacing=(1, 0.5, 2))
    expected = lesion_scores(found.counts, "overlap")["lesion_hd95"]
    got = block["cases"][0]["classes"]["class_1"]["lesion_hd95"]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_the_lesion_surface_convention_defaults_to_the_one_default(monkeypatch):
    """`request_from_options` typed "monai" again instead of naming
    `defaults.SURFACE_CONVENTION` (a change of the default would have missed it)."""
    assert request_from_options("overlap").surface_convention == SURFACE_CONVENTION
    monkeypatch.setattr(lesions, "SURFACE_CONVENTION", "medpy")
    assert request_from_options("overlap").surface_convention == "medpy"
    assert request_from_options("overlap", surface_convention="deepmind").boundary_convention == (
        "deepmind"
    )


def test_merge_refuses_a_partial_with_tampered_lesion_arrays(label_maps, tmp_path, capsys):
    """A partial's lesion arrays are validated like its counts (a negative count, rows that
    are not JSON): exit 2 naming the file, no report."""
    root, _ = label_maps
    part = tmp_path / "p.npz"
    args = [root / "pred", root / "true", "--lesions", "panoptica"]
    assert run(*args, "--shard", "0/1", "--partial", part) == 0
    arrays = dict(np.load(part))
    for name, value in (
        ("lesion_counts", -np.abs(arrays["lesion_counts"]) - 1),
        ("lesion_rows", np.frombuffer(b"not json", np.uint8)),
    ):
        bad = tmp_path / f"bad-{name}.npz"
        np.savez(bad, **{**arrays, name: value})
        out = tmp_path / f"out-{name}"
        assert main(["merge", str(bad), "--out", str(out), "--quiet"]) == 2
        assert not out.exists()
        assert (
            f"{bad}: is a corrupt voxelmetrics partial: array {name!r}" in capsys.readouterr().err
        )
