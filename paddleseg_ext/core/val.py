"""Evaluation loop: network (+ optional TTA and oracle substitution), post-processing, then PQ / mIoU / AP,
sharded over ranks without duplicates and merged exactly; optional official-format predictions."""
import json
import os
import time

import numpy as np
import paddle

from ..utils.errors import UserInputError
from ..utils.files import check_writable_dir
from ..utils.panoptic_io import read_panoptic_png
from ..utils.arrays import to_numpy
from .inference import postprocess_params, predict_outputs

ORACLE_KEYS = ("semantic", "center", "offset")


def parse_oracle(text):
    """'semantic,center' -> ('semantic', 'center'); empty -> ()."""
    if not text:
        return ()
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in ORACLE_KEYS]
    if bad:
        raise UserInputError("--oracle: unknown item(s) {}; choose from {}".format(bad, ",".join(ORACLE_KEYS)))
    return items


class _Progress:
    """A progress bar on rank 0 (PaddleSeg's Progbar), silent elsewhere."""

    def __init__(self, total, enabled):
        self.bar = None
        if enabled and total > 0:
            from paddleseg.utils import progbar
            self.bar = progbar.Progbar(target=total, verbose=1)
        self.n = 0

    def step(self):
        self.n += 1
        if self.bar is not None:
            self.bar.update(self.n)


def shard_indices(n, rank, nranks, max_images=None):
    """Indices of images rank `rank` evaluates: a disjoint, covering split (no padding, no duplicates)."""
    total = n if max_images is None else min(n, int(max_images))
    return list(range(rank, total, nranks))


def evaluate(model, dataset, cfg, scales=(1.0,), flip=False, oracle=(), pp_overrides=None,
             save_predictions=None, benchmark_speed=False, writer=None, step=None, max_images=None,
             num_vis=3, progress=True):
    """Evaluate `model` on `dataset` (val mode); every rank must call it.

    Returns:
        dict with `panoptic` (All/Things/Stuff/per_class PQ, SQ, RQ), `semantic` (mIoU, per-class IoU),
        `instance` (AP, AP50 for each score mode), `speed` (ms per image) and `num_images`.
    """
    from ..evaluation import build_evaluators
    from ..postprocess import panoptic_postprocess

    nranks = paddle.distributed.get_world_size()
    rank = paddle.distributed.get_rank()
    pp = postprocess_params(cfg, dataset, **(pp_overrides or {}))
    evaluators = build_evaluators(dataset, label_divisor=pp["label_divisor"], void_label=pp["void_label"])
    writer_pred = None
    if save_predictions:
        from ..evaluation.formats import PanopticPredictionWriter
        writer_pred = PanopticPredictionWriter(save_predictions, dataset)

    indices = shard_indices(len(dataset), rank, nranks, max_images)
    bar = _Progress(len(indices), progress and rank == 0)
    t_net = t_post = 0.0
    vis = []
    model.eval()
    with paddle.no_grad():
        for idx in indices:
            sample = dataset[idx]
            rec = dataset.records[idx]
            h, w = int(rec["height"]), int(rec["width"])
            img = paddle.to_tensor(sample["img"][None])
            if benchmark_speed:
                _sync()
            t0 = time.time()
            sem_prob, center, offset = predict_outputs(model, img, (h, w), scales=scales, flip=flip)
            if benchmark_speed:
                _sync()
            t1 = time.time()
            semantic = paddle.argmax(sem_prob, axis=0)
            if "semantic" in oracle:
                semantic = paddle.to_tensor(sample["semantic"][:h, :w].astype("int64"))
            if "center" in oracle:
                center = paddle.to_tensor(sample["center"][:, :h, :w])
            if "offset" in oracle:
                offset = paddle.to_tensor(sample["offset"][:, :h, :w])
            panoptic, centers = panoptic_postprocess(semantic, center, offset, **pp)
            if benchmark_speed:
                _sync()
            t2 = time.time()
            t_net += t1 - t0
            t_post += t2 - t1

            panoptic_np = to_numpy(panoptic).astype(np.int64)
            gt_ids = read_panoptic_png(rec["label_path"])
            evaluators.update(
                pred_panoptic=panoptic_np, pred_semantic=to_numpy(semantic), gt_segment_ids=gt_ids,
                gt_segments_info=rec["segments_info"], sem_prob=sem_prob, center=center, record=rec)
            if writer_pred is not None:
                writer_pred.add(rec, panoptic_np)
            if writer is not None and len(vis) < num_vis:
                vis.append((rec["image_path"], to_numpy(semantic), panoptic_np))
            bar.step()

    metrics = evaluators.evaluate()  # merges states over ranks; json-ready
    n_done = _all_sum(len(indices))
    metrics["num_images"] = int(n_done)
    metrics["speed"] = {
        "network_ms_per_image": 1000.0 * _all_sum(t_net) / max(n_done, 1),
        "postprocess_ms_per_image": 1000.0 * _all_sum(t_post) / max(n_done, 1),
    }
    if writer_pred is not None:
        writer_pred.finish()
    if writer is not None:
        _write_vdl(writer, metrics, step or 0, vis, dataset)
    return metrics



def _sync():
    if "gpu" in paddle.get_device():
        paddle.device.cuda.synchronize()


def _all_sum(value):
    if paddle.distributed.get_world_size() <= 1:
        return value
    t = paddle.to_tensor([float(value)], dtype="float64")
    paddle.distributed.all_reduce(t)
    return float(t.numpy()[0])


def _write_vdl(writer, metrics, step, vis, dataset):
    pan = metrics["panoptic"]
    for group in ("All", "Things", "Stuff"):
        suffix = "" if group == "All" else "_" + group.lower()
        for k in ("pq", "sq", "rq"):
            writer.add_scalar("Evaluate/{}{}".format(k.upper(), suffix), 100.0 * float(pan[group][k]), step)
    writer.add_scalar("Evaluate/mIoU", 100.0 * float(metrics["semantic"]["mIoU"]), step)
    for mode, res in metrics.get("instance", {}).items():
        if isinstance(res, dict) and "AP" in res:
            writer.add_scalar("Evaluate/AP_" + mode, 100.0 * float(res["AP"]), step)
            writer.add_scalar("Evaluate/AP50_" + mode, 100.0 * float(res["AP50"]), step)
    from ..utils.panoptic_io import read_image
    from ..visualize.colors import class_palette
    from ..visualize.panel import panoptic_panel

    palette = class_palette(dataset.num_classes, getattr(dataset, "palette", None))
    for i, (path, semantic, panoptic) in enumerate(vis):
        panel = panoptic_panel(read_image(path), semantic, panoptic, palette, label_divisor=dataset.label_divisor)
        writer.add_image("Evaluate/visualization_{}".format(i), panel, step)


def format_metrics_table(metrics):
    """Printable PQ/SQ/RQ table (All/Things/Stuff + per class), mIoU and AP lines."""
    pan = metrics["panoptic"]
    lines = ["{:<14}|{:>8}{:>8}{:>8}{:>6}".format("", "PQ", "SQ", "RQ", "N"), "-" * 44]
    for g in ("All", "Things", "Stuff"):
        r = pan[g]
        lines.append("{:<14}|{:>8.2f}{:>8.2f}{:>8.2f}{:>6d}".format(g, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"],
                                                                     int(r["n"])))
    lines.append("-" * 44)
    for cid, r in pan.get("per_class", {}).items():
        if r.get("tp", 1) + r.get("fp", 0) + r.get("fn", 0) == 0:
            continue  # class absent from ground truth and predictions: not counted (n)
        lines.append("{:<14}|{:>8.2f}{:>8.2f}{:>8.2f}".format(str(r.get("name", cid))[:14], 100 * r["pq"],
                                                               100 * r["sq"], 100 * r["rq"]))
    sem = metrics["semantic"]
    lines.append("mIoU: {:.2f}  pixel acc: {:.2f}".format(100 * sem["mIoU"], 100 * sem.get("acc", float("nan"))))
    for mode, res in metrics.get("instance", {}).items():
        if isinstance(res, dict) and "AP" in res:
            lines.append("AP ({}): {:.2f}  AP50: {:.2f}".format(mode, 100 * res["AP"], 100 * res["AP50"]))
    sp = metrics.get("speed")
    if sp:
        lines.append("network: {:.1f} ms/img, post-processing: {:.1f} ms/img".format(
            sp["network_ms_per_image"], sp["postprocess_ms_per_image"]))
    return "\n".join(lines)


def save_metrics(metrics, path):
    """Write the metrics json atomically (a kill never leaves a half-written results file)."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".tmp_{}.{}".format(os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w") as f:
            json.dump(metrics, f, indent=2, default=float)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserInputError("cannot write results file {}: {}".format(path, e.strerror or e))



def default_results_file(model_path):
    """`<folder of the weights>/eval_results.json`."""
    base = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    return os.path.join(base, "eval_results.json")


def run_val(args):
    """Body of `val.py`: build, load, evaluate, print the table, save the metrics json (rank 0)."""
    from .inference import build, check_num_classes, load_model
    from .train import _setup_device

    _setup_device(args.device)
    if paddle.distributed.get_world_size() > 1:
        paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()
    cfg, builder, model = load_model(args.config, args.model_path)
    results_file = args.results_file or default_results_file(args.model_path)
    if rank == 0:  # before a possibly long evaluation, not after it
        if os.path.isdir(results_file):
            raise UserInputError("--results_file is a folder, not a file: {}".format(results_file))
        check_writable_dir(os.path.dirname(os.path.abspath(results_file)), "--results_file {}{}".format(
            results_file, "" if args.results_file else " (default, next to --model_path)"))
    if args.save_predictions:
        check_writable_dir(args.save_predictions, "--save_predictions {}".format(args.save_predictions))
    dataset = build(builder, "val_dataset", args.config)
    if len(dataset) == 0:
        raise UserInputError("val_dataset of {} has no images".format(args.config))
    check_num_classes(cfg, model, dataset, args.config)
    oracle = parse_oracle(args.oracle)
    scales = tuple(args.scales) if args.aug_eval else (1.0,)
    flip = bool(args.flip_horizontal and args.aug_eval)
    pp_overrides = dict(threshold=args.threshold, nms_kernel=args.nms_kernel, top_k=args.top_k,
                        stuff_area=args.stuff_area)
    if rank == 0:
        print("[VAL] {} images, scales {}, flip {}, oracle {}".format(
            len(dataset) if args.max_images is None else min(len(dataset), args.max_images), list(scales), flip,
            ",".join(oracle) or "none"), flush=True)
    metrics = evaluate(model, dataset, cfg, scales=scales, flip=flip, oracle=oracle,
                       pp_overrides=pp_overrides, save_predictions=args.save_predictions,
                       benchmark_speed=args.benchmark_network_speed, max_images=args.max_images)
    if rank == 0:
        if not args.benchmark_network_speed:
            metrics.pop("speed", None)
        print(format_metrics_table(metrics), flush=True)
        save_metrics(metrics, results_file)
        print("[VAL] metrics saved to {}".format(results_file), flush=True)
        if args.save_predictions:
            print("[VAL] predictions (official panoptic format) in {}".format(args.save_predictions), flush=True)
    return metrics
