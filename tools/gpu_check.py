"""GPU check: everything that needs a GPU, in one run of a few minutes, as one table.

    python tools/gpu_check.py [--work_dir DIR] [--keep]

On a machine with a GPU (a GPU build of PaddlePaddle that sees one) it runs, each as the user would
type it, in a fresh folder of generated frames (tools/make_demo_dataset.py, 512x1024):
  - train.py, 4 iterations of the R50 OS32 Cityscapes config (random weights, no download) on the
    512x1024 frames (its 1025x513 crops), batch 2: fp32, --precision fp16 --amp_level O1 and O2,
    --precision bf16; the loss must be finite
    (the training loop stops with exit code 3 on a NaN or Inf loss);
  - the same under ``python -m paddle.distributed.launch --nproc_per_node 1``, and SyncBatchNorm
    (``paddle.nn.SyncBatchNorm.convert_sync_batchnorm``, what train.py uses with several GPUs) forward +
    backward under launch with 1 process;
  - val.py and predict.py with the fp32 checkpoint;
  - export.py --format all, then deploy/python/infer.py with Paddle Inference (GPU), with TensorRT fp16,
    and with onnxruntime (CUDA provider when onnxruntime-gpu is installed, else CPU);
  - network and post-processing latency at 1025x2049 (tools/benchmark.py network / postprocess).
Each row: check, ok / FAIL / skip, seconds, and the last line of its output when it did not pass.
Exit code: 0 when no check failed, 1 otherwise. On a CPU-only machine: one line, exit 0.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTRIB = os.path.join(ROOT, "contrib", "PanopticDeepLab")
R50 = os.path.join(ROOT, "configs", "panoptic_deeplab",
                   "panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml")
TRAIN_RUNS = (("fp32", []), ("fp16 O1", ["--precision", "fp16", "--amp_level", "O1"]),
              ("fp16 O2", ["--precision", "fp16", "--amp_level", "O2"]), ("bf16", ["--precision", "bf16"]))

SYNC_BN_SCRIPT = """
import numpy as np, paddle, sys
sys.path.insert(0, {root!r})
from paddleseg.cvlibs import Config, SegBuilder
import paddleseg_ext  # noqa: F401
from paddleseg_ext.runtime.weights import without_pretrained
paddle.distributed.init_parallel_env()
cfg = Config({config!r})
cfg.dic["model"] = without_pretrained(cfg.dic["model"])
model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(SegBuilder(cfg).model)
model = paddle.DataParallel(model)
model.train()
outs = model(paddle.randn([2, 3, 513, 1025]))
loss = sum(o.mean() for o in outs)
loss.backward()
value = float(loss)
assert np.isfinite(value), value
print("SyncBatchNorm layers:", sum(isinstance(m, paddle.nn.SyncBatchNorm) for m in model.sublayers()), "loss", value)
"""


def gpu_available():
    """(True, '') with a GPU build that sees a GPU, else (False, why)."""
    import paddle

    if not paddle.is_compiled_with_cuda():
        return False, "PaddlePaddle {} is a CPU build".format(paddle.__version__)
    if paddle.device.cuda.device_count() == 0:
        return False, "PaddlePaddle {} sees no GPU".format(paddle.__version__)
    return True, ""


class Checks:
    """Runs commands and collects the table's rows."""

    def __init__(self, work):
        self.work = work
        self.rows = []
        self.env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(self, name, argv, cwd=None, timeout=600, expect=None):
        """Run `argv`; ok when the exit code is 0 (and `expect`, a string, is in its output)."""
        t = time.time()
        try:
            p = subprocess.run(argv, cwd=cwd or self.work, env=self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout)
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), -1
            out += "\ntimed out after {} s".format(timeout)
        ok = rc == 0 and (expect is None or expect in out)
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        detail = "" if ok else (lines[-1] if lines else "exit code {}".format(rc))
        with open(os.path.join(self.work, "log_" + "".join(c if c.isalnum() else "_" for c in name) + ".txt"), "w") as f:
            f.write(out)
        self.rows.append((name, "ok" if ok else "FAIL", time.time() - t, detail))
        return ok, out

    def skip(self, name, why):
        self.rows.append((name, "skip", 0.0, why))

    def table(self):
        width = max(len(r[0]) for r in self.rows)
        lines = ["{:<{w}}  {:<5} {:>7}  {}".format("check", "", "s", "note", w=width)]
        for name, status, secs, detail in self.rows:
            lines.append("{:<{w}}  {:<5} {:>7.1f}  {}".format(name, status, secs, detail[:120], w=width))
        return "\n".join(lines)


def _write_config(work, root):
    """The R50 config (its own 1025x513 crops of the 512x1024 frames), batch 2, on the generated frames,
    random weights, validation padded to 1025x513."""
    import yaml

    from paddleseg.cvlibs import Config

    dic = Config(R50).dic
    for key in ("train_dataset", "val_dataset"):
        dic[key]["dataset_root"] = root
    dic["model"]["backbone"]["pretrained"] = None
    dic["batch_size"] = 2
    for t in dic["val_dataset"]["transforms"]:
        if "target_size" in t:
            t["target_size"] = [1025, 513]
    path = os.path.join(work, "r50_512x1024.yml")
    with open(path, "w") as f:
        yaml.safe_dump(dic, f)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default=None, help="folder for data, checkpoints and logs (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (its log_*.txt hold each check's output)")
    a = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    ok, why = gpu_available()
    if not ok:
        print("gpu_check: no GPU here ({}); nothing to check".format(why), flush=True)
        return 0
    work = a.work_dir or tempfile.mkdtemp(prefix="gpu_check_")
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    c = Checks(work)
    root = os.path.join(work, "frames")
    started = time.time()
    c.run("generated frames 512x1024", [py, os.path.join(ROOT, "tools", "make_demo_dataset.py"), "--out", root,
                                        "--num-train", "4", "--num-val", "2", "--height", "512", "--width", "1024"])
    cfg = _write_config(work, root)
    common = ["--config", cfg, "--iters", "4", "--log_iters", "1", "--num_workers", "0", "--device", "gpu"]
    for name, flags in TRAIN_RUNS:
        c.run("train R50 512x1024 " + name, [py, "train.py"] + common + flags + ["--save_dir", os.path.join(
            work, "train_" + name.replace(" ", "_")), "--save_interval", "4"], cwd=CONTRIB)
    launch = [py, "-m", "paddle.distributed.launch", "--nproc_per_node", "1", "--log_dir", os.path.join(work, "launch")]
    c.run("train under launch, 1 process", launch + ["train.py"] + common + ["--iters", "2", "--save_dir",
                                                                              os.path.join(work, "train_launch")],
          cwd=CONTRIB)
    sync = os.path.join(work, "sync_bn.py")
    with open(sync, "w") as f:
        f.write(SYNC_BN_SCRIPT.format(root=ROOT, config=cfg))
    c.run("SyncBatchNorm under launch, 1 process", launch[:-1] + [os.path.join(work, "launch_sync"), sync],
          expect="SyncBatchNorm layers:")
    weights = os.path.join(work, "train_fp32", "iter_4", "model.pdparams")
    images = os.path.join(root, "leftImg8bit", "val")
    if os.path.isfile(weights):
        c.run("val.py", [py, "val.py", "--config", cfg, "--model_path", weights, "--device", "gpu"], cwd=CONTRIB,
              expect="PQ")
        c.run("predict.py", [py, "predict.py", "--config", cfg, "--model_path", weights, "--image_path", images,
                             "--save_dir", os.path.join(work, "predict"), "--device", "gpu"], cwd=CONTRIB)
        model_dir = os.path.join(work, "inference_model")
        exported, _ = c.run("export.py --format all", [py, "export.py", "--config", cfg, "--model_path", weights,
                                                       "--save_dir", model_dir, "--format", "all"], cwd=CONTRIB)
        infer = [py, os.path.join(ROOT, "deploy", "python", "infer.py"), "--model_dir", model_dir, "--image_path",
                 images, "--benchmark", "5"]
        for name, flags in (("infer.py Paddle Inference GPU", ["--backend", "paddle", "--device", "gpu"]),
                            ("infer.py Paddle Inference TensorRT fp16", ["--backend", "paddle", "--device", "gpu",
                                                                        "--use_trt", "--precision", "fp16"]),
                            ("infer.py onnxruntime", ["--backend", "onnxruntime"])):
            if exported:
                c.run(name, infer + flags + ["--save_dir", os.path.join(work, name.split()[-1])], expect="images/s")
            else:
                c.skip(name, "export failed")
    else:
        for name in ("val.py", "predict.py", "export.py --format all", "infer.py"):
            c.skip(name, "no fp32 checkpoint")
    bench = [py, os.path.join(ROOT, "tools", "benchmark.py")]
    c.run("network latency 1025x2049", bench + ["network", "--configs", R50, "--size", "1025x2049", "--device", "gpu",
                                                "--warmup", "2", "--repeats", "5"])
    c.run("post-processing latency 1025x2049", bench + ["postprocess", "--sizes", "1025x2049", "--device", "gpu",
                                                        "--repeat", "5", "--skip-reference"])
    print(c.table(), flush=True)
    print("total {:.0f} s; logs: {}".format(time.time() - started, work if a.keep or a.work_dir else "(removed; --keep)"))
    if not (a.keep or a.work_dir):
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r[1] != "FAIL" for r in c.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
