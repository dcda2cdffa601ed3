"""The components' sizes, boxes and centroids (`lesions._described`, from the foreground
voxels alone) against `cc3d.statistics` (one pass over the whole volume) on random label
arrays in 1-3 D: empty, sparse, dense and full masks, components on the border, and an id
left without voxels (as the BraTS grouping can leave)."""

import cc3d
import numpy as np
import pytest

from voxelmetrics.evaluate import lesions


def _reference(labels: np.ndarray):
    stats = cc3d.statistics(np.ascontiguousarray(lesions._volume3d(labels)))
    lead = 3 - labels.ndim
    voxels = np.asarray(stats["voxel_counts"], np.int64)
    boxes = [None if box is None else tuple(box[lead:]) for box in stats["bounding_boxes"]]
    centroids = np.asarray(stats["centroids"], np.float64).reshape(len(voxels), 3)[:, lead:]
    return voxels, boxes, centroids


@pytest.mark.parametrize("seed", range(4))
def test_foreground_statistics_equal_cc3d_statistics(seed):
    rng = np.random.default_rng(seed)
    for trial in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 12, rng.integers(1, 4)))
        density = rng.choice([0.02, 0.3, 0.9, 1.0])
        mask = rng.random(shape) < density
        labels = cc3d.connected_components(lesions._volume3d(mask), connectivity=26)
        labels = labels.reshape(shape)
        if trial % 3 == 0 and labels.max() > 2:
            labels = np.where(labels == 2, 0, labels)  # id 2 left without voxels
        voxels, boxes, centroids = _reference(labels)
        found = lesions._described(labels)
        assert found.voxels.tolist() == voxels.tolist()
        for i in range(1, len(voxels)):
            if voxels[i]:
                assert found.boxes[i] == boxes[i]
                np.testing.assert_allclose(found.centroids[i], centroids[i], rtol=1e-12)
        if voxels[0]:
            np.testing.assert_allclose(found.centroids[0], centroids[0], rtol=1e-9)
        assert found.boxes[0] == tuple(slice(0, n) for n in shape)


def test_an_empty_volume_is_one_background_component():
    found = lesions._described(np.zeros((3, 4), np.uint32))
    assert found.n == 0 and found.voxels.tolist() == [12]
    np.testing.assert_allclose(found.centroids[0], [1.0, 1.5])
