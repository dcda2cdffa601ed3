"""By hand, where nnunetv2 is installed: the test cases of tests/evaluate/test_nnunet.py
through nnU-Net's own `compute_metrics`, against voxelmetrics and the test's reference.

    python -m benchmarks.nnunet_agreement     (from the repository root)

Not part of the suite: nnunetv2's `timm` dependency pulls a CUDA-built torchvision that
breaks torchmetrics beside the CPU torch the suite pins.
"""

import tempfile
from pathlib import Path

import numpy as np
from tests.evaluate.test_nnunet import IGNORE, LABELS, nnunet_metrics, write_cases

from voxelmetrics.evaluate import Options, evaluate
from voxelmetrics.evaluate.report import summarize


def main() -> None:
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIO

    with tempfile.TemporaryDirectory() as folder:
        pred, true = write_cases(Path(folder), np.random.default_rng(0))
        ev = evaluate(y_true=true, y_pred=pred, options=Options(num_classes=4, ignore_index=IGNORE))
        summary = summarize(ev, exclude=[0], bootstrap=0)
        compared = 0
        for case in summary["cases"]:
            t, p = true / f"{case['name']}.nii.gz", pred / f"{case['name']}.nii.gz"
            real = compute_metrics(str(t), str(p), NibabelIO(), LABELS, ignore_label=IGNORE)
            reference = nnunet_metrics(t, p, LABELS, IGNORE)
            for label in LABELS:
                ours = case["classes"][f"class_{label}"]
                theirs = real["metrics"][label]
                for key, mine in (("TP", "tp"), ("FP", "fp"), ("FN", "fn"), ("TN", "tn")):
                    assert theirs[key] == ours[mine] == reference[label][key], (key, label)
                for key, mine in (("Dice", "dice"), ("IoU", "iou")):
                    value = theirs[key]
                    assert np.isclose(value, reference[label][key], equal_nan=True)
                    assert (
                        (ours[mine] is None) if np.isnan(value) else np.isclose(ours[mine], value)
                    )
                compared += 1
        print(
            f"nnunetv2 agrees with voxelmetrics and the reference on {compared} (case, label) pairs"
        )


if __name__ == "__main__":
    main()
