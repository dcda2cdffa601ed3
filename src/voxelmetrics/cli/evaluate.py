"""`voxelmetrics evaluate`: the flags turned into engine options, refused when they clash."""

import argparse

import voxelmetrics.defaults as defaults
from voxelmetrics.cli.running import curve_options, run_evaluation, summary_options, write_partial
from voxelmetrics.cli.signals import fail


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
    given = {"convention": args.surface_convention, "missing": args.surface_missing}
    request = dataclasses.replace(  # what is not given keeps `SurfaceRequest`'s default
        args.surface, **{field: value for field, value in given.items() if value is not None}
    )
    try:
        return request.resolved(class_names, args.exclude), None
    except ValueError as error:
        return None, str(error)


def evaluate_command(args: argparse.Namespace) -> int:
    """`voxelmetrics evaluate PRED TRUE ...`: the engine's `Options` from the flags, then a
    report (`run_evaluation`) or, with --partial, a shard's state (`write_partial`); returns
    the exit status (2 for flags that clash, naming them)."""
    from voxelmetrics.evaluate.records import Options

    class_names = args.class_names
    threshold = args.threshold[0] if len(args.threshold) == 1 else args.threshold
    num_classes = args.num_classes
    if class_names and num_classes and len(class_names) != num_classes:
        return fail(
            f"--class-names lists {len(class_names)} names but --num-classes is {num_classes}."
        )
    problem = _scale_problem(args)
    if problem:
        return fail(problem)
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
        return fail(str(e))
    if args.per_lesion is not None and lesions is None:
        return fail(f"--per-lesion {args.per_lesion} needs --lesions (nothing to list).")
    regions = None
    if args.regions:
        from voxelmetrics.evaluate.regions import parse_regions

        if class_names:
            return fail("--regions names the classes: drop --class-names.")
        try:
            regions = parse_regions(args.regions)
        except ValueError as e:
            return fail(str(e))
    surface, problem = _surface_request(
        args, [name for name, _ in regions] if regions else class_names
    )
    if problem:
        return fail(problem)
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
        report = summary_options(
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
            curves_by=curve_options(args.criterion is not None, False),
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
