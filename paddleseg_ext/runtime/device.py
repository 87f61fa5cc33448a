"""Device and distributed set-up, the one place that chooses where the loops run."""
import ctypes
import sys

import paddle

from ..utils import UserInputError

DEVICES = ("cpu", "gpu")


def has_gpu():
    """True when this Paddle is built with CUDA and sees at least one GPU."""
    return bool(paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0)


def setup_device(device=None):
    """Select the device: 'cpu', 'gpu', or None for a GPU when there is one.

    Under ``paddle.distributed.launch`` each process gets its own GPU (Paddle reads the launcher's
    environment). Returns Paddle's device string ('cpu', 'gpu:0', ...).
    Raises UserInputError for an unknown name or 'gpu' without a usable GPU.
    """
    if device not in (None,) + DEVICES:
        raise UserInputError("--device must be one of {}, got {!r}".format(", ".join(DEVICES), device))
    if device == "gpu" and not has_gpu():
        what = "is not compiled with CUDA" if not paddle.is_compiled_with_cuda() else "sees no GPU"
        raise UserInputError("--device gpu: this PaddlePaddle ({}) {}; use --device cpu or install "
                             "paddlepaddle-gpu (see README, Installation)".format(paddle.__version__, what))
    paddle.set_device("gpu" if (device == "gpu" or (device is None and has_gpu())) else "cpu")
    retain_freed_memory()
    return paddle.get_device()


def retain_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the system.

    Each image allocates and frees full-size host buffers (a 1025 x 2049 int64 map is 17 MB); by default
    glibc returns such blocks to the kernel on free, and the next image pays a page fault for every 4 KiB
    of the new ones: about a third of the CPU post-processing's time (tools/benchmark.py postprocess).
    With both thresholds at 1 GiB the process keeps its peak heap instead. Called by `setup_device`, so
    by every command; applications that call the post-processing directly may call it themselves.
    Returns True when set (Linux with glibc), else False (nothing changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_trim_threshold, 1 << 30) == 1 and mallopt(m_mmap_threshold, 1 << 30) == 1)


def init_distributed():
    """Join the process group when launched on several processes; returns (rank, world size)."""
    nranks = paddle.distributed.get_world_size()
    if nranks > 1:
        paddle.distributed.init_parallel_env()
    return paddle.distributed.get_rank(), nranks


def is_main_process():
    return paddle.distributed.get_rank() == 0


def all_sum(value):
    """Sum a Python number over the ranks (the number itself with one rank)."""
    if paddle.distributed.get_world_size() <= 1:
        return value
    t = paddle.to_tensor([float(value)], dtype="float64")
    paddle.distributed.all_reduce(t)
    return float(t.numpy()[0])


def synchronize():
    """Wait for queued GPU work (for timings); nothing on the CPU."""
    if "gpu" in paddle.get_device():
        paddle.device.cuda.synchronize()
