"""The `voxelmetrics` command line: `evaluate` volumes on disk, `merge` shards, `demo`, `bench`.

Heavy imports (Keras, JAX, matplotlib) happen inside the commands, so `--help` stays fast.
Bad input exits with status 2 and one message naming the file and what was wrong; Ctrl-C
(SIGINT) exits with 130 and SIGTERM with 143, writing no report and leaving no temporaries.
"""

import argparse
import math
import signal
import sys
import threading
import warnings
from pathlib import Path

import voxelmetrics.defaults as defaults  # (`from voxelmetrics import` would load Keras)

EXIT_BAD_INPUT = 2
DEMO_CRITERIA = ("f1", "youden", "recall_at_precision:0.8")
PLOT_FILES = {"pr": "pr_curves.png", "roc": "roc_curves.png"}


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.5 or 0.5,0.3; got {text!r}"
        ) from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must lie in [0, 1]; got {text!r}")
    return values


def _positive(kind):
    """An argparse type: a finite number of `kind` above 0 (no NaN, no infinity)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"expected {what} > 0; got {text!r}")
        return value

    return parse


def _class_names(text: str) -> list[str]:
    """An argparse type: comma-separated, distinct class names, none reserved.

    The rule is `report.check_class_names` (kept in one place for the library and CLI).
    """
    from voxelmetrics.evaluate.report import check_class_names

    try:
        return check_class_names([name.strip() for name in text.split(",")])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}")
    return int(text)


def _shard(text: str) -> tuple[int, int]:
    """An argparse type: `I/N` with 0 <= I < N (`$SLURM_ARRAY_TASK_ID/N` with --array=0-(N-1))."""
    index, _, count = text.partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit()) or int(index) >= int(count):
        raise argparse.ArgumentTypeError(
            f"expected I/N with 0 <= I < N (e.g. 0/4: the first of 4 shards); got {text!r}"
        )
    return int(index), int(count)


def _criteria(text: str) -> list[str]:
    from voxelmetrics.evaluate.report import parse_criterion

    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        try:
            parse_criterion(name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return names


def _surface(text: str):
    from voxelmetrics.evaluate.surface import parse_surface  # imports Keras: not for --help

    try:
        return parse_surface(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _spacing(text: str):
    from voxelmetrics.evaluate.surface import parse_spacing

    try:
        return parse_spacing(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _surface_missing(text: str) -> str:
    from voxelmetrics.evaluate.surface import parse_missing

    try:
        return parse_missing(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _zero_division(text: str):
    if text in ("0", "1"):
        return int(text)
    if text == "nan":
        return "nan"
    raise argparse.ArgumentTypeError(f"expected nan, 0 or 1; got {text!r}")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where the report goes: `evaluate` and `merge` alike."""
    parser.add_argument("--out", type=Path, help="write report.json, report.csv (and plots) here")
    parser.add_argument(
        "--per-case",
        type=Path,
        metavar="FILE.csv",
        help="also write one row per case and class (counts and metrics) to this CSV",
    )
    parser.add_argument(
        "--per-lesion",
        type=Path,
        metavar="FILE.csv",
        help="with --lesions: also write one row per lesion (volume, centroid, match, Dice, "
        "IoU, HD95) to this CSV",
    )
    parser.add_argument("--plot", action="store_true", help="write PR and ROC curves (PNG)")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report instead of the table"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--criterion",
        type=_criteria,
        default=None,
        metavar="LIST",
        help=f"comma-separated criteria for the optimal thresholds: "
        f"{defaults.CRITERION_SPELLINGS} (default: {defaults.CRITERION})",
    )
    _add_output_options(parser)
    parser.add_argument(
        "--chunk-mb",
        type=_positive(float),
        default=defaults.CHUNK_MB,
        help=f"memory budget of one chunk in MiB (default: {defaults.CHUNK_MB:g})",
    )


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score prediction volumes against label volumes",
        description="Score prediction volumes (.npy, .npz, .nii, .nii.gz) against label "
        "volumes, streamed in bounded memory. PRED and TRUE are two files, or two "
        "directories whose files pair by name (pred/a.npy with true/a.nii.gz).",
    )
    p.add_argument("pred", help="prediction file or directory: probabilities or logits")
    p.add_argument("true", help="label file or directory: multi-hot masks or integer labels")
    p.add_argument(
        "--num-bins",
        type=_positive(int),
        default=defaults.NUM_BINS,
        help=f"histogram bins (default: {defaults.NUM_BINS})",
    )
    p.add_argument(
        "--threshold",
        type=_thresholds,
        default=(defaults.THRESHOLD,),
        help=f"working threshold, one or one per class (default: {defaults.THRESHOLD:g})",
    )
    p.add_argument("--from-logits", action="store_true", help="scores are logits")
    p.add_argument(
        "--axis",
        type=int,
        default=-1,
        help="class axis of the predictions (default: -1; 0 for channels-first (C, D, H, W))",
    )
    p.add_argument("--num-classes", type=_positive(int), help="expected number of classes")
    p.add_argument("--ignore-index", type=int, help="integer label whose voxels are skipped")
    p.add_argument(
        "--class-names",
        type=_class_names,
        help="comma-separated class names, distinct, none of micro, macro, weighted",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="JAX only: spread the cases over N local devices (0: all; default: 1)",
    )
    p.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        metavar="N",
        help="evaluate the cases in N local processes, each with its own --chunk-mb budget "
        "(default: 1, this process)",
    )
    p.add_argument(
        "--threads",
        type=_positive(int),
        metavar="T",
        help="intra-op threads of each process evaluating cases (default: the cores divided "
        "among the --workers, at least 1; one process: the backend's default)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="evaluate the cases on a running dask.distributed scheduler, e.g. "
        "tcp://host:8786 (pip install 'voxelmetrics[dask]')",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="evaluate only the cases whose index in the sorted case order is I modulo N "
        "(0 <= I < N; SLURM: --array=0-(N-1) and --shard $SLURM_ARRAY_TASK_ID/N); needs "
        "--partial",
    )
    p.add_argument(
        "--partial",
        type=Path,
        metavar="FILE.npz",
        help="write the exact state of this run (or shard) here instead of a report; "
        "`voxelmetrics merge` writes the report of all parts",
    )
    p.add_argument(
        "--pred-kind",
        choices=defaults.PRED_KINDS,
        default=defaults.PRED_KIND,
        help="what PRED holds: scores (probabilities or logits), labels (an integer label map "
        "of the truth's shape), masks (0/1 multi-hot with a class axis); auto (default): bool "
        "means masks, integers a label map, floats scores",
    )
    p.add_argument(
        "--exclude",
        type=_names,
        default=(),
        metavar="CLASSES",
        help="comma-separated class names or ids reported per class but left out of every "
        "average (e.g. background or 0)",
    )
    p.add_argument(
        "--bootstrap",
        type=_non_negative_int,
        default=defaults.BOOTSTRAP,
        metavar="N",
        help=f"bootstrap resamples of the 95%% CI of each per-case mean (default: "
        f"{defaults.BOOTSTRAP}, seeded; 0: off)",
    )
    p.add_argument(
        "--surface",
        type=_surface,
        metavar="MEASURES",
        help="boundary measures per case and class: any of hd, hd95, assd, nsd:TOLERANCE "
        "(e.g. hd95,assd,nsd:2.0; tolerance in the spacing's units)",
    )
    p.add_argument(
        "--spacing",
        type=_spacing,
        metavar="SX,SY,SZ",
        help="voxel size per spatial axis for --surface (default: the NIfTI headers' pixdim, "
        "else 1; an error if a header disagrees)",
    )
    p.add_argument(
        "--surface-convention",
        choices=("monai", "deepmind", "medpy"),
        default=None,
        help="whose definitions --surface follows: monai (default: voxel boundary, max of "
        "the directed HD95s, pooled ASSD), deepmind (surface-distance: surfels weighted by "
        "area, as MSD/FLARE NSD), medpy (HD95 of the pooled distances, mean of directed means)",
    )
    p.add_argument(
        "--surface-missing",
        type=_surface_missing,
        default=None,
        metavar="POLICY",
        help="HD/HD95/ASSD of a structure missed on one side (one mask empty): inf (default), "
        "nan, diagonal (the case's diagonal in spacing units) or a number (BraTS: 374)",
    )
    _add_lesion_options(p)
    p.add_argument("--pred-key", help="array name inside prediction .npz files")
    p.add_argument("--true-key", help="array name inside label .npz files")
    p.add_argument(
        "--zero-division",
        type=_zero_division,
        default="nan",
        help="value of a metric that is 0/0 (e.g. a class absent from a case): nan, 0 or 1",
    )
    _add_report_options(p)
    p.set_defaults(run=_evaluate_command)


def _add_lesion_options(p) -> None:
    """`--lesions` and its options (see evaluate/lesions.py), and `--regions`."""
    p.add_argument(
        "--regions",
        nargs="+",
        metavar="NAME=IDS",
        help="evaluate unions of labels of label maps as the classes of every report, e.g. "
        "wt=1,2,3 tc=1,3 et=3",
    )
    p.add_argument(
        "--lesions",
        metavar="CONVENTION",
        help="lesion-wise evaluation (connected components per class): panoptica, "
        "brats2023[:GLI|SSA|MEN|PED|MET] or overlap",
    )
    p.add_argument(
        "--connectivity", type=int, help="--lesions: neighbours 6, 18 or 26 (default: 26)"
    )
    p.add_argument(
        "--min-lesion-volume",
        metavar="N[mm3]",
        help="--lesions: drop lesions of at most N voxels (or N mm^3); true=N,pred=M for "
        "each side (default: none; brats2023: the sub-challenge's truth floor)",
    )
    p.add_argument(
        "--match-threshold",
        type=float,
        help="--lesions panoptica: a pair matches at IoU >= this (default: 0.5)",
    )


def _add_merge(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="merge the partials of `evaluate --shard I/N --partial` into one report",
        description="Check that the partials belong to one run (same options, classes and "
        "report options, every shard once, no case twice) and write the report that one "
        "`voxelmetrics evaluate` over every case writes.",
    )
    p.add_argument("partials", nargs="+", type=Path, metavar="PARTIAL", help="part-*.npz files")
    _add_output_options(p)
    p.set_defaults(run=_merge_command)


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="evaluate a synthetic 3D phantom end to end",
        description="Build a deterministic synthetic 3D phantom (overlapping structures, "
        "noisy probabilities, a rare class), save it as .npy volumes, evaluate it with the "
        "same engine as `evaluate`, print the report and write the report files and plots.",
    )
    p.add_argument(
        "--out", type=Path, default=Path("voxelmetrics-demo"), help="(default: ./voxelmetrics-demo)"
    )
    p.add_argument("--cases", type=int, default=3, help="number of phantom cases (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_demo_command)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; `bench` is listed here and configured only when it runs."""
    parser = argparse.ArgumentParser(prog="voxelmetrics", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_evaluate(sub)
    _add_merge(sub)
    _add_demo(sub)
    sub.add_parser("bench", help="benchmarks (see `voxelmetrics bench --help`)", add_help=False)
    return parser


def _fail(message: str) -> int:
    print(f"voxelmetrics: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


class _Progress:
    """A rich progress bar over cases and the chunks of the current case (on stderr)."""

    def __init__(self, quiet: bool):
        self.bar = None
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.cases = self.bar.add_task("cases", total=None)
            self.chunks = self.bar.add_task("chunks", total=None)

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def on_case(self, name: str, index: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.cases, completed=index, total=total, description=f"case {name}")

    def on_chunk(self, name: str, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.chunks, completed=done, total=total, description="  chunks")
            if done == total:
                self.bar.advance(self.cases)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """Turn SIGINT and SIGTERM into `Interrupted`, and remember that they came.

    `main` installs it first thing, so that a signal during the imports, the parsing or
    the first compilation counts; nested uses share the installed one. JAX runs Python
    callbacks from the garbage collector, where an exception is printed and swallowed:
    `check()` at every chunk, between report files and before the report is committed
    stops the run even then, and a run whose signal was swallowed ends with 128 + its
    number all the same. The swallowed `Interrupted` is not printed (`_quiet_unraisable`).
    SIGTERM becomes an exception (not a silent death) so that the report's staging files
    are removed on the way out.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    active: "_Signals | None" = None  # the installed one

    def __init__(self):
        self.received: int | None = None
        self.previous: dict = {}
        self.hook = None

    def __enter__(self):
        if _Signals.active is not None:
            return _Signals.active
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            self.hook, sys.unraisablehook = sys.unraisablehook, self._quiet_unraisable
            _Signals.active = self
        return self

    def __exit__(self, *exc):
        if _Signals.active is self:
            _Signals.active = None
            sys.unraisablehook = self.hook
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum, frame):
        self.received = signum
        raise Interrupted(signum)

    def _quiet_unraisable(self, unraisable) -> None:
        """Python's report of an exception nobody could catch, except our `Interrupted`
        (recorded in `received`, acted on at the next `check`)."""
        if not isinstance(unraisable.exc_value, Interrupted):
            self.hook(unraisable)

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


def _stopped(signum: int, unwritten: str) -> int:
    """Say that signal `signum` stopped the run and what it left unwritten; 128 + signum."""
    name = signal.Signals(signum).name
    print(f"voxelmetrics: {name} received: stopped; {unwritten}.", file=sys.stderr)
    return 128 + signum


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Input warnings as one `voxelmetrics: warning:` line; others as Python shows them."""
    from voxelmetrics.evaluate.readers import InputWarning

    if issubclass(category, InputWarning):
        print(f"voxelmetrics: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _guarded(work, output: str = "report") -> int:
    """`work(signals)` with signals turned into `Interrupted` and input warnings shown as one
    line; returns its exit status, 2 after an `InputError` (its message on stderr), 128 +
    the signal's number after Ctrl-C or SIGTERM (`output`, what the run writes, unwritten;
    or written, when the signal came once it was)."""
    from voxelmetrics.evaluate.readers import InputError, InputWarning

    with _Signals() as signals, warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = _show_warning
        try:
            signals.check()  # one that came during the imports
            status = work(signals)
        except InputError as e:
            return _fail(str(e))
        except Interrupted as e:
            return _stopped(e.signum, f"no {output} written")
        if signals.received is not None:  # swallowed after the last check
            return _stopped(signals.received, f"the {output} was complete")
        return status


def _check_targets(*targets) -> str | None:
    """The message for the first target directory that cannot be written, else None."""
    from voxelmetrics.evaluate.atomic_writes import check_writable

    for target in targets:
        if target is not None:
            try:
                check_writable(target)
            except OSError as e:
                return f"{target}: cannot write the report there ({e.strerror or e})."
    return None


def _report_command(produce, *, out, plot: bool, as_json: bool, per_case, per_lesion=None) -> int:
    """`produce(signals) -> (evaluation, report options)`, then the report: printed, and
    written with `--out`/`--per-case`. The one report path of `evaluate` and `merge`.

    Returns the exit status: 0, 2 for bad input or an output that cannot be written
    (nothing replaced), 128 + the signal's number after Ctrl-C or SIGTERM (no new report).
    """
    if plot and out is None:
        return _fail("--plot needs --out DIR to write the PNG files into.")
    problem = _check_targets(out, per_case and per_case.parent, per_lesion and per_lesion.parent)
    if problem:
        return _fail(problem)

    def work(signals) -> int:
        evaluation, report_options = produce(signals)
        if per_lesion is not None and evaluation.options.lesions is None:
            return _fail(f"--per-lesion {per_lesion}: the run has no --lesions to list.")
        summary = _summarize(evaluation, report_options)
        _print_report(summary, as_json)
        signals.check()
        if out is None and per_case is None and per_lesion is None:
            return 0
        try:
            written = _write_reports(
                summary, evaluation, out, plot, per_case, per_lesion, check=signals.check
            )
        except OSError as e:
            return _fail(
                f"{out}: writing the report failed ({e}); no file there was replaced "
                f"and no temporary file was left."
            )
        if not as_json:
            in_out = [p.name for p in written if out is not None and p.parent == Path(out)]
            elsewhere = [str(p) for p in written if p.name not in in_out]
            print(f"\nwrote {', '.join(in_out)} to {out}/" if in_out else "")
            print(*(f"wrote {p}" for p in elsewhere), sep="\n")
        return 0

    return _guarded(work)


def _report_options(class_names, criteria, zero_division, exclude, bootstrap) -> dict:
    """`summarize`'s keyword arguments (what a partial stores and `merge` checks)."""
    return {
        "class_names": class_names,
        "criteria": criteria,
        "zero_division": zero_division,
        "exclude": exclude,
        "bootstrap": bootstrap,
    }


def run_evaluation(
    pred,
    true,
    options,
    *,
    out,
    criteria,
    class_names,
    zero_division,
    plot: bool,
    as_json: bool,
    quiet: bool,
    exclude=(),
    bootstrap: int = defaults.BOOTSTRAP,
    per_case: Path | None = None,
    per_lesion: Path | None = None,
    criteria_given: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    threads: int | None = None,
) -> int:
    """Evaluate, print the report, write the files; shared by `evaluate` and `demo`.

    `workers` > 1 runs the cases in that many local processes, `scheduler` on a dask
    cluster (see `evaluate.executors`), with `threads` intra-op threads each. Returns the
    exit status (see `_report_command`).
    """
    report_options = _report_options(class_names, criteria, zero_division, exclude, bootstrap)
    curves_by = _curves_by(criteria_given, plot)

    def produce(signals):
        run = (workers, scheduler, threads)
        return _evaluate(pred, true, options, signals, quiet, curves_by, run), report_options

    return _report_command(
        produce, out=out, plot=plot, as_json=as_json, per_case=per_case, per_lesion=per_lesion
    )


def _curves_by(criteria_given: bool, plot: bool) -> str | None:
    """The options given that need scores (for the message about hard predictions)."""
    curve_options = [o for o, on in (("--criterion", criteria_given), ("--plot", plot)) if on]
    return " and ".join(curve_options) or None


def _evaluate(pred, true, options, signals, quiet, curves_by, run, cases=None):
    """Run the engine (stopping at the next chunk once a signal came) on the executor of
    `run = (workers, scheduler, threads)`; `cases` instead of `pred`, `true` (a shard's)."""
    from voxelmetrics.evaluate.engine import evaluate
    from voxelmetrics.evaluate.executors import open_executor

    with _Progress(quiet) as progress, open_executor(*run) as executor:

        def on_chunk(name: str, done: int, total: int) -> None:
            signals.check()
            progress.on_chunk(name, done, total)

        return evaluate(
            y_true=true,
            y_pred=pred,
            cases=cases,
            options=options,
            progress=on_chunk,
            on_case=progress.on_case,
            scores_needed_for=curves_by,
            executor=executor,
        )


def _summarize(evaluation, report_options: dict) -> dict:
    from voxelmetrics.evaluate.readers import InputError
    from voxelmetrics.evaluate.report import summarize

    try:
        return summarize(evaluation, **report_options)
    except ValueError as e:
        raise InputError("the report", str(e)) from None


def write_partial(
    pred, true, options, report_options, *, partial, shard, quiet, run, curves_by=None
) -> int:
    """Evaluate shard `(I, N)` of the cases (every N-th in case order, from the I-th) and
    write its exact state to `partial` (no report: `voxelmetrics merge` writes it)."""
    from voxelmetrics.evaluate.partial import check_partial_target, save_partial, shard_indices
    from voxelmetrics.evaluate.readers import pair_cases

    problem = _check_targets(partial.parent)
    if problem:
        return _fail(problem)

    def work(signals) -> int:
        check_partial_target(partial, shard)  # before hours of work (again when committing)
        cases = pair_cases(pred, true)
        indices = shard_indices(len(cases), shard)
        chosen = [(cases[i][0], cases[i][2], cases[i][1]) for i in indices]
        evaluation = None
        if chosen:
            evaluation = _evaluate(None, None, options, signals, quiet, curves_by, run, chosen)
            _check_exclude(evaluation, report_options)
        signals.check()
        try:
            save_partial(
                partial,
                evaluation,
                options=options,
                shard=shard,
                dataset=cases,
                indices=indices,
                report=report_options,
                before_commit=signals.check,
            )
        except OSError as e:
            return _fail(f"{partial}: writing the partial failed ({e}); nothing was written.")
        print(
            f"wrote {partial}: shard {shard[0]}/{shard[1]}, {len(chosen)} of {len(cases)} case(s)"
        )
        return 0

    return _guarded(work, "partial")


def _check_exclude(evaluation, report_options: dict) -> None:
    """Refuse an unknown `--exclude` class in a shard, when its class names are known (a
    label map's class count without --num-classes is known only once merged)."""
    from voxelmetrics.evaluate.readers import InputError
    from voxelmetrics.evaluate.report import default_class_names, exclude_indices

    if evaluation.pred_kind == "labels" and not evaluation.options.num_classes:
        return
    names = report_options["class_names"] or default_class_names(evaluation.num_classes)
    try:
        exclude_indices(report_options["exclude"], names)
    except ValueError as e:
        raise InputError("the report", str(e)) from None


def _print_report(summary: dict, as_json: bool) -> None:
    if as_json:
        from voxelmetrics.evaluate.formats import to_json

        sys.stdout.write(to_json(summary))
    else:
        from rich.console import Console

        from voxelmetrics.evaluate.terminal import render_table

        render_table(summary, Console())


def _write_reports(
    summary, evaluation, out, plot: bool, per_case, per_lesion=None, check=None
) -> list[Path]:
    """report.json, report.csv (and plots) into `out`, all or nothing; the `--per-case`
    CSV with them when it goes into `out`, else committed the same way on its own after
    (`--per-lesion` likewise: `_lesion_files`). `check()` runs after every file is written
    (before the files are committed)."""
    from voxelmetrics.evaluate.atomic_writes import write_atomically
    from voxelmetrics.evaluate.formats import to_csv, to_json, to_per_case_csv

    lesion_files, lesions_alone = _lesion_files(summary, evaluation, out, plot, per_lesion, check)
    per_case_writer = {}
    if per_case is not None:
        per_case_writer = {per_case.name: lambda f: f.write(to_per_case_csv(summary).encode())}
    if out is None or (per_case is not None and per_case.parent.resolve() != out.resolve()):
        alone = write_atomically(per_case.parent, _then(per_case_writer, check)) if per_case else []
        per_case_writer = {}
        if out is None:
            return alone + lesions_alone
    else:
        alone = []
    writers = {
        "report.json": lambda f: f.write(to_json(summary).encode()),
        "report.csv": lambda f: f.write(to_csv(summary).encode()),
        **per_case_writer,
        **lesion_files,
    }
    if plot:
        from voxelmetrics.evaluate.plots import plot_curves

        histogram = evaluation.histogram
        for kind, name in PLOT_FILES.items():
            writers[name] = lambda f, kind=kind: plot_curves(summary, histogram, kind, f)
    return write_atomically(out, _then(writers, check)) + alone + lesions_alone


def _lesion_files(
    summary, evaluation, out, plot: bool, per_lesion, check=None
) -> tuple[dict, list]:
    """The writers that join `out`'s commit (the `--per-lesion` CSV when it goes there;
    with `--plot` distribution.png and, for probability maps with `--lesions`, froc.png),
    and the files written on their own first (a `--per-lesion` CSV elsewhere)."""
    from voxelmetrics.evaluate.atomic_writes import write_atomically

    writers, alone = {}, []
    if per_lesion is not None:
        from voxelmetrics.evaluate.lesion_report import to_per_lesion_csv

        names = summary["config"]["class_names"]
        writers[per_lesion.name] = lambda f: f.write(to_per_lesion_csv(evaluation, names).encode())
        if out is None or not _same_dir(per_lesion, out):
            alone = write_atomically(per_lesion.parent, _then(writers, check))
            writers = {}
    if plot:
        from voxelmetrics.evaluate.distribution import plot_distribution

        writers["distribution.png"] = lambda f: plot_distribution(summary, f)
    if plot and "froc" in summary.get("lesions", {}):
        from voxelmetrics.evaluate.lesion_report import plot_froc

        writers["froc.png"] = lambda f: plot_froc(summary, f)
    return writers, alone


def _same_dir(path: Path, out) -> bool:
    return path.parent.resolve() == Path(out).resolve()


def _then(writers: dict, check) -> dict:
    """Each writer of `writers` followed by `check()` (when given)."""
    if check is None:
        return writers
    return {name: (lambda f, w=write: (w(f), check())) for name, write in writers.items()}


def _scale_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of --workers, --scheduler, --devices, --shard
    and --partial, if anything."""
    if args.workers > 1 and args.devices != 1:
        return (
            f"--workers {args.workers} with --devices {args.devices}: processes or the JAX "
            f"devices of one process, not both; one of them must be 1."
        )
    if args.scheduler is not None and (args.workers > 1 or args.devices != 1):
        return "--scheduler runs the cases on the dask workers: drop --workers and --devices."
    if args.shard is not None and args.partial is None:
        return "--shard I/N needs --partial FILE.npz (the shard's state for voxelmetrics merge)."
    given = [o for o, v in (("--out", args.out), ("--per-case", args.per_case)) if v]
    given += ["--per-lesion"] if args.per_lesion else []
    given += [o for o, v in (("--plot", args.plot), ("--json", args.json)) if v]
    if args.partial is not None and given:
        return (
            f"--partial writes this run's state, not a report: give {', '.join(given)} to "
            f"voxelmetrics merge."
        )
    return None


def _surface_request(args: argparse.Namespace, class_names):
    """`(SurfaceRequest or None, problem)`: `--surface` with its convention, missed-structure
    policy, per-class tolerances and `--exclude` resolved; the options that only serve
    `--surface` are refused without it (rather than ignored without a word)."""
    import dataclasses

    if args.surface is None:
        lesions = getattr(args, "lesions", None) is not None  # --lesions uses them too
        alone = [
            option
            for option, value in (
                ("--spacing", None if lesions else args.spacing),
                ("--surface-convention", None if lesions else args.surface_convention),
                ("--surface-missing", args.surface_missing),
            )
            if value is not None
        ]
        if alone:
            are, them = ("is", "it") if len(alone) == 1 else ("are", "them")
            return None, (
                f"{', '.join(alone)} {are} for --surface only: add --surface (e.g. --surface "
                f"hd95) or drop {them}."
            )
        return None, None
    request = dataclasses.replace(
        args.surface,
        convention=args.surface_convention or "monai",
        missing=args.surface_missing or "inf",
    )
    try:
        return request.resolved(class_names, args.exclude), None
    except ValueError as error:
        return None, str(error)


def _evaluate_command(args: argparse.Namespace) -> int:
    from voxelmetrics.evaluate.records import Options

    class_names = args.class_names
    threshold = args.threshold[0] if len(args.threshold) == 1 else args.threshold
    num_classes = args.num_classes
    if class_names and num_classes and len(class_names) != num_classes:
        return _fail(
            f"--class-names lists {len(class_names)} names but --num-classes is {num_classes}."
        )
    problem = _scale_problem(args)
    if problem:
        return _fail(problem)
    if args.threads is not None:  # this process's too
        from voxelmetrics._threads import apply_threads

        apply_threads(args.threads)
    from voxelmetrics.evaluate.lesions import request_from_options

    try:
        lesions = request_from_options(
            args.lesions,
            connectivity=args.connectivity,
            min_volume=args.min_lesion_volume,
            match_threshold=args.match_threshold,
            surface_convention=getattr(args, "surface_convention", None),
        )
    except ValueError as e:
        return _fail(str(e))
    if args.per_lesion is not None and lesions is None:
        return _fail(f"--per-lesion {args.per_lesion} needs --lesions (nothing to list).")
    regions = None
    if args.regions:
        from voxelmetrics.evaluate.regions import parse_regions

        if class_names:
            return _fail("--regions names the classes: drop --class-names.")
        try:
            regions = parse_regions(args.regions)
        except ValueError as e:
            return _fail(str(e))
    surface, problem = _surface_request(
        args, [name for name, _ in regions] if regions else class_names
    )
    if problem:
        return _fail(problem)
    options = Options(
        threshold=threshold,
        num_bins=args.num_bins,
        from_logits=args.from_logits,
        axis=args.axis,
        num_classes=num_classes or (len(class_names) if class_names else None),
        num_classes_from=(
            f"--num-classes {num_classes}"
            if num_classes
            else f"--class-names ({len(class_names)} names)"
            if class_names
            else "the data"  # no class count given: nothing to name
        ),
        ignore_index=args.ignore_index,
        chunk_mb=args.chunk_mb,
        pred_key=args.pred_key,
        true_key=args.true_key,
        devices=args.devices,
        pred_kind=args.pred_kind,
        surface=surface,
        spacing=args.spacing,
        lesions=lesions,
        regions=regions,
    )
    criteria = args.criterion or [defaults.CRITERION]
    class_names = [name for name, _ in regions] if regions else class_names
    run = (args.workers, args.scheduler, args.threads)
    if args.partial is not None:
        report = _report_options(
            class_names, criteria, args.zero_division, args.exclude, args.bootstrap
        )
        return write_partial(
            args.pred,
            args.true,
            options,
            report,
            partial=args.partial,
            shard=args.shard or (0, 1),
            quiet=args.quiet,
            run=run,
            curves_by=_curves_by(args.criterion is not None, False),
        )
    return run_evaluation(
        args.pred,
        args.true,
        options,
        out=args.out,
        criteria=criteria,
        class_names=class_names,
        zero_division=args.zero_division,
        plot=args.plot,
        as_json=args.json,
        quiet=args.quiet,
        exclude=args.exclude,
        bootstrap=args.bootstrap,
        per_case=args.per_case,
        per_lesion=args.per_lesion,
        criteria_given=args.criterion is not None,
        workers=args.workers,
        scheduler=args.scheduler,
        threads=args.threads,
    )


def _merge_command(args: argparse.Namespace) -> int:
    from voxelmetrics.evaluate.partial import load_partials, merge_partials

    def produce(signals):
        needed_for = "--plot" if args.plot else None
        return merge_partials(load_partials(args.partials), needed_for)

    return _report_command(
        produce,
        out=args.out,
        plot=args.plot,
        as_json=args.json,
        per_case=args.per_case,
        per_lesion=args.per_lesion,
    )


def _demo_command(args: argparse.Namespace) -> int:
    from voxelmetrics.evaluate.phantom import CLASS_NAMES, write_phantom
    from voxelmetrics.evaluate.records import Options

    try:
        out = args.out
        pred_dir, true_dir = write_phantom(out / "data", num_cases=args.cases, seed=args.seed)
    except OSError as e:
        return _fail(f"{args.out}: cannot write the demo there ({e.strerror or e}).")
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


def _bench(argv: list[str]) -> int:
    from voxelmetrics import bench

    parser = argparse.ArgumentParser(prog="voxelmetrics bench", description=bench.__doc__)
    bench.configure_parser(parser)
    return bench.run(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `voxelmetrics` console script; returns the exit status.

    The signal handlers come first: Ctrl-C at any moment (the imports, parsing, the first
    compilation) ends with 130 and no output, never with a traceback or a finished run.
    """
    with _Signals() as signals:
        try:
            status = _command(sys.argv[1:] if argv is None else list(argv))
        except Interrupted as e:  # outside a command's own guard: before any output
            return _stopped(e.signum, "nothing written")
        if signals.received is not None and status != 128 + signals.received:
            return _stopped(signals.received, "nothing more written")
        return status


def _command(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
