"""The hooks of the training loop (`core.train.train`), one concern each, in the manner of detectron2's
``engine/hooks.py``: the loop runs the optimisation steps and calls, for every hook in list order,
``before_train``, ``before_step`` / ``after_step`` around each step and ``after_train`` (also after an
error). `EvalHook` also calls ``before_eval`` / ``after_eval`` on every hook around an evaluation.

A hook reads and writes the run's `LoopState`; the order of the list is part of the design (see
`core.train`): the learning rate is read before it is logged, BatchNorm statistics are merged over ranks
before the evaluation, and the evaluation's best PQ goes into the checkpoint written after it.
"""
import hashlib
import time
import types
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import paddle

from . import checkpoint as ckpt
from ..runtime import StatisticsBlend, freeze_statistics, merge_rank_statistics, recompute_statistics
from ..runtime.schema import settings, to_iterations
from ..utils import log
from .sampler import IterationBatchSampler, raise_load_error, seeded_loader, to_tensors
from .signals import Interrupted, StopSignals


@dataclass
class LoopState:
    """What the loop and its hooks share. `iteration` counts finished steps (during ``before_step`` /
    ``after_step``: the step in progress, from 1); `terms`, `loss`, `lr`, `reader_cost` and `step_cost`
    describe the latest step; `averages` is the logged window's means at a logging step, else None."""
    model: paddle.nn.Layer
    optimizer: paddle.optimizer.Optimizer
    total_iters: int
    save_interval: int
    rank: int = 0
    nranks: int = 1
    iteration: int = 0
    start_iter: int = 0
    best_pq: float = -1.0
    best_iter: int = -1
    last_ckpt: Optional[str] = None
    metrics: Optional[dict] = None
    terms: dict = field(default_factory=dict)
    loss: float = 0.0
    lr: float = 0.0
    reader_cost: float = 0.0
    step_cost: float = 0.0
    averages: Optional[dict] = None
    finished: bool = False
    hooks: list = field(default_factory=list)

    def call(self, event):
        """Call method `event` (one of EVENTS) of every hook that has one, in list order."""
        if event not in EVENTS:
            raise ValueError("unknown hook event {!r}".format(event))
        for hook in self.hooks:
            method = getattr(hook, event, None)
            if method is not None:
                method(self)

    def is_save_iteration(self):
        return self.iteration % self.save_interval == 0 or self.iteration == self.total_iters

    def log(self, message):
        """A line of rank 0 (`utils.log`; every rank's with --verbose)."""
        log.info(message, rank=self.rank)


#: the events of the loop (`LoopState.call`): before_train, then per step before_step and after_step (around
#: an evaluation, before_eval and after_eval), and after_train
EVENTS = ("before_train", "before_step", "after_step", "before_eval", "after_eval", "after_train")


class HookBase:
    """A training-loop hook: defines a method for each of the EVENTS it needs, taking the `LoopState`;
    `LoopState.call` passes over a hook without one (as detectron2's `HookBase` has no-op defaults)."""


class StopOnSignal(HookBase):
    """SIGTERM / SIGINT end the run with a message naming the last complete checkpoint; inside
    `deferred()` (checkpoint writes) they wait until the block is done (`signals.StopSignals`)."""

    def __init__(self):
        self.signals = StopSignals()

    def before_train(self, state):
        self.signals.install()

    def after_train(self, state):
        self.signals.restore()

    def deferred(self):
        return self.signals.deferred()

    def exit(self, state):
        """After `Interrupted`: log and raise SystemExit with status 128 + the signal number."""
        state.log("[TRAIN] interrupted by signal {} at iteration {}; last complete checkpoint: {}".format(
            self.signals.sig, state.iteration, state.last_ckpt or "none"))
        raise SystemExit(128 + int(self.signals.sig or 0))


class LRScheduler(HookBase):
    """Records the learning rate the step used (`state.lr`) and advances `scheduler` (a Paddle
    ``LRScheduler``; a constant learning rate, a float, is left alone) once per step."""

    def __init__(self, scheduler):
        self.scheduler = scheduler if isinstance(scheduler, paddle.optimizer.lr.LRScheduler) else None

    def after_step(self, state):
        state.lr = state.optimizer.get_lr()
        if self.scheduler is not None:
            self.scheduler.step()


def format_eta(seconds):
    seconds = int(max(seconds, 0))
    return "{:02d}:{:02d}:{:02d}".format(seconds // 3600, (seconds % 3600) // 60, seconds % 60)


def parameter_checksum(model):
    """sha1 over all parameters and buffers (name, bytes): equal on replicas that hold equal weights."""
    h = hashlib.sha1()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value.numpy()).tobytes())
    return h.hexdigest()


class MetricsLogger(HookBase):
    """Timing and logging: every `log_iters` steps (and at the last) the means over the window of the loss,
    its terms, the batch cost (reading + step) and the reader cost, with throughput and ETA; sets
    `state.averages` for that step. Logs `header` first and the run's duration last; with several ranks
    each rank prints its parameter checksum (the replicas must agree)."""

    def __init__(self, log_iters, images_per_step, header):
        self.log_iters, self.images_per_step, self.header = log_iters, images_per_step, header
        self.window = {"loss": [], "batch": [], "reader": []}
        self.t_start = None

    def before_train(self, state):
        state.log(self.header)
        self.t_start = time.time()

    def after_step(self, state):
        w = self.window
        w["loss"].append(state.loss)
        for k, v in state.terms.items():
            w.setdefault("loss_" + k, []).append(v)
        w["batch"].append(state.reader_cost + state.step_cost)
        w["reader"].append(state.reader_cost)
        state.averages = None
        if state.iteration % self.log_iters and state.iteration != state.total_iters:
            return
        avg = state.averages = {k: float(np.mean(v)) if v else 0.0 for k, v in w.items()}
        for v in w.values():
            v.clear()
        terms = ", ".join("{}: {:.4f}".format(k[5:], v) for k, v in avg.items() if k.startswith("loss_"))
        state.log("[TRAIN] iter: {}/{}, loss: {:.4f} ({}), lr: {:.6g}, batch_cost: {:.4f}s, reader_cost: {:.4f}s, "
                  "ips: {:.2f} samples/s, ETA: {}".format(
                      state.iteration, state.total_iters, avg["loss"], terms, state.lr, avg["batch"], avg["reader"],
                      self.images_per_step / max(avg["batch"], 1e-9),
                      format_eta(avg["batch"] * (state.total_iters - state.iteration))))

    def after_train(self, state):
        if not state.finished:
            return
        state.log("[TRAIN] done: {} iterations in {:.1f}s".format(
            state.iteration - state.start_iter, time.time() - self.t_start))
        if state.nranks > 1:
            # every rank reports, so that users (and tests) can see the replicas agree
            log.info("[TRAIN] rank {} parameter checksum: {}".format(state.rank, parameter_checksum(state.model)),
                     every_rank=True)


class VisualDL(HookBase):
    """Writes the logged averages as ``Train/*`` scalars to `writer` (a VisualDL ``LogWriter``, or None:
    nothing to do) and closes it at the end; `EvalHook` writes the ``Evaluate/*`` ones to the same."""

    def __init__(self, writer):
        self.writer = writer

    def after_step(self, state):
        if self.writer is None or state.averages is None:
            return
        avg, it = state.averages, state.iteration
        self.writer.add_scalar("Train/loss", avg["loss"], it)
        for k, v in avg.items():
            if k.startswith("loss_"):
                self.writer.add_scalar("Train/" + k, v, it)
        self.writer.add_scalar("Train/lr", state.lr, it)
        self.writer.add_scalar("Train/batch_cost", avg["batch"], it)
        self.writer.add_scalar("Train/reader_cost", avg["reader"], it)

    def after_train(self, state):
        if self.writer is not None:
            self.writer.close()


def bn_freeze_settings(cfg, path, total_iters):
    """The config's ``batch_norm:`` block: None, or a namespace with `start`, `end` (iterations) and
    `precise_batches`.

    ``freeze_statistics_at`` (`end`): after this iteration every BatchNorm layer normalises with fixed
    statistics, as evaluation does, and stops updating them. ``blend_from`` (`start`, default: the same):
    after this iteration the statistics are recomputed with the current weights over ``precise_batches``
    training batches (default 10; 0 keeps the running averages) and fixed, and until `end` the layers
    normalise with a blend of the batch's statistics and the fixed ones whose batch share falls linearly
    from 1 to 0, so the network moves to the fixed statistics gradually. Both take an iteration number or
    a fraction of the run's iterations (a number between 0 and 1, e.g. 0.7). See docs/training.md.
    """
    bn = settings(cfg.dic, "batch_norm", path)  # checked by runtime.schema when the config was loaded
    if bn["freeze_statistics_at"] is None:
        return None
    end = to_iterations(bn["freeze_statistics_at"], total_iters)
    start = end if bn["blend_from"] is None else to_iterations(bn["blend_from"], total_iters)
    precise = bn["precise_batches"]
    return types.SimpleNamespace(start=start, end=end, precise_batches=precise)


def precise_batches(dataset, batch_size, seed, rank, nranks, count, iteration):
    """`count` training images [N, 3, H, W] float32 (this rank's share) for `recompute_statistics`, from
    their own sampler so that the training batches, and an exact resume, are not affected."""
    sampler = IterationBatchSampler(len(dataset), batch_size, count, seed=seed + 7919 * iteration, rank=rank,
                                    nranks=nranks, shuffle=True)
    for batch in seeded_loader(dataset, sampler):
        raise_load_error(batch)
        yield to_tensors(batch)["img"]


class BatchNormSchedule(HookBase):
    """The BatchNorm statistics schedule of `settings` (`bn_freeze_settings`, or None: statistics train
    throughout): before step ``start + 1`` the statistics are recomputed over ``batches(iteration)`` (an
    iterable of input tensors) and fixed, steps ``start + 1 .. end`` blend batch and fixed statistics
    (`StatisticsBlend`, batch share falling linearly from 1 to 0), later steps use the fixed ones alone.
    Evaluation (eval mode) normalises with the fixed statistics. With `merge_ranks` (several CPU
    processes, no SyncBatchNorm) the ranks' statistics are merged before each save and evaluation."""

    def __init__(self, settings, batches=None, merge_ranks=False):
        self.bn, self.batches, self.merge_ranks = settings, batches, merge_ranks
        self.fixed, self.blend = False, None

    def before_train(self, state):
        bn = self.bn
        if bn is not None:
            state.log("[TRAIN] BatchNorm statistics: batch statistics blended out over iterations {}-{}, frozen "
                      "after".format(bn.start + 1, bn.end) if bn.end > bn.start else
                      "[TRAIN] BatchNorm statistics frozen after iteration {}".format(bn.end))

    def before_step(self, state):
        bn, it = self.bn, state.iteration
        if bn is None or it <= bn.start:
            return
        if not self.fixed:
            if it == bn.start + 1:
                # statistics of the current weights (the running averages lag them), the same on every rank
                used = recompute_statistics(state.model, self.batches(it))
                if state.nranks > 1:
                    merge_rank_statistics(state.model)
                state.log("[TRAIN] iteration {}: BatchNorm statistics recomputed over {} batch(es) and "
                          "fixed".format(it, used))
            self.fixed = True
            if it <= bn.end:
                self.blend = StatisticsBlend(state.model)
        if self.blend is not None and it > bn.end:
            self.blend.remove()
            self.blend = None
        if self.blend is not None:
            self.blend.alpha = (bn.end - it + 1) / float(bn.end - bn.start)
        freeze_statistics(state.model)  # again after each evaluation's model.train()

    def after_step(self, state):
        if self.merge_ranks and state.is_save_iteration():
            merge_rank_statistics(state.model)


class Checkpointer(HookBase):
    """Rank 0 writes ``<save_dir>/iter_<N>/`` at each save iteration (a stop signal waits until it is
    complete, `signals`), keeps the newest `keep_max`, and records it in `state.last_ckpt`; `meta` is
    stored with the best PQ. `resume` loads a checkpoint into the state, model and optimizer."""

    def __init__(self, save_dir, keep_max, signals, meta):
        self.save_dir, self.keep_max, self.signals, self.meta = save_dir, keep_max, signals, meta

    def resume(self, state, resume_model):
        path = state.last_ckpt = ckpt.resolve_resume_path(resume_model)
        saved = ckpt.load_checkpoint(path, state.model, state.optimizer)
        state.start_iter = state.iteration = int(saved["iteration"])
        state.best_pq, state.best_iter = float(saved.get("best_pq", -1.0)), int(saved.get("best_iter", -1))
        state.log("[TRAIN] resumed from {} at iteration {}".format(path, state.iteration))
        if state.iteration >= state.total_iters:
            state.log("[TRAIN] nothing to do: checkpoint iteration {} >= iters {}".format(
                state.iteration, state.total_iters))

    def after_step(self, state):
        if state.is_save_iteration():
            self.save(state)

    def save(self, state):
        if state.rank != 0:
            return
        with self.signals.deferred():
            meta = dict(self.meta, best_pq=state.best_pq, best_iter=state.best_iter)
            state.last_ckpt = ckpt.save_checkpoint(self.save_dir, state.iteration, state.model, state.optimizer, meta)
            ckpt.prune_checkpoints(self.save_dir, self.keep_max, protect=(state.last_ckpt,))
            state.log("[TRAIN] saved {}".format(state.last_ckpt))


class EvalHook(HookBase):
    """At each save iteration: ``run_eval(step=iteration)`` (every rank; the metrics dict of
    `core.val.evaluate`) into `state.metrics`, and, when its PQ beats the best so far, rank 0 writes
    ``<save_dir>/best_model/``. If the evaluation fails, the checkpoint is written first."""

    def __init__(self, run_eval, save_dir, checkpointer, signals):
        self.run_eval, self.save_dir, self.checkpointer, self.signals = run_eval, save_dir, checkpointer, signals

    def after_step(self, state):
        if not state.is_save_iteration():
            return
        it = state.iteration
        state.call("before_eval")
        try:
            state.metrics = self.run_eval(step=it)
        except Exception as e:
            # e.g. an unreadable val image: keep the iterations trained since the last save
            if not isinstance(e, Interrupted):
                state.log("[TRAIN] evaluation at iteration {} failed; saving first".format(it))
                self.checkpointer.save(state)
            raise
        finally:
            state.model.train()
            state.call("after_eval")
        pq = float(state.metrics["panoptic"]["All"]["pq"])
        if pq > state.best_pq:
            state.best_pq, state.best_iter = pq, it
            if state.rank == 0:
                with self.signals.deferred():
                    ckpt.save_best_model(self.save_dir, state.model, {"iteration": it, "pq": pq})
        state.log("[EVAL] iter {}: PQ {:.2f}; best PQ {:.2f} at iter {}".format(
            it, 100 * pq, 100 * state.best_pq, state.best_iter))
