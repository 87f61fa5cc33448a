"""BatchNorm statistics: merging them over CPU ranks, freezing them, and evaluating with per-image
statistics (the diagnostic of `val.py --compare_bn_stats`). See docs/design.md, "BatchNorm".

Paddle keeps a BatchNorm layer's running mean and variance in ``_mean`` / ``_variance`` (non-trainable
parameters updated in train mode as ``0.9 * running + 0.1 * batch``).
"""
import contextlib

import paddle
import paddle.nn as nn

#: BatchNorm classes (BatchNorm1D/2D/3D, the legacy BatchNorm and SyncBatchNorm share this base)
_BN_BASE = nn.layer.norm._BatchNormBase


def batch_norm_layers(model):
    """[(name, layer)] of every BatchNorm layer of `model`, in definition order."""
    return [(n, m) for n, m in model.named_sublayers() if isinstance(m, (_BN_BASE, nn.BatchNorm))]


def merge_rank_statistics(model):
    """Give every rank the BatchNorm statistics of all ranks' batches together (CPU training without
    SyncBatchNorm, where each rank tracks its own).

    Exact for equally sized batches: mean = mean of the rank means, variance = mean of the rank
    variances + variance of the rank means (averaging the variances alone would drop that second,
    between-rank term). Other floating-point buffers are averaged. A no-op on one rank.
    """
    n = paddle.distributed.get_world_size()
    if n <= 1:
        return
    merged = set()
    with paddle.no_grad():
        for _, layer in batch_norm_layers(model):
            mean = layer._mean.clone()
            paddle.distributed.all_reduce(mean)
            mean = mean / n
            spread = (layer._mean - mean) ** 2
            paddle.distributed.all_reduce(spread)
            var = layer._variance.clone()
            paddle.distributed.all_reduce(var)
            layer._mean.set_value(mean)
            layer._variance.set_value(var / n + spread / n)
            merged.update((id(layer._mean), id(layer._variance)))
        for value in model.state_dict().values():
            if (id(value) not in merged and value.stop_gradient
                    and value.dtype in (paddle.float32, paddle.float64)):
                t = value.clone()
                paddle.distributed.all_reduce(t)
                value.set_value(t / n)


def freeze_statistics(model):
    """Put every BatchNorm layer in eval mode (normalise with the running statistics, stop updating
    them) while the rest of `model` stays in train mode; their scale and shift still learn.
    Call again after each ``model.train()``."""
    for _, layer in batch_norm_layers(model):
        layer.eval()


@contextlib.contextmanager
def per_image_statistics(model):
    """Within the block, each BatchNorm layer normalises an image with that image's own statistics
    (batch 1, train-mode normalisation), except where its input holds one value per channel (the 1x1
    map after global pooling, e.g. the ASPP image-pooling branch: a variance of 0 would erase it), which
    keeps the running statistics. The running statistics are left as they were."""
    layers = batch_norm_layers(model)
    saved = [(layer, layer._mean.numpy().copy(), layer._variance.numpy().copy(), layer.training)
             for _, layer in layers]
    hooks = []

    def choose(layer, inputs):
        x = inputs[0]
        layer.training = int(x.shape[2]) * int(x.shape[3]) > 1 if x.ndim == 4 else True

    for _, layer in layers:
        hooks.append(layer.register_forward_pre_hook(choose))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for layer, mean, var, training in saved:
            layer._mean.set_value(mean)
            layer._variance.set_value(var)
            layer.training = training
