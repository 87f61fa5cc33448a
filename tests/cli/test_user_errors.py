"""Bad input gets one clear line (`error: ...`, exit code 2, no traceback) from train.py / val.py /
predict.py: configs, dataset trees, corrupt images and labels, weights, output folders. Most cases call
the commands' `main` in this process through `run_cli` (what `__main__` does); the data-loader cases
run the real scripts in subprocesses, where a worker's error used to hang the loader or print
tracebacks."""
import glob
import hashlib
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.cli import train as train_cli
from paddleseg_ext.cli import val as val_cli
from paddleseg_ext.utils import read_panoptic_png, write_panoptic_png
from tests.conftest import (CONTRIB, error_line, run_main, run_script,
                            write_config)
from tests.cli.conftest import script_args

MAINS = {"train": train_cli.main, "val": val_cli.main, "predict": predict_cli.main}


def run_inproc(capfd, script, args):
    return run_main(capfd, MAINS[script], args)


def run_subprocess(script, args, cwd, timeout=180):
    return run_script(os.path.join(CONTRIB, script + ".py"), args, cwd=cwd, timeout=timeout)


def digest(folder):
    """{relative path: sha1} of every file under `folder`."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, folder)] = hashlib.sha1(open(p, "rb").read()).hexdigest()
    return out


# ---------------------------------------------------------------- configs

CONFIG_CASES = {
    # case: (mutation of the demo config, words the message must contain)
    "unknown_model_type": (lambda d: d["model"].update(type="NoSuchModel"), ["NoSuchModel"]),
    "misspelled_model_arg": (lambda d: d["model"].update(num_clases=19), ["num_clases", "model"]),
    "unknown_top_level_key": (lambda d: d.update(batchsize=2), ["batchsize", "did you mean 'batch_size'"]),
    "unknown_postprocess_key": (lambda d: d["postprocess"].update(treshold=0.3), ["treshold", "postprocess"]),
    "num_classes_model_vs_dataset": (lambda d: d["model"].update(num_classes=7), ["(7)", "(19)"]),
    "postprocess_thing_ids_out_of_range": (lambda d: d["postprocess"].update(thing_ids=[11, 40]),
                                           ["thing_ids", "[40]", "num_classes=19"]),
    "postprocess_thing_ids_differ": (lambda d: d["postprocess"].update(thing_ids=[11, 12]),
                                     ["thing_ids", "[11, 12]", "differ"]),
}


@pytest.mark.parametrize("script", ["train", "val", "predict"])
@pytest.mark.parametrize("case", ["missing_file"] + [
    c for c in sorted(CONFIG_CASES)])
def test_bad_config(demo_cli, tmp_path, capfd, script, case):
    if case == "missing_file":
        cfg, words = str(tmp_path / "no_such_config.yml"), ["config file not found"]
    else:
        mutate, words = CONFIG_CASES[case]
        cfg = write_config(demo_cli.dic, str(tmp_path / "bad.yml"), mutate)
    rc, out, err = run_inproc(capfd, script, script_args(script, demo_cli, cfg, tmp_path))
    line = error_line(rc, err)
    assert cfg in line
    for w in words:
        assert w in line, (w, line)
    if script == "train":
        assert not glob.glob(str(tmp_path / "out" / "iter_*"))


@pytest.mark.parametrize("script", ["train", "val"])
@pytest.mark.parametrize("case", ["root_missing", "root_empty", "image_without_label"])
def test_bad_dataset_tree(demo_cli, tmp_path, capfd, script, case):
    root = str(tmp_path / "data")
    mode = "train" if script == "train" else "val"
    if case == "root_empty":
        os.makedirs(root)
        expect = os.path.join(root, "leftImg8bit", mode)
    elif case == "image_without_label":
        shutil.copytree(demo_cli.root, root)
        first = sorted(glob.glob(os.path.join(root, "leftImg8bit", mode, "*", "*.png")))[0]
        extra = first.replace("_000019_leftImg8bit", "_000123_leftImg8bit")
        shutil.copy(first, extra)
        expect = extra
    else:
        expect = root
    cfg = write_config(demo_cli.dic, str(tmp_path / "cfg.yml"), dataset_root=root)
    rc, out, err = run_inproc(capfd, script, script_args(script, demo_cli, cfg, tmp_path))
    assert expect in error_line(rc, err)


def _corrupt_dataset(src, dst, case, mode):
    """A copy of the demo dataset with every `mode` image (or label) broken as `case` says; returns
    (the broken paths, a word the error must contain)."""
    shutil.copytree(src, dst)
    images = sorted(glob.glob(os.path.join(dst, "leftImg8bit", mode, "*", "*.png")))
    labels = sorted(glob.glob(os.path.join(dst, "gtFine", "cityscapes_panoptic_{}_trainId".format(mode), "*.png")))
    for img, lab in zip(images, labels):
        if case == "truncated_png_image":
            data = open(img, "rb").read()
            open(img, "wb").write(data[: len(data) // 2])
        elif case == "garbage_png_image":
            open(img, "wb").write(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(300))
        elif case == "truncated_jpeg_image":
            # JPEG content (OpenCV reads by content, not by name), cut in the middle of the scan
            ok, buf = cv2.imencode(".jpg", cv2.imread(img))
            open(img, "wb").write(buf.tobytes()[: buf.size // 2])
        elif case == "bitflip_png_label":
            data = bytearray(open(lab, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(lab, "wb").write(bytes(data))
        elif case == "truncated_png_label":
            data = open(lab, "rb").read()
            open(lab, "wb").write(data[: len(data) // 2])
        elif case == "ids_not_in_json":
            ids = read_panoptic_png(lab)
            ids[:3, :3] = 424242
            write_panoptic_png(lab, ids)
    broken = labels if "label" in case or case == "ids_not_in_json" else images
    word = "424242" if case == "ids_not_in_json" else ("JPEG" if "jpeg" in case else "PNG")
    return broken, word


CORRUPT_CASES = ["truncated_png_image", "garbage_png_image", "truncated_jpeg_image", "bitflip_png_label",
                 "truncated_png_label", "ids_not_in_json"]
VAL_CORRUPT_CASES = list(CORRUPT_CASES)


@pytest.mark.parametrize("case", VAL_CORRUPT_CASES)
def test_corrupt_files_fail_val_clearly(demo_cli, tmp_path, capfd, case):
    broken, word = _corrupt_dataset(demo_cli.root, str(tmp_path / "data"), case, "val")
    cfg = write_config(demo_cli.dic, str(tmp_path / "cfg.yml"), dataset_root=str(tmp_path / "data"))
    rc, out, err = run_inproc(capfd, "val", script_args("val", demo_cli, cfg, tmp_path))
    line = error_line(rc, err)
    assert broken[0] in line and word in line, line


@pytest.mark.slow
@pytest.mark.parametrize("case,workers", [("truncated_png_image", 0), ("truncated_jpeg_image", 2),
                                          ("truncated_png_label", 0), ("ids_not_in_json", 2)])
def test_corrupt_files_fail_training_clearly_and_keep_checkpoints(demo_cli, tmp_path, case, workers):
    """An error inside the DataLoader (thread or worker process) surfaces as one line; the checkpoint the
    run resumed from is left byte for byte as it was."""
    import paddle
    from paddleseg.cvlibs import Config, SegBuilder

    from paddleseg_ext.core import checkpoint as ckpt

    data = str(tmp_path / "data")
    broken, word = _corrupt_dataset(demo_cli.root, data, case, "train")
    cfg = write_config(demo_cli.dic, str(tmp_path / "cfg.yml"), dataset_root=data)
    save = str(tmp_path / "out")
    os.makedirs(save)
    builder = SegBuilder(Config(demo_cli.cfg))
    paddle.seed(0)
    ckpt.save_checkpoint(save, 2, builder.model, builder.optimizer, {"best_pq": 0.25, "best_iter": 2})
    before = digest(save)
    rc, out, err = run_subprocess("train", ["--config", cfg, "--save_dir", save, "--resume_model", save,
                                            "--iters", "4", "--batch_size", "1", "--device", "cpu",
                                            "--num_workers", str(workers)], cwd=str(tmp_path), timeout=120)
    line = error_line(rc, err)
    assert word in line and any(b in line for b in broken), line
    assert digest(save) == before


@pytest.mark.slow
def test_corrupt_val_file_during_training_keeps_the_trained_iterations(demo_cli, tmp_path):
    """--do_eval meets an unreadable val image at the first evaluation: one line, and the iterations trained
    so far are saved before stopping."""
    import paddle

    broken, word = _corrupt_dataset(demo_cli.root, str(tmp_path / "data"), "truncated_png_image", "val")
    cfg = write_config(demo_cli.dic, str(tmp_path / "cfg.yml"),
                       lambda d: d["val_dataset"].update(dataset_root=str(tmp_path / "data")))
    save = str(tmp_path / "out")
    rc, out, err = run_subprocess("train", ["--config", cfg, "--save_dir", save, "--iters", "4", "--save_interval",
                                            "2", "--do_eval", "--batch_size", "1", "--device", "cpu"],
                                  cwd=str(tmp_path), timeout=120)
    line = error_line(rc, err)
    assert broken[0] in line and word in line
    assert sorted(os.listdir(save)) == ["iter_2"]
    assert sorted(os.listdir(os.path.join(save, "iter_2"))) == ["model.pdopt", "model.pdparams", "train_state.json"]
    assert len(paddle.load(os.path.join(save, "iter_2", "model.pdparams"))) > 100


# ---------------------------------------------------------------- weights and output folders

@pytest.fixture(scope="module")
def bad_weights(demo_cli):
    """Broken copies of the weights: the semantic classifier made for 21 classes, or left out; a cut file."""
    import paddle

    state = paddle.load(demo_cli.weights)
    (key,) = [k for k, v in state.items() if "semantic_head" in k and k.endswith("weight") and v.shape[0] == 19]
    d = os.path.join(demo_cli.tmp, "bad_weights")
    os.makedirs(d, exist_ok=True)
    rest = list(state[key].shape[1:])
    wrong = dict(state)
    wrong[key] = paddle.zeros([21] + rest)
    paddle.save(wrong, os.path.join(d, "wrong_shape.pdparams"))
    missing = {k: v for k, v in state.items() if k != key}
    paddle.save(missing, os.path.join(d, "missing_key.pdparams"))
    data = open(demo_cli.weights, "rb").read()
    open(os.path.join(d, "truncated.pdparams"), "wb").write(data[: len(data) // 2])
    return {"dir": d, "key": key, "mismatch": "{} {} vs {}".format(key, [21] + rest, [19] + rest)}


@pytest.mark.parametrize("script", ["val", "predict"])
@pytest.mark.parametrize("case", ["missing", "wrong_shape", "missing_key", "truncated"])
def test_bad_model_path(demo_cli, bad_weights, tmp_path, capfd, script, case):
    path = os.path.join(bad_weights["dir"], case + ".pdparams")
    rc, out, err = run_inproc(capfd, script, script_args(script, demo_cli, demo_cli.cfg, tmp_path, model_path=path))
    line = error_line(rc, err)
    assert path in line
    if case == "wrong_shape":
        # the key and both shapes, nothing skipped silently
        assert bad_weights["mismatch"] in line
    if case == "missing_key":
        assert "missing in checkpoint: {}".format(bad_weights["key"]) in line


def test_resume_from_checkpoint_that_does_not_fit(demo_cli, bad_weights, tmp_path, capfd):
    save = tmp_path / "out"
    os.makedirs(save / "iter_2")
    shutil.copy(os.path.join(bad_weights["dir"], "wrong_shape.pdparams"), save / "iter_2" / "model.pdparams")
    (save / "iter_2" / "model.pdopt").write_bytes(b"unused")
    before = digest(str(save))
    args = script_args("train", demo_cli, demo_cli.cfg, tmp_path) + ["--resume_model", str(save)]
    rc, out, err = run_inproc(capfd, "train", args)
    line = error_line(rc, err)
    assert str(save / "iter_2" / "model.pdparams") in line and bad_weights["mismatch"] in line
    assert digest(str(save)) == before


@pytest.mark.parametrize("case", ["train_save_dir", "val_results_file", "val_results_file_is_dir",
                                  "val_save_predictions"])
def test_unwritable_outputs_fail_before_the_work(demo_cli, tmp_path, capfd, case):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder is expected")
    script = case.split("_")[0]
    args = script_args(script, demo_cli, demo_cli.cfg, tmp_path)
    bad = str(blocker / "sub")
    if case == "train_save_dir":
        args[args.index("--save_dir") + 1] = bad
    elif case == "val_results_file":
        bad = str(blocker / "metrics.json")
        args[args.index("--results_file") + 1] = bad
    elif case == "val_results_file_is_dir":
        bad = str(tmp_path)
        args[args.index("--results_file") + 1] = bad
    else:
        args += ["--save_predictions", bad]
    rc, out, err = run_inproc(capfd, script, args)
    assert bad in error_line(rc, err)
    # refused before training / evaluating
    assert "[TRAIN] iter" not in out and "[VAL]" not in out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_results_folder(demo_cli, tmp_path, capfd):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        args = script_args("val", demo_cli, demo_cli.cfg, tmp_path)
        args[args.index("--results_file") + 1] = str(ro / "m.json")
        rc, out, err = run_inproc(capfd, "val", args)
        assert str(ro) in error_line(rc, err)
    finally:
        os.chmod(ro, 0o755)


def test_predict_corrupt_image_is_reported_and_the_others_written(demo_cli, tmp_path, capfd):
    src = tmp_path / "in"
    src.mkdir()
    good = demo_cli.images[:2]
    for p in good:
        shutil.copy(p, src / os.path.basename(p))
    data = open(good[0], "rb").read()
    bad = src / "zz_truncated.png"
    bad.write_bytes(data[: len(data) // 3])
    save = tmp_path / "pred"
    rc, out, err = run_inproc(capfd, "predict", ["--config", demo_cli.cfg, "--model_path", demo_cli.weights,
                                                 "--image_path", str(src), "--save_dir", str(save)])
    line = error_line(rc, err)
    assert str(bad) in line and "1 of 3" in line
    assert "warning: skipping" in err
    for p in good:
        stem = os.path.splitext(os.path.basename(p))[0]
        assert os.path.isfile(str(save / (stem + "_panoptic_raw.png")))
    assert not glob.glob(str(save / "zz_truncated*"))


def test_predict_script_subprocess_bad_config(demo_cli, tmp_path):
    """The real script (no in-process shortcut): unknown model type, one line, exit 2."""
    cfg = write_config(demo_cli.dic, str(tmp_path / "bad.yml"), lambda d: d["model"].update(type="NoSuchModel"))
    rc, out, err = run_subprocess("predict", ["--config", cfg, "--model_path", demo_cli.weights,
                                              "--image_path", demo_cli.images[0], "--save_dir", str(tmp_path / "p")],
                                  cwd=str(tmp_path))
    assert "NoSuchModel" in error_line(rc, err)
