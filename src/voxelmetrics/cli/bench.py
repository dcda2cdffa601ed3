"""`voxelmetrics bench`: the benchmarks, whose parser `voxelmetrics.bench` configures."""

import argparse


def bench_command(argv: list[str]) -> int:
    from voxelmetrics import bench

    parser = argparse.ArgumentParser(prog="voxelmetrics bench", description=bench.__doc__)
    bench.configure_parser(parser)
    return bench.run(parser.parse_args(argv))
