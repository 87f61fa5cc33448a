"""Benchmark: panoptic-quality evaluation of files, ours vs cityscapesscripts' evaluatePanoptic.

Generates N ground-truth / prediction pairs at Cityscapes resolution in a temporary folder
(GT PNGs written with PIL like createPanopticImgs, predictions with our writer), evaluates them
with both implementations in the same run, checks that the numbers agree to 1e-9, and prints
the times: of the functions in this process, and of the whole commands as a user runs them
(`tools/eval_panoptic.py` against `csEvalPanopticSemanticLabeling`, start-up and imports included).
Usage: python tools/benchmark.py eval [--num-images 50] [--height 1025] [--width 2049]
Nothing here imports paddle: the metrics live in the paddle-free `panoptic_metrics` package.
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

from panoptic_metrics import (cityscapes_panoptic_categories, evaluate_panoptic_files, id2rgb, panoptic_annotation,
                              panoptic_to_segments, write_panoptic_json, write_panoptic_prediction)
from panoptic_metrics.panoptic_files import default_num_workers

from . import ROOT, HelpFormatter

VOID = 255000



def _random_polygon(rng, h, w, size):
    cy, cx = rng.integers(0, h), rng.integers(0, w)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radius = size * rng.uniform(0.5, 1.0, 12)
    pts = np.stack([cx + radius * np.cos(angles) * 1.3, cy + radius * np.sin(angles)], 1)
    return pts.astype(np.int32)


def make_pair(rng, h, w):
    """A street-like GT panoptic map (train id * 1000 + instance) and a prediction with mistakes."""
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    wave = lambda a, f, p: (a * np.sin(xx / f + p)).astype(np.int64)  # noqa: E731
    sky_end = int(h * 0.3) + wave(30, 97.0, rng.uniform(0, 6))
    build_end = int(h * 0.55) + wave(25, 57.0, rng.uniform(0, 6))
    gt = np.where(yy < sky_end, 10, np.where(yy < build_end, np.where(xx < w // 2, 2, 8), 0)).astype(np.int32) * 1000
    gt[int(h * 0.55):int(h * 0.6), : w // 3] = 1000  # sidewalk
    gt[int(h * 0.9):] = VOID                      # ego vehicle
    gt[: h // 20, : w // 10] = 5000               # a pole-ish stuff patch
    pred = gt.copy()
    counts = {}
    for _ in range(int(rng.integers(20, 40))):
        cls = int(rng.choice([11, 12, 13, 13, 13, 14, 15, 18]))
        counts[cls] = counts.get(cls, 0) + 1
        label = cls * 1000 + counts[cls]
        poly = _random_polygon(rng, h, w, rng.uniform(15, 120))
        cv2.fillPoly(gt, [poly], int(label))
        r = rng.random()
        if r < 0.1:
            continue                                   # missed
        shifted = poly + rng.integers(-6, 7, size=2).astype(np.int32)
        if r < 0.2:
            label = (11 + (cls - 10) % 8) * 1000 + 50   # wrong class
        cv2.fillPoly(pred, [shifted], int(label))
        if r > 0.9:                                    # split in two
            half = shifted.copy()
            half[:, 0] = np.minimum(half[:, 0], int(shifted[:, 0].mean()))
            cv2.fillPoly(pred, [half], int(label + 100))
    # boundary noise on the stuff bands of the prediction
    noise = cv2.resize(rng.integers(0, 2, size=(h // 8, w // 8)).astype(np.uint8), (w, h),
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    band = np.abs(yy - sky_end) < 6
    pred[band & noise & (pred < 11000)] = 2000
    for _ in range(int(rng.integers(2, 6))):            # spurious things
        cv2.fillPoly(pred, [_random_polygon(rng, h, w, 20)], int(13000 + 200 + _))
    return gt.astype(np.int64), pred.astype(np.int64)


def write_benchmark_data(folder, num_images, h, w, seed=0):
    """GT (PIL-written PNGs + json, train-id categories) and predictions (our writer) in `folder`."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "gt"), exist_ok=True)
    gt_anns, pred_anns = [], []
    for i in range(num_images):
        gt, pred = make_pair(rng, h, w)
        name = "benchcity_000000_{:06d}".format(i)
        seg, info = panoptic_to_segments(gt, void_label=VOID)
        Image.fromarray(id2rgb(seg)).save(os.path.join(folder, "gt", name + "_gtFine_panoptic.png"))
        gt_anns.append(panoptic_annotation(name, name + "_gtFine_panoptic.png", info))
        pinfo = write_panoptic_prediction(os.path.join(folder, "pred", name + ".png"), pred, void_label=VOID)
        pred_anns.append(panoptic_annotation(name, name + ".png", pinfo))
    write_panoptic_json(os.path.join(folder, "gt.json"), gt_anns, categories=cityscapes_panoptic_categories())
    write_panoptic_json(os.path.join(folder, "pred.json"), pred_anns)
    return (os.path.join(folder, "gt.json"), os.path.join(folder, "gt"),
            os.path.join(folder, "pred.json"), os.path.join(folder, "pred"))


def _time_command(cmd, repeat):
    """Best wall time of `cmd` over `repeat` runs (its output discarded); fails loudly if it fails."""
    best = None
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def max_difference(a, b):
    diffs = [abs(a[g][k] - b[g][k]) for g in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq")]
    diffs += [abs(a["per_class"][c][k] - b["per_class"][c][k]) for c in b["per_class"] for k in ("pq", "sq", "rq")]
    same_n = all(a[g]["n"] == b[g]["n"] for g in ("All", "Things", "Stuff"))
    return max(diffs), same_n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--num-images", type=int, default=50, help="generated GT/prediction pairs")
    parser.add_argument("--height", type=int, default=1025, help="image height")
    parser.add_argument("--width", type=int, default=2049, help="image width")
    parser.add_argument("--workdir", default=None, help="keep the generated files here (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=1, help="time each evaluator this many times, keep the best")
    args = parser.parse_args(argv)

    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    folder = args.workdir or tempfile.mkdtemp(prefix="bench_eval_")
    try:
        t = time.time()
        gt_json, gt_dir, pred_json, pred_dir = write_benchmark_data(folder, args.num_images, args.height, args.width)
        print("generated {} pairs of {}x{} in {:.1f} s ({})".format(args.num_images, args.height, args.width,
                                                                     time.time() - t, folder))
        rows = []

        def timed(name, fn):
            best, result = None, None
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    result = fn()
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            rows.append((name, best))
            return result

        official = timed("cityscapesscripts evaluatePanoptic ({} processes)".format(
            __import__("multiprocessing").cpu_count()),
            lambda: evaluatePanoptic(gt_json, gt_dir, pred_json, pred_dir, os.path.join(folder, "official.json")))
        workers = default_num_workers()
        ours = timed("paddleseg_ext evaluate_panoptic_files ({} threads)".format(workers),
                     lambda: evaluate_panoptic_files(gt_json, gt_dir, pred_json, pred_dir,
                                                     os.path.join(folder, "ours.json"), num_workers=workers))
        ours1 = timed("paddleseg_ext evaluate_panoptic_files (1 thread)",
                      lambda: evaluate_panoptic_files(gt_json, gt_dir, pred_json, pred_dir, None, num_workers=1))
        # the whole commands, as a user types them (start-up and imports included)
        flags = ["--gt-json-file", gt_json, "--gt-folder", gt_dir, "--prediction-json-file", pred_json,
                 "--prediction-folder", pred_dir]
        official_cmd = shutil.which("csEvalPanopticSemanticLabeling",
                                    path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        command_rows = []
        if official_cmd:
            command_rows.append(("csEvalPanopticSemanticLabeling (command)", _time_command(
                [official_cmd] + flags + ["--results_file", os.path.join(folder, "official_cmd.json")], args.repeat)))
        command_rows.append(("tools/eval_panoptic.py (command)", _time_command(
            [sys.executable, os.path.join(ROOT, "tools", "eval_panoptic.py")] + flags +
            ["--results_file", os.path.join(folder, "ours_cmd.json")], args.repeat)))
        base = rows[0][1]
        print("\n{:58s} {:>9s} {:>10s} {:>8s}".format("implementation", "total s", "ms/image", "speed-up"))
        for name, dt in rows:
            print("{:58s} {:9.2f} {:10.1f} {:7.1f}x".format(name, dt, 1000 * dt / args.num_images, base / dt))
        cmd_base = command_rows[0][1]
        for name, dt in command_rows:
            print("{:58s} {:9.2f} {:10.1f} {:7.1f}x".format(name, dt, 1000 * dt / args.num_images, cmd_base / dt))
        diff, same_n = max_difference(ours, official)
        diff1, same_n1 = max_difference(ours1, official)
        print("\nPQ/SQ/RQ: official All {}".format(json.dumps(official["All"])))
        print("largest difference to the official numbers: {:.2e} / {:.2e} (n equal: {})".format(
            diff, diff1, same_n and same_n1))
        ok = diff <= 1e-9 and diff1 <= 1e-9 and same_n and same_n1
        print("numbers equal to 1e-9: {}".format(ok))
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)

