"""model.compile with a SegmentationReport, a curve metric and a Tversky loss (README)."""

import numpy as np

from voxelmetrics.losses import TverskyLoss  # first: it picks JAX unless you chose a backend
from voxelmetrics.metrics import AveragePrecision, SegmentationReport

import keras  # isort: skip

print("backend", keras.backend.backend())

# 8 synthetic volumes (16^3, one channel) with two overlapping labels: a lesion inside an organ.
rng = np.random.default_rng(0)
grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1)
x = np.empty((8, 16, 16, 16, 1), "float32")
y = np.zeros((8, 16, 16, 16, 2), "float32")
for i in range(8):
    centre = rng.uniform(5, 11, 3)
    y[i, ..., 0] = np.linalg.norm(grid - centre, axis=-1) < 4.5  # organ
    y[i, ..., 1] = y[i, ..., 0] * (np.linalg.norm(grid - centre - 1.5, axis=-1) < 2)  # lesion
    x[i, ..., 0] = 0.5 * y[i, ..., 0] + 0.5 * y[i, ..., 1] + 0.3 * rng.normal(size=(16, 16, 16))

keras.utils.set_random_seed(1)
inputs = keras.Input((16, 16, 16, 1))
h = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(inputs)
h = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(h)
outputs = keras.layers.Conv3D(2, 1, activation="sigmoid")(h)
model = keras.Model(inputs, outputs)

model.compile(
    optimizer=keras.optimizers.Adam(0.02),
    loss=TverskyLoss(alpha=0.3, beta=0.7),  # beta > alpha: misses cost more than extras
    metrics=[
        SegmentationReport(class_names=["organ", "lesion"], average=["micro", "macro"]),
        AveragePrecision(class_names=["organ", "lesion"], average=None),
    ],
)
history = model.fit(x, y, epochs=6, batch_size=4, verbose=0)
print(sorted(history.history))
for key in [
    "loss",
    "dice/organ",
    "dice/lesion",
    "dice/macro",
    "recall/lesion",
    "average_precision/lesion",
]:
    print(f"{key:25s}", np.round(history.history[key], 3))
