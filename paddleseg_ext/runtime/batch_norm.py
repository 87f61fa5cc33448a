"""BatchNorm statistics: merging them over CPU ranks, freezing them, blending batch and fixed statistics in
training (`StatisticsBlend`), and evaluating with per-image statistics (the diagnostic of
`val.py --compare_bn_stats`). See docs/design.md, "BatchNorm".

Paddle keeps a BatchNorm layer's running mean and variance in ``_mean`` / ``_variance`` (non-trainable
parameters updated in train mode as ``0.9 * running + 0.1 * batch``).
"""
import contextlib
import math

import numpy as np
import paddle
import paddle.nn as nn

from ..utils import UserInputError

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


def _channel_axis(layer):
    """1 for NC* layouts, -1 for N*C ones (`data_format` of BatchNorm*D, `data_layout` of the legacy BatchNorm)."""
    layout = getattr(layer, "_data_format", None) or getattr(layer, "_data_layout", "NCHW")
    return -1 if layout.endswith("C") and layout != "NC" else 1


def _kernel_layout(axis):
    """F.batch_norm's data_format for a channel `axis` of 1 or -1: its names for NC* / N*C of any rank."""
    return "NCHW" if axis == 1 else "NHWC"


def _ranks_to_merge():
    """The number of ranks whose batches form one batch (1: this process alone). Raises a one-line
    UserInputError where several ranks run but their collective communication is not set up."""
    n = paddle.distributed.get_world_size()
    if n > 1 and not paddle.distributed.is_initialized():
        raise UserInputError("BatchNorm blending over {} ranks merges their batch statistics, which needs "
                             "paddle.distributed.init_parallel_env() first".format(n))
    return n


def _channel_sums(x, axis):
    """Per-channel sums of `x` ([C]; `axis` 1 or -1) as matrix products: on a CPU Paddle's reductions over
    several axes take about twice as long."""
    c = x.shape[axis]
    if axis == 1:
        rows = x.reshape([x.shape[0], c, -1])  # [N, C, L]
        return paddle.matmul(rows, paddle.ones([rows.shape[2], 1], x.dtype)).sum(axis=[0, 2])
    rows = x.reshape([-1, c])  # [M, C]
    return paddle.matmul(paddle.ones([1, rows.shape[0]], x.dtype), rows).reshape([c])


class _BatchMoments(paddle.autograd.PyLayer):
    """Per-channel mean and (biased) variance ([C] each) of `x` over every axis but the channel one, over
    the batches of all ranks when `merge` (as SyncBatchNorm pools them); differentiable in `x`.

    Every full-size pass is an inference BatchNorm kernel or a matrix product: elementwise ops with a
    per-channel operand broadcast over the map are an order of magnitude slower on a CPU. The forward sums
    x standardised by the running statistics (mr, vr), which also keeps float32 precision where the mean is
    large against the spread; the backward is the per-channel affine map
    dx = gm / n + 2 gv (x - mean) / n, with the gradients of all ranks summed first (each rank's x moved
    every rank's statistics).
    """

    @staticmethod
    def forward(ctx, x, running_mean, running_var, epsilon, axis, merge):
        layout = _kernel_layout(axis)
        xf = x if x.dtype in (paddle.float32, paddle.float64) else x.astype("float32")
        c = x.shape[axis]
        with paddle.amp.auto_cast(enable=False):  # float16 sums of squares overflow
            d = nn.functional.batch_norm(xf, running_mean, running_var, training=False, epsilon=epsilon,
                                         data_format=layout)  # (x - mr) / sqrt(vr + eps)
            sums = paddle.concat([_channel_sums(d, axis), _channel_sums(d * d, axis),
                                  paddle.full([1], math.prod(x.shape) / c, d.dtype)])
        if merge:
            paddle.distributed.all_reduce(sums)
        n = sums[2 * c]
        mean_d = sums[:c] / n
        std = paddle.sqrt(running_var + epsilon)
        mean = running_mean + std * mean_d
        var = paddle.clip(sums[c:2 * c] / n - mean_d * mean_d, min=0.0) * (running_var + epsilon)
        ctx.save_for_backward(x, mean, running_var)
        ctx.settings = (epsilon, layout, merge, n)
        return mean, var

    @staticmethod
    def backward(ctx, grad_mean, grad_var):
        x, mean, running_var = ctx.saved_tensor()
        epsilon, layout, merge, n = ctx.settings
        grads = paddle.concat([grad_mean, grad_var])
        if merge:
            paddle.distributed.all_reduce(grads)
        c = mean.shape[0]
        xf = x if x.dtype == mean.dtype else x.astype(mean.dtype)
        # (x - mean) / sqrt(vr + eps) * (2 gv sqrt(vr + eps) / n) + gm / n
        scale = 2.0 * grads[c:] / n * paddle.sqrt(running_var + epsilon)
        dx = nn.functional.batch_norm(xf, mean, running_var, scale, grads[:c] / n, training=False, epsilon=epsilon,
                                      data_format=layout)
        return dx.astype(x.dtype), None, None


class BlendBatchNorm(nn.Layer):
    """A BatchNorm layer that normalises with ``alpha`` x its batch's statistics + ``(1 - alpha)`` x its
    running ones, which stay fixed: y = w (x - m) / s + b, m = a mb + (1 - a) mr, s = sqrt(a vb + (1 - a) vr
    + eps), the gradient flowing through the batch part (mb, vb). In eval mode it is the BatchNorm it
    replaces. `blend` (a `StatisticsBlend`) holds alpha; the layer holds the replaced layer's parameters
    under their names, so its state_dict is that layer's.

    One normalisation, by the inference BatchNorm kernel with the running statistics (mr, sr = sqrt(vr +
    eps)): y = (x - mr) / sr * w' + b' with w' = w sr / s and b' = b - a w (mb - mr) / s is exactly the
    blend, and autograd through the per-channel w', b' (then `_BatchMoments`) gives the exact gradient.
    """

    def __init__(self, layer, blend):
        super().__init__()
        for name, param in layer.named_parameters(include_sublayers=False):
            self.add_parameter(name, param)
        self.replaced, self._blend = [layer], blend  # a list: not a sublayer (its state_dict stays ours)
        self._axis = _channel_axis(layer)
        self._layout = _kernel_layout(self._axis)

    def forward(self, x):
        layer = self.replaced[0]
        mean, var, eps = layer._mean, layer._variance, layer._epsilon
        weight, bias = layer.weight, layer.bias
        if self.training:
            a = self._blend.alpha
            batch_mean, batch_var = _BatchMoments.apply(x, mean, var, eps, self._axis, self._blend.ranks > 1)
            inv_s = paddle.rsqrt(a * batch_var + (1.0 - a) * var + eps)
            scale = inv_s if weight is None else weight * inv_s
            shift = -a * (batch_mean - mean) * scale
            weight = scale * paddle.sqrt(var + eps)
            bias = shift if bias is None else bias + shift
        y = nn.functional.batch_norm(x, mean, var, weight, bias, training=False, epsilon=eps,
                                     data_format=self._layout)
        act = getattr(layer, "_act", None)  # the legacy BatchNorm's `act`
        return y if act is None else getattr(nn.functional, act)(y)


class StatisticsBlend:
    """While installed, every BatchNorm layer of `model` is a `BlendBatchNorm`: in train mode it normalises
    with ``alpha`` x its batch's statistics + ``(1 - alpha)`` x its running statistics, which stay fixed;
    in eval mode with the running statistics alone. Lowering `alpha` from 1 to 0 over some iterations moves
    a network from batch statistics to frozen ones gradually instead of in one step. On several ranks
    (CPU processes, or GPUs with SyncBatchNorm) the batch statistics are those of all ranks' batches.
    `remove` puts the original layers back (they share their parameters with the blending ones).
    """

    def __init__(self, model, alpha=1.0):
        self.alpha = float(alpha)
        self.ranks = _ranks_to_merge()
        self._swapped = []
        for name, layer in batch_norm_layers(model):
            parent_name, _, child = name.rpartition(".")
            parent = model
            for part in parent_name.split(".") if parent_name else []:
                parent = getattr(parent, part)
            blending = BlendBatchNorm(layer, self)
            blending.training = parent.training
            parent.add_sublayer(child, blending)
            self._swapped.append((parent, child, layer))

    def remove(self):
        """Put the original layers back, in the train / eval mode of the blending ones."""
        for parent, child, layer in self._swapped:
            layer.training = getattr(parent, child).training
            parent.add_sublayer(child, layer)
        self._swapped = []


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
