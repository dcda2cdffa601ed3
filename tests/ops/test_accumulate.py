"""Running totals in two int32 limbs stay exact far past 2**32, also under jit without x64."""

import numpy as np

import voxelmetrics as vm
from tests.conftest import BACKEND, compiled, to_numpy

NEAR_INT32_MAX = np.int32([2**31 - 1, 2**31 - 2, 2**24 - 1, 2**24, 0, 12345])


def test_accumulate_past_2_pow_32_equals_numpy_int64():
    total = vm.empty_total(NEAR_INT32_MAX.shape)
    for _ in range(40):
        total = vm.accumulate(total, NEAR_INT32_MAX)
    expected = 40 * NEAR_INT32_MAX.astype(np.int64)
    assert expected.max() > 2**36
    np.testing.assert_array_equal(vm.exact_total(total), expected)


def test_compiled_accumulate_stays_exact(rng):
    # Under JAX with x64 off (the default) int64 silently becomes int32 inside jit.
    if BACKEND == "jax":
        import jax

        assert not jax.config.jax_enable_x64
    step = compiled(vm.accumulate)
    batches = rng.integers(2**30, 2**31 - 1, (25, 2, 3)).astype(np.int32)
    total = vm.empty_total((2, 3))
    for counts in batches:
        total = step(total, counts)
    assert str(to_numpy(total).dtype) == "int32"
    np.testing.assert_array_equal(vm.exact_total(total), batches.astype(np.int64).sum(0))


def test_accumulate_near_2_pow_53():
    # hi * 2**24 + lo with hi = 2**29 - 1: just below 2**53.
    total = np.int32([[2**29 - 1, 2**24 - 5]])
    total = vm.accumulate(total, np.int32([7]))
    assert vm.exact_total(total).tolist() == [(2**29 - 1) * 2**24 + 2**24 + 2]
    assert vm.exact_total(total)[0] > 2**53


def test_totals_merge_by_plain_sum_then_normalise(rng):
    # What an all-reduce SUM does to the limbs of per-device totals.
    shards = rng.integers(2**28, 2**31 - 1, (6, 10, 4)).astype(np.int32)
    partial = []
    for shard in shards:
        total = vm.empty_total((4,))
        for counts in shard:
            total = vm.accumulate(total, counts)
        partial.append(to_numpy(total))
    merged = vm.accumulate(np.sum(partial, axis=0).astype(np.int32), np.zeros(4, np.int32))
    low = to_numpy(merged)[..., 1]
    assert low.min() >= 0 and low.max() < 2**24
    np.testing.assert_array_equal(vm.exact_total(merged), shards.astype(np.int64).sum(axis=(0, 1)))


def test_total_as_float_is_close():
    total = vm.empty_total((1,))
    for _ in range(5):
        total = vm.accumulate(total, np.int32([2**31 - 1]))
    np.testing.assert_allclose(to_numpy(vm.total_as_float(total)), [5 * (2**31 - 1)], rtol=2**-23)


def test_accumulating_confusion_counts_in_chunks_equals_one_numpy_count(rng):
    truth = rng.random((6, 50, 2)) < 0.4
    scores = rng.random((6, 50, 2)).astype(np.float32)
    total = vm.empty_total((2, 4))
    for t, s in zip(truth, scores, strict=True):
        total = vm.accumulate(total, vm.confusion_counts(t, s))
    predicted = scores >= 0.5
    expected = np.stack(
        [
            (truth & predicted).sum((0, 1)),
            (~truth & predicted).sum((0, 1)),
            (truth & ~predicted).sum((0, 1)),
            (~truth & ~predicted).sum((0, 1)),
        ],
        axis=-1,
    )
    np.testing.assert_array_equal(vm.exact_total(total), expected)
