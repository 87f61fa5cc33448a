"""Summing and gathering evaluation statistics across `paddle.distributed` ranks.

Paddle is imported lazily so that file-based evaluation (tools/eval_panoptic.py) and the
metric code stay usable, and fast to start, without initialising a device.
"""
import sys

import numpy as np


def world_size():
    """Number of ranks in the default group; 1 when paddle.distributed is not initialised.

    Without paddle imported by the caller there is no process group: answer 1 without importing it
    (file-based evaluation stays paddle-free)."""
    if "paddle" not in sys.modules:
        return 1
    try:
        import paddle.distributed as dist
    except ImportError:  # pragma: no cover - paddle is a hard dependency of the package
        return 1
    try:
        return int(dist.get_world_size())
    except Exception:  # not launched with paddle.distributed
        return 1


def rank():
    """This process's rank; 0 without a process group (see `world_size`)."""
    if world_size() <= 1:
        return 0
    import paddle.distributed as dist

    return int(dist.get_rank())


def all_reduce_sum(array):
    """Sum a numpy array over all ranks (identity with one rank).

    array: any shape, float64 or int64. Returns a numpy array of the same shape and dtype.
    """
    array = np.asarray(array)
    if world_size() <= 1:
        return array.copy()
    import paddle
    import paddle.distributed as dist

    tensor = paddle.to_tensor(array)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy().astype(array.dtype, copy=False)


def all_gather_objects(obj):
    """List of `obj` from every rank, in rank order ([obj] with one rank)."""
    if world_size() <= 1:
        return [obj]
    import paddle.distributed as dist

    gathered = []
    dist.all_gather_object(gathered, obj)
    return gathered
