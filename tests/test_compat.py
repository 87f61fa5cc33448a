"""paddleseg_ext.compat: the Paddle 2.6 fallbacks give what the Paddle 3.x ops give.

CI runs this file on Paddle 3.3.1 and on 2.6.2. On each, the public functions run the path of the
installed version and are checked against numpy; the fallbacks that run on every version
(`argsort_stable_by_key`) are checked on both, eagerly and traced."""
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddleseg_ext import compat
from tests.conftest import error_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# few distinct values: many ties; signed zeros and infinities compare like numpy's
TIE_VALUES = [-np.inf, -3.0, -0.0, 0.0, 0.1, 0.5, 0.5000001, 1e30, np.inf]


def numpy_stable(x, descending):
    """numpy's stable argsort; descending = order by (-x, index)."""
    return np.argsort(-x if descending else x, kind="stable")


@FAST
@given(values=st.lists(st.sampled_from(TIE_VALUES), min_size=0, max_size=40), descending=st.booleans())
def test_argsort_stable_matches_numpy_with_ties(values, descending):
    x = np.asarray(values, dtype=np.float32)
    expected = numpy_stable(x, descending)
    t = paddle.to_tensor(x) if x.size else paddle.zeros([0], dtype="float32")
    np.testing.assert_array_equal(compat.argsort_stable(t, descending=descending).numpy(), expected)
    np.testing.assert_array_equal(compat.argsort_stable_by_key(t, descending=descending).numpy(), expected)


@FAST
@given(values=st.lists(st.integers(-3, 3), min_size=1, max_size=60), descending=st.booleans())
def test_argsort_stable_int64(values, descending):
    x = np.asarray(values, dtype=np.int64)
    expected = numpy_stable(x, descending)
    np.testing.assert_array_equal(compat.argsort_stable_by_key(paddle.to_tensor(x), descending).numpy(), expected)
    np.testing.assert_array_equal(compat.argsort_stable(paddle.to_tensor(x), descending).numpy(), expected)


def test_argsort_stable_by_key_traced():
    """The fallback traced into a static graph (as in the exported model on Paddle 2.6), dynamic length."""
    class Sort(paddle.nn.Layer):
        def forward(self, x):
            return compat.argsort_stable_by_key(x, descending=True)

    fn = paddle.jit.to_static(Sort(), input_spec=[paddle.static.InputSpec([None], "float32")], full_graph=True)
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 300):
        x = rng.choice(np.array([0.2, 0.5, 0.9], np.float32), n)
        t = paddle.to_tensor(x) if n else paddle.zeros([0], dtype="float32")
        np.testing.assert_array_equal(fn(t).numpy(), numpy_stable(x, True))


def test_gather_bool():
    mask = np.array([True, False, True, False, False, True])
    index = np.array([5, 0, 1, 5, 2], dtype=np.int64)
    got = compat.gather_bool(paddle.to_tensor(mask), paddle.to_tensor(index))
    assert got.dtype == paddle.bool
    np.testing.assert_array_equal(got.numpy(), mask[index])


class _NonzeroThenGather(paddle.nn.Layer):
    def forward(self, values):
        return paddle.gather(values, compat.nonzero_1d(values > 0.5))


@pytest.mark.parametrize("values", [[], [0.1, 0.2], [0.9, 0.1, 0.7]])
def test_nonzero_1d_eager_and_traced(values):
    """Indices of the True values, and a gather with them, also when there are none (traced: Paddle 2.6's
    reshape of an empty [0, 1] fails there)."""
    x = np.asarray(values, np.float32)
    t = paddle.to_tensor(x) if x.size else paddle.zeros([0], dtype="float32")
    found = compat.nonzero_1d(t > 0.5)
    assert list(found.shape) == [int((x > 0.5).sum())]
    np.testing.assert_array_equal(found.numpy().reshape(-1), np.flatnonzero(x > 0.5))
    if x.size:  # (an empty input fails earlier on Paddle 2.6, in the comparison: see _EMPTY_OPS_OK)
        traced = paddle.jit.to_static(_NonzeroThenGather(), input_spec=[paddle.static.InputSpec([None], "float32")],
                                      full_graph=True)
        np.testing.assert_array_equal(traced(t).numpy().reshape(-1), x[x > 0.5])


@pytest.mark.parametrize("n", [0, 1, 9])
def test_divmod_and_bincount_with_empty_inputs(n):
    width = paddle.to_tensor(4, dtype="int64")
    flat = np.arange(n, dtype=np.int64) * 3
    t = paddle.to_tensor(flat) if n else paddle.zeros([0], dtype="int64")
    y, x = compat.floor_divmod(t, width)
    assert list(y.shape) == [n] and list(x.shape) == [n]
    np.testing.assert_array_equal(y.numpy().reshape(n), flat // 4)
    np.testing.assert_array_equal(x.numpy().reshape(n), flat % 4)
    values = flat % 5
    tv = paddle.to_tensor(values) if n else paddle.zeros([0], dtype="int64")
    for length in (5, paddle.to_tensor(7, dtype="int64")):
        counts = compat.bincount(tv, length)
        size = int(length)
        np.testing.assert_array_equal(counts.numpy(), np.bincount(values, minlength=size))


@pytest.mark.parametrize("ids", [[], [3], [0, 3, 9]])
def test_label_masks(ids):
    labels = np.array([[3, 0], [9, 3]], dtype=np.int64)
    idt = paddle.to_tensor(np.asarray(ids, np.int64)) if ids else paddle.zeros([0], dtype="int64")
    masks = compat.label_masks(paddle.to_tensor(labels), idt).numpy()
    assert masks.shape == (len(ids), 2, 2) and masks.dtype == bool
    for m, i in enumerate(ids):
        np.testing.assert_array_equal(masks[m], labels == i)


def test_parse_version():
    assert compat._parse_version("2.6.2") == (2, 6)
    assert compat._parse_version("3.3.1") == (3, 3)
    assert compat._parse_version("3.0.0rc1") == (3, 0)
    assert compat._parse_version("0.0.0") == (99, 0)  # develop build
    assert compat.PADDLE_VERSION >= (2, 6)


def test_older_paddle_is_refused_in_one_line():
    compat.check_paddle_version("2.6.0")
    compat.check_paddle_version("3.3.1")
    with pytest.raises(ImportError, match=r"^paddleseg_ext needs paddlepaddle \(or paddlepaddle-gpu\) >= 2\.6; "
                                          r"installed: 2\.5\.2$"):
        compat.check_paddle_version("2.5.2")


def test_package_loads_zlib_before_paddle():
    """Paddle 2.6.2 crashes (segfault in inflateReset2) on zlib use when zlib loads after paddle:
    `import paddleseg_ext` must load it first; then zlib, cv2's PNG codec and paddleseg work."""
    code = "\n".join([
        "import sys",
        "import paddleseg_ext",
        "mods = list(sys.modules)",
        "assert mods.index('zlib') < mods.index('paddle'), 'paddle loaded before zlib'",
        "import zlib, cv2, numpy as np, paddleseg",
        "assert zlib.decompress(zlib.compress(b'x' * 10000)) == b'x' * 10000",
        "ok, buf = cv2.imencode('.png', np.arange(64, dtype=np.uint8).reshape(8, 8))",
        "assert ok and (cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) == np.arange(64).reshape(8, 8)).all()",
        "print('fine')",
    ])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "fine" in p.stdout, (p.returncode, p.stdout, p.stderr[-2000:])


def _amp_takes_effect(dtype):
    """Whether paddle.amp.auto_cast casts a convolution to `dtype` on the current device (Paddle's
    CPU builds, 2.6 and 3.x alike, leave it float32: AMP works on CUDA/XPU/custom devices only)."""
    with paddle.amp.auto_cast(level="O1", dtype=dtype):
        y = paddle.nn.functional.conv2d(paddle.ones([1, 1, 4, 4]), paddle.ones([1, 1, 3, 3]))
    return y.dtype != paddle.float32


@pytest.mark.parametrize("precision, level", [("fp16", "O1"), ("bf16", "O2")])
def test_amp_flags_train(demo_root, tmp_path, precision, level):
    """train.py --precision/--amp_level: on a device where AMP acts (a GPU) they train to the end (GradScaler
    and decorate included); on the CPU, where Paddle ignores mixed precision, they are refused in one line
    instead of training in fp32 unnoticed."""
    import yaml

    with open(os.path.join(ROOT, "configs", "panoptic_deeplab", "panoptic_deeplab_demo_cpu.yml")) as f:
        dic = yaml.safe_load(f)
    for key in ("train_dataset", "val_dataset"):
        dic[key]["dataset_root"] = demo_root
    cfg = str(tmp_path / "demo.yml")
    with open(cfg, "w") as f:
        yaml.safe_dump(dic, f)
    cmd = [sys.executable, os.path.join(ROOT, "contrib", "PanopticDeepLab", "train.py"), "--config", cfg,
           "--iters", "2", "--batch_size", "2", "--log_iters", "1", "--save_interval", "2",
           "--save_dir", str(tmp_path / "out"), "--precision", precision, "--amp_level", level]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    if not _amp_takes_effect("float16" if precision == "fp16" else "bfloat16"):
        line = error_line(p.returncode, p.stderr)
        assert line.startswith("error: --precision") and "GPU" in line, line
        return
    assert p.returncode == 0, out[-3000:]
    losses = [float(v) for v in re.findall(r"\[TRAIN\] iter: \d+/\d+, loss: ([0-9.]+)", out)]
    assert len(losses) == 2 and all(np.isfinite(losses)), out[-3000:]
    assert os.path.isfile(str(tmp_path / "out" / "iter_2" / "model.pdparams"))


class _WriteAt(paddle.nn.Layer):
    def __init__(self, inplace):
        super().__init__()
        self.inplace = inplace

    def forward(self, x, index, values):
        return compat.write_at(x * 1, index, values, self.inplace)


@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("index", [[], [4], [0, 2, 5]])
def test_write_at_eager_and_traced(index, inplace):
    x = np.arange(6, dtype=np.int64) * 10
    idx = np.asarray(index, np.int64)
    values = -np.arange(1, idx.size + 1, dtype=np.int64)
    expected = x.copy()
    expected[idx] = values
    ti = paddle.to_tensor(idx) if idx.size else paddle.zeros([0], dtype="int64")
    tv = paddle.to_tensor(values) if idx.size else paddle.zeros([0], dtype="int64")
    np.testing.assert_array_equal(compat.write_at(paddle.to_tensor(x), ti, tv, inplace).numpy(), expected)
    spec = [paddle.static.InputSpec([None], "int64")] * 3
    traced = paddle.jit.to_static(_WriteAt(inplace), input_spec=spec, full_graph=True)
    np.testing.assert_array_equal(traced(paddle.to_tensor(x), ti, tv).numpy(), expected)
