"""Interrupted and distributed runs lose nothing: SIGTERM / SIGINT during a checkpoint write let the write
finish; kill -9 during a write leaves only complete iter_N folders and resume continues from the last
one; signals at random times never leave a broken checkpoint; keep_checkpoint_max keeps the newest and
the best model; a fresh run refuses to overwrite an earlier run; predict over 2 ranks writes each
image exactly once. The training runs are the real train.py in subprocesses."""
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from paddleseg_ext.core import checkpoint as ckpt
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.utils import UserInputError, read_panoptic_png
from test_predict import CONTRIB, ROOT, make_config_and_weights, val_images

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
def setup(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability_interrupts")
    cfg, weights = make_config_and_weights(demo_root, str(out))
    slow = out / "slow_train.py"
    slow.write_text(SLOW_TRAIN)
    return {"cfg": cfg, "weights": weights, "root": demo_root, "tmp": str(out), "slow": str(slow)}


def _env(markers=None, seconds=1.5):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["TRAIN_SCRIPT"] = TRAIN
    if markers:
        env["SLOW_SAVE_MARKERS"] = markers
        env["SLOW_SAVE_SECONDS"] = str(seconds)
    return env


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


def _wait_for(pattern, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = glob.glob(pattern)
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError("training ended before {} appeared:\n{}".format(pattern, proc.stdout.read()))
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for " + pattern)


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_signals_at_random_times_never_break_a_checkpoint(setup, tmp_path):
    save, markers = str(tmp_path / "out"), str(tmp_path / "markers")
    os.makedirs(markers)
    rng = random.Random(2024)
    total, keep = 14, 2
    for trial in range(4):
        extra = ["--save_interval", "1", "--keep_checkpoint_max", str(keep)]
        if ckpt.list_checkpoints(save):
            extra += ["--resume_model", save]
        p = _start(setup, _train_args(setup, save, total, *extra), markers=markers, seconds=0.2)
        time.sleep(rng.uniform(2.0, 5.0))
        sig = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
        p.send_signal(sig)
        out, _ = p.communicate(timeout=60)
        done = assert_checkpoints_complete(save)
        print("trial {}: signal {} -> exit {}, checkpoints {}".format(trial, int(sig), p.returncode, done))
        # at most keep_checkpoint_max, plus the one being written when a kill -9 came during pruning
        assert len(done) <= keep + 1, (trial, sig, done)
        if "[TRAIN] interrupted by signal" in out and done:  # (not when the signal came during start-up)
            assert "last complete checkpoint: {}".format(os.path.join(save, "iter_{}".format(done[-1]))) in out
    rc, out = _run(setup, _train_args(setup, save, total, "--save_interval", "1", "--keep_checkpoint_max",
                                      str(keep), "--resume_model", save))
    assert rc == 0, out
    assert assert_checkpoints_complete(save) == [total - 1, total]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_") or ".old_" in n]


@pytest.mark.slow
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


# ---------------------------------------------------------------- checkpoint helpers, in process

def _tiny():
    paddle.seed(0)
    model = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Adam(learning_rate=0.1, parameters=model.parameters())
    model(paddle.ones([1, 3])).sum().backward()
    opt.step()
    return model, opt


def test_prune_never_deletes_the_checkpoint_just_written(tmp_path):
    model, opt = _tiny()
    save = str(tmp_path)
    for it in (10, 20, 50, 60):
        ckpt.save_checkpoint(save, it, model, opt, {})
    # a run resumed from iter_20 writes iter_30 while the older timeline's 50 and 60 are still there
    new = ckpt.save_checkpoint(save, 30, model, opt, {})
    removed = ckpt.prune_checkpoints(save, 2, protect=(new,))
    assert sorted(os.path.basename(p) for p in removed) == ["iter_10", "iter_20"]
    assert [n for n, _ in ckpt.list_checkpoints(save)] == [30, 50, 60]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_")]


def test_stale_files_after_a_kill_are_cleaned_and_moved_checkpoints_restored(tmp_path):
    model, opt = _tiny()
    save = str(tmp_path)
    ckpt.save_checkpoint(save, 5, model, opt, {"best_pq": 0.5})
    # killed while re-saving iteration 5: the complete old folder was moved aside, the new one not in place
    os.rename(os.path.join(save, "iter_5"), os.path.join(save, "iter_5.old_4321"))
    os.makedirs(os.path.join(save, ".tmp_iter_5_4321"))
    # killed while pruning, and while replacing the best model
    os.makedirs(os.path.join(save, ".tmp_pruned_iter_1"))
    os.makedirs(os.path.join(save, "best_model"))
    open(os.path.join(save, "best_model", "model.pdparams"), "wb").write(b"previous best")
    open(os.path.join(save, "best_model", ".tmp_model.pdparams.4321"), "wb").write(b"half")
    ckpt.remove_stale_tmp(save)
    assert sorted(os.listdir(save)) == ["best_model", "iter_5"]
    assert os.listdir(os.path.join(save, "best_model")) == ["model.pdparams"]
    assert ckpt.load_checkpoint(os.path.join(save, "iter_5"), *_tiny())["best_pq"] == 0.5


def test_failed_checkpoint_write_is_a_clear_error_and_keeps_the_previous(tmp_path, monkeypatch):
    model, opt = _tiny()
    save = str(tmp_path)
    ckpt.save_checkpoint(save, 5, model, opt, {})
    before = open(os.path.join(save, "iter_5", "model.pdparams"), "rb").read()
    real_save = ckpt._save_tensor_file

    def disk_full(obj, path):
        if path.endswith(".pdopt"):
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(ckpt, "_save_tensor_file", disk_full)
    with pytest.raises(UserInputError, match=r"cannot write checkpoint .*iter_10: No space left on device"):
        ckpt.save_checkpoint(save, 10, model, opt, {})
    assert sorted(os.listdir(save)) == ["iter_5"]
    assert open(os.path.join(save, "iter_5", "model.pdparams"), "rb").read() == before


def test_fresh_run_refuses_to_overwrite_an_earlier_run(setup, tmp_path, capfd):
    from paddleseg_ext.core.train import train

    model, opt = _tiny()
    for case in ("checkpoint", "best_model"):
        save = str(tmp_path / case)
        if case == "checkpoint":
            ckpt.save_checkpoint(save, 8, model, opt, {})
        else:
            ckpt.save_best_model(save, model, {"iteration": 8, "pq": 0.3})
        files = {p: open(p, "rb").read() for p in glob.glob(os.path.join(save, "*", "*"))}

        def main(argv):
            train(setup["cfg"], iters=2, batch_size=1, save_dir=save, device="cpu")

        capfd.readouterr()
        assert run_cli(main) == 2
        err = capfd.readouterr().err
        line = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(line) == 1 and "Traceback" not in err
        assert save in line[0] and "--resume_model" in line[0]
        assert ("iter_8" if case == "checkpoint" else "best_model") in line[0]
        assert {p: open(p, "rb").read() for p in glob.glob(os.path.join(save, "*", "*"))} == files


# ---------------------------------------------------------------- distributed prediction

@pytest.mark.slow
def test_two_rank_prediction_writes_each_image_once(setup, tmp_path):
    from paddleseg_ext.core import predict as predict_mod

    src = tmp_path / "in"
    src.mkdir()
    for p in val_images(setup["root"])[:3]:  # 3 images over 2 ranks: an uneven split
        shutil.copy(p, src / os.path.basename(p))
    two, one, logs = tmp_path / "two", tmp_path / "one", tmp_path / "logs"
    args = ["--config", setup["cfg"], "--model_path", setup["weights"], "--image_path", str(src), "--device", "cpu",
            "--threshold", "0.0"]
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(logs),
           os.path.join(CONTRIB, "predict.py")] + args + ["--save_dir", str(two)]
    p = subprocess.run(cmd, cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=300)
    log0, log1 = (open(str(logs / "workerlog.{}".format(r))).read() for r in (0, 1))
    assert p.returncode == 0, p.stdout + p.stderr + log0 + log1
    # rank 0 takes images 0 and 2, rank 1 image 1
    assert "saved the results of 2 image(s) of rank 0" in log0
    assert "saved the results of 1 image(s) of rank 1" in log1
    assert run_cli(predict_mod.main, args + ["--save_dir", str(one)]) == 0
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(str(src)))
    expected = sorted(s + suffix for s in stems for suffix in predict_mod.OUTPUT_SUFFIXES.values())
    assert sorted(os.listdir(str(two))) == expected
    for s in stems:
        a = read_panoptic_png(str(two / (s + "_panoptic_raw.png")))
        b = read_panoptic_png(str(one / (s + "_panoptic_raw.png")))
        np.testing.assert_array_equal(a, b)
        for suffix in ("_panoptic.png", "_semantic.png", "_instance.png"):
            assert hashlib.sha1((two / (s + suffix)).read_bytes()).digest() == \
                hashlib.sha1((one / (s + suffix)).read_bytes()).digest()
