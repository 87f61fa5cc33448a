"""Evaluation loop: the pipeline's prediction for every val image (sharded over ranks without
duplicates), then PQ / mIoU / AP merged exactly over ranks; optional official-format predictions and
VisualDL scalars/pictures. The model is anything the pipeline runs (see `models.base`)."""
import json
import math
import os

import paddle

from panoptic_metrics.formats import PanopticPredictionWriter

from ..evaluation import build_evaluators
from ..pipeline import build_predictor
from ..runtime import (all_sum, build, build_model, check_num_classes, init_distributed, load_config,
                       per_image_statistics, setup_device)
from ..utils import UserInputError, check_writable_dir, json_ready, log, read_image
from ..visualize.colors import class_palette
from ..visualize.panel import panoptic_panel
from .progress import Progress


def shard_indices(n, rank, nranks, max_images=None):
    """Indices of images rank `rank` evaluates: a disjoint, covering split (no padding, no duplicates)."""
    total = n if max_images is None else min(n, int(max_images))
    return list(range(rank, total, nranks))


def evaluate(predictor, dataset, oracle=(), save_predictions=None, benchmark_speed=False, writer=None, step=None,
             max_images=None, num_vis=3, progress=True):
    """Evaluate `predictor` on `dataset` (val mode); every rank must call it.

    Returns:
        dict with `panoptic` (All/Things/Stuff/per_class PQ, SQ, RQ), `semantic` (mIoU, per-class IoU),
        `instance` (AP, AP50 for each of the model's score modes), `speed` (ms per image) and
        `num_images`.
    """
    rank, nranks = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    evaluators = build_evaluators(dataset, score_modes=getattr(predictor.model, "score_modes", ()))
    writer_pred = PanopticPredictionWriter(save_predictions, dataset) if save_predictions else None
    predictor.model.eval()
    indices = shard_indices(len(dataset), rank, nranks, max_images)
    bar = Progress(len(indices), progress and rank == 0)
    predictor.reset_timings(sync=benchmark_speed)
    vis = []
    for idx in indices:
        rec = dataset.records[idx]
        image = read_image(rec["image_path"])
        sample = dataset[idx] if oracle else None
        result = predictor(image, oracle=oracle, sample=sample)
        gt_ids = dataset.read_label(rec)  # checked against the json's segments
        evaluators.update(pred_panoptic=result["panoptic"], pred_semantic=result["semantic"], gt_segment_ids=gt_ids,
                          gt_segments_info=rec["segments_info"], instance_ids=result["instance_ids"],
                          instance_scores=result["instance_scores"], record=rec)
        if writer_pred is not None:
            writer_pred.add(rec, result["panoptic"])
        if writer is not None and len(vis) < num_vis:
            vis.append((rec["image_path"], result["semantic"], result["panoptic"]))
        bar.step()

    metrics = evaluators.evaluate()  # merges states over ranks; json-ready
    n_done = all_sum(len(indices))
    metrics["num_images"] = int(n_done)
    metrics["speed"] = {"{}_ms_per_image".format(k): 1000.0 * all_sum(v) / max(n_done, 1)
                        for k, v in predictor.timings.items()}
    if writer_pred is not None:
        writer_pred.finish()
    if writer is not None:
        write_vdl(writer, metrics, step or 0, vis, dataset)
    return metrics


def write_vdl(writer, metrics, step, vis, dataset):
    """PQ/SQ/RQ (All/Things/Stuff), mIoU, AP per score mode and a few panoptic pictures to VisualDL."""
    pan = metrics["panoptic"]
    for group in ("All", "Things", "Stuff"):
        suffix = "" if group == "All" else "_" + group.lower()
        for k in ("pq", "sq", "rq"):
            writer.add_scalar("Evaluate/{}{}".format(k.upper(), suffix), 100.0 * _num(pan[group][k]), step)
    writer.add_scalar("Evaluate/mIoU", 100.0 * _num(metrics["semantic"]["mIoU"]), step)
    for mode, res in metrics.get("instance", {}).items():
        if isinstance(res, dict) and "AP" in res:
            writer.add_scalar("Evaluate/AP_" + mode, 100.0 * _num(res["AP"]), step)
            writer.add_scalar("Evaluate/AP50_" + mode, 100.0 * _num(res["AP50"]), step)
    palette = class_palette(dataset.num_classes, getattr(dataset, "palette", None))
    for i, (path, semantic, panoptic) in enumerate(vis):
        panel = panoptic_panel(read_image(path), semantic, panoptic, palette, label_divisor=dataset.label_divisor)
        writer.add_image("Evaluate/visualization_{}".format(i), panel, step)


def _num(x):
    return float("nan") if x is None else float(x)


def _pct(x):
    return "{:.2f}".format(100 * x) if x is not None and math.isfinite(x) else "-"


def format_metrics_table(metrics):
    """Printable PQ/SQ/RQ table (All/Things/Stuff + every class), mIoU and AP lines.

    A class that is neither in the ground truth nor predicted has no PQ (the json holds 0, as
    cityscapesscripts writes it); its row shows "-".
    """
    pan = metrics["panoptic"]
    lines = ["{:<14}|{:>8}{:>8}{:>8}{:>6}".format("", "PQ", "SQ", "RQ", "N"), "-" * 44]
    for g in ("All", "Things", "Stuff"):
        r = pan[g]
        lines.append("{:<14}|{:>8}{:>8}{:>8}{:>6d}".format(g, _pct(r["pq"]), _pct(r["sq"]), _pct(r["rq"]), int(r["n"])))
    lines.append("-" * 44)
    absent = 0
    for cid, r in pan.get("per_class", {}).items():
        seen = r.get("tp", 1) + r.get("fp", 0) + r.get("fn", 0) > 0
        absent += not seen
        lines.append("{:<14}|{:>8}{:>8}{:>8}".format(str(r.get("name", cid))[:14], *(
            _pct(r[k]) if seen else "-" for k in ("pq", "sq", "rq"))))
    if absent:
        lines.append("(-: {} class(es) neither in the ground truth nor predicted; not counted in N)".format(absent))
    sem = metrics["semantic"]
    lines.append("mIoU: {}  pixel acc: {}".format(_pct(sem["mIoU"]), _pct(sem.get("acc"))))
    for mode, res in metrics.get("instance", {}).items():
        if isinstance(res, dict) and "AP" in res:
            lines.append("AP ({}): {}  AP50: {}".format(mode, _pct(res["AP"]), _pct(res["AP50"])))
    sp = metrics.get("speed")
    if sp:
        lines.append("speed per image: " + ", ".join("{} {:.1f} ms".format(k[:-len("_ms_per_image")], v)
                                                       for k, v in sp.items()))
    return "\n".join(lines)


def save_metrics(metrics, path):
    """Write the metrics json atomically (a kill never leaves a half-written results file); undefined
    metrics are written as null."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".tmp_{}.{}".format(os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w") as f:
            json.dump(json_ready(metrics, strict=True), f, indent=2, allow_nan=False)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserInputError("cannot write results file {}: {}".format(path, e.strerror or e))


def default_results_file(model_path):
    """`<folder of the weights>/eval_results.json`."""
    base = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    return os.path.join(base, "eval_results.json")


def _summary(metrics):
    pan, sem = metrics["panoptic"], metrics["semantic"]
    return {"PQ": pan["All"]["pq"], "PQ_th": pan["Things"]["pq"], "PQ_st": pan["Stuff"]["pq"], "mIoU": sem["mIoU"]}


def format_bn_comparison(running, per_image):
    """The table of `val.py --compare_bn_stats`: PQ / PQ things / PQ stuff / mIoU with each kind of
    BatchNorm statistics, and the gap."""
    a, b = _summary(running), _summary(per_image)
    lines = ["{:<34}|{:>8}{:>8}{:>8}{:>8}".format("BatchNorm statistics", "PQ", "PQ_th", "PQ_st", "mIoU"), "-" * 66]
    for name, r in (("running (as val/predict/export)", a), ("per image (its own statistics)", b)):
        lines.append("{:<34}|{:>8}{:>8}{:>8}{:>8}".format(name[:34], *(_pct(r[k]) for k in ("PQ", "PQ_th", "PQ_st",
                                                                                              "mIoU"))))
    gap = (b["PQ"] or 0) - (a["PQ"] or 0)
    lines.append("PQ gap (per image - running): {:+.2f}. A large positive gap means the running statistics do not "
                 "represent what the network learned (see README, BatchNorm statistics).".format(100 * gap))
    return "\n".join(lines)


def run_val(config, model_path, scales=(1.0,), flip=False, oracle=(), postprocess=None, save_predictions=None,
            results_file=None, max_images=None, benchmark_speed=False, device=None, verbose=False,
            compare_bn_stats=False):
    """Body of `val.py`: build, load, evaluate, print the table, save the metrics json (rank 0).

    Args:
        config, model_path (str): YAML config and weights (.pdparams or a checkpoint folder).
        scales, flip: test-time augmentation. oracle: ground-truth substitutions (model's `oracle_keys`).
        postprocess (dict): post-processing overrides (None values are ignored).
        save_predictions (str): folder for official-format panoptic predictions.
        results_file (str): metrics json (default: next to the weights).
        compare_bn_stats (bool): evaluate a second time with per-image BatchNorm statistics
            (`runtime.per_image_statistics`), print both, and store the second run's summary under
            ``bn_per_image`` in the results.
    Returns:
        the metrics dict.
    """
    dev = setup_device(device)
    rank, _ = init_distributed()
    cfg = load_config(config)
    results_file = results_file or default_results_file(model_path)
    if rank == 0:  # before a possibly long evaluation, not after it
        if os.path.isdir(results_file):
            raise UserInputError("--results_file is a folder, not a file: {}".format(results_file))
        check_writable_dir(os.path.dirname(os.path.abspath(results_file)), "--results_file {}".format(results_file))
    if save_predictions:
        check_writable_dir(save_predictions, "--save_predictions {}".format(save_predictions))
    builder, model = build_model(cfg, config, model_path, verbose=verbose)
    dataset = build(builder, "val_dataset", config, verbose=verbose)
    if len(dataset) == 0:
        raise UserInputError("val_dataset of {} has no images".format(config))
    check_num_classes(cfg, getattr(dataset, "num_classes", None), getattr(dataset, "thing_ids", None), config)
    bad = [k for k in oracle if k not in getattr(model, "oracle_keys", ())]
    if bad:
        raise UserInputError("--oracle: {} cannot substitute {}; choose from {}".format(
            type(model).__name__, ",".join(bad), ",".join(getattr(model, "oracle_keys", ())) or "nothing"))
    predictor = build_predictor(model, cfg, config, builder, postprocess=postprocess, scales=scales, flip=flip)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    log.info("[VAL] config {}, model {} ({}), {} images, device {}, scales {}, flip {}, oracle {}".format(
        config, type(model).__name__, model_path, n, dev, list(scales), bool(flip), ",".join(oracle) or "none"), rank=rank)
    metrics = evaluate(predictor, dataset, oracle=oracle, save_predictions=save_predictions,
                       benchmark_speed=benchmark_speed, max_images=max_images)
    if not benchmark_speed:
        metrics.pop("speed", None)
    comparison = None
    if compare_bn_stats:
        with per_image_statistics(model):
            per_image = evaluate(predictor, dataset, oracle=oracle, max_images=max_images)
        metrics["bn_per_image"] = _summary(per_image)
        comparison = format_bn_comparison(metrics, per_image)
    if rank == 0:
        log.info(format_metrics_table(metrics))
        if comparison:
            log.info(comparison)
        save_metrics(metrics, results_file)
        log.info("[VAL] metrics saved to {}".format(results_file))
        if save_predictions:
            log.info("[VAL] predictions (official panoptic format) in {}".format(save_predictions))
    return metrics
