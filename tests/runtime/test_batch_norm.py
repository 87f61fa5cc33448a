"""BatchNorm statistics: exact merge over ranks, per-image statistics, frozen statistics in training."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import paddle
import paddle.nn as nn
import pytest
import yaml

from paddleseg_ext.runtime.batch_norm import (StatisticsBlend, batch_norm_layers, freeze_statistics,
                                              merge_rank_statistics, per_image_statistics, recompute_statistics)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CFG = os.path.join(ROOT, "configs", "panoptic_deeplab", "panoptic_deeplab_demo_cpu.yml")


class _PoolNet(nn.Layer):
    """conv -> BN (a map) and global pool -> BN (a 1x1 map), like the ASPP's image pooling."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2D(4)
        self.pool_bn = nn.BatchNorm2D(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y, self.pool_bn(nn.functional.adaptive_avg_pool2d(y, 1))


def _set_stats(layer, mean, var):
    layer._mean.set_value(np.asarray(mean, np.float32))
    layer._variance.set_value(np.asarray(var, np.float32))


def test_per_image_statistics_normalise_each_image_by_itself_and_keep_running_stats():
    paddle.seed(0)
    net = _PoolNet()
    _set_stats(net.bn, [5, 5, 5, 5], [9, 9, 9, 9])
    _set_stats(net.pool_bn, [0.5] * 4, [4] * 4)
    net.eval()
    x = paddle.to_tensor(np.random.RandomState(0).randn(1, 3, 6, 7).astype(np.float32) * 3 + 1)
    with paddle.no_grad():
        with per_image_statistics(net):
            y, pooled = net(x)
        conv = net.conv(x).numpy()
    mean, var = conv.mean(axis=(0, 2, 3)), conv.var(axis=(0, 2, 3))
    gamma, beta = net.bn.weight.numpy(), net.bn.bias.numpy()
    expect = (conv - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) * \
        gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-4, atol=1e-4)
    # the 1x1 map keeps the running statistics (its own variance would be 0)
    p = expect.mean(axis=(2, 3))
    pg, pb = net.pool_bn.weight.numpy(), net.pool_bn.bias.numpy()
    np.testing.assert_allclose(pooled.numpy()[:, :, 0, 0], (p - 0.5) / np.sqrt(4 + 1e-5) * pg + pb, rtol=1e-4, atol=1e-4)
    # nothing learnt or changed
    np.testing.assert_array_equal(net.bn._mean.numpy(), [5, 5, 5, 5])
    np.testing.assert_array_equal(net.pool_bn._variance.numpy(), [4, 4, 4, 4])
    assert not net.bn.training and not net.pool_bn.training


def test_freeze_statistics_uses_running_statistics_in_train_mode():
    paddle.seed(0)
    net = _PoolNet()
    _set_stats(net.bn, [1, 2, 3, 4], [2, 2, 2, 2])
    net.train()
    freeze_statistics(net)
    x = paddle.to_tensor(np.random.RandomState(1).randn(2, 3, 5, 5).astype(np.float32))
    y, _ = net(x)
    net.eval()
    y_eval, _ = net(x)
    np.testing.assert_allclose(y.numpy(), y_eval.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(net.bn._mean.numpy(), [1, 2, 3, 4])
    assert [n for n, _ in batch_norm_layers(net)] == ["bn", "pool_bn"]


def test_recompute_statistics_gives_the_statistics_of_all_batches_under_the_current_weights():
    paddle.seed(0)
    net = _PoolNet()
    _set_stats(net.bn, [9, 9, 9, 9], [9, 9, 9, 9])  # stale running averages
    net.eval()
    rng = np.random.RandomState(2)
    batches = [paddle.to_tensor(rng.randn(2, 3, 4, 5).astype(np.float32) * (1 + i) + i) for i in range(3)]
    assert recompute_statistics(net, iter(batches)) == 3
    with paddle.no_grad():
        conv = np.stack([net.conv(b).numpy() for b in batches])  # [3 batches, 2, C, 4, 5]
    means = conv.mean(axis=(1, 3, 4))
    variances = conv.var(axis=(1, 3, 4))
    np.testing.assert_allclose(net.bn._mean.numpy(), means.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.bn._variance.numpy(), variances.mean(0) + means.var(0), rtol=1e-5, atol=1e-6)
    assert not net.training and not net.bn.training  # modes restored
    assert recompute_statistics(net, iter([])) == 0


def _blend_reference(x, mean, var, weight, bias, alpha, axis=1, ndim=None, eps=1e-5):
    """The blend in float64 numpy: w (x - m) / sqrt(v + eps) + b with m, v = alpha x batch + (1 - alpha) x running,
    over the last `ndim` axes of `x` (channels at `axis` of them); leading axes are separate batches."""
    ndim = ndim or x.ndim
    channel = x.ndim - ndim + axis % ndim
    axes = tuple(i for i in range(x.ndim - ndim, x.ndim) if i != channel)
    shape = [1] * x.ndim
    shape[channel] = -1

    def per_channel(v):
        return np.asarray(v, np.float64).reshape(shape)

    m = alpha * x.mean(axis=axes, keepdims=True) + (1 - alpha) * per_channel(mean)
    v = alpha * x.var(axis=axes, keepdims=True) + (1 - alpha) * per_channel(var)
    return (x - m) / np.sqrt(v + eps) * per_channel(weight) + per_channel(bias)


def test_statistics_blend_moves_from_batch_to_running_statistics():
    paddle.seed(0)
    net = _PoolNet()
    _set_stats(net.bn, [0.5, -0.5, 1.0, 0.0], [2.0, 0.5, 1.0, 4.0])
    x = paddle.to_tensor(np.random.RandomState(3).randn(3, 3, 5, 6).astype(np.float32) * 2)
    with paddle.no_grad():
        net.train()
        batch_out = net(x)[0].numpy()
        _set_stats(net.bn, [0.5, -0.5, 1.0, 0.0], [2.0, 0.5, 1.0, 4.0])  # train mode updated them
        net.eval()
        running_out = net(x)[0].numpy()
        conv = net.conv(x)
    net.train()
    keys, layers = list(net.state_dict()), (net.bn, net.pool_bn)
    blend = StatisticsBlend(net, alpha=1.0)
    # the BatchNorm layers are swapped for blending ones (as convert_sync_batchnorm swaps them) that hold the
    # same parameters under the same names: checkpoints see the same model
    assert type(net.bn).__name__ == "BlendBatchNorm" and batch_norm_layers(net) == []
    assert list(net.state_dict()) == keys and net.bn.weight is layers[0].weight
    with paddle.no_grad():
        np.testing.assert_allclose(net(x)[0].numpy(), batch_out, rtol=1e-4, atol=1e-4)
        blend.alpha = 0.0
        np.testing.assert_allclose(net(x)[0].numpy(), running_out, rtol=1e-4, atol=1e-4)
        blend.alpha = 0.25
        half = net(x)[0].numpy()
        net.eval()  # evaluation normalises with the running statistics alone
        np.testing.assert_allclose(net(x)[0].numpy(), running_out, rtol=1e-4, atol=1e-4)
    expect = _blend_reference(conv.numpy().astype(np.float64), [0.5, -0.5, 1.0, 0.0], [2.0, 0.5, 1.0, 4.0],
                              net.bn.weight.numpy(), net.bn.bias.numpy(), 0.25)
    np.testing.assert_allclose(half, expect, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(net.bn._mean.numpy(), [0.5, -0.5, 1.0, 0.0])
    blend.remove()
    assert (net.bn, net.pool_bn) == layers  # the original layers are back
    with paddle.no_grad():
        np.testing.assert_allclose(net(x)[0].numpy(), running_out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make, axis", [
    (lambda: nn.BatchNorm2D(3), 1),
    (lambda: nn.BatchNorm2D(3, data_format="NHWC"), -1),
    (lambda: nn.BatchNorm(3, act="relu"), 1),  # the legacy layer (PaddleSeg's MobileNetV3) with its activation
])
def test_blend_forward_and_gradient_match_a_float64_reference(make, axis):
    rng = np.random.RandomState(4)
    net = nn.Sequential(make())
    bn = net[0]
    _set_stats(bn, [0.5, -0.5, 3.0], [2.0, 0.5, 1.0])
    bn.weight.set_value(np.array([1.5, -0.7, 0.3], np.float32))
    bn.bias.set_value(np.array([0.1, 0.2, -0.3], np.float32))
    alpha, shape = 0.3, [2, 3, 3, 4] if axis == 1 else [2, 3, 4, 3]
    x0 = rng.randn(*shape) * 2 + 3  # a mean far from 0 (the variance must not lose precision)
    c = rng.randn(*shape)
    act = (lambda y: np.maximum(y, 0)) if isinstance(bn, nn.BatchNorm) else (lambda y: y)
    stats = ([0.5, -0.5, 3.0], [2.0, 0.5, 1.0])

    def loss(x, weight=bn.weight.numpy(), bias=bn.bias.numpy()):  # x [..., *shape] float64
        y = act(_blend_reference(x, *stats, weight, bias, alpha, axis=axis, ndim=4))
        return (y * c).reshape(x.shape[:-4] + (-1,)).sum(-1)

    blend = StatisticsBlend(net, alpha=alpha)
    x = paddle.to_tensor(x0.astype(np.float32), stop_gradient=False)
    y = net(x)
    (y * paddle.to_tensor(c.astype(np.float32))).sum().backward()
    blend.remove()
    np.testing.assert_allclose(y.numpy(), act(_blend_reference(x0, *stats, bn.weight.numpy(), bn.bias.numpy(),
                                                                alpha, axis=axis)), rtol=1e-5, atol=1e-5)
    # central differences in float64, all elements at once (a batch of perturbed inputs)
    h = 1e-6
    steps = np.eye(x0.size).reshape([x0.size] + shape) * h
    numeric = ((loss(x0 + steps) - loss(x0 - steps)) / (2 * h)).reshape(shape)
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-4, atol=1e-4 * np.abs(numeric).max())
    w, b = bn.weight.numpy().astype(np.float64), bn.bias.numpy().astype(np.float64)
    dw = [(loss(x0, w + e, b) - loss(x0, w - e, b)) / (2 * h) for e in np.eye(3) * h]
    db = [(loss(x0, w, b + e) - loss(x0, w, b - e)) / (2 * h) for e in np.eye(3) * h]
    np.testing.assert_allclose(bn.weight.grad.numpy(), dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.bias.grad.numpy(), db, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(bn._mean.numpy(), stats[0])  # fixed


def test_merge_rank_statistics_is_the_identity_on_one_rank():
    net = _PoolNet()
    _set_stats(net.bn, [1, 2, 3, 4], [2, 3, 4, 5])
    merge_rank_statistics(net)
    np.testing.assert_array_equal(net.bn._variance.numpy(), [2, 3, 4, 5])


_RANKS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, paddle, paddle.nn as nn
    from paddleseg_ext.runtime.batch_norm import StatisticsBlend, merge_rank_statistics
    from paddleseg_ext.utils import UserInputError
    paddle.set_device("cpu")
    out = {}
    try:  # two ranks that cannot communicate yet: a blend is refused
        StatisticsBlend(nn.Sequential(nn.BatchNorm2D(3)))
    except UserInputError as e:
        out["refused"] = str(e)
    paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()

    # merge_rank_statistics: rank r saw batches of mean m_r and variance v_r
    net = nn.Sequential(nn.Conv2D(1, 2, 1), nn.BatchNorm2D(2))
    net[1]._mean.set_value(np.array([[0.0, 1.0], [4.0, 3.0]][rank], np.float32))
    net[1]._variance.set_value(np.array([[1.0, 2.0], [1.0, 6.0]][rank], np.float32))
    net[0].weight.stop_gradient = True  # a frozen weight: plain average over ranks
    net[0].weight.set_value(np.full([2, 1, 1, 1], float(rank), np.float32))
    merge_rank_statistics(net)
    out.update(mean=net[1]._mean.numpy().tolist(), var=net[1]._variance.numpy().tolist(),
               w=net[0].weight.numpy().ravel().tolist())

    # the blend: each rank normalises its half of one batch
    rng = np.random.RandomState(0)
    x, c = rng.randn(4, 3, 3, 4) * 2 + 1, rng.randn(4, 3, 3, 4)
    net = nn.Sequential(nn.BatchNorm2D(3))
    net[0]._mean.set_value(np.array([0.5, -0.5, 1.0], np.float32))
    net[0]._variance.set_value(np.array([2.0, 0.5, 1.0], np.float32))
    StatisticsBlend(net, alpha=0.6)
    part = slice(2 * rank, 2 * rank + 2)
    xr = paddle.to_tensor(x[part].astype(np.float32), stop_gradient=False)
    y = net(xr)
    (y * paddle.to_tensor(c[part].astype(np.float32))).sum().backward()
    out.update(y=y.numpy().tolist(), dx=xr.grad.numpy().tolist(), dw=net[0].weight.grad.numpy().tolist())
    json.dump(out, open(sys.argv[1] + str(rank), "w"))
""")


@pytest.mark.slow
def test_two_processes_merge_statistics_exactly_and_blend_over_both_batches(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                        "--log_dir", str(tmp_path / "log"), str(script), str(tmp_path / "rank")],
                       env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:]
    ranks = [json.loads((tmp_path / "rank{}".format(r)).read_text()) for r in (0, 1)]
    got = ranks[0]
    assert "2 ranks" in got["refused"] and "init_parallel_env" in got["refused"]
    # merge_rank_statistics, two equally sized batches: pooled mean, and pooled variance = mean of variances +
    # variance of means
    means, variances = np.array([[0.0, 1.0], [4.0, 3.0]]), np.array([[1.0, 2.0], [1.0, 6.0]])
    np.testing.assert_allclose(got["mean"], means.mean(0))
    np.testing.assert_allclose(got["var"], variances.mean(0) + means.var(0))  # [1 + 4, 4 + 1]
    np.testing.assert_allclose(got["w"], [0.5, 0.5])
    # the blend: the two ranks together give the outputs and input gradients of one process with the whole batch
    rng = np.random.RandomState(0)
    x, c = rng.randn(4, 3, 3, 4) * 2 + 1, rng.randn(4, 3, 3, 4)
    net = nn.Sequential(nn.BatchNorm2D(3))
    _set_stats(net[0], [0.5, -0.5, 1.0], [2.0, 0.5, 1.0])
    StatisticsBlend(net, alpha=0.6)
    xt = paddle.to_tensor(x.astype(np.float32), stop_gradient=False)
    y = net(xt)
    (y * paddle.to_tensor(c.astype(np.float32))).sum().backward()
    np.testing.assert_allclose(np.concatenate([r["y"] for r in ranks]), y.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([r["dx"] for r in ranks]), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    # a weight gradient is that of the rank's own loss (DataParallel averages them over the ranks)
    np.testing.assert_allclose(np.sum([r["dw"] for r in ranks], 0), net[0].weight.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_training_fixes_statistics_blends_them_in_and_freezes_them(demo_root, tmp_path):
    from paddleseg_ext.core.train import train

    cfg = {"_base_": DEMO_CFG, "batch_size": 2, "iters": 5,
           "batch_norm": {"blend_from": 2, "freeze_statistics_at": 4, "precise_batches": 2},
           "train_dataset": {"dataset_root": demo_root}, "val_dataset": {"dataset_root": demo_root}}
    path = tmp_path / "freeze.yml"
    path.write_text(yaml.safe_dump(cfg))
    train(str(path), save_dir=str(tmp_path / "out"), save_interval=1, log_iters=1, device="cpu")
    at = {i: paddle.load(str(tmp_path / "out" / "iter_{}".format(i) / "model.pdparams")) for i in (2, 3, 4, 5)}
    stats = [k for k in at[2] if k.endswith("._mean") or k.endswith("._variance")]
    weights = [k for k in at[2] if k.endswith(".weight")]
    assert stats and weights
    # recomputed after iteration 2 (not the running averages of iteration 2), then fixed while blending
    # (iterations 3, 4) and frozen (5) ...
    assert sum(not np.array_equal(at[2][k].numpy(), at[3][k].numpy()) for k in stats) > len(stats) // 2
    for i in (4, 5):
        for k in stats:
            np.testing.assert_array_equal(at[3][k].numpy(), at[i][k].numpy(), err_msg=k)
    # ... while the network (BatchNorm scales and shifts included) kept learning
    assert sum(not np.array_equal(at[4][k].numpy(), at[5][k].numpy()) for k in weights) > len(weights) // 2


@pytest.mark.parametrize("block, message", [
    ({"freeze_statistics_at": 1.5}, "freeze_statistics_at"),
    ({"freeze_statistics_at": 0.5, "blend_from": 0.7}, "comes after"),
    ({"blend_from": 0.2}, "needs batch_norm.freeze_statistics_at"),
    ({"freeze_statistics_at": 3, "precise_batches": -1}, "precise_batches"),
])
def test_bad_batch_norm_block_is_a_one_line_error(block, message):
    from paddleseg_ext.runtime.schema import validate
    from paddleseg_ext.utils import UserInputError

    with pytest.raises(UserInputError, match=message):  # checked when the config is loaded
        validate({"iters": 10, "batch_norm": block}, "x.yml")
