"""Same numbers as nnU-Net's own evaluation (nnunetv2) on the same label-map files."""

import nibabel as nib
import numpy as np
import pytest
from nnunetv2.evaluation.evaluate_predictions import compute_metrics
from nnunetv2.imageio.nibabel_reader_writer import NibabelIO

from voxelmetrics.evaluate.engine import Options, evaluate
from voxelmetrics.evaluate.report import summarize

LABELS = [1, 2, 3]  # nnU-Net scores the foreground labels
IGNORE = 4


def _write_cases(tmp_path, rng):
    """Label maps with a class absent from a case, a single-voxel class and ignored voxels."""
    (tmp_path / "pred").mkdir()
    (tmp_path / "true").mkdir()
    for i in range(3):
        y_true = rng.integers(0, 3, (10, 9, 7)).astype(np.uint8)
        y_pred = np.where(rng.random(y_true.shape) < 0.75, y_true, rng.integers(0, 4, y_true.shape))
        y_pred = y_pred.astype(np.uint8)
        if i == 0:
            y_true[4, 4, 4] = 3  # one voxel of class 3 in the truth
        if i == 1:
            y_true[:2] = IGNORE
        if i == 2:
            y_pred[y_pred == 3] = 0  # class 3 absent from both maps
        for folder, y in (("true", y_true), ("pred", y_pred)):
            nib.save(nib.Nifti1Image(y, np.eye(4)), tmp_path / folder / f"case{i}.nii.gz")
    return tmp_path / "pred", tmp_path / "true"


def test_counts_dice_and_iou_equal_nnunet_compute_metrics(tmp_path, rng):
    pred, true = _write_cases(tmp_path, rng)
    ev = evaluate(y_true=true, y_pred=pred, options=Options(num_classes=4, ignore_index=IGNORE))
    summary = summarize(ev, exclude=[0], bootstrap=0)
    for case in summary["cases"]:
        theirs = compute_metrics(
            str(true / f"{case['name']}.nii.gz"),
            str(pred / f"{case['name']}.nii.gz"),
            NibabelIO(),
            LABELS,
            ignore_label=IGNORE,
        )["metrics"]
        for label in LABELS:
            ours, ref = case["classes"][f"class_{label}"], theirs[label]
            assert [ours["tp"], ours["fp"], ours["fn"]] == [ref["TP"], ref["FP"], ref["FN"]]
            assert ours["tn"] == ref["TN"]
            for mine, their in (("dice", "Dice"), ("iou", "IoU")):
                if np.isnan(ref[their]):
                    assert ours[mine] is None  # both empty: undefined, as nnU-Net's NaN
                else:
                    assert ours[mine] == pytest.approx(ref[their], rel=1e-6)
