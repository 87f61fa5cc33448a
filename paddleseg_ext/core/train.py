"""The training loop: data-parallel over GPUs or CPU processes (gloo), AMP, exact resume. The loop runs the
optimisation steps; everything around them is a hook of `core.hooks` (logging, learning rate, BatchNorm
statistics schedule, evaluation and best model, checkpoints, VisualDL, stop signals)."""
import dataclasses
import functools
import math
import os
import random
import time
import types
import warnings
from typing import Optional

import numpy as np
import paddle
from visualdl import LogWriter

from . import checkpoint as ckpt
from ..pipeline import build_predictor
from ..runtime import build, build_model, check_num_classes, init_distributed, load_config, setup_device
from ..runtime.schema import settings
from ..utils import UserInputError, check_writable_dir
from .hooks import (BatchNormSchedule, Checkpointer, EvalHook, LoopState, LRScheduler, MetricsLogger, StopOnSignal,
                    VisualDL, bn_freeze_settings, precise_batches)
from .sampler import IterationBatchSampler, raise_load_error, seeded_loader, to_tensors
from .signals import Interrupted
from .val import evaluate


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or inf."""


@dataclasses.dataclass
class TrainOptions:
    """The settings of a run, one per `train.py` flag (docs/training.md). None: the config's value
    (`iters`, `batch_size`, `learning_rate`, `seed`) or the default device."""
    config: str
    iters: Optional[int] = None
    batch_size: Optional[int] = None
    learning_rate: Optional[float] = None
    save_interval: int = 1000
    save_dir: str = "output"
    resume_model: Optional[str] = None
    keep_checkpoint_max: int = 5
    num_workers: int = 0
    do_eval: bool = False
    log_iters: int = 10
    use_vdl: bool = False
    seed: Optional[int] = None
    precision: str = "fp32"
    amp_level: str = "O1"
    device: Optional[str] = None
    max_eval_images: Optional[int] = None
    verbose: bool = False

    def check(self):
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise UserInputError("--precision must be fp32, fp16 or bf16, got {}".format(self.precision))
        if self.amp_level not in ("O1", "O2"):
            raise UserInputError("--amp_level must be O1 or O2, got {}".format(self.amp_level))


def set_seed(seed):
    paddle.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train(options, **overrides):
    """Train the model of a config; returns a dict with the final iteration and last/best metrics.

    `options`: a `TrainOptions`, or the config path with the other options as keywords
    (``train("x.yml", iters=10)``); `overrides` replace fields of a `TrainOptions`. Any registered
    `PanopticModel` trains here: the loop sums and NaN-checks the named terms of ``model.loss``.
    Checkpoints go to `<save_dir>/iter_<N>/` every `save_interval` iterations and at the end; with
    `do_eval` each save is evaluated through the pipeline and the best PQ is kept (`core.hooks`).
    """
    opts = (dataclasses.replace(options, **overrides) if isinstance(options, TrainOptions)
            else TrainOptions(options, **overrides))
    run = _setup(opts)
    state = LoopState(run.model, run.optimizer, int(run.cfg.iters), opts.save_interval, rank=run.rank,
                      nranks=run.nranks)
    signals = StopOnSignal()
    checkpointer = Checkpointer(opts.save_dir, opts.keep_checkpoint_max, signals,
                                {"seed": run.seed, "config": os.path.abspath(opts.config)})
    if opts.resume_model:
        checkpointer.resume(state, opts.resume_model)
    net, amp = _parallel_and_amp(state, run.device, opts)
    sampler = IterationBatchSampler(len(run.train_ds), run.cfg.batch_size, state.total_iters,
                                    start_iter=state.start_iter, seed=run.seed, rank=run.rank, nranks=run.nranks)
    loader = seeded_loader(run.train_ds, sampler, opts.num_workers)
    state.hooks = _hooks(opts, run, state, signals, checkpointer)
    with warnings.catch_warnings():
        # Paddle warns on every run that BatchNorm tracks its statistics in train mode: noise, not news.
        warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
        try:
            state.call("before_train")
            state.model.train()
            t_read = time.time()
            for batch in loader:
                state.iteration += 1
                state.reader_cost = time.time() - t_read
                state.call("before_step")
                t_step = time.time()
                _step(state, net, batch, run.losses, amp)
                state.step_cost = time.time() - t_step
                state.call("after_step")
                t_read = time.time()
            state.finished = True
        except Interrupted:
            signals.exit(state)
        finally:
            state.call("after_train")
    return {"iteration": state.iteration, "metrics": state.metrics, "best_pq": state.best_pq,
            "best_iter": state.best_iter, "save_dir": opts.save_dir}


def _setup(opts):
    """Checks, device and process group, config, seed, save folder, then the components of the config
    (built in this order: the random draws of initialisation depend on it). Returns a namespace."""
    opts.check()
    device = setup_device(opts.device)
    if opts.precision != "fp32" and "gpu" not in device:
        raise UserInputError("--precision {}: mixed precision needs a GPU (Paddle's AMP has no effect on the CPU, "
                             "where training would silently stay fp32); use --precision fp32 on the CPU".format(
                                 opts.precision))
    rank, nranks = init_distributed()
    path, verbose = opts.config, opts.verbose
    cfg = load_config(path, learning_rate=opts.learning_rate, batch_size=opts.batch_size, iters=opts.iters)
    seed = int(opts.seed if opts.seed is not None else settings(cfg.dic, "seed", path))
    set_seed(seed)
    _prepare_save_dir(opts.save_dir, rank)
    if not opts.resume_model:
        _refuse_to_overwrite(opts.save_dir)
    builder, model = build_model(cfg, path, verbose=verbose)
    train_ds = build(builder, "train_dataset", path, verbose=verbose)
    check_num_classes(cfg, getattr(train_ds, "num_classes", None), getattr(train_ds, "thing_ids", None), path)
    losses = build(builder, "loss", path, verbose=verbose)
    optimizer = build(builder, "optimizer", path, verbose=verbose)
    val_ds = build(builder, "val_dataset", path, verbose=verbose) if opts.do_eval else None
    predictor = build_predictor(model, cfg, path, builder) if opts.do_eval else None
    return types.SimpleNamespace(cfg=cfg, seed=seed, device=device, rank=rank, nranks=nranks, model=model,
                                 train_ds=train_ds, losses=losses, optimizer=optimizer, val_ds=val_ds,
                                 predictor=predictor, lr_scheduler=optimizer._learning_rate)


def _parallel_and_amp(state, device, opts):
    """SyncBatchNorm on several GPUs, AMP (`paddle.amp.decorate` at O2; `state` gets the decorated model and
    optimizer), DataParallel on several ranks. Returns (the layer to call, the AMP settings)."""
    if state.nranks > 1 and "gpu" in device:
        state.model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(state.model)
    dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(opts.precision)
    amp = types.SimpleNamespace(dtype=dtype, level=opts.amp_level, scaler=None)
    if opts.precision == "fp16":
        amp.scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
    if dtype is not None and opts.amp_level == "O2":
        state.model, state.optimizer = paddle.amp.decorate(models=state.model, optimizers=state.optimizer,
                                                           level="O2", dtype=dtype)
    return (paddle.DataParallel(state.model) if state.nranks > 1 else state.model), amp


def _hooks(opts, run, state, signals, checkpointer):
    """The hooks of a run, in calling order (see `core.hooks`)."""
    header = ("[TRAIN] config {}, model {}, {} images, batch {} x {} rank(s), iters {} -> {}, device {}, "
              "seed {}".format(opts.config, type(state.model).__name__, len(run.train_ds), run.cfg.batch_size,
                               run.nranks, state.start_iter, state.total_iters, run.device, run.seed))
    settings = bn_freeze_settings(run.cfg, opts.config, state.total_iters)
    batches = functools.partial(precise_batches, run.train_ds, run.cfg.batch_size, run.seed, run.rank, run.nranks,
                                settings.precise_batches if settings else 0)
    writer = LogWriter(os.path.join(opts.save_dir, "vdl_log")) if opts.use_vdl and run.rank == 0 else None
    hooks = [signals, LRScheduler(run.lr_scheduler),
             MetricsLogger(opts.log_iters, run.cfg.batch_size * run.nranks, header), VisualDL(writer),
             BatchNormSchedule(settings, batches, merge_ranks=run.nranks > 1 and "gpu" not in run.device)]
    if opts.do_eval:
        run_eval = functools.partial(evaluate, run.predictor, run.val_ds, writer=writer,
                                     max_images=opts.max_eval_images)
        hooks.append(EvalHook(run_eval, opts.save_dir, checkpointer, signals))
    return hooks + [checkpointer]


def _step(state, net, batch, losses, amp):
    """One optimisation step on `batch` (forward through `net`, the summed loss terms of ``model.loss``,
    backward, update); the loss values go to `state`. Raises `TrainingDiverged` on a NaN or inf loss."""
    raise_load_error(batch)
    batch = to_tensors(batch)
    if amp.dtype is not None:
        with paddle.amp.auto_cast(level=amp.level, dtype=amp.dtype):
            outputs = net(batch["img"])
        outputs = [o.astype("float32") for o in outputs]
    else:
        outputs = net(batch["img"])
    terms = state.model.loss(outputs, batch, losses)
    total = paddle.add_n(list(terms.values()))
    state.terms, state.loss = {k: float(v) for k, v in terms.items()}, float(total)
    if not math.isfinite(state.loss):
        bad = ["{}={}".format(k, v) for k, v in state.terms.items() if not math.isfinite(v)]
        raise TrainingDiverged("loss is not finite at iteration {} ({}); stopping. Last good checkpoint: {}".format(
            state.iteration, ", ".join(bad) or "total={}".format(state.loss), state.last_ckpt or "none written yet"))
    if amp.scaler is not None:
        scaled = amp.scaler.scale(total)
        scaled.backward()
        amp.scaler.minimize(state.optimizer, scaled)
    else:
        total.backward()
        state.optimizer.step()
    state.optimizer.clear_grad()


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
