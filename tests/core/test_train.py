"""The training loop (`core.train`): train.py end to end on the demo dataset (2-process gloo training,
exact resume after kill -9, VisualDL scalars, divergence stop) in subprocesses, and the refusal to
overwrite an earlier run."""
import dataclasses
import glob
import os
import re
import signal
import subprocess
import time

import numpy as np
import paddle
import pytest
from visualdl import LogReader

from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.core import checkpoint as ckpt
from paddleseg_ext.cli.train import build_parser
from paddleseg_ext.core.train import TrainOptions, train
from tests.conftest import CONTRIB, DEMO_CONFIG, run_script, script_command, script_env
from tests.core.conftest import tiny_model_and_optimizer

TRAIN = os.path.join(CONTRIB, "train.py")


@pytest.fixture(scope="module")
def workdir(demo_root, tmp_path_factory):
    """A folder laid out like contrib/PanopticDeepLab/ (data/demo_cityscapes -> the generated dataset)."""
    wd = tmp_path_factory.mktemp("wd")
    os.makedirs(wd / "data")
    os.symlink(demo_root, wd / "data" / "demo_cityscapes")
    return str(wd)


def _train_args(save_dir, *extra):
    return ["--config", DEMO_CONFIG, "--save_dir", save_dir, "--device", "cpu", "--batch_size", "2"] + list(extra)


def _train(workdir, save_dir, *extra, launch=None, log_dir=None, timeout=300):
    """train.py of the demo config in `workdir`; (exit code, stdout and stderr)."""
    rc, out, _ = run_script(TRAIN, _train_args(save_dir, *extra), cwd=workdir, timeout=timeout, launch=launch,
                            log_dir=log_dir, merge_output=True)
    return rc, out


def _losses(text):
    return [float(m) for m in re.findall(r"\[TRAIN\] iter: \d+/\d+, loss: ([0-9.]+)", text)]


def _load(path):
    return {k: v.numpy() for k, v in paddle.load(path).items()}


@pytest.mark.slow
def test_two_process_training_agrees_and_learns(workdir, tmp_path):
    save = str(tmp_path / "out")
    logs = str(tmp_path / "logs")
    rc, out = _train(workdir, save, "--iters", "16", "--log_iters", "4", "--save_interval", "16", launch=2,
                     log_dir=logs, timeout=600)
    log0 = open(os.path.join(logs, "workerlog.0")).read()
    log1 = open(os.path.join(logs, "workerlog.1")).read()
    assert rc == 0, out + log0 + log1
    assert "batch 2 x 2 rank(s)" in log0
    sums = [re.search(r"rank (\d) parameter checksum: (\w+)", t).groups() for t in (log0, log1)]
    assert sums[0][0] == "0" and sums[1][0] == "1"
    assert sums[0][1] == sums[1][1], "replicas ended with different weights"
    losses = _losses(log0)
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert os.path.isfile(os.path.join(save, "iter_16", "model.pdparams"))
    assert os.path.isfile(os.path.join(save, "iter_16", "model.pdopt"))


@pytest.mark.slow
def test_killed_then_resumed_run_matches_uninterrupted(workdir, tmp_path):
    common = ["--iters", "8", "--log_iters", "2", "--save_interval", "4", "--seed", "3"]
    ref = str(tmp_path / "ref")
    rc, out = _train(workdir, ref, *common)
    assert rc == 0, out

    run = str(tmp_path / "run")
    p = subprocess.Popen(script_command(TRAIN, _train_args(run, *common)), cwd=workdir, env=script_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not os.path.isdir(os.path.join(run, "iter_4")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert os.path.isfile(os.path.join(run, "iter_4", "model.pdparams"))
    if os.path.isdir(os.path.join(run, "iter_8")):
        pytest.skip("the run finished before it could be killed")
    rc, out = _train(workdir, run, *common, "--resume_model", run)
    assert rc == 0, out
    assert "resumed from" in out and "at iteration 4" in out
    a, b = _load(os.path.join(ref, "iter_8", "model.pdparams")), _load(os.path.join(run, "iter_8", "model.pdparams"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_visualdl_scalars_read_back(workdir, tmp_path):
    save = str(tmp_path / "vdl")
    rc, out = _train(workdir, save, *"--iters 4 --log_iters 2 --save_interval 4 --use_vdl --do_eval".split())
    assert rc == 0, out
    logdir = os.path.join(save, "vdl_log")
    files = [f for f in os.listdir(logdir) if f.startswith("vdlrecords")]
    assert files
    reader = LogReader(file_path=os.path.join(logdir, files[0]))
    tags = reader.get_tags()
    scalars = set(tags.get("scalar", []))
    for tag in ("Train/loss", "Train/loss_semantic", "Train/loss_center", "Train/loss_offset", "Train/lr",
                "Train/batch_cost", "Train/reader_cost"):
        assert tag in scalars, (tag, scalars)
    for tag in ("Evaluate/PQ", "Evaluate/SQ", "Evaluate/RQ", "Evaluate/PQ_things", "Evaluate/PQ_stuff",
                "Evaluate/mIoU", "Evaluate/AP_semantic", "Evaluate/AP50_semantic_x_instance"):
        assert tag in scalars, (tag, scalars)
    pq = [r.value for r in reader.get_data("scalar", "Evaluate/PQ")]
    printed_pq = float(re.search(r"\[EVAL\] iter 4: PQ ([0-9.]+)", out).group(1))
    assert len(pq) == 1 and abs(pq[0] - printed_pq) < 0.01
    images = set(tags.get("image", []))
    assert "Evaluate/visualization_0" in images, tags
    steps = [r.id for r in reader.get_data("scalar", "Train/loss")]
    assert steps == [2, 4]
    printed = _losses(out)
    values = [r.value for r in reader.get_data("scalar", "Train/loss")]
    np.testing.assert_allclose(values, printed, rtol=1e-4)


@pytest.mark.slow
def test_divergence_stops_with_term_and_iteration(workdir, tmp_path):
    save = str(tmp_path / "nan")
    rc, out = _train(workdir, save, "--iters", "30", "--log_iters", "1", "--save_interval", "1", "--learning_rate",
                     "1e30")
    assert rc == 3, out
    msg = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert msg and "not finite at iteration" in msg[0], out
    bad_iter = int(re.search(r"iteration (\d+)", msg[0]).group(1))
    assert any(t in msg[0] for t in ("semantic=", "center=", "offset=", "total="))
    # every checkpoint written before the failure is complete and loadable
    last_good = os.path.join(save, "iter_{}".format(bad_iter - 1), "model.pdparams")
    assert os.path.isfile(last_good), out
    assert len(paddle.load(last_good)) > 0
    assert "Traceback" not in out


def test_fresh_run_refuses_to_overwrite_an_earlier_run(demo, tmp_path, capfd):
    model, opt = tiny_model_and_optimizer()
    for case in ("checkpoint", "best_model"):
        save = str(tmp_path / case)
        if case == "checkpoint":
            ckpt.save_checkpoint(save, 8, model, opt, {})
        else:
            ckpt.save_best_model(save, model, {"iteration": 8, "pq": 0.3})
        files = {p: open(p, "rb").read() for p in glob.glob(os.path.join(save, "*", "*"))}

        def main(argv):
            train(TrainOptions(demo.cfg, iters=2, batch_size=1, save_dir=save, device="cpu"))

        capfd.readouterr()
        assert run_cli(main) == 2
        err = capfd.readouterr().err
        line = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(line) == 1 and "Traceback" not in err
        assert save in line[0] and "--resume_model" in line[0]
        assert ("iter_8" if case == "checkpoint" else "best_model") in line[0]
        assert {p: open(p, "rb").read() for p in glob.glob(os.path.join(save, "*", "*"))} == files


def test_every_train_py_flag_is_a_train_option():
    """`train.py` hands its parsed flags to `train` as one `TrainOptions`: the two name the same settings."""
    args = vars(build_parser().parse_args(["--config", "x.yml", "--iters", "7", "--do_eval"]))
    assert set(args) == {f.name for f in dataclasses.fields(TrainOptions)}
    opts = TrainOptions(**args)
    assert (opts.config, opts.iters, opts.do_eval, opts.save_interval) == ("x.yml", 7, True, 1000)
