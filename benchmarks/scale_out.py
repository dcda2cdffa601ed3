"""`voxelmetrics evaluate --workers N` against one process: whole CLI runs, wall time.

The data: `--cases` phantom cases (`evaluate.phantom.make_case`) of `--size`^3 x 4 float32
probabilities and uint8 multi-hot labels, as `.npy` and/or `.nii.gz`. Each command runs
`--repeat` times; the best time counts. Besides the speed-up it prints what the model

    T(N workers) ~ T0 + S + cases * t / N        (N = 1: no S)

needs: T0, the whole command on one tiny case (Python, imports, compilation, report); S,
the cost of starting the workers (each imports Keras and its backend and compiles the
chunk kernel; they start together); t, the time of one case. Then the evaluation phase
alone once every process is started and warm (`evaluate()` in this process against a
pool that has run the dataset once): the steady-state speed-up of a long dataset.

With `--threads-rule`, the thread rule instead (issue 21: N workers of all cores' worth of
threads each spin-wait on oversubscribed cores, torch most): whole runs of one process
(the backend's default threads), `--workers N` (each `cores // N` threads, the rule) and
`--workers N --threads CORES` (each all cores' worth: as before the rule).

Run: KERAS_BACKEND=jax python -m benchmarks.scale_out [--workers 2] [--format npy nii.gz]
     [--surface hd95]
     KERAS_BACKEND=torch python -m benchmarks.scale_out --threads-rule [--cases 8 --size 96]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TINY = 8


def write_cases(folder: Path, cases: int, size: int, suffix: str) -> tuple[Path, Path]:
    """`folder/pred`, `folder/true` holding `cases` phantom cases of `size`^3 x 4."""
    from voxelmetrics.evaluate.phantom import make_case

    pred, true = folder / "pred", folder / "true"
    pred.mkdir(parents=True), true.mkdir(parents=True)
    for i in range(cases):
        y_pred, y_true = make_case((size, size, size), seed=i)
        for side, values in ((pred, y_pred), (true, y_true)):
            if suffix == ".npy":
                np.save(side / f"case{i}.npy", values)
            else:
                import nibabel

                nibabel.save(nibabel.Nifti1Image(values, np.eye(4)), side / f"case{i}{suffix}")
    return pred, true


def cli_seconds(pred: Path, true: Path, workers: int, repeat: int, extra=()) -> float:
    """The best wall time of `python -m voxelmetrics evaluate PRED TRUE --workers N`."""
    command = [sys.executable, "-m", "voxelmetrics", "evaluate", str(pred), str(true)]
    command += ["--quiet", "--json", "--bootstrap", "0", "--workers", str(workers), *extra]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def warm_seconds(pred: Path, true: Path, workers: int, repeat: int) -> tuple[float, float]:
    """The evaluation phase once every process has started and compiled: the best time of
    `evaluate()` in this process, and on a pool of `workers` spawned processes that has
    already run the dataset once (the steady state of a long dataset)."""
    from voxelmetrics.evaluate import Options, evaluate
    from voxelmetrics.evaluate.executors import process_pool

    def best(run) -> float:
        run()  # start, import, compile
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    one = best(lambda: evaluate(y_true=true, y_pred=pred, options=Options()))
    with process_pool(workers) as pool:
        many = best(lambda: evaluate(y_true=true, y_pred=pred, options=Options(), executor=pool))
    return one, many


def thread_rule(cases: int, size: int, workers: int, repeat: int) -> None:
    """Whole runs on `cases` `.npy` cases of `size`^3 x 4: one process, `--workers` with
    the rule's threads, and `--workers` with every worker on all cores' threads."""
    from voxelmetrics._threads import case_threads, machine_cores

    cores = machine_cores()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_cases(Path(tmp) / "big", cases, size, ".npy")
        one = cli_seconds(*data, 1, repeat)
        rule = cli_seconds(*data, workers, repeat)
        every = cli_seconds(*data, workers, repeat, ["--threads", str(cores)])
    print(
        f"{cases} cases of {size}^3 x 4 (.npy), {cores} cores: 1 process {one:.1f} s; "
        f"--workers {workers} ({case_threads(workers)} thread(s) each, the rule) {rule:.1f} s "
        f"= {one / rule:.2f}x; --workers {workers} --threads {cores} (all cores' each) "
        f"{every:.1f} s = {one / every:.2f}x"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--format", nargs="+", default=["npy"], choices=["npy", "nii.gz"])
    parser.add_argument("--surface", help="also measure these boundary metrics (e.g. hd95)")
    parser.add_argument("--threads-rule", action="store_true", help="time the thread rule")
    args = parser.parse_args(argv)
    extra = ["--surface", args.surface] if args.surface else []
    backend = os.environ.get("KERAS_BACKEND", "jax")
    print(f"backend {backend}, {os.cpu_count()} CPUs, best of {args.repeat} runs")
    if args.threads_rule:
        return thread_rule(args.cases, args.size, args.workers, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.format:
            suffix = f".{fmt}"
            big = write_cases(Path(tmp) / fmt / "big", args.cases, args.size, suffix)
            tiny = write_cases(Path(tmp) / fmt / "tiny", args.workers, TINY, suffix)
            t0 = cli_seconds(*tiny, 1, args.repeat, extra)
            start_cost = cli_seconds(*tiny, args.workers, args.repeat, extra) - t0
            one = cli_seconds(*big, 1, args.repeat, extra)
            many = cli_seconds(*big, args.workers, args.repeat, extra)
            per_case = (one - t0) / args.cases
            print(
                f"{' '.join([fmt, *extra])}: {args.cases} cases of {args.size}^3 x 4: "
                f"1 process {one:.1f} s, "
                f"--workers {args.workers} {many:.1f} s, speed-up {one / many:.2f}x; "
                f"T0 {t0:.1f} s, S {start_cost:.1f} s, t {per_case:.2f} s per case"
            )
            if not extra:
                warm_one, warm_many = warm_seconds(*big, args.workers, args.repeat)
                print(
                    f"  evaluation phase, processes started and warm: 1 process {warm_one:.2f} s,"
                    f" {args.workers} workers {warm_many:.2f} s, speed-up "
                    f"{warm_one / warm_many:.2f}x"
                )


if __name__ == "__main__":
    main()
