"""The command line's grammar: one parser per command, and the argparse types of the flags.

Building the parser imports no Keras (`--help` stays fast); a flag whose rule lives with
the library (a threshold, a class name, a criterion, a boundary measure) imports it when the
flag is given, and says what was wrong in argparse's words (exit status 2).
"""

import argparse
import functools
import importlib
from pathlib import Path

import voxelmetrics.defaults as defaults  # (`from voxelmetrics import` would load Keras)
from voxelmetrics._scalar_checks import check_int, check_number, check_zero_division
from voxelmetrics.cli.demo import demo_command
from voxelmetrics.cli.evaluate import evaluate_command
from voxelmetrics.cli.merge import merge_command


def _argparse_type(parse):
    """`parse` as an argparse type: its ValueError (the library's message: what was expected,
    what arrived) becomes argparse's error, exit status 2."""

    @functools.wraps(parse)
    def checked(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


@_argparse_type
def _thresholds(text: str) -> tuple[float, ...]:
    """An argparse type: one working threshold or one per class, comma-separated, each in
    [0, 1] by the library's rule (`check_threshold_values`; its import loads Keras, so it
    runs only when --threshold is given).

    Example: `"0.5,0.3"` -> `(0.5, 0.3)`; `"1.5"` is refused (score >= 1.5 never holds).
    """
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"expected numbers like 0.5 or 0.5,0.3; got {text!r}") from None
    from voxelmetrics.ops._options import check_threshold_values

    check_threshold_values(values[0] if len(values) == 1 else list(values))
    return values


def _read(kind, text: str):
    """`text` as `kind` (int or float), or the text itself for the check to refuse."""
    try:
        return kind(text)
    except ValueError:
        return text


@_argparse_type
def _positive_int(text: str) -> int:
    """An integer >= 1 by `check_int` (`"0"`, `"1.5"` and `"x"` are refused)."""
    return check_int("value", _read(int, text))


@_argparse_type
def _non_negative_int(text: str) -> int:
    """An integer >= 0 by `check_int`."""
    return check_int("value", _read(int, text), minimum=0)


@_argparse_type
def _positive_number(text: str) -> float:
    """A finite number > 0 by `check_number` (`"nan"`, `"inf"`, `"-1"` are refused)."""
    return check_number("value", _read(float, text), positive=True)


@_argparse_type
def _zero_division(text: str):
    """`"nan"`, `0` or `1` by `check_zero_division`, as the metrics store it."""
    return check_zero_division({"0": 0, "1": 1}.get(text, text))


@_argparse_type
def _class_names(text: str) -> list[str]:
    """An argparse type: comma-separated, distinct class names, none reserved.

    The rule is `report.check_class_names` (kept in one place for the library and CLI).
    """
    from voxelmetrics.evaluate.report import check_class_names

    return check_class_names([name.strip() for name in text.split(",")])


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _shard(text: str) -> tuple[int, int]:
    """An argparse type: `I/N` with 0 <= I < N (`$SLURM_ARRAY_TASK_ID/N` with --array=0-(N-1))."""
    index, _, count = text.partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit()) or int(index) >= int(count):
        raise argparse.ArgumentTypeError(
            f"expected I/N with 0 <= I < N (e.g. 0/4: the first of 4 shards); got {text!r}"
        )
    return int(index), int(count)


@_argparse_type
def _criteria(text: str) -> list[str]:
    from voxelmetrics.evaluate.report import parse_criterion

    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        parse_criterion(name)
    return names


@_argparse_type
def _surface(text: str):
    from voxelmetrics.evaluate.surface import parse_surface  # imports Keras: not for --help

    return parse_surface(text)


@_argparse_type
def _spacing(text: str):
    from voxelmetrics.evaluate.surface import parse_spacing

    return parse_spacing(text)


@_argparse_type
def _surface_missing(text: str) -> str:
    from voxelmetrics.evaluate.surface import parse_missing

    return parse_missing(text)


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
        type=_positive_number,
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
        type=_positive_int,
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
    p.add_argument("--num-classes", type=_positive_int, help="expected number of classes")
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
        type=_positive_int,
        default=1,
        metavar="N",
        help="evaluate the cases in N local processes, each with its own --chunk-mb budget "
        "(default: 1, this process)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
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
        choices=defaults.SURFACE_CONVENTIONS,
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
        default=defaults.ZERO_DIVISION,
        help="value of a metric that is 0/0 (e.g. a class absent from a case): nan, 0 or 1",
    )
    _add_report_options(p)
    p.set_defaults(run=evaluate_command)


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
        "--connectivity",
        type=int,
        help=f"--lesions: neighbours {', '.join(map(str, defaults.CONNECTIVITIES[:-1]))} or "
        f"{defaults.CONNECTIVITIES[-1]} (default: {defaults.CONNECTIVITY})",
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
        help="--lesions panoptica: a pair matches at IoU >= this (default: "
        f"{defaults.MATCH_THRESHOLD})",
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
    p.set_defaults(run=merge_command)


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
    p.set_defaults(run=demo_command)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; `bench` is listed here and configured only when it runs."""
    about = importlib.import_module(__package__).__doc__.split("\n")[0]  # the package's
    parser = argparse.ArgumentParser(prog="voxelmetrics", description=about)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_evaluate(sub)
    _add_merge(sub)
    _add_demo(sub)
    sub.add_parser("bench", help="benchmarks (see `voxelmetrics bench --help`)", add_help=False)
    return parser
