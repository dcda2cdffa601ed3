"""Lesion-wise evaluation (`--lesions panoptica`) against panoptica 2.1 on one phantom case.

The phantom: a cubic volume (256^3 by default) with 50 ellipsoid lesions of radii 2 to 12
voxels; the prediction moves each lesion by up to one voxel per axis, grows or shrinks it, misses
one in ten and adds ten false positives, two of which touch or bridge lesions. Both tools
must give the same counts, RQ, SQ, PQ, and per-instance Dice, IoU, HD95 and ASSD before
anything is timed; then each runs `--repeat` times in this process and the best time counts.

Run: python -m benchmarks.lesions [--side 256] [--lesions 50] [--repeat 3]
(`benchmarks/test_lesions.py` runs the same comparison on a small volume in CI.)
"""

import argparse
import time
import warnings

import numpy as np

from voxelmetrics.evaluate.lesions import LesionRequest, class_lesions, lesion_scores


def phantom(side: int = 256, lesions: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(truth, pred)` bool `[side]^3` masks of `lesions` ellipsoids (see the module)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((side,) * 3, bool)
    pred = np.zeros_like(truth)
    scale = side / 256

    def ellipsoid(mask, centre, radii):
        lo = np.maximum(np.floor(centre - radii).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radii).astype(int) + 1, side)
        axes = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        inside = sum(((x - c) / r) ** 2 for x, c, r in zip(axes, centre, radii, strict=True))
        mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] |= inside <= 1

    for k in range(lesions):
        radii = rng.uniform(2, 12, 3) * max(scale, 0.25)
        centre = rng.uniform(radii, side - radii)
        ellipsoid(truth, centre, radii)
        if k % 10 == 9:
            continue  # missed
        shift = rng.integers(-1, 2, 3) * max(scale, 0.5)
        ellipsoid(pred, centre + shift, radii * rng.uniform(0.8, 1.2, 3))
    for _ in range(10):
        radii = rng.uniform(1, 4, 3) * max(scale, 0.25)
        ellipsoid(pred, rng.uniform(radii, side - radii), radii)
    return truth, pred


def ours(truth, pred) -> tuple[dict, dict]:
    found = class_lesions(truth, pred, LesionRequest("panoptica"))
    rows = {r["lesion"]: r for r in found.truth if r["matched"]}
    return lesion_scores(found.counts, "panoptica") | found.counts, rows


def theirs(truth, pred) -> tuple[dict, dict]:
    """panoptica's class numbers and per-instance values (by truth id)."""
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )
    from panoptica.metrics import Metric

    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(),
        instance_metrics=[Metric.DSC, Metric.IOU, Metric.HD95, Metric.ASSD],
        log_intermediate_steps=True,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluator.evaluate(pred.astype(np.uint8), truth.astype(np.uint8))["ungrouped"]
    matched = result.intermediate_steps_data._intermediatesteps["MATCHED_INSTANCE"]
    metrics = (Metric.DSC, Metric.IOU, Metric.HD95, Metric.ASSD)
    rows = {
        int(ref): [float(result._list_metrics[m].ALL[k]) for m in metrics]
        for k, ref in enumerate(matched.matched_instances)
    }
    return result.to_dict(), rows


def check_equal(truth, pred) -> None:
    """Raise AssertionError unless both tools give the same numbers on `(truth, pred)`."""
    mine, my_rows = ours(truth, pred)
    other, other_rows = theirs(truth, pred)
    assert (mine["tp"], mine["fp"], mine["fn"]) == (other["tp"], other["fp"], other["fn"])
    for a, b in (("rq", "rq"), ("sq", "sq"), ("pq", "pq"), ("sq_dice", "sq_dsc"),
                 ("sq_hd95", "sq_hd95"), ("sq_assd", "sq_assd")):  # fmt: skip
        np.testing.assert_allclose(mine[a], other[b], rtol=1e-10, err_msg=a)
    assert sorted(my_rows) == sorted(other_rows)
    for ref, values in other_rows.items():
        got = [my_rows[ref][k] for k in ("dice", "iou", "hd95", "assd")]
        np.testing.assert_allclose(got, values, rtol=1e-10)


def best_time(fn, args, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--lesions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    truth, pred = phantom(args.side, args.lesions)
    check_equal(truth, pred)
    found = ours(truth, pred)[0]
    mine = best_time(ours, (truth, pred), args.repeat)
    other = best_time(theirs, (truth, pred), args.repeat)
    print(
        f"{args.side}^3, {found['n_true']} truth / {found['n_pred']} predicted lesions, "
        f"same numbers: voxelmetrics {mine:.3f} s, panoptica {other:.3f} s, "
        f"{other / mine:.1f}x (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
