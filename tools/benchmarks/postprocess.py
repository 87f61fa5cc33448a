"""Benchmark panoptic_postprocess against a straightforward baseline shaped like the PyTorch reference.

    python tools/benchmark.py postprocess [--sizes 513x1025,1025x2049 --instances 30 --top-k 200
                                           --repeat 5 --device cpu|gpu] [--skip-exported]

Implementations: "ours" is `panoptic_postprocess` (eager); "exported" is the same post-processing
as the exported inference model runs it (`PanopticPostprocess` traced with to_static, saved with
paddle.jit.save and run by paddle.inference like deploy/python/infer.py, numpy in and out); the
baseline (in this file) builds the full [K, H*W] distance tensor and loops over instances and
classes in Python, as bowenc0221/panoptic-deeplab does, in Paddle ops. All run on the same
synthetic network outputs (ellipses of thing classes over stuff bands, Gaussian centre heatmap,
noisy offsets); their panoptic maps are compared pixel for pixel with ours.

Each implementation runs in a fresh child process that loads the inputs from a .npz, so that
memory numbers do not mix: on CPU "peak extra MB" is the rise of the process's peak RSS
(getrusage ru_maxrss) during the first call, above the peak after loading the inputs; on GPU it is
the rise of paddle's peak allocated GPU memory during the first call. Time is the median of
--repeat calls after that first one, inputs already paddle tensors on the device.
"""
import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

from . import HelpFormatter, run_child

THING_IDS = list(range(11, 19))  # Cityscapes train ids of the thing classes
LABEL_DIVISOR = 1000
VOID_LABEL = 255 * LABEL_DIVISOR


def make_outputs(h, w, num_instances, seed=0, sigma=8.0, offset_noise=2.0):
    """Synthetic network outputs: semantic [H,W] int64, center [1,H,W] float32, offset [2,H,W]."""
    rng = np.random.default_rng(seed)
    bands = np.linspace(0, h, 12).astype(int)
    semantic = np.zeros((h, w), np.int64)
    for i in range(11):  # stuff classes 0..10 as horizontal bands
        semantic[bands[i]:bands[i + 1]] = i
    center = np.zeros((h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = h / 1025.0
    for n in range(num_instances):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(30, 110) * scale, rng.uniform(30, 130) * scale
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        semantic[mask] = THING_IDS[n % len(THING_IDS)]
        offset[0][mask] = cy - yy[mask]
        offset[1][mask] = cx - xx[mask]
        iy, ix = int(round(min(cy, h - 1))), int(round(min(cx, w - 1)))
        g = np.exp(-((yy - iy) ** 2 + (xx - ix) ** 2) / (2 * sigma ** 2))
        np.maximum(center, g, out=center)
    # Imperfect predictions: a few pixels of wrong class, jittered offsets, heatmap noise below
    # the threshold.
    flip = rng.random((h, w)) < 0.01
    semantic[flip] = rng.integers(0, 19, size=int(flip.sum()))
    offset += rng.normal(0, offset_noise, size=offset.shape).astype(np.float32)
    center += rng.uniform(0, 0.05, size=center.shape).astype(np.float32)
    return semantic, center[None], offset


def reference_postprocess(semantic, center, offset, thing_ids, label_divisor=1000, stuff_area=2048,
                          void_label=255, threshold=0.1, nms_kernel=7, top_k=200):
    """Baseline: the PyTorch reference's algorithm in Paddle ops, full [K, HW] distances and
    Python loops over instances and classes. Same top_k rule as ours (keep all unless > top_k)."""
    import paddle
    import paddle.nn.functional as F
    from paddleseg_ext.compat import argsort_stable

    h, w = semantic.shape
    heat = paddle.where(center > threshold, center, paddle.full_like(center, -1.0))
    pooled = F.max_pool2d(heat.unsqueeze(0), kernel_size=nms_kernel, stride=1,
                          padding=(nms_kernel - 1) // 2).squeeze(0)
    heat = paddle.where(heat == pooled, heat, paddle.full_like(heat, -1.0)).squeeze(0)
    ctr = paddle.nonzero(heat > 0)
    if top_k is not None and ctr.shape[0] > top_k:
        scores = paddle.gather_nd(heat, ctr)
        keep = paddle.sort(argsort_stable(scores, descending=True)[:top_k])
        ctr = paddle.gather(ctr, keep)

    thing_seg = paddle.zeros([h, w], dtype="bool")
    for c in thing_ids:
        thing_seg = thing_seg | (semantic == c)
    if ctr.shape[0] == 0:
        ins = paddle.zeros([h, w], dtype="int64")
    else:
        y = paddle.arange(h, dtype="float32").reshape([h, 1]).expand([h, w])
        x = paddle.arange(w, dtype="float32").reshape([1, w]).expand([h, w])
        loc = (paddle.stack([y, x]) + offset).reshape([2, h * w]).transpose([1, 0])
        dist = paddle.linalg.norm(ctr.astype("float32").unsqueeze(1) - loc.unsqueeze(0), axis=-1)
        ins = (paddle.argmin(dist, axis=0).reshape([h, w]) + 1) * thing_seg.astype("int64")
        del dist, loc

    pan = paddle.full([h, w], void_label, dtype="int64")
    tracker = {}
    for ins_id in paddle.unique(ins).numpy().tolist():
        if ins_id == 0:
            continue
        mask = (ins == ins_id) & thing_seg
        votes = paddle.bincount(paddle.masked_select(semantic, mask)).numpy()
        if votes.sum() == 0:
            continue
        cls = int(np.argmax(votes))
        tracker[cls] = tracker.get(cls, 0) + 1
        pan = paddle.where(mask, paddle.full_like(pan, cls * label_divisor + tracker[cls]), pan)
    has_ins = ins > 0
    for cls in paddle.unique(semantic).numpy().tolist():
        if cls in thing_ids:
            continue
        mask = (semantic == cls) & ~has_ins
        if int(mask.astype("int64").sum()) >= stuff_area:
            pan = paddle.where(mask, paddle.full_like(pan, cls * label_divisor), pan)
    return pan, ctr


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _exported_runner(sem, ctr, off, device, top_k, tmp):
    """`run()` of PanopticPostprocess saved as a static model and run by paddle.inference as
    deploy/python/infer.py runs a model (`run_paddle_inference`: numpy in, numpy out)."""
    import paddle
    from paddleseg_ext.pipeline.static_predictor import paddle_inference_predictor, run_paddle_inference
    from paddleseg_ext.postprocess import PanopticPostprocess

    layer = PanopticPostprocess(19, THING_IDS, label_divisor=LABEL_DIVISOR, void_label=VOID_LABEL, top_k=top_k)
    spec = [paddle.static.InputSpec([None, None], "int64", "semantic"),
            paddle.static.InputSpec([1, None, None], "float32", "center"),
            paddle.static.InputSpec([2, None, None], "float32", "offset")]
    prefix = os.path.join(tmp, "post")
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix, input_spec=spec)
    model = prefix + (".json" if os.path.isfile(prefix + ".json") else ".pdmodel")
    # no parameters: Paddle 2.6 writes no .pdiparams and refuses to load one, so pass ""
    params = prefix + ".pdiparams"
    on_gpu = device.startswith("gpu")
    # no oneDNN kernel among these ops
    predictor = paddle_inference_predictor(model, params if os.path.isfile(params) else "",
                                           "gpu" if on_gpu else "cpu", use_onednn=False)

    def run():
        return run_paddle_inference(predictor, (sem, ctr, off), on_cpu=not on_gpu)[:2]
    return run


def _child(impl, npz_path, out_path, device, repeat, top_k):
    """Run one implementation in this (fresh) process; write timings, memory and its map."""
    import paddle
    paddle.set_device(device)
    from paddleseg_ext.postprocess import panoptic_postprocess
    from paddleseg_ext.runtime import retain_freed_memory
    retain_freed_memory()  # as every command does (setup_device), for all three implementations

    data = np.load(npz_path)
    on_gpu = device.startswith("gpu")
    if impl == "exported":
        run = _exported_runner(np.ascontiguousarray(data["semantic"]), np.ascontiguousarray(data["center"]),
                               np.ascontiguousarray(data["offset"]), device, top_k, os.path.dirname(out_path))
        # paddle.inference allocates GPU memory from its own pool, which max_memory_allocated
        # does not see: no GPU memory figure for it.
        return _measure(run, out_path, on_gpu, repeat, gpu_memory=False)
    sem = paddle.to_tensor(data["semantic"])
    ctr = paddle.to_tensor(data["center"])
    off = paddle.to_tensor(data["offset"])
    del data

    def run():
        if impl == "ours":
            out = panoptic_postprocess(sem, ctr, off, THING_IDS, label_divisor=LABEL_DIVISOR,
                                       void_label=VOID_LABEL, top_k=top_k)
        else:
            out = reference_postprocess(sem, ctr, off, THING_IDS, label_divisor=LABEL_DIVISOR,
                                        void_label=VOID_LABEL, top_k=top_k)
        if on_gpu:
            paddle.device.synchronize()
        return out
    return _measure(run, out_path, on_gpu, repeat)


def _measure(run, out_path, on_gpu, repeat, gpu_memory=True):
    """Peak extra memory of the first `run()`, median time of `repeat` more; saves the map."""
    import paddle
    if on_gpu:
        paddle.device.synchronize()
        base = paddle.device.cuda.max_memory_allocated()
    else:
        base = _peak_rss_mb()
    pan, centers = run()
    if on_gpu:
        extra = (paddle.device.cuda.max_memory_allocated() - base) / 2 ** 20 if gpu_memory else None
    else:
        extra = _peak_rss_mb() - base
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    np.save(out_path, pan if isinstance(pan, np.ndarray) else pan.numpy())
    print(json.dumps({"ms": 1000 * float(np.median(times)), "extra_mb": extra,
                      "centers": int(centers.shape[0])}))
    return 0


def _run_child(impl, npz_path, out_path, args):
    return run_child("postprocess", impl, [npz_path, out_path, "--device", args.device, "--repeat",
                                           args.ref_repeat if impl == "reference" else args.repeat,
                                           "--top-k", args.top_k])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="benchmark.py postprocess", description=__doc__.split("\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--sizes", default="513x1025,1025x2049", help="comma-separated HxW list")
    parser.add_argument("--instances", type=int, default=30, help="thing instances per generated frame")
    parser.add_argument("--top-k", type=int, default=200, help="maximum number of centres")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls of ours and exported (median)")
    parser.add_argument("--ref-repeat", type=int, default=3, help="timed calls of the baseline (median)")
    parser.add_argument("--device", default="cpu", help="paddle device: cpu, gpu, gpu:0")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the naive baseline")
    parser.add_argument("--skip-exported", action="store_true", help="do not time the exported (paddle.inference) post-processing")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "NPZ", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], args.child[2], args.device, args.repeat, args.top_k)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            h, w = (int(v) for v in size.lower().split("x"))
            sem, ctr, off = make_outputs(h, w, args.instances)
            npz = os.path.join(tmp, "in.npz")
            np.savez(npz, semantic=sem, center=ctr, offset=off)
            thing_px = int(np.isin(sem, THING_IDS).sum())
            ours = _run_child("ours", npz, os.path.join(tmp, "ours.npy"), args)
            others = {}
            for impl, skip in (("exported", args.skip_exported), ("reference", args.skip_reference)):
                if skip:
                    others[impl] = (None, "-")
                    continue
                res = _run_child(impl, npz, os.path.join(tmp, impl + ".npy"), args)
                diff = int((np.load(os.path.join(tmp, "ours.npy")) != np.load(os.path.join(tmp, impl + ".npy"))).sum())
                others[impl] = (res, "yes" if diff == 0 else "NO ({} px differ)".format(diff))
            rows.append((size, thing_px, ours, others["exported"], others["reference"]))

    print("panoptic post-processing, device={}, {} instances, top_k={}".format(
        args.device, args.instances, args.top_k))
    print("peak extra memory: {}".format(
        "paddle max_memory_allocated rise" if args.device.startswith("gpu") else "peak RSS rise (ru_maxrss)"))
    head = "{:>10} {:>9} {:>3} | {:>8} {:>7} | {:>8} {:>7} {:>5} | {:>8} {:>7} {:>5} | {:>7}".format(
        "HxW", "thing px", "K", "ours ms", "MB", "exp. ms", "MB", "same", "ref ms", "MB", "same", "speedup")
    print(head)
    print("-" * len(head))

    def cells(res_same):
        res, same = res_same
        if res is None:
            return "-", "-", "-"
        mb = "n/a" if res["extra_mb"] is None else "{:.1f}".format(res["extra_mb"])
        return "{:.1f}".format(res["ms"]), mb, same

    for size, thing_px, ours, exported, ref in rows:
        print("{:>10} {:>9} {:>3} | {:>8.1f} {:>7.1f} | {:>8} {:>7} {:>5} | {:>8} {:>7} {:>5} | {:>7}".format(
            size, thing_px, ours["centers"], ours["ms"], ours["extra_mb"], *cells(exported), *cells(ref),
            "{:.1f}x".format(ref[0]["ms"] / ours["ms"]) if ref[0] else "-"))
    print("exp. = the exported model's post-processing (paddle.inference); same = map equal to ours; "
          "speedup = ref ms / ours ms")
    return 0

