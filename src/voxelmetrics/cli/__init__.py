"""The `voxelmetrics` command line: `evaluate` volumes on disk, `merge` shards, `demo`, `bench`.

Heavy imports (Keras, JAX, matplotlib) happen inside the commands, so `--help` stays fast.
Bad input exits with status 2 and one message naming the file and what was wrong; Ctrl-C
(SIGINT) exits with 130 and SIGTERM with 143, writing no report and leaving no temporaries.

`parsing` holds the parser and the flags' types, `signals` the exit statuses (signals, bad
input), `output` the one report path (print, commit the files), `running` the engine's run
(progress, executor: a report or a partial), and each command its module: `evaluate`,
`merge`, `demo`, `bench`.
"""

import sys

from voxelmetrics.cli.bench import bench_command
from voxelmetrics.cli.demo import DEMO_CRITERIA
from voxelmetrics.cli.output import PLOT_FILES
from voxelmetrics.cli.parsing import build_parser
from voxelmetrics.cli.running import run_evaluation, write_partial
from voxelmetrics.cli.signals import (
    EXIT_BAD_INPUT,
    Interrupted,
    Signals,
    exit_status,
    stopped,
)

__all__ = [
    "DEMO_CRITERIA",
    "EXIT_BAD_INPUT",
    "PLOT_FILES",
    "Interrupted",
    "build_parser",
    "main",
    "run_evaluation",
    "write_partial",
]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `voxelmetrics` console script; returns the exit status.

    The signal handlers come first: Ctrl-C at any moment (the imports, parsing, the first
    compilation) ends with 130 and no output, never with a traceback or a finished run.
    """
    with Signals() as signals:
        try:
            status = _command(sys.argv[1:] if argv is None else list(argv))
        except Interrupted as e:  # outside a command's own guard: before any output
            return stopped(e.signum, "nothing written")
        if signals.received is not None and status != exit_status(signals.received):
            return stopped(signals.received, "nothing more written")
        return status


def _command(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        return bench_command(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)
