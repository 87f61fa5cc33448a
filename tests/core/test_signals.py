"""Interrupted runs lose nothing (`core.signals`, `core.checkpoint` through train.py): SIGTERM / SIGINT
during a checkpoint write let the write finish; kill -9 during a write leaves only complete iter_N
folders and resume continues from the last one; signals at random times never leave a broken
checkpoint; keep_checkpoint_max keeps the newest and the best model. The training runs are the real
train.py in subprocesses."""
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from paddleseg_ext.core import checkpoint as ckpt
from tests.conftest import CONTRIB, script_env

pytestmark = pytest.mark.slow

TRAIN = os.path.join(CONTRIB, "train.py")

# train.py with checkpoint writes slowed down: after each tensor file of a checkpoint is written, a marker
# file named after the (temporary) folder appears in $SLOW_SAVE_MARKERS, then the write pauses.
SLOW_TRAIN = r'''
import os, runpy, sys, time
from paddleseg_ext.core import checkpoint

_save = checkpoint._save_tensor_file


def slow_save(obj, path):
    _save(obj, path)
    folder = os.path.basename(os.path.dirname(path))
    open(os.path.join(os.environ["SLOW_SAVE_MARKERS"], folder + "." + os.path.basename(path)), "w").close()
    time.sleep(float(os.environ["SLOW_SAVE_SECONDS"]))


checkpoint._save_tensor_file = slow_save
sys.argv = [os.environ["TRAIN_SCRIPT"]] + sys.argv[1:]
runpy.run_path(os.environ["TRAIN_SCRIPT"], run_name="__main__")
'''


@pytest.fixture(scope="module")
def setup(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("signals")
    slow = out / "slow_train.py"
    slow.write_text(SLOW_TRAIN)
    return {"cfg": demo.cfg, "tmp": str(out), "slow": str(slow)}


def _env(markers=None, seconds=1.5):
    if markers:
        return script_env(TRAIN_SCRIPT=TRAIN, SLOW_SAVE_MARKERS=markers, SLOW_SAVE_SECONDS=seconds)
    return script_env(TRAIN_SCRIPT=TRAIN)


def _train_args(setup, save, iters, *extra):
    return ["--config", setup["cfg"], "--save_dir", save, "--iters", str(iters), "--batch_size", "1",
            "--device", "cpu", "--log_iters", "1"] + list(extra)


def _start(setup, args, markers=None, seconds=1.5):
    script = setup["slow"] if markers else TRAIN
    return subprocess.Popen([sys.executable, script] + args, cwd=setup["tmp"], env=_env(markers, seconds),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(setup, args, timeout=180):
    p = _start(setup, args)
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def _wait_until(condition, proc, what="the condition", timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError("training ended before {}:\n{}".format(what, proc.stdout.read()))
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for " + what)


def _wait_for(pattern, proc, timeout=120):
    return _wait_until(lambda: glob.glob(pattern), proc, pattern + " appeared", timeout)


def assert_checkpoints_complete(save):
    """Every iter_<N> folder holds loadable weights, optimizer state and train_state.json of iteration N;
    returns the iterations."""
    iters = []
    for path in glob.glob(os.path.join(save, "iter_*")):
        m = re.match(r"^iter_(\d+)$", os.path.basename(path))
        assert m, "unexpected folder {}".format(path)
        n = int(m.group(1))
        assert sorted(os.listdir(path)) == ["model.pdopt", "model.pdparams", "train_state.json"], path
        weights = paddle.load(os.path.join(path, "model.pdparams"))
        assert len(weights) > 100 and all(np.isfinite(v.numpy()).all() for v in weights.values())
        assert len(paddle.load(os.path.join(path, "model.pdopt"))) > 0
        with open(os.path.join(path, "train_state.json")) as f:
            assert json.load(f)["iteration"] == n
        iters.append(n)
    return sorted(iters)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_checkpoint_write_lets_it_finish(setup, tmp_path, sig):
    save, markers = str(tmp_path / "out"), str(tmp_path / "markers")
    os.makedirs(markers)
    p = _start(setup, _train_args(setup, save, 6, "--save_interval", "2"), markers=markers)
    # model.pdparams of iteration 2 is written, model.pdopt not yet
    _wait_for(os.path.join(markers, ".tmp_iter_2_*.model.pdparams"), p)
    assert not os.path.exists(os.path.join(save, "iter_2"))
    p.send_signal(sig)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + int(sig), out
    assert "Traceback" not in out
    assert "interrupted by signal {} at iteration 2; last complete checkpoint: {}".format(
        int(sig), os.path.join(save, "iter_2")) in out
    assert assert_checkpoints_complete(save) == [2]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_process_group_with_loader_workers(setup, tmp_path, sig):
    """Ctrl-C / a scheduler's SIGTERM reach the DataLoader workers too: still one clean stop, no
    traceback, no process left behind."""
    save = str(tmp_path / "out")
    p = subprocess.Popen([sys.executable, TRAIN] + _train_args(setup, save, 200, "--save_interval", "2",
                                                               "--num_workers", "2"),
                         cwd=setup["tmp"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    _wait_for(os.path.join(save, "iter_4"), p)
    os.killpg(p.pid, sig)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + int(sig), out
    assert "Traceback" not in out and "interrupted by signal {}".format(int(sig)) in out
    last = assert_checkpoints_complete(save)[-1]
    assert "last complete checkpoint: {}".format(os.path.join(save, "iter_{}".format(last))) in out
    deadline = time.time() + 20
    while True:  # the workers are gone too
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        if time.time() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            raise AssertionError("DataLoader workers outlived the training process")
        time.sleep(0.1)


def test_kill_during_checkpoint_write_then_resume(setup, tmp_path):
    save, markers = str(tmp_path / "out"), str(tmp_path / "markers")
    os.makedirs(markers)
    p = _start(setup, _train_args(setup, save, 6, "--save_interval", "2"), markers=markers)
    _wait_for(os.path.join(markers, ".tmp_iter_4_*.model.pdparams"), p)
    p.kill()
    p.communicate(timeout=60)
    # iteration 4 was half-written: only its temporary folder exists
    assert glob.glob(os.path.join(save, ".tmp_iter_4_*", "model.pdparams"))
    assert not glob.glob(os.path.join(save, ".tmp_iter_4_*", "model.pdopt"))
    assert assert_checkpoints_complete(save) == [2]
    rc, out = _run(setup, _train_args(setup, save, 6, "--save_interval", "2", "--resume_model", save))
    assert rc == 0, out
    assert "resumed from {} at iteration 2".format(os.path.join(save, "iter_2")) in out
    assert assert_checkpoints_complete(save) == [2, 4, 6]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_")]


def test_signals_at_random_times_never_break_a_checkpoint(setup, tmp_path):
    save, markers = str(tmp_path / "out"), str(tmp_path / "markers")
    os.makedirs(markers)
    rng = random.Random(2024)
    total, keep = 14, 2
    for trial in range(4):
        extra = ["--save_interval", "1", "--keep_checkpoint_max", str(keep)]
        if ckpt.list_checkpoints(save):
            extra += ["--resume_model", save]
        before = len(os.listdir(markers))
        p = _start(setup, _train_args(setup, save, total, *extra), markers=markers, seconds=0.2)
        # random times counted from the first checkpoint write, not from launch: start-up time differs
        # between machines (on a slow one, a fixed delay can fall before training begins in every trial)
        _wait_until(lambda: len(os.listdir(markers)) > before, p)
        time.sleep(rng.uniform(0.0, 2.0))
        sig = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
        p.send_signal(sig)
        out, _ = p.communicate(timeout=60)
        done = assert_checkpoints_complete(save)
        print("trial {}: signal {} -> exit {}, checkpoints {}".format(trial, int(sig), p.returncode, done))
        # at most keep_checkpoint_max, plus the one being written when a kill -9 came during pruning
        assert len(done) <= keep + 1, (trial, sig, done)
        if "[TRAIN] interrupted by signal" in out and done:  # (not when the signal came during start-up)
            assert "last complete checkpoint: {}".format(os.path.join(save, "iter_{}".format(done[-1]))) in out
    resume = ["--resume_model", save] if ckpt.list_checkpoints(save) else []
    rc, out = _run(setup, _train_args(setup, save, total, "--save_interval", "1", "--keep_checkpoint_max",
                                      str(keep), *resume))
    assert rc == 0, out
    assert assert_checkpoints_complete(save) == [total - 1, total]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_") or ".old_" in n]


def test_keep_checkpoint_max_keeps_newest_and_best(setup, tmp_path):
    save = str(tmp_path / "out")
    rc, out = _run(setup, _train_args(setup, save, 4, "--save_interval", "1", "--keep_checkpoint_max", "1",
                                      "--do_eval", "--max_eval_images", "1"))
    assert rc == 0, out
    assert assert_checkpoints_complete(save) == [4]
    best_iter = int(re.findall(r"best PQ [0-9.]+ at iter (\d+)", out)[-1])
    with open(os.path.join(save, "best_model", "best_state.json")) as f:
        assert json.load(f)["iteration"] == best_iter
    assert len(paddle.load(os.path.join(save, "best_model", "model.pdparams"))) > 100
    assert sorted(os.listdir(os.path.join(save, "best_model"))) == ["best_state.json", "model.pdparams"]
