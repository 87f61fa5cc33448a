"""Benchmark PanopticTargetGenerator against a straightforward per-instance full-image baseline.

    python tools/benchmark.py targets [--height 1025 --width 2049 --instances 50 --repeat 5]

Both run on the same synthetic label map; their outputs are compared for equality.
"""
import time

import numpy as np

from paddleseg_ext.transforms import PanopticTargetGenerator

from . import frame_parser



def make_label_map(h, w, num_instances, seed=0):
    """[h,w] int32 segment ids + segments_info: 5 stuff bands, `num_instances` things, one crowd."""
    rng = np.random.default_rng(seed)
    pan = np.zeros((h, w), np.int32)
    segments = []
    bounds = np.linspace(0, h, 6).astype(int)
    for i in range(5):
        pan[bounds[i]:bounds[i + 1]] = i + 1
        segments.append({"id": i + 1, "category_id": i, "iscrowd": 0})
    pan[: h // 50] = 0  # a void strip
    yy, xx = np.ogrid[0:h, 0:w]
    for n in range(num_instances + 1):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(5, h / 8), rng.uniform(5, w / 10)
        seg_id = 1000 * (11 + n % 8) + n
        pan[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = seg_id
        segments.append({"id": seg_id, "category_id": 11 + n % 8, "iscrowd": int(n == num_instances)})
    return pan, segments


def baseline_targets(panoptic, segments_info, thing_ids, ignore_index=255, sigma=8, small_instance_area=4096,
                     small_instance_weight=3, label_divisor=1000):
    """Naive reference: one full-image mask per segment (ignore_stuff_in_offset=True, crowd kept in semantic)."""
    h, w = panoptic.shape
    semantic = np.full((h, w), ignore_index, np.int64)
    pan_out = np.full((h, w), ignore_index * label_divisor, np.int64)
    center = np.zeros((1, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    sem_w = np.ones((h, w), np.float32)
    ctr_w = np.zeros((h, w), np.float32)
    off_w = np.zeros((h, w), np.float32)
    y_coord, x_coord = np.mgrid[0:h, 0:w]
    counters = {}
    for seg in segments_info:
        mask = panoptic == seg["id"]
        cat = seg["category_id"]
        semantic[mask] = cat
        if not seg["iscrowd"]:
            ctr_w[mask] = 1
            if cat in thing_ids:
                off_w[mask] = 1
        if cat not in thing_ids:
            pan_out[mask] = cat * label_divisor
            continue
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        counters[cat] = counters.get(cat, 0) + 1
        pan_out[mask] = cat * label_divisor + counters[cat]
        if ys.size < small_instance_area:
            sem_w[mask] = small_instance_weight
        cy, cx = ys.mean(), xs.mean()
        g = np.exp(-((y_coord - np.round(cy)) ** 2 + (x_coord - np.round(cx)) ** 2) / (2.0 * sigma ** 2))
        g[np.abs(y_coord - np.round(cy)) > 3 * sigma + 1] = 0
        g[np.abs(x_coord - np.round(cx)) > 3 * sigma + 1] = 0
        center[0] = np.maximum(center[0], g.astype(np.float32))
        offset[0][mask] = cy - ys
        offset[1][mask] = cx - xs
    return {"semantic": semantic, "center": center, "offset": offset, "semantic_weights": sem_w,
            "center_weights": ctr_w, "offset_weights": off_w, "panoptic": pan_out}


def _time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def main(argv=None):
    args = frame_parser(__doc__).parse_args(argv)

    pan, segments = make_label_map(args.height, args.width, args.instances)
    thing_ids = list(range(11, 19))
    gen = PanopticTargetGenerator(255, thing_ids)
    ours, t_ours = _time(lambda: gen(pan, segments), args.repeat)
    base, t_base = _time(lambda: baseline_targets(pan, segments, thing_ids), max(1, args.repeat // 2))

    ok = True
    for key, ref in base.items():
        diff = float(np.abs(ours[key].astype(np.float64) - ref.astype(np.float64)).max())
        if diff > 1e-4 or ours[key].shape != ref.shape:
            ok = False
            print("MISMATCH {}: max abs diff {}".format(key, diff))
    print("label map {}x{}, {} thing instances (+1 crowd), {} segments".format(
        args.height, args.width, args.instances, len(segments)))
    print("| implementation | median time (ms) | speed-up |")
    print("|---|---|---|")
    print("| baseline (full-image mask per segment) | {:.1f} | 1.0x |".format(t_base * 1e3))
    print("| PanopticTargetGenerator | {:.1f} | {:.1f}x |".format(t_ours * 1e3, t_base / t_ours))
    print("outputs equal: {}".format(ok))
    return 0 if ok else 1
