"""The training loop: data-parallel over GPUs or CPU processes (gloo), AMP, logging with ETA,
atomic checkpoints, exact resume, evaluation with best-model tracking, VisualDL scalars/images."""
import hashlib
import math
import os
import random
import time
import types
import warnings

import numpy as np
import paddle
from visualdl import LogWriter

from . import checkpoint as ckpt
from ..pipeline import build_predictor
from ..runtime import (StatisticsBlend, build, build_model, check_num_classes, freeze_statistics, init_distributed,
                       load_config, merge_rank_statistics, recompute_statistics, setup_device)
from ..utils import UserInputError, check_writable_dir
from .sampler import IterationBatchSampler, SeededDataset, collate_samples, raise_load_error
from .signals import Interrupted, StopSignals
from .val import evaluate


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or inf."""


def _format_eta(seconds):
    seconds = int(max(seconds, 0))
    return "{:02d}:{:02d}:{:02d}".format(seconds // 3600, (seconds % 3600) // 60, seconds % 60)


def _log(rank, msg):
    if rank == 0:
        print(msg, flush=True)


def _to_tensors(batch):
    return {k: (v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v)) for k, v in batch.items()}


def set_seed(seed):
    paddle.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train(config, iters=None, batch_size=None, learning_rate=None, save_interval=1000, save_dir="output",
          resume_model=None, keep_checkpoint_max=5, num_workers=0, do_eval=False, log_iters=10, use_vdl=False,
          seed=None, precision="fp32", amp_level="O1", device=None, max_eval_images=None, verbose=False):
    """Train the model of `config`; returns a dict with the final iteration and last/best metrics.

    Any registered `PanopticModel` trains here: the loop sums, logs and NaN-checks the named terms of
    ``model.loss``. Checkpoints go to `<save_dir>/iter_<N>/` every `save_interval` iterations and at
    the end; with `do_eval` each save is evaluated through the pipeline and the best PQ is kept.
    """
    if precision not in ("fp32", "fp16", "bf16"):
        raise UserInputError("--precision must be fp32, fp16 or bf16, got {}".format(precision))
    if amp_level not in ("O1", "O2"):
        raise UserInputError("--amp_level must be O1 or O2, got {}".format(amp_level))
    dev = setup_device(device)
    if precision != "fp32" and "gpu" not in dev:
        raise UserInputError("--precision {}: mixed precision needs a GPU (Paddle's AMP has no effect on the CPU, "
                             "where training would silently stay fp32); use --precision fp32 on the CPU".format(precision))
    rank, nranks = init_distributed()

    cfg = load_config(config, learning_rate=learning_rate, batch_size=batch_size, iters=iters)
    seed = int(seed if seed is not None else cfg.dic.get("seed", 0))
    set_seed(seed)
    _prepare_save_dir(save_dir, rank)
    if not resume_model:
        _refuse_to_overwrite(save_dir)

    builder, model = build_model(cfg, config, verbose=verbose)
    train_ds = build(builder, "train_dataset", config, verbose=verbose)
    check_num_classes(cfg, model, train_ds, config)
    losses = build(builder, "loss", config, verbose=verbose)
    optimizer = build(builder, "optimizer", config, verbose=verbose)
    lr_sched = optimizer._learning_rate
    val_ds = build(builder, "val_dataset", config, verbose=verbose) if do_eval else None
    predictor = build_predictor(model, cfg, config, builder) if do_eval else None

    total_iters = int(cfg.iters)
    start_iter, best_pq, best_iter = 0, -1.0, -1
    last_ckpt = None
    if resume_model:
        path = ckpt.resolve_resume_path(resume_model)
        last_ckpt = path
        state = ckpt.load_checkpoint(path, model, optimizer)
        start_iter = int(state["iteration"])
        best_pq, best_iter = float(state.get("best_pq", -1.0)), int(state.get("best_iter", -1))
        _log(rank, "[TRAIN] resumed from {} at iteration {}".format(path, start_iter))
        if start_iter >= total_iters:
            _log(rank, "[TRAIN] nothing to do: checkpoint iteration {} >= iters {}".format(start_iter, total_iters))

    ddp_model = model
    if nranks > 1:
        if "gpu" in dev:
            model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp_model = paddle.DataParallel(model)

    sampler = IterationBatchSampler(len(train_ds), cfg.batch_size, total_iters, start_iter=start_iter,
                                    seed=seed, rank=rank, nranks=nranks, shuffle=True)
    loader = _seeded_loader(train_ds, sampler, num_workers)

    writer = LogWriter(os.path.join(save_dir, "vdl_log")) if use_vdl and rank == 0 else None

    amp_dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(precision)
    scaler = None
    if amp_dtype is not None:
        if precision == "fp16":
            scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
        if amp_level == "O2":
            model, optimizer = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=amp_dtype)
            ddp_model = paddle.DataParallel(model) if nranks > 1 else model

    stop = StopSignals().install()

    _log(rank, "[TRAIN] config {}, model {}, {} images, batch {} x {} rank(s), iters {} -> {}, device {}, "
               "seed {}".format(config, type(model).__name__, len(train_ds), cfg.batch_size, nranks, start_iter,
                                total_iters, dev, seed))
    it = start_iter
    window = {"loss": [], "batch": [], "reader": []}
    last_metrics = None

    def save_iteration():
        """Rank 0 writes iter_<it> (a stop signal waits until it is complete) and prunes old ones."""
        nonlocal last_ckpt
        if rank != 0:
            return
        with stop.deferred():
            last_ckpt = ckpt.save_checkpoint(save_dir, it, model, optimizer, {
                "best_pq": best_pq, "best_iter": best_iter, "seed": seed, "config": os.path.abspath(config)})
            ckpt.prune_checkpoints(save_dir, keep_checkpoint_max, protect=(last_ckpt,))
            _log(rank, "[TRAIN] saved {}".format(last_ckpt))

    bn = bn_freeze_settings(cfg, config, total_iters)
    bn_fixed, blend = False, None
    if bn is not None:
        _log(rank, "[TRAIN] BatchNorm statistics: batch statistics blended out over iterations {}-{}, frozen "
                   "after".format(bn.start + 1, bn.end) if bn.end > bn.start else
             "[TRAIN] BatchNorm statistics frozen after iteration {}".format(bn.end))
    # Paddle warns on every run that BatchNorm tracks its statistics in train mode: noise, not news.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
    t_start = time.time()
    try:
        model.train()
        t_read = time.time()
        for batch in loader:
            it += 1
            if bn is not None and it > bn.start:
                if not bn_fixed:
                    if it == bn.start + 1:
                        # statistics of the current weights (the running averages lag them), the same on every rank
                        used = recompute_statistics(model, _precise_batches(train_ds, cfg.batch_size, seed, it, rank,
                                                                            nranks, bn.precise_batches))
                        if nranks > 1:
                            merge_rank_statistics(model)
                        _log(rank, "[TRAIN] iteration {}: BatchNorm statistics recomputed over {} batch(es) and "
                                   "fixed".format(it, used))
                        t_read = time.time()  # the recomputation is not this iteration's data loading
                    bn_fixed = True
                    if it <= bn.end:
                        blend = StatisticsBlend(model)
                if blend is not None and it > bn.end:
                    blend.remove()
                    blend = None
                if blend is not None:
                    blend.alpha = (bn.end - it + 1) / float(bn.end - bn.start)
                freeze_statistics(model)  # again after each evaluation's model.train()
            reader_cost = time.time() - t_read
            raise_load_error(batch)
            batch = _to_tensors(batch)
            if amp_dtype is not None:
                with paddle.amp.auto_cast(level=amp_level, dtype=amp_dtype):
                    outputs = ddp_model(batch["img"])
                outputs = [o.astype("float32") for o in outputs]
            else:
                outputs = ddp_model(batch["img"])
            terms = model.loss(outputs, batch, losses)
            total = paddle.add_n(list(terms.values()))
            values = {k: float(v) for k, v in terms.items()}
            total_value = float(total)
            if not math.isfinite(total_value):
                bad = ["{}={}".format(k, v) for k, v in values.items() if not math.isfinite(v)]
                raise TrainingDiverged(
                    "loss is not finite at iteration {} ({}); stopping. Last good checkpoint: {}".format(
                        it, ", ".join(bad) or "total={}".format(total_value), last_ckpt or "none written yet"))
            if scaler is not None:
                scaled = scaler.scale(total)
                scaled.backward()
                scaler.minimize(optimizer, scaled)
            else:
                total.backward()
                optimizer.step()
            optimizer.clear_grad()
            lr = optimizer.get_lr()
            if isinstance(lr_sched, paddle.optimizer.lr.LRScheduler):
                lr_sched.step()

            window["loss"].append(total_value)
            for k, v in values.items():
                window.setdefault("loss_" + k, []).append(v)
            window["batch"].append(time.time() - t_read)
            window["reader"].append(reader_cost)

            if it % log_iters == 0 or it == total_iters:
                avg = {k: float(np.mean(v)) if v else 0.0 for k, v in window.items()}
                eta = avg["batch"] * (total_iters - it)
                ips = cfg.batch_size * nranks / max(avg["batch"], 1e-9)
                term_text = ", ".join("{}: {:.4f}".format(k[5:], v) for k, v in avg.items() if k.startswith("loss_"))
                _log(rank, "[TRAIN] iter: {}/{}, loss: {:.4f} ({}), lr: {:.6g}, batch_cost: {:.4f}s, "
                           "reader_cost: {:.4f}s, ips: {:.2f} samples/s, ETA: {}".format(
                               it, total_iters, avg["loss"], term_text, lr, avg["batch"], avg["reader"], ips,
                               _format_eta(eta)))
                if writer is not None:
                    writer.add_scalar("Train/loss", avg["loss"], it)
                    for k, v in avg.items():
                        if k.startswith("loss_"):
                            writer.add_scalar("Train/" + k, v, it)
                    writer.add_scalar("Train/lr", lr, it)
                    writer.add_scalar("Train/batch_cost", avg["batch"], it)
                    writer.add_scalar("Train/reader_cost", avg["reader"], it)
                for v in window.values():
                    v.clear()

            if it % save_interval == 0 or it == total_iters:
                if nranks > 1 and "gpu" not in dev:
                    merge_rank_statistics(model)
                if do_eval:
                    if blend is not None:
                        blend.active = False  # evaluation normalises with the running statistics
                    try:
                        last_metrics = evaluate(predictor, val_ds, writer=writer, step=it, max_images=max_eval_images)
                    except Exception as e:
                        # e.g. an unreadable val image: keep the iterations trained since the last save
                        if not isinstance(e, Interrupted):
                            _log(rank, "[TRAIN] evaluation at iteration {} failed; saving first".format(it))
                            save_iteration()
                        raise
                    finally:
                        model.train()
                        if blend is not None:
                            blend.active = True  # (the next iteration freezes the statistics again)
                    pq = float(last_metrics["panoptic"]["All"]["pq"])
                    if pq > best_pq:
                        best_pq, best_iter = pq, it
                        if rank == 0:
                            with stop.deferred():
                                ckpt.save_best_model(save_dir, model, {"iteration": it, "pq": pq})
                    _log(rank, "[EVAL] iter {}: PQ {:.2f}; best PQ {:.2f} at iter {}".format(
                        it, 100 * pq, 100 * best_pq, best_iter))
                save_iteration()
            t_read = time.time()
    except Interrupted:
        _log(rank, "[TRAIN] interrupted by signal {} at iteration {}; last complete checkpoint: {}".format(
            stop.sig, it, last_ckpt or "none"))
        raise SystemExit(128 + int(stop.sig or 0))
    finally:
        stop.restore()
        if writer is not None:
            writer.close()
    _log(rank, "[TRAIN] done: {} iterations in {:.1f}s".format(it - start_iter, time.time() - t_start))
    if nranks > 1:
        # every rank reports, so that users (and tests) can see the replicas agree
        print("[TRAIN] rank {} parameter checksum: {}".format(rank, parameter_checksum(model)), flush=True)
    return {"iteration": it, "metrics": last_metrics, "best_pq": best_pq, "best_iter": best_iter,
            "save_dir": save_dir}


def parameter_checksum(model):
    """sha1 over all parameters and buffers (name, bytes): equal on replicas that hold equal weights."""
    h = hashlib.sha1()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value.numpy()).tobytes())
    return h.hexdigest()


def bn_freeze_settings(cfg, path, total_iters):
    """The config's ``batch_norm:`` block: None, or a namespace with `start`, `end` (iterations) and
    `precise_batches`.

    ``freeze_statistics_at`` (`end`): after this iteration every BatchNorm layer normalises with fixed
    statistics, as evaluation does, and stops updating them. ``blend_from`` (`start`, default: the same):
    after this iteration the statistics are recomputed with the current weights over ``precise_batches``
    training batches (default 10; 0 keeps the running averages) and fixed, and until `end` the layers
    normalise with a blend of the batch's statistics and the fixed ones whose batch share falls linearly
    from 1 to 0, so the network moves to the fixed statistics gradually. Both take an iteration number or
    a fraction of the run's iterations (a number between 0 and 1, e.g. 0.7). See README, "BatchNorm statistics".
    """
    block = cfg.dic.get("batch_norm") or {}
    precise = block.get("precise_batches", 10)
    if isinstance(precise, bool) or not isinstance(precise, int) or precise < 0:
        raise UserInputError("batch_norm.precise_batches in {} must be a number of batches >= 0, got {!r}".format(
            path, precise))

    def iteration(key, default):
        value = block.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                isinstance(value, float) and value >= 1):
            raise UserInputError("batch_norm.{} in {} must be an iteration number or a fraction of the iterations "
                                 "in (0, 1), got {!r}".format(key, path, value))
        return int(round(value * total_iters)) if isinstance(value, float) else int(value)

    if block.get("freeze_statistics_at") is None:
        if "blend_from" in block:
            raise UserInputError("batch_norm.blend_from in {} needs batch_norm.freeze_statistics_at".format(path))
        return None
    end = iteration("freeze_statistics_at", None)
    start = iteration("blend_from", block["freeze_statistics_at"])
    if start > end:
        raise UserInputError("batch_norm.blend_from ({}) in {} comes after freeze_statistics_at ({})".format(
            start, path, end))
    return types.SimpleNamespace(start=start, end=end, precise_batches=precise)


def _seeded_loader(dataset, sampler, num_workers=0):
    """A DataLoader of `dataset`'s samples for the batches of keys `sampler` yields, each sample seeded
    (`SeededDataset`); load errors travel as data (`collate_samples`, `raise_load_error`)."""
    return paddle.io.DataLoader(SeededDataset(dataset), batch_sampler=sampler, num_workers=num_workers,
                                return_list=True, use_shared_memory=num_workers > 0, collate_fn=collate_samples,
                                worker_init_fn=StopSignals.worker_signals if num_workers > 0 else None)


def _precise_batches(dataset, batch_size, seed, iteration, rank, nranks, count):
    """`count` training batches (this rank's share) for `recompute_statistics`, from their own sampler so
    that the training batches, and an exact resume, are not affected."""
    sampler = IterationBatchSampler(len(dataset), batch_size, count, seed=seed + 7919 * iteration, rank=rank,
                                    nranks=nranks, shuffle=True)
    for batch in _seeded_loader(dataset, sampler):
        raise_load_error(batch)
        yield _to_tensors(batch)["img"]


def _refuse_to_overwrite(save_dir):
    """A fresh run (no --resume_model) must not overwrite or prune an earlier run's checkpoints/best model."""
    found = [os.path.basename(p) for _, p in ckpt.list_checkpoints(save_dir)]
    if os.path.isfile(os.path.join(save_dir, "best_model", "model.pdparams")):
        found.append("best_model")
    if found:
        shown = ", ".join(found[-3:]) if len(found) <= 3 else "{} ... {}".format(found[0], ", ".join(found[-2:]))
        raise UserInputError("--save_dir {} already holds checkpoints of an earlier run ({}); pass --resume_model {} "
                             "to continue it, or choose another --save_dir".format(save_dir, shown, save_dir))


def _prepare_save_dir(save_dir, rank):
    if rank != 0:
        return
    check_writable_dir(save_dir, "--save_dir")
    ckpt.remove_stale_tmp(save_dir)
