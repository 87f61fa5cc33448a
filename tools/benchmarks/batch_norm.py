"""BatchNorm benchmark: one training step with frozen statistics vs one step of the statistics blend.

    python tools/benchmark.py batch_norm [--config demo.yml] [--size 129x257] [--batch 4]
                                         [--repeats 5] [--warmup 2] [--threads N]

Builds the config's model (backbone ``pretrained`` removed, random weights) and times, on one random
batch and in one run, a training step (forward, a surrogate loss: the mean square of every output,
backward, Adam update) in these modes:

- ``frozen``: every BatchNorm layer in eval mode (what `batch_norm.freeze_statistics_at` trains with);
- ``batch``: every BatchNorm layer in train mode (a normal step before the schedule);
- ``blend``: `runtime.batch_norm.StatisticsBlend` at alpha 0.5 (its BatchNorm layers swapped for
  `BlendBatchNorm`);
- ``blend-hook``: the baseline, the blend as forward post-hooks on eval-mode BatchNorm layers that
  throw each layer's output away and recompute it from the input with the blended statistics.

Prints the median wall-clock and CPU (process) time of a step in each mode and their ratios to ``frozen``
(the CPU time is the steadier one on a shared machine), and checks that the two blends give
the same outputs and gradients.
"""
import argparse
import os
import statistics
import sys
import time

from . import HelpFormatter, parse_size
from .network import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = "configs/panoptic_deeplab/panoptic_deeplab_demo_cpu.yml"
ALPHA = 0.5


class HookBlend:
    """The baseline: forward post-hooks on eval-mode BatchNorm layers, each recomputing the output as
    w (x - m) / sqrt(v + eps) + b from the blended statistics in elementwise ops (NCHW)."""

    def __init__(self, model, alpha):
        from paddleseg_ext.runtime.batch_norm import batch_norm_layers, freeze_statistics

        self.alpha = alpha
        self.hooks = [layer.register_forward_post_hook(self.blend) for _, layer in batch_norm_layers(model)]
        freeze_statistics(model)

    def blend(self, layer, inputs, output):
        import paddle

        x = inputs[0]
        axes = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        batch_mean = x.mean(axis=axes, keepdim=True)
        batch_var = ((x - batch_mean) ** 2).mean(axis=axes, keepdim=True)
        a = self.alpha
        mean = a * batch_mean + (1.0 - a) * layer._mean.reshape(shape)
        var = a * batch_var + (1.0 - a) * layer._variance.reshape(shape)
        y = (x - mean) / paddle.sqrt(var + layer._epsilon)
        return y * layer.weight.reshape(shape) + layer.bias.reshape(shape)

    def remove(self):
        for h in self.hooks:
            h.remove()


def _step(model, optimizer, x):
    """One training step; returns the loss and the gradients (numpy, by parameter name)."""
    import paddle

    outputs = model(x)
    loss = paddle.add_n([(o * o).mean() for o in outputs])
    loss.backward()
    grads = {p.name: p.grad.numpy() for p in model.parameters() if p.grad is not None}
    optimizer.step()
    optimizer.clear_grad()
    return float(loss), grads


def _enter(model, mode):
    """Put `model` in `mode`; returns what undoes it (or None)."""
    from paddleseg_ext.runtime.batch_norm import StatisticsBlend, freeze_statistics

    model.train()
    if mode == "frozen":
        freeze_statistics(model)
    return {"blend": lambda: StatisticsBlend(model, alpha=ALPHA),
            "blend-hook": lambda: HookBlend(model, ALPHA)}.get(mode, lambda: None)()


def time_modes(model, modes, x, repeats, warmup):
    """{mode: ((median wall-clock seconds of a step, median CPU seconds), loss, gradients)} of `model`; the
    modes take turns step by step (a slow phase of the machine hits them alike) and each step starts from the
    same weights and statistics."""
    import paddle

    saved = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    optimizer = paddle.optimizer.Adam(learning_rate=1e-6, parameters=model.parameters())
    times = {mode: [] for mode in modes}
    first = {}
    for i in range(warmup + repeats):
        for mode in modes:
            blend = _enter(model, mode)
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                loss, grads = _step(model, optimizer, x)
                seconds = (time.perf_counter() - t0, time.process_time() - c0)
            finally:
                if blend is not None:
                    blend.remove()
                model.set_state_dict(saved)
            first.setdefault(mode, (loss, grads))
            if i >= warmup:
                times[mode].append(seconds)
    return {mode: (tuple(statistics.median(t) for t in zip(*times[mode])),) + first[mode] for mode in modes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--config", default=DEMO, help="config file")
    parser.add_argument("--size", type=parse_size, default=(129, 257), help="input HxW (the demo's crop)")
    parser.add_argument("--batch", type=int, default=4, help="images per step")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per mode (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (OMP_NUM_THREADS)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    full = args.config if os.path.isabs(args.config) else os.path.join(ROOT, args.config)
    if not os.path.isfile(full):
        print(f"error: config not found: {args.config}", file=sys.stderr)
        return 2
    import numpy as np
    import paddle

    paddle.set_device("cpu")
    paddle.seed(0)
    model = build_model(full)
    x = paddle.randn([args.batch, 3, *args.size])
    rows = time_modes(model, ("frozen", "batch", "blend", "blend-hook"), x, args.repeats, args.warmup)
    same_loss = abs(rows["blend"][1] - rows["blend-hook"][1]) <= 1e-4 * abs(rows["blend-hook"][1])
    ours, hook = rows["blend"][2], rows["blend-hook"][2]
    gap = np.sqrt(sum(float(((ours[k] - hook[k]) ** 2).sum()) for k in hook) /
                  sum(float((hook[k] ** 2).sum()) for k in hook))
    h, w = args.size
    print(f"\nTraining step of {os.path.basename(full)}, batch {args.batch}x3x{h}x{w}, CPU, "
          f"median of {args.repeats} (warmup {args.warmup}), blend alpha {ALPHA}")
    print(f"{'mode':<12} {'step (s)':>9} {'x frozen':>9} {'CPU (s)':>9} {'x frozen':>9}")
    (wall0, cpu0), _, _ = rows["frozen"]
    for mode, ((wall, cpu), _, _) in rows.items():
        print(f"{mode:<12} {wall:>9.3f} {wall / wall0:>9.2f} {cpu:>9.3f} {cpu / cpu0:>9.2f}")
    print(f"blend vs blend-hook: same loss: {same_loss}, gradients differ by {gap:.1e} (relative, all parameters)")
    return 0
