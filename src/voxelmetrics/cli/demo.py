"""`voxelmetrics demo`: a synthetic phantom written to disk and evaluated end to end."""

import argparse

from voxelmetrics.cli.running import run_evaluation
from voxelmetrics.cli.signals import fail

DEMO_CRITERIA = ("f1", "youden", "recall_at_precision:0.8")


def demo_command(args: argparse.Namespace) -> int:
    """`voxelmetrics demo`: `args.cases` phantom cases under `args.out/data`, evaluated as
    `evaluate --plot` would with `DEMO_CRITERIA`; returns the exit status."""
    from voxelmetrics.evaluate.phantom import CLASS_NAMES, write_phantom
    from voxelmetrics.evaluate.records import Options

    try:
        out = args.out
        pred_dir, true_dir = write_phantom(out / "data", num_cases=args.cases, seed=args.seed)
    except OSError as e:
        return fail(f"{args.out}: cannot write the demo there ({e.strerror or e}).")
    print(f"phantom: {args.cases} cases of 48x64x64 voxels, 4 overlapping classes")
    print(
        f"same as: voxelmetrics evaluate {pred_dir} {true_dir} --out {out} --plot "
        f"--class-names {','.join(CLASS_NAMES)} --criterion {','.join(DEMO_CRITERIA)}\n"
    )
    return run_evaluation(
        pred_dir,
        true_dir,
        Options(),
        out=out,
        criteria=list(DEMO_CRITERIA),
        class_names=list(CLASS_NAMES),
        zero_division="nan",
        plot=True,
        as_json=False,
        quiet=args.quiet,
    )
