"""`--regions`: unions of labels as the classes of every report (overlap counts, boundary,
lesions), against the same run on the union written out as a binary label map."""

import json
import re

import numpy as np
import pytest

from tests.evaluate.test_lesions import blobs
from voxelmetrics.cli import main
from voxelmetrics.evaluate.regions import parse_regions, region_counts, region_masks

SHAPE = (10, 10, 10)


def test_region_counts_equal_a_direct_count():
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    matrix = np.zeros((4, 4), np.int64)
    np.add.at(matrix, (truth, pred), 1)
    regions = parse_regions(["wt=1,2,3", "tc=1,3", "et=3", "absent=7"])
    t, p = region_masks(truth, regions), region_masks(pred, regions)
    expected = np.stack([(t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0), (~t & ~p).sum(0)], -1)
    np.testing.assert_array_equal(region_counts(matrix, regions), expected)


def test_parse_regions_errors():
    for bad in (["wt"], ["wt=1,,2"], ["wt=1", "wt=2"], ["wt=1,1"], ["w t=1"]):
        with pytest.raises(ValueError, match="--regions"):
            parse_regions(bad)


@pytest.mark.parametrize("name", ["none", "Macro", "micro", "weighted", "samplewise"])
def test_a_region_named_as_an_average_is_refused_as_a_class_name_would_be(name):
    """A region is a class of the report: "none" or "macro" would read as an average."""
    with pytest.raises(ValueError, match="^--regions .*" + re.escape(f"['{name}'] are reserved")):
        parse_regions(["wt=1,2", f"{name}=3"])


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Label maps with labels 1, 2, 3, and the same cases with the union {1, 3} as label 1."""
    root = tmp_path_factory.mktemp("regions")
    rng = np.random.default_rng(4)
    for folder in ("pred", "true", "pred_tc", "true_tc"):
        (root / folder).mkdir()
    for i in range(2):
        for side in ("pred", "true"):
            labels = np.zeros(SHAPE, np.uint8)
            for c in (1, 2, 3):
                labels[blobs(rng, 3, shape=SHAPE)] = c
            np.save(root / side / f"c{i}.npy", labels)
            np.save(root / f"{side}_tc" / f"c{i}.npy", np.isin(labels, (1, 3)).astype(np.uint8))
    return root


def report(*args) -> dict:
    out = args[-1]
    assert main(["evaluate", *map(str, args[:-1]), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "report.json").read_text())


def test_a_region_scores_as_its_union_in_every_report(maps, tmp_path):
    extra = ["--surface", "hd95,assd", "--lesions", "panoptica", "--num-classes", "4"]
    regions = report(
        maps / "pred", maps / "true", *extra, "--regions", "tc=1,3", "et=3", tmp_path / "a"
    )
    union = report(maps / "pred_tc", maps / "true_tc", *extra[:-2], tmp_path / "b")
    assert regions["config"]["class_names"] == ["tc", "et"]
    assert regions["config"]["regions"] == {"tc": [1, 3], "et": [3]}
    for key in ("tp", "fp", "fn", "tn", "dice", "hd95", "assd"):
        for a, b in zip(regions["cases"], union["cases"], strict=True):
            assert a["classes"]["tc"][key] == b["classes"]["class_1"][key], key
    got = regions["lesions"]["pooled"]["classes"]["tc"]
    expected = union["lesions"]["pooled"]["classes"]["class_1"]
    assert got == expected
    # and a one-label region equals that label's class of the plain run
    plain = report(maps / "pred", maps / "true", *extra, tmp_path / "c")
    et = regions["lesions"]["pooled"]["classes"]["et"]
    assert et == plain["lesions"]["pooled"]["classes"]["class_3"]
    assert (
        regions["pooled"]["classes"]["et"]["dice"] == plain["pooled"]["classes"]["class_3"]["dice"]
    )


def test_regions_need_label_maps_and_own_the_class_names(maps, tmp_path, capsys):
    scores = tmp_path / "scores"
    scores.mkdir()
    for i in range(2):
        np.save(scores / f"c{i}.npy", np.zeros((*SHAPE, 4), np.float32))
    out = tmp_path / "out"
    args = ["evaluate", str(scores), str(maps / "true"), "--out", str(out), "--quiet"]
    assert main([*args, "--regions", "wt=1,2,3"]) == 2
    assert "--regions unites the labels of label maps" in capsys.readouterr().err
    assert main([*args, "--regions", "wt=1,2,3", "--class-names", "a,b,c,d"]) == 2
    assert "drop --class-names" in capsys.readouterr().err
    assert not out.exists()


def test_regions_through_shards_and_merge(maps, tmp_path):
    args = [str(maps / "pred"), str(maps / "true"), "--regions", "wt=1,2,3", "et=3"]
    args += ["--lesions", "overlap", "--quiet"]
    for i in (0, 1):
        part = str(tmp_path / f"p{i}.npz")
        assert main(["evaluate", *args, "--shard", f"{i}/2", "--partial", part]) == 0
    parts = [str(tmp_path / f"p{i}.npz") for i in (0, 1)]
    assert main(["merge", *parts, "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert main(["evaluate", *args, "--out", str(tmp_path / "one")]) == 0
    merged, one = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("m", "one"))
    assert merged["config"]["class_names"] == ["wt", "et"]
    assert merged["pooled"] == one["pooled"] and merged["lesions"] == one["lesions"]
