"""Same numbers as nnU-Net's folder evaluation on the same label-map files.

The reference reproduces nnU-Net v2's documented definitions (its `compute_tp_fp_fn_tn` and
`compute_metrics`: per foreground label, voxels of the ignore label left out, Dice and IoU
NaN when both maps lack the label). nnunetv2 itself is not a test dependency: its `timm`
dependency pulls a CUDA-built torchvision that breaks torchmetrics beside the CPU torch.
`benchmarks/nnunet_agreement.py` runs these cases through the real nnunetv2 where it is
installed (it agreed on every count and score when last run).
"""

import nibabel as nib
import numpy as np
import pytest

from voxelmetrics.evaluate import Options, evaluate
from voxelmetrics.evaluate.report import summarize

LABELS = [1, 2, 3]  # nnU-Net scores the foreground labels
IGNORE = 4


def nnunet_metrics(true_path, pred_path, labels, ignore_label) -> dict:
    """nnU-Net's per-label TP/FP/FN/TN, Dice and IoU of one case, from its definitions."""
    ref = np.asarray(nib.load(true_path).dataobj)
    seg = np.asarray(nib.load(pred_path).dataobj)
    counted = ref != ignore_label
    metrics = {}
    for label in labels:
        in_ref, in_seg = ref == label, seg == label
        tp = int(np.sum(in_ref & in_seg & counted))
        fp = int(np.sum(~in_ref & in_seg & counted))
        fn = int(np.sum(in_ref & ~in_seg & counted))
        tn = int(np.sum(~in_ref & ~in_seg & counted))
        both_empty = tp + fp + fn == 0
        metrics[label] = {
            "TP": tp,
            "FP": fp,
            "FN": fn,
            "TN": tn,
            "Dice": np.nan if both_empty else 2 * tp / (2 * tp + fp + fn),
            "IoU": np.nan if both_empty else tp / (tp + fp + fn),
        }
    return metrics


def write_cases(tmp_path, rng):
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
    pred, true = write_cases(tmp_path, rng)
    ev = evaluate(y_true=true, y_pred=pred, options=Options(num_classes=4, ignore_index=IGNORE))
    summary = summarize(ev, exclude=[0], bootstrap=0)
    for case in summary["cases"]:
        theirs = nnunet_metrics(
            true / f"{case['name']}.nii.gz", pred / f"{case['name']}.nii.gz", LABELS, IGNORE
        )
        for label in LABELS:
            ours, ref = case["classes"][f"class_{label}"], theirs[label]
            assert [ours["tp"], ours["fp"], ours["fn"]] == [ref["TP"], ref["FP"], ref["FN"]]
            assert ours["tn"] == ref["TN"]
            for mine, their in (("dice", "Dice"), ("iou", "IoU")):
                if np.isnan(ref[their]):
                    assert ours[mine] is None  # both empty: undefined, as nnU-Net's NaN
                else:
                    assert ours[mine] == pytest.approx(ref[their], rel=1e-6)
