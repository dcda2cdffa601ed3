"""The host's key search (`surface_rules._search_sorted`, log2 M passes over the sorted keys)
finds the same key as the graph's bisection of the key range (`_bisect` under the active
backend), for the two conditions the percentiles give it: a count of keys (linear
percentile) and a sum of weights (nearest-rank percentile); on random keys, heavy ties,
rows of one key, rows with no real key, and the bit patterns of float distances."""

import zlib

import numpy as np
import pytest

from tests.conftest import to_numpy
from voxelmetrics.ops import surface_rules as rules
from voxelmetrics.ops._host import on_host, xp

NO_KEY = np.iinfo(np.int32).max


def _rows(rng, kind: str) -> np.ndarray:
    """int32 keys `[4, 50]`, `NO_KEY` where a point is absent."""
    if kind == "random":
        keys = rng.integers(0, 10_000, (4, 50))
    elif kind == "ties":
        keys = rng.integers(0, 3, (4, 50))
    elif kind == "float bits":
        keys = rng.exponential(20.0, (4, 50)).astype(np.float32).view(np.int32)
    else:  # "one key": every row one value
        keys = np.repeat(rng.integers(0, 100, (4, 1)), 50, axis=1)
    keys = np.where(rng.random((4, 50)) < 0.3, NO_KEY, keys).astype(np.int32)
    keys[1] = NO_KEY  # a row with no point
    keys[2, 1:] = NO_KEY  # a row with one point
    return keys


def _conditions(keys: np.ndarray, weights: np.ndarray, q: float):
    """The two monotone conditions, each built for a namespace `xs` from the keys, weights
    and bounds converted by `xs` (numpy on the host, backend tensors in-graph)."""
    present = keys != NO_KEY
    rank = np.floor(q * np.maximum(present.sum(-1) - 1, 0)).astype(np.int32)
    # as the percentiles do, a slack so that the condition holds at the largest real key
    # whatever order the sums run in
    target = (q * (1 - 1e-5) * np.where(present, weights, 0.0).sum(-1)).astype(np.float32)

    def count(xs):
        keys_, rank_ = xs.convert_to_tensor(keys), xs.convert_to_tensor(rank)
        return lambda k: xs.sum(xs.cast(keys_ <= k, "int32"), axis=-1) > rank_

    def weight(xs):
        keys_, weights_, target_ = (xs.convert_to_tensor(a) for a in (keys, weights, target))
        return lambda k: xs.sum(xs.where(keys_ <= k, weights_, 0.0), axis=-1) >= target_

    return count, weight


@pytest.mark.parametrize("kind", ["random", "ties", "float bits", "one key"])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 1.0])
def test_the_host_search_finds_the_bisections_key(kind, q):
    import keras

    rng = np.random.default_rng(zlib.crc32(f"{kind} {q}".encode()))
    keys = _rows(rng, kind)
    weights = rng.random(keys.shape).astype(np.float32)
    for condition in _conditions(keys, weights, q):
        graph = to_numpy(rules._bisect(keras.ops.convert_to_tensor(keys), condition(keras.ops)))
        with on_host():
            host = rules._search_sorted(keys, condition(xp))
        assert host.tolist() == graph.tolist()
        assert host[1] == NO_KEY  # no point: no key, as the graph gives


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_the_hosts_neighbour_codes_equal_the_graphs(k, density):
    """The host's uint8 codes (`_host_neighbour_codes`, bits OR-ed in place) are the codes
    the graph sums in int32 under the active backend, masks touching the border included
    (empty, sparse, half and full masks; two leading axes)."""
    rng = np.random.default_rng(zlib.crc32(f"codes {k} {density}".encode()))
    mask = rng.random((2, 3, *(5, 4, 6)[:k])) < density
    graph = to_numpy(rules._neighbour_codes(mask, k))
    with on_host():
        host = rules._neighbour_codes(mask, k)
    assert host.dtype == np.uint8 and host.shape == graph.shape == (2, 3, *(6, 5, 7)[:k])
    np.testing.assert_array_equal(host, graph)
    brute = np.zeros(graph.shape, np.int64)
    padded = np.pad(mask, [(0, 0), (0, 0)] + [(1, 1)] * k)
    for corner in np.ndindex(graph.shape[2:]):
        for bit, offset in enumerate(rules._corners(k)):
            voxel = tuple(c + o for c, o in zip(corner, offset, strict=True))
            brute[(slice(None), slice(None), *corner)] += padded[(..., *voxel)] << bit
    np.testing.assert_array_equal(host, brute)
