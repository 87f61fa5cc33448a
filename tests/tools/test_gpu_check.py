"""tools/gpu_check.py on a machine without a GPU: one line saying so, exit 0 (its GPU checks run where a
GPU is; see the tool's docstring)."""
import os

import pytest

from tests.conftest import ROOT, run_script


def test_gpu_check_without_gpu_is_one_line_exit_0(tmp_path):
    import paddle

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("a GPU is here: the full check takes minutes")
    rc, out, err = run_script(os.path.join(ROOT, "tools", "gpu_check.py"), ["--work_dir", tmp_path / "w"], ROOT)
    assert rc == 0, err
    assert out.strip().splitlines() == [out.strip()] and out.startswith("gpu_check: no GPU here (PaddlePaddle ")
    assert "Traceback" not in err
    assert not (tmp_path / "w").exists()  # nothing was started
