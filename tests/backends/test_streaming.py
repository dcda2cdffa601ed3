"""Slab-by-slab kernels (torch eager) add up to exactly what one whole-volume call gives."""

import numpy as np
import pytest

import voxelmetrics as vm
from tests.conftest import BACKEND, to_numpy
from voxelmetrics.backends import _dispatch
from voxelmetrics.backends._dispatch import Streaming, compile_kernel, stream_kernel
from voxelmetrics.ops._inputs import check_inputs
from voxelmetrics.ops.counting import _count_kernel
from voxelmetrics.ops.histogram import _histogram_kernel

SHAPE = (2, 5, 6, 7, 3)  # 1260 scores: many slabs once STREAM_ELEMENTS is tiny


@pytest.fixture
def tiny_slabs(monkeypatch):
    """Slabs of at most 50 scores, so every call below streams over several slabs."""
    monkeypatch.setattr(_dispatch, "STREAM_ELEMENTS", 50)


def _volume(rng, shape=SHAPE):
    y_true = rng.random(shape) < 0.3
    y_pred = rng.random(shape).astype(np.float32)
    y_pred[0, 0, 0, 0, :2] = [0.0, 1.0]  # the ends of the range and an edge
    y_pred[1, -1, -1, -1] = 0.5
    return y_true, y_pred


def test_slab_plan_picks_the_first_axis_whose_slices_fit(monkeypatch):
    spec = check_inputs(np.zeros(SHAPE), np.zeros(SHAPE, "float32"), axis=-1, from_logits=False)
    monkeypatch.setattr(_dispatch, "STREAM_ELEMENTS", 300)
    # axis 0 slices hold 630 scores (too many); axis 1 slices 252: one per slab.
    assert _dispatch._slab_plan(SHAPE, spec, per_sample=False) == (1, 1)
    monkeypatch.setattr(_dispatch, "STREAM_ELEMENTS", 700)
    assert _dispatch._slab_plan(SHAPE, spec, per_sample=False) == (0, 1)
    # per_sample keeps the sample axis whole.
    assert _dispatch._slab_plan(SHAPE, spec, per_sample=True) == (1, 2)
    monkeypatch.setattr(_dispatch, "STREAM_ELEMENTS", 5000)
    assert _dispatch._slab_plan(SHAPE, spec, per_sample=False) is None
    # No single slice fits: the axis with the smallest slices, one slice per slab.
    monkeypatch.setattr(_dispatch, "STREAM_ELEMENTS", 100)
    assert _dispatch._slab_plan(SHAPE, spec, per_sample=False) == (3, 1)
    cube = (1, 6, 6, 6, 3)  # equal slices on axes 1-3: the first of them
    assert _dispatch._slab_plan(cube, spec, per_sample=False) == (1, 1)


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("weighting", ["none", "mask", "weight"])
def test_streamed_counts_equal_one_call(rng, tiny_slabs, per_sample, weighting):
    y_true, y_pred = _volume(rng)
    mask = rng.random(SHAPE[:2]) < 0.7 if weighting == "mask" else None  # left-aligned [B, D]
    weight = rng.random(SHAPE[:-1]).astype(np.float32) if weighting == "weight" else None
    spec = check_inputs(y_true, y_pred, axis=-1, from_logits=False, sample_weight=weight, mask=mask)
    args = (y_true, y_pred, np.float32([0.5, 0.3, 0.9]), weight, mask)
    options = {"spec": spec, "per_sample": per_sample}
    whole = _count_kernel(*args, **options)
    declared = Streaming(("y_true", "y_pred", "sample_weight", "mask"), per_sample="per_sample")
    streamed = stream_kernel(_count_kernel, args, options, declared)
    for a, b in zip(whole, streamed, strict=True):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), rtol=1e-6)


def test_streamed_histogram_of_sparse_channels_first_labels(rng, tiny_slabs):
    labels = rng.integers(0, 3, (2, 6, 7)).astype(np.int32)
    y_pred = rng.random((2, 3, 6, 7)).astype(np.float32)
    spec = check_inputs(labels, y_pred, axis=1, from_logits=False)
    args = (labels, y_pred, None, None, None)
    options = {"spec": spec, "num_bins": 8, "method": "scatter"}
    whole = _histogram_kernel(*args, **options)
    streamed = stream_kernel(_histogram_kernel, args, options, Streaming(("y_true", "y_pred")))
    for a, b in zip(whole, streamed, strict=True):
        np.testing.assert_array_equal(to_numpy(b), to_numpy(a))


def test_public_ops_stream_to_the_same_numbers(rng, tiny_slabs):
    """Under torch the public ops take the slab path here; elsewhere the whole path."""
    y_true, y_pred = _volume(rng)
    truth = y_true.reshape(-1, 3)
    scores = y_pred.reshape(-1, 3)
    counts = to_numpy(vm.confusion_counts(y_true, y_pred, 0.5))
    predicted = scores >= 0.5
    np.testing.assert_array_equal(counts[:, 0], (predicted & truth).sum(0))
    np.testing.assert_array_equal(counts[:, 1], (predicted & ~truth).sum(0))
    np.testing.assert_array_equal(counts[:, 2], (~predicted & truth).sum(0))
    hist = to_numpy(vm.score_histogram(y_true, y_pred, num_bins=4))
    bins = np.minimum(np.floor(scores * 4), 3).astype(int)
    for c in range(3):
        np.testing.assert_array_equal(hist[c, :, 1], np.bincount(bins[truth[:, c], c], minlength=4))
        np.testing.assert_array_equal(
            hist[c, :, 0], np.bincount(bins[~truth[:, c], c], minlength=4)
        )
    labels = rng.integers(0, 3, SHAPE[:-1])
    matrix = to_numpy(vm.sparse_confusion_matrix(labels, y_pred, 3))
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (labels.ravel(), y_pred.reshape(-1, 3).argmax(-1)), 1)
    np.testing.assert_array_equal(matrix, expected)


def test_torch_takes_the_slab_path(rng, tiny_slabs, monkeypatch):
    calls = []
    real = _dispatch.stream_kernel
    monkeypatch.setattr(
        _dispatch, "stream_kernel", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    y_true, y_pred = _volume(rng)
    vm.confusion_counts(y_true, y_pred)
    assert len(calls) == (1 if BACKEND == "torch" else 0)


def test_a_kernel_must_take_what_it_declares():
    def kernel(labels, scores, *, spec):
        return labels

    with pytest.raises(TypeError, match=r"\['y_pred'\]"):
        compile_kernel(kernel, ("spec",), Streaming(("labels",)))
    compile_kernel(kernel, ("spec",), Streaming(("labels",), scores="scores"))


@pytest.mark.skipif(BACKEND != "torch", reason="slab streaming is torch's eager path")
def test_tensors_off_the_cpu_run_whole(rng, tiny_slabs, monkeypatch):
    """On a GPU slabs only multiply kernel launches (6x slower counts seen on an H200): a
    tensor on another device runs in one call. The meta device stands in for a GPU here."""
    import torch

    assert _dispatch.on_cpu(torch.zeros(2)) and _dispatch.on_cpu(np.zeros(2))
    assert not _dispatch.on_cpu(torch.empty(2, device="meta"))
    y_true, y_pred = _volume(rng)
    spec = check_inputs(y_true, y_pred, axis=-1, from_logits=False)
    shapes = []

    def kernel(y_true, y_pred, *, spec):
        shapes.append(tuple(y_pred.shape))
        return torch.sum(y_pred)

    streaming = Streaming(("y_true", "y_pred"))
    for accelerator in (False, True):
        shapes.clear()
        monkeypatch.setattr(_dispatch, "on_cpu", lambda x, cpu=not accelerator: cpu)
        total = stream_kernel(kernel, (y_true, y_pred), {"spec": spec}, streaming)
        np.testing.assert_allclose(to_numpy(total), y_pred.sum(), rtol=1e-5)
        assert (shapes == [y_pred.shape]) == accelerator and len(shapes) >= 1
