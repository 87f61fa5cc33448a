"""The training loop's hooks (`core.hooks`), each on its own with tiny real layers and optimizers: the
calling order, learning rate, logging with ETA, VisualDL scalars, the BatchNorm statistics schedule
(recompute, blend, freeze, pause for evaluation, resume inside the blend), checkpoints with pruning and
resume, evaluation with best-model tracking, stop signals."""
import json
import os
import signal

import numpy as np
import paddle
import pytest
from visualdl import LogReader, LogWriter

from paddleseg_ext.core.hooks import (EVENTS, BatchNormSchedule, Checkpointer, EvalHook, HookBase, LoopState,
                                      LRScheduler, MetricsLogger, StopOnSignal, VisualDL)
from paddleseg_ext.core.signals import Interrupted
from tests.core.conftest import tiny_model_and_optimizer




class Recorder(HookBase):
    """Appends (name, event, iteration) to a shared list for every event."""

    def __init__(self, name, events):
        self.name, self.events = name, events


for _event in EVENTS:
    setattr(Recorder, _event, (lambda e: lambda self, state: self.events.append((self.name, e, state.iteration)))(_event))


def _state(total_iters=5, save_interval=2, **kw):
    model, opt = tiny_model_and_optimizer()
    return LoopState(model, opt, total_iters, save_interval, **kw)


def test_hooks_are_called_in_list_order_and_save_iterations_are_the_interval_and_the_end():
    events = []
    state = _state(total_iters=5, save_interval=2)
    state.hooks = [Recorder("a", events), Recorder("b", events)]
    state.iteration = 3
    state.call("after_step")
    assert events == [("a", "after_step", 3), ("b", "after_step", 3)]
    saves = []
    for it in range(1, 6):
        state.iteration = it
        saves.append(state.is_save_iteration())
    assert saves == [False, True, False, True, True]


def test_a_hook_without_an_event_method_is_passed_over_and_unknown_events_are_refused():
    class AfterStepOnly(HookBase):
        def after_step(self, state):
            events.append(("only", state.iteration))

    events = []
    state = _state()
    state.hooks = [AfterStepOnly(), Recorder("r", events)]
    for event in EVENTS:
        state.call(event)
    assert events == [("r", "before_train", 0), ("r", "before_step", 0), ("only", 0), ("r", "after_step", 0),
                      ("r", "before_eval", 0), ("r", "after_eval", 0), ("r", "after_train", 0)]
    with pytest.raises(ValueError, match="before_stop"):
        state.call("before_stop")


def test_lr_scheduler_records_the_rate_of_the_step_then_advances():
    state = _state()
    sched = state.optimizer._learning_rate  # PolynomialDecay(0.1, 10), one step taken
    rates = []
    hook = LRScheduler(sched)
    for _ in range(3):
        before = sched.get_lr()
        hook.after_step(state)
        rates.append(state.lr)
        assert state.lr == before and sched.get_lr() < before
    assert sched.last_epoch == 4 and rates == sorted(rates, reverse=True)
    # a constant learning rate (a float) is read, nothing to advance
    model = paddle.nn.Linear(2, 2)
    const = LoopState(model, paddle.optimizer.SGD(0.25, parameters=model.parameters()), 5, 2)
    LRScheduler(0.25).after_step(const)
    assert const.lr == 0.25


def test_metrics_logger_averages_the_window_and_logs_eta(capsys):
    state = _state(total_iters=5)
    hook = MetricsLogger(log_iters=2, images_per_step=8, header="[TRAIN] header")
    hook.before_train(state)
    logged = []
    for it, (loss, reader, step) in enumerate([(1.0, 0.1, 0.9), (3.0, 0.3, 1.7), (5.0, 0.0, 1.0),
                                               (7.0, 0.0, 1.0), (9.0, 0.5, 0.5)], start=1):
        state.iteration, state.loss, state.terms = it, loss, {"a": loss / 2, "b": loss / 2}
        state.reader_cost, state.step_cost, state.lr = reader, step, 0.01 * it
        hook.after_step(state)
        logged.append(state.averages)
    assert [a is not None for a in logged] == [False, True, False, True, True]  # every 2nd and the last
    assert logged[1] == pytest.approx({"loss": 2.0, "loss_a": 1.0, "loss_b": 1.0, "batch": 1.5, "reader": 0.2})
    assert logged[4] == pytest.approx({"loss": 9.0, "loss_a": 4.5, "loss_b": 4.5, "batch": 1.0, "reader": 0.5})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[TRAIN] header"
    # 8 images / 1.5 s; 3 iterations left at 1.5 s each
    assert out[1] == ("[TRAIN] iter: 2/5, loss: 2.0000 (a: 1.0000, b: 1.0000), lr: 0.02, batch_cost: 1.5000s, "
                      "reader_cost: 0.2000s, ips: 5.33 samples/s, ETA: 00:00:04")
    assert out[3].startswith("[TRAIN] iter: 5/5, loss: 9.0000") and out[3].endswith("ETA: 00:00:00")
    hook.after_train(state)  # an interrupted or failed run: no summary
    assert capsys.readouterr().out == ""
    state.finished = True
    hook.after_train(state)
    assert capsys.readouterr().out.startswith("[TRAIN] done: 5 iterations in ")
    state.rank = 1  # other ranks log nothing (one rank: no checksum line)
    hook.after_step(state)
    hook.after_train(state)
    assert capsys.readouterr().out == ""


def test_visualdl_writes_the_logged_averages(tmp_path):
    state = _state(total_iters=4)
    hook = VisualDL(LogWriter(str(tmp_path)))
    for it in range(1, 5):
        state.iteration, state.lr = it, 0.5 / it
        state.averages = None if it % 2 else {"loss": float(it), "loss_x": it / 2.0, "batch": 1.0, "reader": 0.25}
        hook.after_step(state)
    hook.after_train(state)
    VisualDL(None).after_step(state)  # no writer (VisualDL off, or not rank 0): nothing to do
    reader = LogReader(file_path=str(tmp_path / [f for f in os.listdir(tmp_path) if f.startswith("vdlrecords")][0]))
    read = {tag: [(r.id, r.value) for r in reader.get_data("scalar", tag)]
            for tag in ("Train/loss", "Train/loss_x", "Train/lr", "Train/batch_cost", "Train/reader_cost")}
    assert read["Train/loss"] == [(2, 2.0), (4, 4.0)]
    assert read["Train/loss_x"] == [(2, 1.0), (4, 2.0)]
    assert [i for i, _ in read["Train/lr"]] == [2, 4]
    np.testing.assert_allclose([v for _, v in read["Train/lr"]], [0.25, 0.125])
    assert read["Train/reader_cost"] == [(2, 0.25), (4, 0.25)]


def _bn_model():
    paddle.seed(1)
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 1), paddle.nn.BatchNorm2D(4))


def _stats(model):
    return model[1]._mean.numpy().copy(), model[1]._variance.numpy().copy()


@pytest.mark.filterwarnings("ignore:When training, we now always track")  # Paddle's note on train-mode BatchNorm
def test_batch_norm_schedule_recomputes_blends_and_freezes():
    model = _bn_model()
    opt = paddle.optimizer.SGD(0.1, parameters=model.parameters())
    state = LoopState(model, opt, 6, 10)
    rng = np.random.RandomState(0)
    precise = [paddle.to_tensor(rng.normal(3.0, 2.0, (2, 3, 4, 4)).astype("float32")) for _ in range(2)]
    asked = []

    def batches(iteration):
        asked.append(iteration)
        return iter(precise)

    settings = type("S", (), {"start": 2, "end": 4, "precise_batches": 2})
    hook = BatchNormSchedule(settings, batches)
    model.train()
    seen = {}
    for it in range(1, 7):
        state.iteration = it
        before = _stats(model)
        hook.before_step(state)
        seen[it] = (type(model[1]).__name__, model[1].training, hook.blend.alpha if hook.blend else None,
                    _stats(model))
        model(paddle.to_tensor(rng.normal(size=(2, 3, 4, 4)).astype("float32")))
        if it <= 2:  # statistics still train
            assert not np.allclose(before[0], _stats(model)[0])
    assert asked == [3]
    # blending layers (train mode: they blend) during the blend, the original layers frozen after it
    assert [seen[i][:3] for i in range(1, 7)] == [
        ("BatchNorm2D", True, None), ("BatchNorm2D", True, None), ("BlendBatchNorm", True, 1.0),
        ("BlendBatchNorm", True, 0.5), ("BatchNorm2D", False, None), ("BatchNorm2D", False, None)]
    # recomputed before step 3: statistics of the conv outputs of both batches together, then fixed
    with paddle.no_grad():
        feats = np.stack([model[0](x).numpy().astype("float64") for x in precise])  # weights unchanged (no step)
    means = feats.mean(axis=(1, 3, 4))
    variances = feats.var(axis=(1, 3, 4))
    np.testing.assert_allclose(seen[3][3][0], means.mean(0), rtol=1e-5)
    np.testing.assert_allclose(seen[3][3][1], variances.mean(0) + means.var(0), rtol=1e-5)
    for i in (4, 5, 6):
        np.testing.assert_array_equal(seen[i][3][0], seen[3][3][0])
        np.testing.assert_array_equal(_stats(model)[1], seen[3][3][1])


def test_batch_norm_schedule_resumed_inside_the_blend_keeps_the_saved_statistics():
    model = _bn_model()
    state = LoopState(model, paddle.optimizer.SGD(0.1, parameters=model.parameters()), 6, 10)
    stats = _stats(model)

    def batches(iteration):
        raise AssertionError("a resumed run must not recompute the statistics")

    hook = BatchNormSchedule(type("S", (), {"start": 2, "end": 6, "precise_batches": 2}), batches)
    model.train()
    state.iteration = 4  # resumed at iteration 3
    hook.before_step(state)
    assert hook.blend.alpha == pytest.approx(0.75) and type(model[1]).__name__ == "BlendBatchNorm"
    model(paddle.ones([1, 3, 2, 2]))
    np.testing.assert_array_equal(_stats(model)[0], stats[0])
    # no schedule: the statistics train throughout
    model.train()
    off = BatchNormSchedule(None)
    off.before_train(state)
    off.before_step(state)
    assert off.blend is None and model[1].training


def test_checkpointer_saves_at_save_iterations_prunes_and_resumes(tmp_path, capsys):
    save = str(tmp_path)
    state = _state(total_iters=5, save_interval=2)
    hook = Checkpointer(save, 2, StopOnSignal(), {"seed": 7})
    for it in range(1, 6):
        state.iteration, state.best_pq, state.best_iter = it, 0.1 * it, it
        hook.after_step(state)
    assert sorted(os.listdir(save)) == ["iter_4", "iter_5"]  # iter_2 pruned (keep 2)
    assert state.last_ckpt == os.path.join(save, "iter_5")
    meta = json.load(open(os.path.join(save, "iter_5", "train_state.json")))
    assert meta == {"seed": 7, "best_pq": pytest.approx(0.5), "best_iter": 5, "iteration": 5}
    assert "[TRAIN] saved {}".format(state.last_ckpt) in capsys.readouterr().out

    other = _state(total_iters=5, save_interval=2, rank=1)
    other.iteration = 2
    Checkpointer(str(tmp_path / "r1"), 2, StopOnSignal(), {}).after_step(other)  # only rank 0 writes
    assert not os.path.exists(str(tmp_path / "r1"))

    model = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.PolynomialDecay(0.1, 10),
                                parameters=model.parameters())
    fresh = LoopState(model, opt, 5, 2)
    hook.resume(fresh, save)
    assert (fresh.iteration, fresh.start_iter, fresh.best_iter) == (5, 5, 5)
    assert fresh.best_pq == pytest.approx(0.5) and fresh.last_ckpt.endswith("iter_5")
    np.testing.assert_array_equal(model.weight.numpy(), state.model.weight.numpy())
    assert "nothing to do" in capsys.readouterr().out


def test_eval_hook_keeps_the_best_model_and_saves_before_a_failed_evaluation(tmp_path):
    save = str(tmp_path)
    events = []
    state = _state(total_iters=6, save_interval=2)
    signals = StopOnSignal()
    checkpointer = Checkpointer(save, 5, signals, {})
    pqs = {2: 0.2, 4: 0.5, 6: 0.3}

    def run_eval(step):
        state.model.eval()  # as `core.val.evaluate` leaves it
        if step not in pqs:
            raise OSError("val image unreadable")
        return {"panoptic": {"All": {"pq": pqs[step]}}}

    hook = EvalHook(run_eval, save, checkpointer, signals)
    state.hooks = [Recorder("r", events), hook]
    for it in range(1, 7):
        state.iteration = it
        with paddle.no_grad():
            state.model.weight.set_value(paddle.full_like(state.model.weight, float(it)))
        state.model.train()
        hook.after_step(state)
        assert state.model.training
    assert [e for e in events if e[1].endswith("_eval")] == [("r", e, i) for i in (2, 4, 6)
                                                             for e in ("before_eval", "after_eval")]
    assert (state.best_pq, state.best_iter) == (0.5, 4) and state.metrics["panoptic"]["All"]["pq"] == 0.3
    best = paddle.load(os.path.join(save, "best_model", "model.pdparams"))
    assert float(best["weight"].numpy().max()) == 4.0
    assert json.load(open(os.path.join(save, "best_model", "best_state.json"))) == {"iteration": 4, "pq": 0.5}
    assert not os.path.exists(os.path.join(save, "iter_4"))  # writing checkpoints is the Checkpointer's

    state.iteration, state.total_iters = 8, 8
    with pytest.raises(OSError, match="unreadable"):
        hook.after_step(state)
    assert os.path.isfile(os.path.join(save, "iter_8", "model.pdparams")) and state.model.training


def test_stop_on_signal_waits_for_deferred_writes_then_exits(capsys):
    previous = signal.getsignal(signal.SIGTERM)
    hook = StopOnSignal()
    state = _state()
    state.iteration, state.last_ckpt = 3, "out/iter_2"
    hook.before_train(state)
    try:
        with pytest.raises(Interrupted):
            with hook.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                finished_write = True  # the signal did not interrupt the block
        assert finished_write
        with pytest.raises(SystemExit) as e:
            hook.exit(state)
        assert e.value.code == 128 + signal.SIGTERM
        assert "interrupted by signal {} at iteration 3; last complete checkpoint: out/iter_2".format(
            int(signal.SIGTERM)) in capsys.readouterr().out
    finally:
        hook.after_train(state)
    assert signal.getsignal(signal.SIGTERM) == previous
