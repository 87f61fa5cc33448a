"""Train and evaluate a config over seeds, dataset seeds and process counts; print PQ / mIoU per run
and min / median / max, to show what a recipe reaches regardless of luck (and of the CPU's rounding,
which changes a run's trajectory like another seed does; see docs/training.md, "Reproducibility").

    python tools/sweep_demo.py --out output/sweep                       # the demo recipe, 5 x 2 x {1, 2}
    python tools/sweep_demo.py --overfit --seeds 0 1 2 --out output/sweep_overfit   # the overfit check

Each run is the real commands (train.py, under paddle.distributed.launch for several processes, then
val.py) in a subprocess; finished runs (their eval json exists) are reused when the sweep is re-run.
`--overfit` trains on 2 generated frames (both in every batch, preprocessed as for evaluation) and
evaluates those frames.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import yaml

from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset
from paddleseg_ext.runtime import load_config
from paddleseg_ext.utils import UserInputError

# An experiment runner for a clone of the repository (it runs contrib/PanopticDeepLab's scripts), so it lives
# in tools/ and is not part of the installed package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTRIB = os.path.join(ROOT, "contrib", "PanopticDeepLab")
DEMO_CONFIG = os.path.join(ROOT, "configs", "panoptic_deeplab", "panoptic_deeplab_demo_cpu.yml")
#: the overfit check: 2 generated frames of dataset seed 3, 500 iterations, PQ >= 80 on them
OVERFIT = {"num_train": 2, "dataset_seed": 3, "iters": 500, "min_pq": 0.80}


def overfit_config(path, data_root, base=DEMO_CONFIG, seed=0, iters=OVERFIT["iters"]):
    """Write the overfit variant of `base` to `path` and return `path`: train on `data_root`'s train
    split with both frames in every batch and the base config's *val* transforms (no flip, no random
    placement: the frames are seen exactly as they are evaluated), evaluate on that same split."""
    val_transforms = load_config(base).val_dataset_cfg.get("transforms")
    # No frozen BatchNorm statistics (a demo config's `batch_norm:`): with the same two frames in every
    # batch, batch and running statistics agree anyway, and freezing a network this close to its minimum
    # while Adam's steps are still large disturbs it (docs/design.md, "BatchNorm statistics").
    cfg = {"_base_": os.path.abspath(base), "batch_size": 2, "iters": int(iters), "seed": int(seed),
           "batch_norm": None,
           "train_dataset": {"dataset_root": data_root, "transforms": val_transforms},
           "val_dataset": {"dataset_root": data_root, "mode": "train"}}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def _dataset_config(path, base, data_root, seed):
    cfg = {"_base_": os.path.abspath(base), "seed": int(seed),
           "train_dataset": {"dataset_root": data_root}, "val_dataset": {"dataset_root": data_root}}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def _run(cmd, log_path, env):
    with open(log_path, "w") as log:
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=CONTRIB)
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read().strip().splitlines()[-3:]
        raise UserInputError("{} failed (exit {}); see {}: {}".format(os.path.basename(cmd[-1] if cmd else ""),
                                                                      p.returncode, log_path, " | ".join(tail)))


def run_one(out, base, dataset_seed, seed, nproc, iters=None, overfit=False, env=None):
    """Train + evaluate one configuration; returns a result dict (reused when already done)."""
    name = "ds{}_seed{}_np{}".format(dataset_seed, seed, nproc)
    run_dir = os.path.join(out, name)
    result_file = os.path.join(run_dir, "eval_results.json")
    if os.path.isfile(result_file):
        with open(result_file) as f:
            metrics = json.load(f)
        elapsed = metrics.get("sweep_train_seconds")
    else:
        os.makedirs(run_dir, exist_ok=True)
        data = os.path.join(out, "data_ds{}{}".format(dataset_seed, "_overfit" if overfit else ""))
        if not os.path.isdir(os.path.join(data, "gtFine")):
            if overfit:
                make_demo_dataset(data, seed=dataset_seed, num_train=OVERFIT["num_train"], num_val=0)
            else:
                make_demo_dataset(data, seed=dataset_seed)
        cfg = os.path.join(run_dir, "config.yml")
        if overfit:
            overfit_config(cfg, data, base, seed, iters or OVERFIT["iters"])
        else:
            _dataset_config(cfg, base, data, seed)
        save_dir = os.path.join(run_dir, "ckpt")
        train = [os.path.join(CONTRIB, "train.py"), "--config", cfg, "--save_dir", save_dir, "--device", "cpu",
                 "--log_iters", "50", "--save_interval", "100000"] + (["--iters", str(iters)] if iters else [])
        if nproc > 1:
            train = ["-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
                     "--log_dir", os.path.join(run_dir, "launch_log")] + train
        t0 = time.time()
        _run([sys.executable] + train, os.path.join(run_dir, "train.log"), env)
        elapsed = time.time() - t0
        last = max((d for d in os.listdir(save_dir) if d.startswith("iter_")), key=lambda d: int(d[5:]))
        _run([sys.executable, os.path.join(CONTRIB, "val.py"), "--config", cfg, "--model_path",
              os.path.join(save_dir, last, "model.pdparams"), "--device", "cpu", "--results_file", result_file],
             os.path.join(run_dir, "val.log"), env)
        with open(result_file) as f:
            metrics = json.load(f)
        metrics["sweep_train_seconds"] = elapsed
        with open(result_file, "w") as f:
            json.dump(metrics, f, indent=2)
    pan = metrics["panoptic"]
    return {"name": name, "dataset_seed": dataset_seed, "seed": seed, "nproc": nproc, "pq": pan["All"]["pq"],
            "pq_th": pan["Things"]["pq"], "pq_st": pan["Stuff"]["pq"], "miou": metrics["semantic"]["mIoU"],
            "seconds": elapsed}


def _pct(x):
    return "-" if x is None else "{:.2f}".format(100 * x)


def format_table(rows, min_pq=None):
    """Markdown tables: every run, then min / median / max of PQ and mIoU per process count and overall."""
    lines = ["| dataset seed | seed | processes | PQ | PQ things | PQ stuff | mIoU | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["dataset_seed"], r["seed"], r["nproc"], _pct(r["pq"]), _pct(r["pq_th"]), _pct(r["pq_st"]),
            _pct(r["miou"]), "-" if r["seconds"] is None else "{:.0f}".format(r["seconds"])))
    lines += ["", "| runs | n | PQ min / median / max | mIoU min / median / max |", "|---|---|---|---|"]
    groups = [("{} process{}".format(n, "es" if n > 1 else ""), [r for r in rows if r["nproc"] == n])
              for n in sorted({r["nproc"] for r in rows})]
    if len(groups) > 1:
        groups.append(("all", rows))
    for label, rs in groups:
        pq, mi = [r["pq"] for r in rs], [r["miou"] for r in rs]
        lines.append("| {} | {} | {} / {} / {} | {} / {} / {} |".format(
            label, len(rs), _pct(min(pq)), _pct(statistics.median(pq)), _pct(max(pq)),
            _pct(min(mi)), _pct(statistics.median(mi)), _pct(max(mi))))
    if min_pq is not None:
        bad = [r["name"] for r in rows if r["pq"] < min_pq]
        lines.append("")
        lines.append("every run reaches PQ >= {:.0f}: {}".format(100 * min_pq, "yes" if not bad else
                                                                 "NO ({})".format(", ".join(bad))))
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="sweep folder (datasets, runs, logs; re-runs reuse finished runs)")
    p.add_argument("--config", default=DEMO_CONFIG, help="base config (default: the demo config)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds (default 0..4)")
    p.add_argument("--dataset_seeds", type=int, nargs="+", default=None,
                   help="make_demo_dataset seeds (default 0 21; with --overfit {})".format(OVERFIT["dataset_seed"]))
    p.add_argument("--nprocs", type=int, nargs="+", default=None,
                   help="CPU processes per run (default 1 2; with --overfit 1)")
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's; "
                   "with --overfit {})".format(OVERFIT["iters"]))
    p.add_argument("--overfit", action="store_true", help="the overfit check (2 frames, PQ >= 80 on them)")
    p.add_argument("--min_pq", type=float, default=None,
                   help="report whether every run reaches this PQ, in percent (default 80 with --overfit, "
                        "65 otherwise)")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    dataset_seeds = a.dataset_seeds or ([OVERFIT["dataset_seed"]] if a.overfit else [0, 21])
    nprocs = a.nprocs or ([1] if a.overfit else [1, 2])
    min_pq = (a.min_pq / 100.0) if a.min_pq is not None else (OVERFIT["min_pq"] if a.overfit else 0.65)
    a.out = os.path.abspath(a.out)  # the runs work in the command folder
    os.makedirs(a.out, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    total = len(dataset_seeds) * len(nprocs) * len(a.seeds)
    for ds in dataset_seeds:
        for n in nprocs:
            for s in a.seeds:
                r = run_one(a.out, a.config, ds, s, n, a.iters, a.overfit, env)
                rows.append(r)
                print("[SWEEP] {}/{} {}: PQ {} (things {}, stuff {}), mIoU {}".format(
                    len(rows), total, r["name"], _pct(r["pq"]), _pct(r["pq_th"]), _pct(r["pq_st"]),
                    _pct(r["miou"])), flush=True)
    table = format_table(rows, min_pq)
    print(table)
    with open(os.path.join(a.out, "sweep.md"), "w") as f:
        f.write(table + "\n")
    return 0 if all(r["pq"] >= min_pq for r in rows) else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
