"""Calibrate per-class thresholds during fit and bake them into the saved model."""

import os
import tempfile

import numpy as np

import voxelmetrics as vm  # first: it picks JAX unless you chose a backend  # isort: skip
import keras  # isort: skip

print("backend", keras.backend.backend())
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 8, 8, 8, 2)).astype("float32")
y = (
    np.stack([x[..., 0], x[..., 1], x[..., 0] + x[..., 1] - 2], -1)
    + 0.5 * rng.normal(size=(16, 8, 8, 8, 3))
    > 0
).astype("float32")
x_val, y_val = x[12:], y[12:]

inputs = keras.Input((8, 8, 8, 2))
backbone = keras.Model(inputs, keras.layers.Conv3D(3, 1, activation="sigmoid")(inputs))
deploy = keras.Sequential([backbone, vm.ApplyThresholds(0.5)])  # masks = scores >= t_c

backbone.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
calibration = vm.ThresholdCalibration((x_val, y_val), layer=deploy, criterion="f1")
backbone.fit(x[:12], y[:12], epochs=10, batch_size=2, verbose=0, callbacks=[calibration])
print("calibrated thresholds", calibration.thresholds.round(3), "F1", calibration.values.round(3))

with tempfile.TemporaryDirectory() as folder:  # removed again, whatever happens
    path = os.path.join(folder, "segmenter.keras")
    deploy.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
masks = reloaded.predict(x_val, verbose=0)
print(masks.dtype, masks.shape, "voxels per class", masks.sum(axis=(0, 1, 2, 3)))
