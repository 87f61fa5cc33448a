"""PanopticFCN benchmarks: post-processing against a per-kernel Python-loop baseline, network forward
against Panoptic-DeepLab, and a 2-frame overfit run of the demo config.

    python tools/benchmark.py panoptic_fcn [--what postprocess,network,overfit]
        postprocess: [--size 800x1333 --things 100 --repeat 3 --ref-repeat 1 --device cpu]
        network:     [--net-size 512x1024 --net-repeats 2 --fcn-config C --deeplab-config C]
        overfit:     [--overfit-iters 300 --demo-root DIR]

postprocess: synthetic network outputs of a COCO-sized model (80 thing / 54 stuff channels, 64
encoder channels) for an image of --size padded to a multiple of 32, with --things well separated
centre peaks (so that --things kernels survive fusion) and every stuff class present; "ours" is
`PanopticFCNPostprocess` (eager); the baseline (in this file) follows the original code's structure
with Python loops over levels, kernels (fusion, rescoring, upsampling, painting) and stuff classes.
Both run in fresh child processes; "peak extra MB" is the rise of peak RSS (ru_maxrss) during the
first call (on GPU: paddle's max_memory_allocated rise); times are the medians of the next calls, wall
time and the process's CPU time (steadier on a machine shared with other jobs). The panoptic maps are
compared pixel for pixel.

network: forward time (eval, no_grad, random weights, backbone `pretrained` removed) of the R50-FPN
PanopticFCN (also without its deformable position head, whose CPU kernel is slow) and of the R50
Panoptic-DeepLab config at the same input size.

overfit: the setting of tests/core/test_overfit.py (2 generated frames, seed 3; no augmentation; both frames
in every batch) with the demo config's model, optimizer and schedule, trained by a plain loop here
(not the project's training loop); reports PQ on those frames with `PanopticFCNPostprocess` +
`PanopticEvaluator`, and the time.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import types

import numpy as np

from . import ROOT, parse_size, run_child

FCN_CONFIG = "configs/panoptic_fcn/panoptic_fcn_r50_cityscapes.yml"
DEEPLAB_CONFIG = "configs/panoptic_deeplab/panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml"
DEMO_CONFIG = "configs/panoptic_fcn/panoptic_fcn_demo_cpu.yml"
NUM_CLASSES, THING_IDS = 133, list(range(80))  # COCO train ids
LABEL_DIVISOR, VOID = 1000, 255000


def _feature(size, stride):
    while stride > 1:
        size, stride = (size + 1) // 2, stride // 2
    return size


def _smooth_fields(rng, n, h, w, cells=6):
    """n smooth random fields [n, h, w] (bilinear upsampling of coarse noise), unit variance."""
    import cv2

    coarse = rng.normal(size=(n, cells, max(2, cells * w // h))).astype(np.float32)
    out = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse])
    return (out - out.mean(axis=(1, 2), keepdims=True)) / out.std(axis=(1, 2), keepdims=True)


def make_outputs(h, w, things, seed=0, e=64):
    """Synthetic PanopticFCN outputs (list of numpy arrays, batch 1) for an h x w image padded to a
    multiple of 32; returns (outputs, padded [H, W], image [h, w])."""
    from paddleseg_ext.models.panoptic_fcn.targets import DEFAULT_STRIDES

    rng = np.random.default_rng(seed)
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    sizes = [(_feature(ph, s), _feature(pw, s)) for s in DEFAULT_STRIDES]
    t, s = 80, 54
    centers = [np.full((1, t, a, b), -8.0, np.float32) for a, b in sizes]
    regions = [np.full((1, s, a, b), -8.0, np.float32) for a, b in sizes]
    thing_maps = [rng.normal(size=(1, e, a, b)).astype(np.float32) * 0.1 for a, b in sizes]
    stuff_maps = [rng.normal(size=(1, e, a, b)).astype(np.float32) * 0.1 for a, b in sizes]
    # thing peaks on P3 (up to 50 per level, the rest on P4), 4 cells apart, random classes
    per_level = [min(things, 50), things - min(things, 50)]
    for lv, n in enumerate(per_level):
        a, b = sizes[lv]
        grid = [(y, x) for y in range(1, a - 1, 4) for x in range(1, b - 1, 4)]
        pick = rng.choice(len(grid), size=n, replace=False)
        for k, g in enumerate(pick):  # building inputs, not the code under test
            y, x = grid[g]
            centers[lv][0, rng.integers(t), y, x] = 6.0 + rng.uniform()
            u = rng.normal(size=e - 1)
            thing_maps[lv][0, :, y, x] = np.concatenate([[-4.5], 3.0 * u / np.linalg.norm(u)])
    # stuff regions: each of the 54 channels wins somewhere on P3 and P4
    for lv in (0, 1):
        a, b = sizes[lv]
        f = _smooth_fields(rng, s, a, b, cells=4)
        regions[lv][0] = 4.0 * f
        stuff_maps[lv][0] = rng.normal(size=(e, a, b)).astype(np.float32)
    encode = np.concatenate([np.ones((1, ph // 4, pw // 4), np.float32),
                             _smooth_fields(rng, e - 1, ph // 4, pw // 4)])[None]
    return (centers + regions + thing_maps + stuff_maps + [encode, np.zeros((1, e), np.float32)],
            [ph, pw], [h, w])


# ----------------------------------------------------------------------------- per-kernel baseline

def baseline_postprocess(outputs, valid_hw, ori_hw, layout, p):
    """The original algorithm with Python loops over levels, kernels and classes (Paddle ops)."""
    import paddle
    import paddle.nn.functional as F
    from paddleseg_ext.models.panoptic_fcn.targets import DEFAULT_STRIDES

    lv = len(DEFAULT_STRIDES)
    centers, regions = outputs[:lv], outputs[lv:2 * lv]
    tmaps, smaps, encode, bias = outputs[2 * lv:3 * lv], outputs[3 * lv:4 * lv], outputs[4 * lv], outputs[4 * lv + 1]
    e = encode.shape[1]
    feats = encode[0].reshape([e, -1])
    h4, w4 = encode.shape[2], encode.shape[3]
    scores, classes, kernels = [], [], []
    st_scores, st_classes, st_kernels = [], [], []
    for c, r, tm, sm, pool in zip(centers, regions, tmaps, smaps, p["pool_sizes"]):
        prob = F.sigmoid(c)
        prob = (prob + F.avg_pool2d(prob, pool, 1, (pool - 1) // 2, exclusive=False)) / 2
        prob = prob * (F.max_pool2d(prob, 3, 1, 1) == prob).astype("float32")
        t, hh, ww = prob.shape[1], prob.shape[2], prob.shape[3]
        k = min(hh * ww, p["top_per_level"])
        s1, i1 = paddle.topk(prob.reshape([t, -1]), k)
        s2, i2 = paddle.topk(s1.flatten(), k)
        for j in range(k):
            sc = float(s2[j])
            if sc > p["thing_threshold"]:
                pos = int(i1.flatten()[int(i2[j])])
                scores.append(sc)
                classes.append(int(i2[j]) // k)
                kernels.append(tm[0, :, pos // ww, pos % ww])
        q = F.sigmoid(r)[0]
        arg = paddle.argmax(q, axis=0)
        for ch in np.unique(arg.numpy()).tolist():
            m = (arg == ch).astype("float32")
            sc = float((q[ch] * m).sum() / m.sum())
            if sc > p["stuff_threshold"]:
                st_scores.append(sc)
                st_classes.append(ch)
                pooled = paddle.matmul(m.reshape([1, -1]), sm[0].reshape([sm.shape[1], -1]), transpose_y=True)
                st_kernels.append(pooled[0] / float(hh * ww) + bias[0])
    order = np.argsort(-np.array(scores), kind="stable")
    unit = [kernels[i] / max(float(paddle.linalg.norm(kernels[i])), 1e-8) for i in order]
    groups, first_of = [], {}
    for jj, j in enumerate(order):  # fusion, one kernel at a time
        first = None
        for ii in range(jj + 1):
            i = order[ii]
            same = (not p["class_specific"]) or classes[i] == classes[j]
            if ii == jj or (same and float((unit[ii] * unit[jj]).sum()) >= p["similarity_threshold"]):
                first = ii
                break
        if first == jj:
            first_of[jj] = len(groups)
            groups.append([jj])
        elif first in first_of:
            groups[first_of[first]].append(jj)
    masks = []
    for g in groups:  # masks and rescoring, one kernel at a time
        kern = sum(kernels[order[m]] for m in g) / len(g)
        prob = F.sigmoid(paddle.matmul(kern.unsqueeze(0), feats)).reshape([h4, w4])
        inside = (prob > p["mask_threshold"]).astype("float32")
        sc = scores[order[g[0]]] * float((prob * inside).sum() / (inside.sum() + 1e-6))
        if sc >= p["score_threshold"]:
            masks.append((sc, classes[order[g[0]]], prob))
    masks.sort(key=lambda m: -m[0])
    masks = masks[:p["max_instances"]]
    st_sum = {}
    for sc, ch, kern in zip(st_scores, st_classes, st_kernels):
        st_sum.setdefault(ch, []).append(kern)
    sem_prob = paddle.zeros([layout.num_stuff_channels] + list(ori_hw))
    for ch, ks in st_sum.items():  # stuff masks, one class at a time
        prob = F.sigmoid(paddle.matmul((sum(ks) / len(ks)).unsqueeze(0), feats)).reshape([1, 1, h4, w4])
        up = F.interpolate(prob, scale_factor=4, mode="bilinear", align_corners=False)[:, :, :valid_hw[0], :valid_hw[1]]
        up = F.interpolate(up, size=list(ori_hw), mode="bilinear", align_corners=False)[0, 0]
        sem_prob[ch] = up
    stuff = paddle.argmax(sem_prob, axis=0)
    pan = paddle.full(list(ori_hw), VOID, dtype="int64")
    painted = paddle.zeros(list(ori_hw), dtype="bool")
    counts = {}
    for sc, ch, prob in masks:  # painting, one instance at a time
        up = F.interpolate(prob.reshape([1, 1, h4, w4]), scale_factor=4, mode="bilinear", align_corners=False)
        up = F.interpolate(up[:, :, :valid_hw[0], :valid_hw[1]], size=list(ori_hw), mode="bilinear",
                           align_corners=False)[0, 0]
        m = up > p["mask_threshold"]
        area = int(m.astype("int64").sum())
        inter = int((m & painted).astype("int64").sum())
        if sc < p["instance_threshold"] or area == 0 or inter / area > p["overlap_threshold"]:
            continue
        m = m & ~painted
        cls = int(layout.thing_ids[ch])
        counts[cls] = counts.get(cls, 0) + 1
        pan = paddle.where(m, paddle.full_like(pan, cls * LABEL_DIVISOR + counts[cls]), pan)
        painted = painted | m
    for ch in np.unique(stuff.numpy()).tolist():  # stuff, one class at a time
        cls = int(layout.class_of_stuff_channel[ch])
        if cls < 0:
            continue
        m = (stuff == ch) & ~painted
        if int(m.astype("int64").sum()) >= p["stuff_area"]:
            pan = paddle.where(m, paddle.full_like(pan, cls * LABEL_DIVISOR), pan)
    return pan, len(masks)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(impl, npz_path, out_path, device, repeat):
    import paddle

    import paddleseg_ext  # noqa: F401
    from paddleseg_ext.models.panoptic_fcn import ClassLayout, PanopticFCNPostprocess
    from paddleseg_ext.models.panoptic_fcn.postprocess import DEFAULTS

    paddle.set_device(device)
    data = np.load(npz_path)
    outs = [paddle.to_tensor(data["o{}".format(i)]) for i in range(int(data["n"]))]
    valid_hw, ori_hw = data["valid_hw"].tolist(), data["ori_hw"].tolist()
    layout = ClassLayout(NUM_CLASSES, THING_IDS)
    params = dict(DEFAULTS)
    on_gpu = device.startswith("gpu")
    if impl == "ours":
        post = PanopticFCNPostprocess(5, layout, LABEL_DIVISOR, VOID, **params)
        vt, ot = paddle.to_tensor(valid_hw, dtype="int64"), paddle.to_tensor(ori_hw, dtype="int64")

        def run():
            pan, _, ids, _ = post(outs, vt, ot)
            return pan, int(ids.shape[0])
    else:
        def run():
            return baseline_postprocess(outs, valid_hw, ori_hw, layout, params)

    def synced():
        out = run()
        if on_gpu:
            paddle.device.synchronize()
        return out
    base = paddle.device.cuda.max_memory_allocated() if on_gpu else _peak_rss_mb()
    pan, n = synced()
    extra = (paddle.device.cuda.max_memory_allocated() - base) / 2 ** 20 if on_gpu else _peak_rss_mb() - base
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        synced()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    np.save(out_path, pan.numpy())
    print(json.dumps({"ms": 1000 * statistics.median(times), "cpu_ms": 1000 * statistics.median(cpu),
                      "extra_mb": extra, "instances": n}))
    return 0


def _run_child(impl, npz, out, args):
    return run_child("panoptic_fcn", impl, [npz, out, "--device", args.device, "--repeat",
                                            args.repeat if impl == "ours" else args.ref_repeat])


def bench_postprocess(args):
    h, w = args.size
    outs, padded, _ = make_outputs(h, w, args.things)
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "in.npz")
        np.savez(npz, n=len(outs), valid_hw=np.array([h, w]), ori_hw=np.array([h, w]),
                 **{"o{}".format(i): o for i, o in enumerate(outs)})
        ours = _run_child("ours", npz, os.path.join(tmp, "ours.npy"), args)
        ref = None if args.skip_reference else _run_child("reference", npz, os.path.join(tmp, "ref.npy"), args)
        same = "-"
        if ref is not None:
            a, b = np.load(os.path.join(tmp, "ours.npy")), np.load(os.path.join(tmp, "ref.npy"))
            diff = int((a != b).sum())
            same = "yes" if diff == 0 else "NO ({} px)".format(diff)
            segments = len(np.unique(a))
        else:
            segments = len(np.unique(np.load(os.path.join(tmp, "ours.npy"))))
    print("PanopticFCN post-processing, image {}x{} (input padded to {}x{}), {} thing kernels, 54 stuff "
          "channels (53 classes + things), device {}".format(h, w, *padded, args.things, args.device))
    print("peak extra memory: {}".format("paddle max_memory_allocated rise" if args.device.startswith("gpu")
                                         else "peak RSS rise (ru_maxrss) of the first call"))
    print("CPU ms: process CPU time (all threads), steadier than wall time on a shared machine")
    head = "{:>12} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>5} {:>9} {:>9} {:>8} {:>8}".format(
        "HxW", "ours ms", "CPU ms", "MB", "loop ms", "CPU ms", "MB", "same", "segments", "instances", "speedup",
        "(CPU)")
    print(head)
    print("-" * len(head))

    def ref_cell(key, ratio=False):
        if ref is None:
            return "-"
        return "{:.1f}x".format(ref[key] / max(ours[key], 1e-9)) if ratio else "{:.1f}".format(ref[key])
    print("{:>12} | {:>9.1f} {:>8.1f} {:>8.1f} | {:>9} {:>8} {:>8} | {:>5} {:>9} {:>9} {:>8} {:>8}".format(
        "{}x{}".format(h, w), ours["ms"], ours["cpu_ms"], ours["extra_mb"], ref_cell("ms"), ref_cell("cpu_ms"),
        ref_cell("extra_mb"), same, segments, ours["instances"], ref_cell("ms", True), ref_cell("cpu_ms", True)))
    return 0


# ----------------------------------------------------------------------------- network

def build_model(path, **model_overrides):
    import paddle.base.unique_name as unique_name
    from paddleseg.cvlibs import Config, SegBuilder

    import paddleseg_ext  # noqa: F401

    cfg = Config(path)
    cfg.dic["model"]["backbone"]["pretrained"] = None  # offline: no ImageNet download
    cfg.dic["model"]["pretrained"] = None
    cfg.dic["model"].update(model_overrides)
    with unique_name.guard():
        return SegBuilder(cfg).model


def bench_network(args):
    import paddle

    paddle.set_device(args.device)
    h, w = args.net_size
    rows = []
    variants = [("PanopticFCN R50-FPN", args.fcn_config, {}),
                ("PanopticFCN no DCN", args.fcn_config, {"position_use_dcn": False}),
                ("Panoptic-DeepLab R50", args.deeplab_config, {})]
    for name, path, overrides in variants:
        full = path if os.path.isabs(path) else os.path.join(ROOT, path)
        model = build_model(full, **overrides)
        model.eval()
        x = paddle.randn([1, 3, h, w])
        times = []
        with paddle.no_grad():
            for i in range(args.net_repeats + 1):
                t0 = time.perf_counter()
                out = model(x)
                _ = [float(o.flatten()[0]) for o in out]
                if i:  # the first call warms up
                    times.append(time.perf_counter() - t0)
        params = sum(int(p.numel()) for p in model.parameters())
        rows.append((name, os.path.basename(path), params, statistics.median(times)))
        del model
    print("network forward, input 1x3x{}x{}, device {}, eval + no_grad, median of {} after 1 warm-up".format(
        h, w, paddle.get_device(), args.net_repeats))
    print("{:<22} {:<72} {:>10} {:>11}".format("model", "config", "params (M)", "forward (s)"))
    for name, cfg, params, sec in rows:
        print("{:<22} {:<72} {:>10.2f} {:>11.3f}".format(name, cfg, params / 1e6, sec))
    return 0


# ----------------------------------------------------------------------------- overfit

def overfit(args):
    import paddle
    from paddleseg.cvlibs import Config, SegBuilder

    import paddleseg_ext  # noqa: F401
    from paddleseg_ext.datasets.demo_dataset import make_demo_dataset
    from paddleseg_ext.evaluation import PanopticEvaluator
    from paddleseg_ext.runtime import postprocess_params
    from paddleseg_ext.utils import read_panoptic_png

    paddle.seed(0)
    np.random.seed(0)
    root = args.demo_root
    tmp = None
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = make_demo_dataset(os.path.join(tmp.name, "demo"), seed=3, num_train=2, num_val=0)
    cfg = Config(os.path.join(ROOT, args.overfit_config), iters=args.overfit_iters)
    for sec in ("train_dataset", "val_dataset"):
        cfg.dic[sec]["dataset_root"] = root
    cfg.dic["train_dataset"]["transforms"] = [{"type": "Normalize"}]
    cfg.dic["val_dataset"]["mode"] = "train"
    builder = SegBuilder(cfg)
    model, ds, losses, opt = builder.model, builder.train_dataset, builder.loss, builder.optimizer
    sched = opt._learning_rate
    model.train()
    t0 = time.time()
    for it in range(args.overfit_iters):
        samples = [ds[0], ds[1]]
        batch = {k: paddle.to_tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in samples[0]}
        terms = model.loss(model(batch["img"]), batch, losses)
        sum(terms.values()).backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        if it % 50 == 0 or it == args.overfit_iters - 1:
            print("iter {:4d} {:6.1f}s ".format(it, time.time() - t0) +
                  " ".join("{} {:.4f}".format(k, float(v)) for k, v in terms.items()), flush=True)
    train_s = time.time() - t0
    model.eval()
    params = postprocess_params(cfg, None, args.overfit_config)
    post = model.build_postprocess(types.SimpleNamespace(
        num_classes=ds.num_classes, thing_ids=ds.thing_ids, label_divisor=ds.label_divisor,
        ignore_index=ds.ignore_index, void_label=ds.ignore_index * ds.label_divisor), params)
    cats = [{"id": i, "name": n, "isthing": int(i in ds.thing_ids)} for i, n in enumerate(ds.class_names)]
    ev = PanopticEvaluator(cats, ds.label_divisor, ds.ignore_index * ds.label_divisor)
    evds = builder.val_dataset  # the two training frames
    with paddle.no_grad():
        for i, rec in enumerate(evds.records):
            x = paddle.to_tensor(evds[i]["img"][None])
            hw = paddle.to_tensor([int(rec["height"]), int(rec["width"])], dtype="int64")
            pan = post(model(x), paddle.to_tensor(list(x.shape[2:]), dtype="int64"), hw)[0]
            ev.update(pan.numpy(), read_panoptic_png(rec["label_path"]), rec["segments_info"])
    res = ev.evaluate()
    print("overfit {} on 2 frames: {} iterations in {:.0f} s, PQ {:.1f} (things {:.1f}, stuff {:.1f})".format(
        os.path.basename(args.overfit_config), args.overfit_iters, train_s, 100 * res["All"]["pq"],
        100 * res["Things"]["pq"], 100 * res["Stuff"]["pq"]))
    if tmp is not None:
        tmp.cleanup()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="benchmark.py panoptic_fcn", description=__doc__.split("\n")[0])
    parser.add_argument("--what", default="postprocess,network", help="comma list of postprocess, network, overfit")
    parser.add_argument("--size", type=parse_size, default=(800, 1333), help="post-processing image HxW")
    parser.add_argument("--things", type=int, default=100, help="thing kernels reaching the combination")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref-repeat", type=int, default=1)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--net-size", type=parse_size, default=(512, 1024))
    parser.add_argument("--net-repeats", type=int, default=2)
    parser.add_argument("--fcn-config", default=FCN_CONFIG)
    parser.add_argument("--deeplab-config", default=DEEPLAB_CONFIG)
    parser.add_argument("--overfit-config", default=DEMO_CONFIG)
    parser.add_argument("--overfit-iters", type=int, default=500)
    parser.add_argument("--demo-root", default=None, help="generated demo dataset (default: make one in a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "NPZ", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], args.child[2], args.device, args.repeat)
    status = 0
    for what in [w.strip() for w in args.what.split(",") if w.strip()]:
        fn = {"postprocess": bench_postprocess, "network": bench_network, "overfit": overfit}.get(what)
        if fn is None:
            print("unknown --what {!r} (postprocess, network, overfit)".format(what), file=sys.stderr)
            return 2
        status = fn(args) or status
        print()
    return status

