"""Benchmark the converters (tools/convert_panoptic.py) and the dataset check on one large frame.

    python tools/benchmark.py convert [--height 1025 --width 2049 --instances 50 --repeat 5]

One frame of the `targets` benchmark (5 stuff bands, N thing instances over 8 classes, one crowd) is
written as a semantic + instance PNG pair and as a labelme file (stuff bands as rectangles, each
instance as the polygon of its outline, every third one in two parts sharing a group_id). Each
converter (per image: read, paint, segments, PNG and image written) is timed against a straightforward
baseline that builds one full-image mask per instance, and their segments are compared. Then
check_dataset's time per image on the converted split.
"""
import json
import os
import shutil
import tempfile
import time

import cv2
import numpy as np
from PIL import Image, ImageDraw

from paddleseg_ext.datasets.convert import check_split, convert_labelme, convert_semantic_instance
from paddleseg_ext.datasets.convert.output import layout_paths
from paddleseg_ext.datasets.demo_dataset import mask_polygons
from paddleseg_ext.utils import write_panoptic_png

from . import frame_parser
from .targets import _time, make_label_map

STUFF, THINGS = range(5), range(11, 19)


def write_inputs(folder, h, w, num_instances):
    """The frame as semantic/instance PNGs and as a labelme file; returns the categories."""
    pan, segments = make_label_map(h, w, num_instances)
    cats = [{"id": c + 1, "name": "c{}".format(c + 1), "isthing": int(c in THINGS), "color": [c * 9, 80, 160]}
            for c in list(STUFF) + list(THINGS)]
    seg_ids = np.array([s["id"] for s in segments])
    seg_cat = np.array([s["category_id"] + 1 for s in segments])
    seg_inst = np.array([0 if s["iscrowd"] or s["category_id"] in STUFF else k + 1 for k, s in enumerate(segments)])
    lut_cat, lut_inst = np.zeros(pan.max() + 1, np.uint16), np.zeros(pan.max() + 1, np.uint16)
    lut_cat[seg_ids], lut_inst[seg_ids] = seg_cat, seg_inst
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    for sub, array in (("images", img), ("semantic", lut_cat[pan]), ("instances", lut_inst[pan])):
        os.makedirs(os.path.join(folder, sub))
        cv2.imwrite(os.path.join(folder, sub, "frame.png"), array)
    shapes = []
    bounds = np.linspace(0, h, 6).astype(int)
    for i in STUFF:
        shapes.append({"label": "c{}".format(i + 1), "shape_type": "rectangle", "group_id": None,
                       "points": [[0, float(max(bounds[i], h // 50))], [w - 1.0, bounds[i + 1] - 1.0]]})
    for k, s in enumerate(segments[len(STUFF):]):
        mask = pan == s["id"]
        if not mask.any():
            continue
        ys = np.nonzero(mask)[0]
        halves = [mask & (np.arange(h) < ys.mean())[:, None], mask & (np.arange(h) >= ys.mean())[:, None]]
        parts = [p for m in (halves if k % 3 == 0 else [mask]) for p in mask_polygons(m, epsilon=1.0)]
        shapes += [{"label": "c{}".format(s["category_id"] + 1), "shape_type": "polygon", "points": p,
                    "group_id": k if len(parts) > 1 else None} for p in parts]
    os.makedirs(os.path.join(folder, "labelme"))
    shutil.copyfile(os.path.join(folder, "images", "frame.png"), os.path.join(folder, "labelme", "frame.png"))
    with open(os.path.join(folder, "labelme", "frame.json"), "w") as f:
        json.dump({"shapes": shapes, "imagePath": "frame.png", "imageHeight": h, "imageWidth": w}, f)
    return cats


def _baseline_write(out, cats, image_src, pairs):
    """Segment map and segments_info from one full-image mask per (class, instance) pair; writes the PNG."""
    h, w = pairs[0][0].shape
    seg_map = np.zeros((h, w), np.int32)
    info = []
    for mask, cid, crowd in pairs[1:]:
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        seg_map[mask] = len(info) + 1
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        info.append({"id": len(info) + 1, "category_id": cid, "iscrowd": crowd, "area": int(mask.sum()), "bbox": box})
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(image_src, os.path.join(out, "frame.png"))
    write_panoptic_png(os.path.join(out, "frame_pan.png"), seg_map)
    return info


def baseline_semantic_instance(folder, cats, out):
    sem = cv2.imread(os.path.join(folder, "semantic", "frame.png"), -1).astype(np.int64)
    inst = cv2.imread(os.path.join(folder, "instances", "frame.png"), -1).astype(np.int64)
    pairs = [(sem, None, None)]
    for c in cats:
        cls = sem == c["id"]
        if not c["isthing"]:
            pairs.append((cls, c["id"], 0))
            continue
        for i in np.unique(inst[cls]):
            pairs.append((cls & (inst == i), c["id"], int(i == 0)))
    return _baseline_write(out, cats, os.path.join(folder, "images", "frame.png"), pairs)


def baseline_labelme(folder, cats, out):
    with open(os.path.join(folder, "labelme", "frame.json")) as f:
        doc = json.load(f)
    h, w = doc["imageHeight"], doc["imageWidth"]
    owner = np.full((h, w), -1)
    for k, s in enumerate(doc["shapes"]):  # labelme's shape_to_mask, one mask per shape
        m = Image.new("L", (w, h), 0)
        pts = [tuple(p) for p in s["points"]]
        draw = ImageDraw.Draw(m)
        (draw.rectangle if s["shape_type"] == "rectangle" else draw.polygon)(pts, outline=1, fill=1)
        owner[np.asarray(m, bool)] = k
    thing = {c["name"]: c["isthing"] for c in cats}
    ids = {c["name"]: c["id"] for c in cats}
    groups = {}
    for k, s in enumerate(doc["shapes"]):
        key = (s["label"],) if not thing[s["label"]] else (s["label"], s["group_id"] if s["group_id"] is not None
                                                           else "shape{}".format(k))
        groups.setdefault(key, []).append(k)
    pairs = [(owner, None, None)] + [(np.isin(owner, ks), ids[key[0]], 0)
                                     for key, ks in sorted(groups.items(), key=str)]
    return _baseline_write(out, cats, os.path.join(folder, "labelme", "frame.png"), pairs)


def _timed(fn, repeat):
    """(median wall-clock s, median CPU s of this process): on a shared machine the CPU time is what the
    work itself costs, the wall-clock time what a user waits."""
    cpu = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        cpu.append(time.process_time() - t)
    return _time(fn, repeat)[1], float(np.median(cpu))


def _segments_of(root):
    """{(category_id, iscrowd, area, bbox)} of the single converted image."""
    _, json_file, _ = layout_paths(root, "train")
    with open(json_file) as f:
        info = json.load(f)["annotations"][0]["segments_info"]
    return _key(info)


def _key(info):
    return sorted((s["category_id"], s["iscrowd"], s["area"], tuple(s["bbox"])) for s in info)


def main(argv=None):
    args = frame_parser(__doc__, "thing instances in the frame", "timed runs (median)").parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench_convert_")
    try:
        cats = write_inputs(tmp, args.height, args.width, args.instances)
        out = os.path.join(tmp, "out")
        rows, ok = [], True
        runs = [
            ("semantic-instance", lambda: convert_semantic_instance(
                cats, *(os.path.join(tmp, d) for d in ("images", "semantic", "instances")), out, "train"),
             lambda: baseline_semantic_instance(tmp, cats, os.path.join(tmp, "base"))),
            ("labelme", lambda: convert_labelme(cats, os.path.join(tmp, "labelme"), out, "train"),
             lambda: baseline_labelme(tmp, cats, os.path.join(tmp, "base"))),
        ]
        for name, ours, base in runs:
            t_ours = _timed(ours, args.repeat)
            same = _segments_of(out) == _key(base())
            t_base = _timed(base, max(1, args.repeat // 2))
            ok &= same
            rows.append((name, t_base, t_ours, same))
        image_dir, json_file, label_dir = layout_paths(out, "train")
        result = check_split(image_dir, json_file, label_dir)
        t_check = _timed(lambda: check_split(image_dir, json_file, label_dir), args.repeat)
        ok &= not result["problems"]
        n_seg = len(json.load(open(json_file))["annotations"][0]["segments_info"])
        print("one {}x{} frame, {} thing instances (+1 crowd), {} segments (labelme conversion)".format(
            args.height, args.width, args.instances, n_seg))
        print("ms per image, wall-clock / CPU time of this process (medians)")
        print("| converter | baseline, mask per instance | convert_panoptic | speed-up (CPU) | same segments |")
        print("|---|---|---|---|---|")
        for name, t_base, t_ours, same in rows:
            print("| {} | {:.1f} / {:.1f} | {:.1f} / {:.1f} | {:.1f}x | {} |".format(
                name, t_base[0] * 1e3, t_base[1] * 1e3, t_ours[0] * 1e3, t_ours[1] * 1e3, t_base[1] / t_ours[1], same))
        print("check_dataset: {:.1f} / {:.1f} ms per image ({} problems)".format(
            t_check[0] * 1e3, t_check[1] * 1e3, len(result["problems"])))
        print("outputs equal: {}".format(ok))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1
