"""The engine under the command line: progress bar, executor, and the run's two outcomes.

`run_evaluation` ends in a report (`evaluate`, `demo`), `write_partial` in a shard's exact
state (`evaluate --partial`, merged by `voxelmetrics merge`).
"""

from pathlib import Path

import voxelmetrics.defaults as defaults
from voxelmetrics.cli.output import check_targets, report_command
from voxelmetrics.cli.signals import fail, guarded


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


def summary_options(class_names, criteria, zero_division, exclude, bootstrap) -> dict:
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
    exit status (see `report_command`).
    """
    report_options = summary_options(class_names, criteria, zero_division, exclude, bootstrap)
    curves_by = curve_options(criteria_given, plot)

    def produce(signals):
        run = (workers, scheduler, threads)
        return _evaluate(pred, true, options, signals, quiet, curves_by, run), report_options

    return report_command(
        produce, out=out, plot=plot, as_json=as_json, per_case=per_case, per_lesion=per_lesion
    )


def curve_options(criteria_given: bool, plot: bool) -> str | None:
    """The options given that need scores (for the message about hard predictions)."""
    given = [o for o, on in (("--criterion", criteria_given), ("--plot", plot)) if on]
    return " and ".join(given) or None


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


def write_partial(
    pred, true, options, report_options, *, partial, shard, quiet, run, curves_by=None
) -> int:
    """Evaluate shard `(I, N)` of the cases (every N-th in case order, from the I-th) and
    write its exact state to `partial` (no report: `voxelmetrics merge` writes it)."""
    from voxelmetrics.evaluate.partial import check_partial_target, save_partial, shard_indices
    from voxelmetrics.evaluate.readers import pair_cases

    problem = check_targets(partial.parent)
    if problem:
        return fail(problem)

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
            return fail(f"{partial}: writing the partial failed ({e}); nothing was written.")
        print(
            f"wrote {partial}: shard {shard[0]}/{shard[1]}, {len(chosen)} of {len(cases)} case(s)"
        )
        return 0

    return guarded(work, "partial")


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
