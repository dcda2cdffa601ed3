"""Merging metric states across devices, replicas and processes: every state is a sum.

`all_reduce_metrics` sums process-local metric states (torch.distributed, multi-process JAX);
`sharded_totals` and `process_split` shard an offline evaluation over JAX devices and hosts.
"""

from collections.abc import Callable, Iterable, Sequence

import keras
import numpy as np
from keras import ops

INT32_MAX = 2**31 - 1
# Device-local int32 counts are split into 12-bit parts before `psum`, so that the sum of
# up to 2**12 devices' parts still fits in int32 (x64 is off under JAX by default).
PART_BITS = 12
MAX_DEVICES = 1 << PART_BITS


def metric_variables(metrics_or_model) -> list:
    """The state variables of a Keras model's metrics, one metric, or a list of metrics.

    A model gives `model.metrics_variables` (its loss tracker and compiled metrics
    included); variables reached twice are listed once.
    """
    if isinstance(metrics_or_model, keras.Model):
        variables = list(metrics_or_model.metrics_variables)
    elif isinstance(metrics_or_model, keras.metrics.Metric):
        variables = list(metrics_or_model.variables)
    else:
        variables = [v for metric in metrics_or_model for v in metric.variables]
    unique = {id(v): v for v in variables}
    return list(unique.values())


def _check_sum_aggregation(variables: Iterable) -> None:
    for v in variables:
        if v.aggregation != "sum":
            raise ValueError(
                f"Metric variable {v.path!r} has aggregation={v.aggregation!r}; only states "
                f"merged by a sum can be all-reduced here."
            )


def _summed_as_int32(total: np.ndarray, name: str) -> np.ndarray:
    """An int64 sum of int32 states back to int32, refusing (not wrapping) an overflow."""
    if total.size and (total.max() > INT32_MAX or total.min() < -INT32_MAX - 1):
        raise OverflowError(
            f"The sum of {name} over processes leaves int32 (max {total.max()}); an exact "
            f"limb total stays in range for up to 127 processes."
        )
    return total.astype(np.int32)


def all_reduce_metrics(metrics_or_model, *, group=None) -> None:
    """Sum every metric state over processes, in place: each process then holds the totals.

    Every state in voxelmetrics (and in Keras' own metrics) merges by a sum, so the metric
    of the union of the processes' data is the metric of the summed states. Call it once,
    after the last `update_state` (e.g. after `model.evaluate` on each process's shard) and
    before `result()`; calling it again would add the totals again. Every process must
    hold the same metrics with the same shapes: give `num_classes` where a process might
    see no data before the merge (a metric otherwise builds its state on its first batch).

    What it does depends on the backend (`keras.backend.backend()`):

    - torch: one `torch.distributed.all_reduce(SUM)` per dtype over `group` (int32 limb
      counts are summed as int64, so no count wraps). Nothing to do when
      `torch.distributed` is not initialised (one process).
    - jax: states of several `jax.distributed` processes are gathered with
      `jax.experimental.multihost_utils.process_allgather` and summed. States that already
      span processes (a global `jax.Array`, e.g. under `keras.distribution.DataParallel`)
      are global totals and are left as they are; so is everything in one process.
    - tensorflow: nothing to do. Under `tf.distribute` (variables created in
      `strategy.scope()`), Keras metric variables are sync-on-read with SUM aggregation:
      reading them outside the replica function already gives the sum over replicas.

    Args:
        metrics_or_model: a compiled `keras.Model` (all its metrics, the loss tracker
            included), one `keras.metrics.Metric`, or an iterable of them.
        group: torch only: the process group (default: the whole world).

    Raises:
        ValueError: a variable whose `aggregation` is not "sum".
        OverflowError: a summed int32 state that would leave int32 (more than 127
            processes adding full limbs); nothing is assigned then.

    Example (one process: nothing to merge, the state is unchanged):

    >>> import numpy as np
    >>> from voxelmetrics.metrics import ConfusionCounts
    >>> m = ConfusionCounts()
    >>> m.update_state(np.array([[1, 0], [1, 1]]), np.array([[.9, .2], [.4, .8]], "float32"))
    >>> all_reduce_metrics(m)
    >>> m.result().tolist()
    [[1, 0, 1, 0], [1, 0, 0, 1]]

    With `torch.distributed` (one process per shard, see tests/distributed/torch_worker.py):

    ```python
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    model.evaluate(x[rank::world_size], y[rank::world_size])
    all_reduce_metrics(model)              # every process now holds the global totals
    logs = model.get_metrics_result()      # the same numbers as one process on all data
    ```
    """
    variables = metric_variables(metrics_or_model)
    _check_sum_aggregation(variables)
    reduce = _REDUCERS.get(keras.backend.backend())
    if reduce is not None and variables:
        reduce(variables, group)


def _assign_all(variables: Sequence, values: Sequence) -> None:
    for v, value in zip(variables, values, strict=True):
        v.assign(value)


def _torch_all_reduce(variables: Sequence, group) -> None:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    by_dtype: dict[str, list] = {}
    for v in variables:
        by_dtype.setdefault("int" if "int" in str(v.dtype) else str(v.dtype), []).append(v)
    for kind, group_vars in by_dtype.items():
        values = [ops.convert_to_tensor(v).detach().reshape(-1) for v in group_vars]
        flat = torch.cat([t.to(torch.int64) if kind == "int" else t for t in values])
        flat = flat.cpu() if dist.get_backend(group) == "gloo" else flat
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        summed = flat.cpu().numpy()
        summed = _summed_as_int32(summed, "int32 states") if kind == "int" else summed
        _assign_all(group_vars, _split_like(summed, group_vars))


def _jax_all_reduce(variables: Sequence, group) -> None:
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    local = [v for v in variables if ops.convert_to_tensor(v).is_fully_addressable]
    if not local:
        return
    for kind in ("int", "float"):
        group_vars = [v for v in local if ("int" in str(v.dtype)) == (kind == "int")]
        if not group_vars:
            continue
        flat = np.concatenate([np.asarray(ops.convert_to_numpy(v)).reshape(-1) for v in group_vars])
        gathered = multihost_utils.process_allgather(flat)
        if kind == "int":
            summed = _summed_as_int32(gathered.astype(np.int64).sum(0), "int32 states")
        else:
            summed = gathered.sum(0, dtype=flat.dtype)
        _assign_all(group_vars, _split_like(summed, group_vars))


_REDUCERS: dict[str, Callable] = {"torch": _torch_all_reduce, "jax": _jax_all_reduce}


def _split_like(flat: np.ndarray, variables: Sequence) -> list[np.ndarray]:
    """`flat` cut back into arrays of the variables' shapes and dtypes."""
    sizes = [int(np.prod(v.shape)) for v in variables]
    pieces = np.split(np.asarray(flat), np.cumsum(sizes)[:-1])
    return [p.reshape(v.shape).astype(v.dtype) for p, v in zip(pieces, variables, strict=True)]


def process_split(items: Sequence, *, process_index: int, process_count: int) -> Sequence:
    """This process's share of a dataset: every `process_count`-th item from `process_index`.

    Strided, so that shares differ in size by at most one item and each process sees
    volumes from across the list. Give `jax.process_index()` / `jax.process_count()` under
    `jax.distributed`, or the rank / world size under `torch.distributed`.

    Example:

    >>> process_split(["a.npy", "b.npy", "c.npy", "d.npy", "e.npy"],
    ...               process_index=1, process_count=2)
    ['b.npy', 'd.npy']
    """
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must lie in [0, process_count={process_count}); "
            f"received {process_index}."
        )
    return items[process_index::process_count]


def _psum_exact(counts, axis_name: str):
    """psum of int32 counts as two 12/19-bit parts (exact for up to 2**12 devices), or a
    plain psum of float (weighted) sums: `[..., 2]` int32 (hi, lo) or float32 `[...]`."""
    import jax

    if "int" not in str(counts.dtype):
        return jax.lax.psum(counts, axis_name)
    counts = counts.astype("int32")
    parts = ops.stack(
        [ops.right_shift(counts, PART_BITS), ops.bitwise_and(counts, MAX_DEVICES - 1)], axis=-1
    )
    return jax.lax.psum(parts, axis_name)


def _parts_to_int64(parts: np.ndarray) -> np.ndarray:
    parts = np.asarray(parts).astype(np.int64)
    return parts[..., 0] * MAX_DEVICES + parts[..., 1]


def sharded_totals(fn: Callable, *arrays, mesh=None, axis_name: str = "batch"):
    """Evaluate `fn` on each device's block of `arrays` and sum the results over devices.

    JAX only. The arrays are split along axis 0 over the mesh axis `axis_name`
    (`jax.sharding.NamedSharding`); `jax.shard_map` runs `fn` on each device's block, and
    `jax.lax.psum` merges the per-device counts. Integer counts travel as two int32 parts
    (12 low bits and the rest), so the merge is exact for up to 4096 devices with x64
    off; the host then adds the parts in int64. Under `jax.distributed`, each process
    passes its own share (`process_split`) and the mesh spans every process's devices:
    `jax.make_array_from_process_local_data` assembles the global arrays, and every
    process receives the same totals.

    Args:
        fn: maps blocks of `arrays` (each `[n / devices, ...]`) to a pytree of counts, e.g.
            `voxelmetrics.confusion_counts` / `score_histogram`; int32 (unweighted, exact)
            or float32 (weighted) arrays of static shape.
        *arrays: numpy arrays or `jax.Array`s `[n, ...]`, `n` divisible by the number of
            devices (pad, and pass a `mask` array that is False on the padding). Numpy
            arrays are this process's data.
        mesh: a `jax.sharding.Mesh` with axis `axis_name`; default all devices
            (of every process), one axis.
        axis_name: the mesh axis the arrays are split over.

    Returns:
        The pytree of `fn`'s outputs, summed over devices, on the host: numpy int64 for
        integer counts (exact), float32 for float sums.

    Example (4 devices, e.g. `XLA_FLAGS=--xla_force_host_platform_device_count=4`):

    ```python
    from voxelmetrics import confusion_counts, score_histogram
    counts, histogram = sharded_totals(
        lambda t, p: (confusion_counts(t, p, 0.5), score_histogram(t, p, 100)),
        y_true, y_pred)                      # [N, D, H, W, C] each, N divisible by 4
    ```
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if mesh is None:
        mesh = jax.make_mesh((jax.device_count(),), (axis_name,))
    if mesh.shape[axis_name] > MAX_DEVICES:
        raise ValueError(
            f"sharded_totals sums exactly over at most {MAX_DEVICES} devices along "
            f"{axis_name!r}; the mesh has {mesh.shape[axis_name]}."
        )
    sharding = NamedSharding(mesh, PartitionSpec(axis_name))
    inputs = [
        a if isinstance(a, jax.Array) else jax.make_array_from_process_local_data(sharding, a)
        for a in arrays
    ]

    def per_device(*blocks):
        return jax.tree.map(lambda c: _psum_exact(c, axis_name), fn(*blocks))

    summed = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=PartitionSpec(axis_name), out_specs=PartitionSpec()
        )
    )(*inputs)
    return jax.tree.map(_host_total, summed)


def _host_total(summed) -> np.ndarray:
    values = np.asarray(summed)
    return _parts_to_int64(values) if "int" in str(values.dtype) else values
