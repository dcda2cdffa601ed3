"""`voxelmetrics merge`: the report of the partials of one sharded run."""

import argparse

from voxelmetrics.cli.output import report_command


def merge_command(args: argparse.Namespace) -> int:
    """`voxelmetrics merge PARTIAL...`: the report of the partials, checked to be one run;
    returns the exit status."""
    from voxelmetrics.evaluate.partial import load_partials, merge_partials

    def produce(signals):
        needed_for = "--plot" if args.plot else None
        return merge_partials(load_partials(args.partials), needed_for)

    return report_command(
        produce,
        out=args.out,
        plot=args.plot,
        as_json=args.json,
        per_case=args.per_case,
        per_lesion=args.per_lesion,
    )
