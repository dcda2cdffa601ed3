"""The one report path of `evaluate`, `merge` and `demo`: summarize, print, commit the files.

Every file of a directory is committed together or none is (`write_atomically`), with a
signal check after each one, so that Ctrl-C never leaves a report half replaced.
"""

import sys
from pathlib import Path

from voxelmetrics.cli.signals import fail, guarded

PLOT_FILES = {"pr": "pr_curves.png", "roc": "roc_curves.png"}


def check_targets(*targets) -> str | None:
    """The message for the first target directory that cannot be written, else None."""
    from voxelmetrics.evaluate.atomic_writes import check_writable

    for target in targets:
        if target is not None:
            try:
                check_writable(target)
            except OSError as e:
                return f"{target}: cannot write the report there ({e.strerror or e})."
    return None


def report_command(produce, *, out, plot: bool, as_json: bool, per_case, per_lesion=None) -> int:
    """`produce(signals) -> (evaluation, report options)`, then the report: printed, and
    written with `--out`/`--per-case`. The one report path of `evaluate` and `merge`.

    Returns the exit status: 0, 2 for bad input or an output that cannot be written
    (nothing replaced), 128 + the signal's number after Ctrl-C or SIGTERM (no new report).
    """
    if plot and out is None:
        return fail("--plot needs --out DIR to write the PNG files into.")
    problem = check_targets(out, per_case and per_case.parent, per_lesion and per_lesion.parent)
    if problem:
        return fail(problem)

    def work(signals) -> int:
        evaluation, report_options = produce(signals)
        if per_lesion is not None and evaluation.options.lesions is None:
            return fail(f"--per-lesion {per_lesion}: the run has no --lesions to list.")
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
            return fail(
                f"{out}: writing the report failed ({e}); no file there was replaced "
                f"and no temporary file was left."
            )
        if not as_json:
            in_out = [p.name for p in written if out is not None and p.parent == Path(out)]
            elsewhere = [str(p) for p in written if p.name not in in_out]
            print(f"\nwrote {', '.join(in_out)} to {out}/" if in_out else "")
            print(*(f"wrote {p}" for p in elsewhere), sep="\n")
        return 0

    return guarded(work)


def _summarize(evaluation, report_options: dict) -> dict:
    from voxelmetrics.evaluate.readers import InputError
    from voxelmetrics.evaluate.report import summarize

    try:
        return summarize(evaluation, **report_options)
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
