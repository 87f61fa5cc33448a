"""Device choice (`runtime.device`): CPU, refusal of an unknown device or of a GPU this Paddle cannot use,
one-process distributed helpers."""
import paddle
import pytest

from paddleseg_ext.runtime import all_sum, init_distributed, is_main_process, setup_device
from paddleseg_ext.runtime.device import has_gpu
from paddleseg_ext.utils import UserInputError


def test_cpu_and_unknown_devices():
    assert setup_device("cpu") == "cpu"
    with pytest.raises(UserInputError, match="--device must be one of cpu, gpu, got 'tpu'"):
        setup_device("tpu")


@pytest.mark.skipif(has_gpu(), reason="this Paddle has a usable GPU")
def test_gpu_without_a_usable_gpu_is_refused():
    with pytest.raises(UserInputError) as info:
        setup_device("gpu")
    msg = str(info.value)
    assert "--device gpu" in msg and "--device cpu" in msg and paddle.__version__ in msg and "\n" not in msg
    assert setup_device(None) == "cpu"  # the default picks what there is


def test_single_process_helpers():
    assert init_distributed() == (0, 1)
    assert is_main_process()
    assert all_sum(2.5) == 2.5
