"""Cases spread over several local JAX devices give the totals of one device.

A JAX feature: the subprocess runs JAX with two host devices whatever backend the suite uses.
"""

import os
import subprocess
import sys

SCRIPT = """
import jax
import numpy as np
from voxelmetrics.evaluate import Options, evaluate, streaming
from voxelmetrics.evaluate.executors import local_devices
used = set()
kernel = streaming._compiled_chunk
def recording(*args, **kwargs):
    out = kernel(*args, **kwargs)
    used.update(out[0].devices())
    return out
streaming._compiled_chunk = recording
rng = np.random.default_rng(0)
cases = []
for i in range(5):
    y_true = (rng.random((7, 6, 5, 3)) < 0.3).astype(np.uint8)
    cases.append((f"c{i}", y_true, rng.random(y_true.shape).astype(np.float32)))
one = evaluate(cases=cases, options=Options(num_bins=16, chunk_mb=0.01))
assert len(used) == 1
spread = evaluate(cases=cases, options=Options(num_bins=16, chunk_mb=0.01, devices=0))
assert len(used) == 2, used
assert len(jax.local_devices()) == 2 and len(local_devices(0)) == 2
for a, b in zip(one.cases, spread.cases, strict=True):
    assert a.name == b.name
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.histogram, b.histogram)
print("ok")
"""


def test_cases_spread_over_devices_sum_to_the_same_totals():
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
