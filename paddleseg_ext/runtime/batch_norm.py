"""BatchNorm statistics: merging them over CPU ranks, freezing them, and evaluating with per-image
statistics (the diagnostic of `val.py --compare_bn_stats`). See docs/design.md, "BatchNorm".

Paddle keeps a BatchNorm layer's running mean and variance in ``_mean`` / ``_variance`` (non-trainable
parameters updated in train mode as ``0.9 * running + 0.1 * batch``).
"""
import contextlib

import numpy as np
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


def recompute_statistics(model, batches):
    """Set every BatchNorm layer's running statistics to those of `batches` under the current weights.

    `batches` yields float32 input tensors [N, 3, H, W]; the model runs on them in train mode without
    gradients (each layer sees what training would feed it), and each layer gets the mean of the batch
    means and the mean of the batch variances plus the variance of the batch means (the statistics of
    all the batches together). The running averages lag the weights by about ten steps (momentum 0.9),
    which matters when they are about to be frozen. Returns the number of batches used.
    """
    layers = batch_norm_layers(model)
    seen = {id(layer): [] for _, layer in layers}
    hooks = []

    def record(layer, inputs):
        x = inputs[0].astype("float64")
        axes = [0] + list(range(2, x.ndim))
        mean = x.mean(axis=axes, keepdim=True)
        seen[id(layer)].append((mean.flatten().numpy(), ((x - mean) ** 2).mean(axis=axes).numpy()))

    modes = [(m, m.training) for m in model.sublayers(include_self=True)]
    for _, layer in layers:
        hooks.append(layer.register_forward_pre_hook(record))
    count = 0
    try:
        model.train()
        with paddle.no_grad():
            for x in batches:
                model(x)
                count += 1
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes:
            m.training = training
    if count == 0:
        return 0
    with paddle.no_grad():
        for _, layer in layers:
            means = np.stack([m for m, _ in seen[id(layer)]])
            variances = np.stack([v for _, v in seen[id(layer)]])
            layer._mean.set_value(means.mean(0).astype("float32"))
            layer._variance.set_value((variances.mean(0) + means.var(0)).astype("float32"))
    return count


class StatisticsBlend:
    """While installed, every BatchNorm layer of `model` normalises with ``alpha`` x its batch's statistics +
    ``(1 - alpha)`` x its running statistics, which stay fixed (the layers are put in eval mode); the
    gradient flows through the batch part. Lowering `alpha` from 1 to 0 over some iterations moves a network
    from batch statistics to frozen ones gradually instead of in one step. Assumes NCHW inputs.
    """

    def __init__(self, model, alpha=1.0):
        self.alpha = float(alpha)
        self.active = True  # False: the layers normalise with the running statistics alone (evaluation)
        self._hooks = [layer.register_forward_post_hook(self._blend) for _, layer in batch_norm_layers(model)]
        freeze_statistics(model)

    def _blend(self, layer, inputs, output):
        if not self.active:
            return None
        x = inputs[0]
        axes = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        batch_mean = x.mean(axis=axes, keepdim=True)
        batch_var = ((x - batch_mean) ** 2).mean(axis=axes, keepdim=True)
        a = self.alpha
        mean = a * batch_mean + (1.0 - a) * layer._mean.reshape(shape)
        var = a * batch_var + (1.0 - a) * layer._variance.reshape(shape)
        y = (x - mean) / paddle.sqrt(var + layer._epsilon)
        if layer.weight is not None:
            y = y * layer.weight.reshape(shape)
        if layer.bias is not None:
            y = y + layer.bias.reshape(shape)
        return y

    def remove(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []


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
