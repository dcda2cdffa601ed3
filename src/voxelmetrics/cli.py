"""The `voxelmetrics` command line: `demo` evaluates a built-in synthetic volume."""

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import voxelmetrics as vm

    rng = np.random.default_rng(0)
    shape = (2, 32, 32, 32, 3)
    y_true = rng.random(shape) < np.array([0.3, 0.1, 0.01])
    noise = rng.normal(0.0, 0.25, shape)
    y_pred = np.clip(np.where(y_true, 0.7, 0.2) + noise, 0, 1).astype("float32")
    counts = vm.confusion_counts(y_true, y_pred)
    hist = vm.score_histogram(y_true, y_pred, num_bins=1024)
    rows = {
        "recall": vm.recall(counts),
        "precision": vm.precision(counts),
        "dice": vm.dice(counts),
        "iou": vm.iou(counts),
        "average_precision": vm.average_precision(hist),
        "roc_auc": vm.roc_auc(hist),
    }
    print(f"synthetic volume {shape}, threshold 0.5")
    print("metric".ljust(18) + "".join(f"class {c}".rjust(10) for c in range(shape[-1])))
    for name, values in rows.items():
        print(name.ljust(18) + "".join(f"{v:10.4f}" for v in np.asarray(values)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxelmetrics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="evaluate a built-in synthetic volume").set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
