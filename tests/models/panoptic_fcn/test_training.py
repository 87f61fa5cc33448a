"""PanopticFCN through the project's training loop: 2 CPU processes (gloo) train the demo config with
evaluation, and the replicas end with identical weights."""
import os
import re

import pytest

from tests.conftest import CONTRIB, FCN_DEMO_CONFIG, run_script


@pytest.mark.slow
def test_two_process_training_with_evaluation(demo_root, tmp_path):
    os.makedirs(tmp_path / "data")
    os.symlink(demo_root, tmp_path / "data" / "demo_cityscapes")
    save, logs = str(tmp_path / "out"), str(tmp_path / "logs")
    args = ["--config", FCN_DEMO_CONFIG, "--save_dir", save, "--device", "cpu", "--batch_size", "2", "--iters", "6",
            "--log_iters", "3", "--save_interval", "6", "--do_eval"]
    rc, out, _ = run_script(os.path.join(CONTRIB, "train.py"), args, cwd=tmp_path, launch=2, log_dir=logs,
                            merge_output=True, timeout=600)
    log0 = open(os.path.join(logs, "workerlog.0")).read()
    log1 = open(os.path.join(logs, "workerlog.1")).read()
    assert rc == 0, out + log0[-3000:] + log1[-3000:]
    assert "model PanopticFCN" in log0 and "batch 2 x 2 rank(s)" in log0
    for term in ("position_thing", "position_stuff", "mask_thing", "mask_stuff"):
        assert term + ":" in log0
    assert re.search(r"\[EVAL\] iter 6: PQ [0-9.]+", log0), log0[-2000:]
    sums = [re.search(r"rank \d parameter checksum: (\w+)", t).group(1) for t in (log0, log1)]
    assert sums[0] == sums[1], "replicas ended with different weights"
    assert os.path.isfile(os.path.join(save, "iter_6", "model.pdparams"))
