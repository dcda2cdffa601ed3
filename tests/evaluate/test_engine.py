"""The streaming engine against brute-force numpy int64 counts, for every layout and format."""

import numpy as np
import pytest

from tests.evaluate.reference import counts_and_histogram
from voxelmetrics.evaluate import Options, evaluate
from voxelmetrics.evaluate.planning import KERNEL_BYTES_PER_ELEMENT, plan_chunks
from voxelmetrics.evaluate.readers import InputError, open_volume

NUM_BINS = 16
TINY_CHUNK_MB = 0.012  # ~3 rows of 90 scores per chunk: 5 chunks, the last one padded


def _multi_hot(rng, shape, c, axis=-1):
    y_true = (rng.random((*shape, c)) < [0.4, 0.1, 0.02][:c]).astype(np.uint8)
    y_pred = rng.random((*shape, c)).astype(np.float32)
    y_pred[..., 0][y_true[..., 0] == 1] **= 0.3  # some signal
    y_pred[0, 0, 0, :] = [0.0, 0.5, 1.0][:c]  # edges of the bins
    if axis != -1:
        y_true, y_pred = np.moveaxis(y_true, -1, axis), np.moveaxis(y_pred, -1, axis)
    return np.ascontiguousarray(y_true), np.ascontiguousarray(y_pred)


LAYOUTS = {
    "multi-hot": dict(axis=-1),
    "channels-first": dict(axis=0),
    "sparse-ignore": dict(axis=-1, ignore_index=255),
    "logits-multi-hot": dict(axis=-1, from_logits=True),
    "logits-sparse": dict(axis=-1, from_logits=True),
}


def _data(layout: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    kw = LAYOUTS[layout]
    shape = (13, 6, 5)
    if "sparse" in layout:
        y_true = rng.integers(0, 3, shape).astype(np.uint8)
        if "ignore_index" in kw:
            y_true[rng.random(shape) < 0.1] = 255
        y_pred = rng.random((*shape, 3)).astype(np.float32)
        if not kw.get("from_logits"):
            y_pred /= y_pred.sum(-1, keepdims=True)
    else:
        y_true, y_pred = _multi_hot(rng, shape, 3, kw["axis"])
    if kw.get("from_logits"):
        y_pred = (rng.normal(size=y_pred.shape) * 3).astype(np.float32)
    return y_true, y_pred, kw


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("chunk_mb", [TINY_CHUNK_MB, 64.0])
def test_counts_and_histogram_match_numpy(layout, chunk_mb):
    y_true, y_pred, kw = _data(layout)
    threshold = (0.5, 0.3, 0.7)
    ev = evaluate(
        y_true=y_true,
        y_pred=y_pred,
        options=Options(threshold=threshold, num_bins=NUM_BINS, chunk_mb=chunk_mb, **kw),
    )
    counts, hist = counts_and_histogram(
        y_true, y_pred, threshold=np.float32(threshold), num_bins=NUM_BINS, **kw
    )
    np.testing.assert_array_equal(ev.counts, counts)
    np.testing.assert_array_equal(ev.histogram, hist)
    assert ev.counts.dtype == np.int64


def test_tiny_budget_really_chunks_and_pads():
    y_true, y_pred, kw = _data("channels-first")
    pred, true = open_volume(y_pred), open_volume(y_true)
    from voxelmetrics.evaluate.planning import case_spec

    plan = plan_chunks(pred, true, case_spec(pred, true, Options(**kw)), TINY_CHUNK_MB)
    assert plan.pred_axis == 1 and plan.true_axis == 1
    assert plan.num_chunks > 1 and plan.length % plan.rows != 0


def _save(path, array):
    suffix = "".join(path.suffixes)
    if suffix == ".npy":
        np.save(path, array)
    elif suffix == ".npz":
        np.savez_compressed(path, other=np.zeros(3), volume=array)
    else:
        import nibabel

        nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), path)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".nii", ".nii.gz", "fortran.npy"])
@pytest.mark.parametrize("layout", ["multi-hot", "channels-first", "sparse-ignore"])
def test_file_formats_give_the_same_totals(tmp_path, suffix, layout):
    y_true, y_pred, kw = _data(layout)
    if suffix == "fortran.npy":
        y_true, y_pred = np.asfortranarray(y_true), np.asfortranarray(y_pred)
        suffix = ".npy"
    pred_path, true_path = tmp_path / f"p{suffix}", tmp_path / f"t{suffix}"
    _save(pred_path, y_pred)
    _save(true_path, y_true)
    options = Options(
        num_bins=NUM_BINS, chunk_mb=TINY_CHUNK_MB, pred_key="volume", true_key="volume", **kw
    )
    from_files = evaluate(y_true=true_path, y_pred=pred_path, options=options)
    counts, hist = counts_and_histogram(y_true, y_pred, num_bins=NUM_BINS, **kw)
    np.testing.assert_array_equal(from_files.counts, counts)
    np.testing.assert_array_equal(from_files.histogram, hist)


def test_directories_pair_by_name_and_pool(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "true").mkdir()
    cases = {name: _data("multi-hot", seed) for seed, name in enumerate(["b", "a", "c"])}
    for name, (y_true, y_pred, _) in cases.items():
        np.save(tmp_path / "pred" / f"{name}.npy", y_pred)
        _save(tmp_path / "true" / f"{name}.nii.gz", y_true)
    ev = evaluate(
        y_true=tmp_path / "true", y_pred=tmp_path / "pred", options=Options(num_bins=NUM_BINS)
    )
    assert [c.name for c in ev.cases] == ["a", "b", "c"]
    total = np.zeros((3, 4), np.int64)
    for case in ev.cases:
        y_true, y_pred, _ = cases[case.name]
        expected, _ = counts_and_histogram(y_true, y_pred, num_bins=NUM_BINS)
        np.testing.assert_array_equal(case.counts, expected)
        total += expected
    np.testing.assert_array_equal(ev.counts, total)


def test_nan_score_is_reported_with_its_file_index():
    y_true, y_pred, _ = _data("multi-hot")
    y_pred[11, 2, 3, 1] = np.nan
    with pytest.raises(InputError, match=r"NaN scores, the first at index \(11, 2, 3, 1\)"):
        evaluate(y_true=y_true, y_pred=y_pred, options=Options(chunk_mb=TINY_CHUNK_MB))


def test_label_values_are_checked():
    y_true, y_pred, _ = _data("multi-hot")
    y_true[5, 0, 0, 2] = 2
    with pytest.raises(InputError, match=r"not multi-hot labels of 0 and 1"):
        evaluate(y_true=y_true, y_pred=y_pred, options=Options(chunk_mb=TINY_CHUNK_MB))


@pytest.mark.parametrize(
    ("grid", "axis"),
    [((1, 13, 6, 5), -1), ((1, 13, 6, 5), 1)],
    ids=["singleton-batch", "singleton-batch-channels-first"],
)
def test_chunks_stream_past_length_one_axes(grid, axis):
    rng = np.random.default_rng(3)
    y_true, y_pred = _multi_hot(rng, grid[1:], 3)
    y_true, y_pred = y_true.reshape(*grid, 3), y_pred.reshape(*grid, 3)
    if axis != -1:
        y_true, y_pred = np.moveaxis(y_true, -1, axis), np.moveaxis(y_pred, -1, axis)
    y_true, y_pred = np.ascontiguousarray(y_true), np.ascontiguousarray(y_pred)
    pred, true = open_volume(y_pred), open_volume(y_true)
    from voxelmetrics.evaluate.planning import case_spec

    plan = plan_chunks(pred, true, case_spec(pred, true, Options(axis=axis)), TINY_CHUNK_MB)
    assert pred.shape[plan.pred_axis] > 1 and plan.num_chunks > 1
    per_element = 4 + KERNEL_BYTES_PER_ELEMENT  # float32 scores and kernel temporaries
    slab = y_pred.size // plan.length * plan.rows
    assert slab * per_element <= TINY_CHUNK_MB * 2**20 < y_pred.size * per_element
    ev = evaluate(
        y_true=y_true,
        y_pred=y_pred,
        options=Options(axis=axis, num_bins=NUM_BINS, chunk_mb=TINY_CHUNK_MB),
    )
    counts, hist = counts_and_histogram(y_true, y_pred, num_bins=NUM_BINS, axis=axis)
    np.testing.assert_array_equal(ev.counts, counts)
    np.testing.assert_array_equal(ev.histogram, hist)


class _CountingInflater:
    """Wraps a zlib decompressor and adds the bytes it produced to a shared tally."""

    def __init__(self, inner, tally: list):
        self.inner, self.tally = inner, tally

    def decompress(self, *args):
        out = self.inner.decompress(*args)
        self.tally[0] += len(out)
        return out

    def flush(self, *args):
        out = self.inner.flush(*args)
        self.tally[0] += len(out)
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("suffix", [".npz", ".nii.gz"])
def test_compressed_inputs_are_decompressed_once(tmp_path, monkeypatch, suffix):
    import zlib

    rng = np.random.default_rng(4)
    y_true, y_pred = _multi_hot(rng, (40, 24, 20), 3)
    pred_path, true_path = tmp_path / f"p{suffix}", tmp_path / f"t{suffix}"
    _save(pred_path, y_pred)
    _save(true_path, y_true)
    tally = [0]
    original = zlib.decompressobj
    monkeypatch.setattr(
        zlib, "decompressobj", lambda *a, **k: _CountingInflater(original(*a, **k), tally)
    )
    options = Options(num_bins=NUM_BINS, chunk_mb=0.2, pred_key="volume", true_key="volume")
    chunks = []
    ev = evaluate(
        y_true=true_path,
        y_pred=pred_path,
        options=options,
        progress=lambda _, i, n: chunks.append(n),
    )
    assert len(ev.cases) == 1 and ev.counts.sum() == y_true.size
    assert chunks[0] > 4  # re-reading from the start would cost about chunks / 2 passes
    print(f"decompressed {tally[0]} bytes for {y_pred.nbytes + y_true.nbytes} bytes of data")
    assert tally[0] <= 1.25 * (y_pred.nbytes + y_true.nbytes)


def test_fortran_ordered_volumes_chunk_along_their_last_voxel_axis():
    y_true, y_pred, kw = _data("multi-hot")
    pred = open_volume(np.asfortranarray(y_pred))
    true = open_volume(np.asfortranarray(y_true))
    from voxelmetrics.evaluate.planning import case_spec

    plan = plan_chunks(pred, true, case_spec(pred, true, Options(**kw)), TINY_CHUNK_MB)
    assert pred.fortran and plan.pred_axis == 2 and plan.num_chunks > 1


@pytest.mark.parametrize("shape", [(0, 4, 3), (5, 4, 0)])
def test_zero_size_arrays_are_refused_clearly(shape):
    with pytest.raises(InputError, match="no voxels"):
        evaluate(y_true=np.zeros(shape, np.uint8), y_pred=np.zeros(shape, np.float32))


def test_the_positional_pred_true_order_still_works_with_a_deprecation_warning():
    rng = np.random.default_rng(5)
    y_true = (rng.random((4, 5, 2)) < 0.4).astype(np.uint8)
    y_pred = rng.random((4, 5, 2)).astype(np.float32)
    new = evaluate(y_true=y_true, y_pred=y_pred, options=Options(num_bins=8))
    with pytest.warns(DeprecationWarning, match=r"evaluate\(y_true=\.\.\., y_pred=\.\.\."):
        old = evaluate(y_pred, y_true, Options(num_bins=8))
    np.testing.assert_array_equal(old.counts, new.counts)
    with pytest.warns(DeprecationWarning):
        triples = evaluate([("a", y_pred, y_true)], None, Options(num_bins=8))
    np.testing.assert_array_equal(triples.counts, new.counts)
    with pytest.raises(TypeError, match="needs y_true and y_pred"):
        evaluate(y_true=y_true)
