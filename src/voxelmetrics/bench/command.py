"""The driver: options of `voxelmetrics bench`, one worker process per backend, the table."""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

from voxelmetrics.bench.data import SIZES
from voxelmetrics.bench.engine import engine_ratios, format_engine
from voxelmetrics.bench.extra import missing_extras, missing_message
from voxelmetrics.bench.machine import machine
from voxelmetrics.bench.paths import peer_modules
from voxelmetrics.bench.table import compare, format_markdown, format_table
from voxelmetrics.bench.timing import PROGRESS, memory_worker, worker

BACKENDS = ("jax", "tensorflow", "torch")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `voxelmetrics bench` to `parser`."""
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="default",
        help="volume (B, D, H, W, C): " + ", ".join(f"{k}={v}" for k, v in SIZES.items()),
    )
    parser.add_argument("--large", action="store_const", const="large", dest="size")
    parser.add_argument(
        "--shape", type=_shape, default=None, help="custom volume shape, e.g. 1,96,96,96,4"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated Keras backends, each timed in its own process",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path (best of)")
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds: a path whose first call takes longer is timed once more only",
    )
    parser.add_argument("--scaling", action="store_true", help="time our report at N, 4N, 16N")
    parser.add_argument(
        "--memory", action="store_true", help="peak RSS of each path, one process per path"
    )
    parser.add_argument(
        "--paths",
        default=None,
        help="comma-separated subset of the paths to time, e.g. ours_report,keras_report,floor",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--markdown", action="store_true", help="print the ratio table as Markdown (README)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--engine",
        action="store_true",
        help="time `voxelmetrics evaluate` end to end instead (2 cases of 128^3 x 4 .npy, 3 "
        "criteria; label maps of --label-size^3 uint8) and print the ratios (a), (b), (c)",
    )
    parser.add_argument(
        "--label-size", type=int, default=512, help="edge of the --engine label maps (512)"
    )


def _shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in text.split(","))
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape like 1,64,64,64,4; got {text!r}")
    return shape


def run(args: argparse.Namespace) -> int:
    """Run every backend's worker, print one table of ratios (or JSON); 0 on success, 2
    (one line on stderr) when a peer to time is not installed (the `bench` extra)."""
    if args.engine:
        results = engine_ratios(label_size=args.label_size, seed=args.seed)
        print(json.dumps(results, indent=2) if args.json else format_engine(results))
        return 0
    shape = args.shape or SIZES[args.size]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backend(s) {sorted(unknown)}; choose from {BACKENDS}")
    wanted = None if args.paths is None else args.paths.split(",")
    missing = missing_extras(peer_modules(backends, wanted))
    if missing:
        print(f"voxelmetrics bench: error: {missing_message(missing)}", file=sys.stderr)
        return 2
    results = {"machine": machine(), "shape": list(shape), "backends": {}}
    for backend in backends:
        request = {
            "shape": list(shape),
            "repeats": args.repeats,
            "budget": args.budget,
            "scaling": args.scaling,
            "seed": args.seed,
            "paths": wanted,
        }
        outcome = _spawn(backend, ["--worker", json.dumps(request)])
        if args.memory and "error" not in outcome:
            outcome["memory_mb"] = {
                path: _spawn(backend, ["--memory-worker", json.dumps({**request, "path": path})])
                for path in outcome["times"]
            }
        results["backends"][backend] = outcome
    results["comparisons"] = compare(results["backends"])
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_markdown(results) if args.markdown else format_table(results))
    failed = [b for b, r in results["backends"].items() if "error" in r]
    return 1 if failed else 0


def _spawn(backend: str, argv: list[str]) -> dict:
    """Run this module as a worker under `backend`; its last stdout line is JSON.

    The worker's progress lines (`PROGRESS` on stderr) are echoed to this process' stderr as
    they come, so a run of several minutes shows which path it is timing.
    """
    # A log level of our own also keeps oneDNN at TensorFlow's default (on) for the Keras
    # peers: importing voxelmetrics turns it off only where no level is set (`_tf_logs`).
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxelmetrics.bench", *argv],
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        tail: collections.deque[str] = collections.deque(maxlen=5)
        for line in proc.stderr:
            if line.startswith(PROGRESS):
                print(f"{backend}: {line[len(PROGRESS) :].strip()}", file=sys.stderr, flush=True)
            elif line.strip():
                tail.append(line.strip())
        code = proc.wait()
        stdout.seek(0)
        lines = stdout.read().strip().splitlines()
    if code != 0 or not lines:
        return {"error": f"worker exited with {code}: " + " | ".join(tail or lines[-5:])}
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    """`python -m voxelmetrics.bench`: a worker (`--worker`, `--memory-worker`) or the driver."""
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(json.loads(argv[1]))))
        return 0
    if argv[:1] == ["--memory-worker"]:
        print(json.dumps(memory_worker(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m voxelmetrics.bench", description=_package_doc()
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))


def _package_doc() -> str:
    import voxelmetrics.bench

    return voxelmetrics.bench.__doc__
