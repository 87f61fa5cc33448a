"""Shared fixtures and helpers of the whole suite.

The test folders mirror the package (``tests/<subpackage>/test_<module>.py``); what several folders
need lives here: the generated demo dataset, the demo config with untrained weights (one per
session), running the commands in this process or in a subprocess that imports *this* checkout's
package, and checking their one-line errors.
"""
import copy
import os
import subprocess
import sys
import types

import pytest
import yaml

import paddleseg_ext  # noqa: F401  (registers every component)
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTRIB = os.path.join(ROOT, "contrib", "PanopticDeepLab")
CONFIG_DIR = os.path.join(ROOT, "configs", "panoptic_deeplab")
DEMO_CONFIG = os.path.join(CONFIG_DIR, "panoptic_deeplab_demo_cpu.yml")
FCN_DEMO_CONFIG = os.path.join(ROOT, "configs", "panoptic_fcn", "panoptic_fcn_demo_cpu.yml")
INFER_SCRIPT = os.path.join(ROOT, "deploy", "python", "infer.py")

# The demo_root dataset: tools/make_demo_dataset.py defaults (8 train + 4 val frames, 128x256).
DEMO_ARGS = dict(seed=0, num_train=8, num_val=4, height=128, width=256)
#: void value of the panoptic maps of the Cityscapes-like datasets (ignore_index 255 * label_divisor 1000)
VOID = 255000
#: a weights URL that fails at once without any network: nothing listens on port 9 of this machine (no
#: DNS either); a file name of its own so that PaddleSeg's download cache cannot answer
UNREACHABLE = "https://127.0.0.1:9/paddleseg_ext_tests_unreachable_backbone.tar.gz"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds (end-to-end runs)")


#: the longest test files (a 500-iteration training each, minutes on a CPU), collected first: pytest-xdist
#: workers take whole files in collection order (pytest.ini), so these two start at once on two workers
#: while the others share the remaining files
LONGEST_FILES = ("tests/core/test_overfit.py", "tests/models/panoptic_fcn/test_overfit.py")


def pytest_collection_modifyitems(items):
    longest = {os.path.join(ROOT, *name.split("/")) for name in LONGEST_FILES}
    items.sort(key=lambda item: str(item.path) not in longest)  # stable: the order is kept otherwise


# ---------------------------------------------------------------- data and configs

@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Path (str) of a generated demo dataset: 8 train + 4 val frames of 128x256 in the Cityscapes
    layout, already converted (panoptic trainId json/PNGs, label-id json/PNGs, labelTrainIds).
    Shared by the whole session: copy it before modifying anything."""
    root = os.path.join(str(tmp_path_factory.mktemp("demo")), "demo_cityscapes")
    make_demo_dataset(root, verbose=False, **DEMO_ARGS)
    return root


def val_images(demo_root):
    """The val images of a demo dataset, sorted."""
    found = []
    for d, _, files in os.walk(os.path.join(demo_root, "leftImg8bit", "val")):
        found += [os.path.join(d, f) for f in files if f.endswith(".png")]
    return sorted(found)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def write_config(dic, path, mutate=None, dataset_root=None):
    """Write a copy of config dict `dic` to `path` (str), with both datasets under `dataset_root` and
    `mutate(dic)` applied; returns the path."""
    dic = copy.deepcopy(dic)
    if dataset_root is not None:
        for key in ("train_dataset", "val_dataset"):
            dic[key]["dataset_root"] = dataset_root
    if mutate is not None:
        mutate(dic)
    with open(path, "w") as f:
        yaml.safe_dump(dic, f)
    return str(path)


def save_untrained_weights(cfg_path, weights_path, seed=1):
    """Freshly initialised weights of the config's model (its `pretrained` entries are not fetched),
    saved as a full checkpoint."""
    import paddle
    from paddleseg.cvlibs import Config, SegBuilder

    from paddleseg_ext.runtime.weights import without_pretrained

    cfg = Config(cfg_path)
    cfg.dic["model"] = without_pretrained(cfg.dic["model"])
    paddle.seed(seed)
    paddle.save(SegBuilder(cfg).model.state_dict(), weights_path)
    return weights_path


@pytest.fixture(scope="session")
def demo(demo_root, tmp_path_factory):
    """The demo config pointing at `demo_root` and untrained weights of its model, made once.

    Attributes: `cfg` (path), `dic` (the config as a dict), `weights` (model.pdparams), `root` (the
    dataset), `images` (its val images), `tmp` (a session folder). Seed 1: the untrained semantic head
    mixes several stuff and thing classes on the demo frames, and with `--threshold 0` its centre
    head yields centres, hence thing instances."""
    tmp = str(tmp_path_factory.mktemp("demo_model"))
    cfg = write_config(load_yaml(DEMO_CONFIG), os.path.join(tmp, "demo.yml"), dataset_root=demo_root)
    weights = save_untrained_weights(cfg, os.path.join(tmp, "model.pdparams"))
    return types.SimpleNamespace(cfg=cfg, dic=load_yaml(cfg), weights=weights, root=demo_root,
                                 images=val_images(demo_root), tmp=tmp)


# ---------------------------------------------------------------- running commands

def script_env(**extra):
    """Environment of a subprocess: this checkout first on the path (the venv may hold an editable
    install of another checkout), one math thread, plus `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def script_command(script, args, launch=None, log_dir=None):
    """argv running `script` with this interpreter, under ``paddle.distributed.launch`` with `launch`
    processes when given."""
    if launch:
        return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(launch), "--log_dir",
                str(log_dir), script] + [str(a) for a in args]
    return [sys.executable, script] + [str(a) for a in args]


def run_script(script, args, cwd, timeout=300, launch=None, log_dir=None, merge_output=False, env=None):
    """Run a script in a subprocess; returns (exit code, stdout, stderr) (stderr '' with `merge_output`)."""
    p = subprocess.run(script_command(script, args, launch, log_dir), cwd=str(cwd), env=env or script_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr or ""


def load_script(path):
    """The module of a script file (a tool, a benchmark), loaded without running its `__main__` block."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("script_" + re.sub(r"\W", "_", os.path.relpath(path, ROOT)), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_benchmark(name):
    """The module of tools/benchmarks/<name>.py, loaded as tools/benchmark.py loads it (as part of the package
    `benchmarks`, so that its relative imports work)."""
    return load_script(os.path.join(ROOT, "tools", "benchmark.py")).load(name)


def run_main(capfd, main, args):
    """A command's `main(argv)` in this process, as its `__main__` runs it (`run_cli`); returns
    (exit code, stdout, stderr)."""
    from paddleseg_ext.cli.common import run_cli

    capfd.readouterr()
    rc = run_cli(main, [str(a) for a in args])
    cap = capfd.readouterr()
    return rc, cap.out, cap.err


def error_line(rc, err):
    """The single `error:` line of a failed command (exit code 2, no traceback, no decoder noise)."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert "libpng" not in err and "Corrupt JPEG" not in err and "Premature end" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- the exported demo model

#: post-processing flag that makes the untrained demo model find centres (hence thing instances)
THING_FLAGS = ["--threshold", "0.0"]


def export_model(cfg, weights, save_dir, flags=()):
    """export.py (`paddleseg_ext.cli.export.main`, in this process) of `cfg` with `weights`."""
    from paddleseg_ext.cli import export as export_cli
    from paddleseg_ext.cli.common import run_cli

    assert run_cli(export_cli.main, ["--config", cfg, "--model_path", weights, "--save_dir", save_dir] +
                   list(flags)) == 0
    return save_dir


@pytest.fixture(scope="session")
def demo_export(demo):
    """The demo model exported once per session (tracing is slow), with `THING_FLAGS`."""
    return export_model(demo.cfg, demo.weights, os.path.join(demo.tmp, "inference_model"), THING_FLAGS)

