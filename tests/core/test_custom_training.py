"""Your own data end to end: a generated CustomPanoptic dataset (non-contiguous category ids up to 10000,
a thing at train id 0, crowd regions) through val.py --oracle (PQ 100, also stuff-only, things-only and
one-class datasets; predictions in the dataset's own category ids scored by the file-based evaluator),
2-process training with --do_eval for both models on the configs/custom demo configs, val.py --aug_eval
and export.py (deploy.yaml with the dataset's class names)."""
import json
import os

import paddle
import pytest
import yaml

from panoptic_metrics.panoptic_files import evaluate_panoptic_files
from paddleseg_ext.cli import val as val_cli
from tests.conftest import CONTRIB, export_model, run_main, run_script
from tests.datasets.test_custom_panoptic import (ONE_CLASS, STREET, STUFF_ONLY, THINGS_ONLY, custom_config,
                                                 make_custom_dataset)

DEEPLAB = "panoptic_deeplab_custom_demo_cpu.yml"
FCN = "panoptic_fcn_custom_demo_cpu.yml"


def untrained_weights(cfg_path, out):
    """Freshly initialised weights of a custom config's model (classes from its dataset)."""
    from paddleseg_ext.runtime import build_model, load_config

    paddle.seed(1)
    _, model = build_model(load_config(cfg_path), cfg_path)
    paddle.save(model.state_dict(), out)
    return out


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    """The street dataset (2 train + 2 val frames of 96x192, the demo configs' long side) and its Panoptic-DeepLab
    demo config."""
    tmp = tmp_path_factory.mktemp("custom_street")
    root = make_custom_dataset(str(tmp / "street"), STREET)
    cfg = custom_config(tmp, DEEPLAB, root)
    return root, cfg, untrained_weights(cfg, str(tmp / "model.pdparams")), tmp


def _val(capfd, cfg, weights, results, *extra):
    rc, out, err = run_main(capfd, val_cli.main, ["--config", cfg, "--model_path", weights, "--device", "cpu",
                                                  "--results_file", results] + list(extra))
    assert rc == 0, err
    return json.load(open(results)), out


def test_oracle_pq_100_and_predictions_in_the_datasets_ids(street, capfd, tmp_path):
    root, cfg, weights, _ = street
    pred = str(tmp_path / "pred")
    m, out = _val(capfd, cfg, weights, str(tmp_path / "m.json"), "--oracle", "semantic,center,offset",
                  "--stuff_area", "0", "--save_predictions", pred)
    assert m["panoptic"]["All"]["pq"] == pytest.approx(1.0) and m["semantic"]["mIoU"] == pytest.approx(1.0)
    assert m["panoptic"]["Things"]["n"] == 2 and m["panoptic"]["Stuff"]["n"] == 3
    for name in ("pedestrian", "vehicle", "building"):
        assert name in out
    predictions = json.load(open(os.path.join(pred, "panoptic.json")))
    used = {s["category_id"] for a in predictions["annotations"] for s in a["segments_info"]}
    assert used == {10000, 7, 23, 101, 205}
    official = evaluate_panoptic_files(os.path.join(root, "annotations", "panoptic_val.json"),
                                       os.path.join(root, "annotations", "panoptic_val"),
                                       os.path.join(pred, "panoptic.json"), os.path.join(pred, "panoptic"),
                                       num_workers=1)
    assert official["All"]["pq"] == pytest.approx(1.0) and official["All"]["n"] == 5


@pytest.mark.parametrize("spec", [STUFF_ONLY, THINGS_ONLY, ONE_CLASS], ids=["stuff_only", "things_only", "one_class"])
def test_oracle_pq_100_on_other_category_sets(spec, capfd, tmp_path):
    root = make_custom_dataset(str(tmp_path / "d"), spec, splits=(("val", 2),))
    cfg = custom_config(tmp_path, DEEPLAB, root, mutate=lambda d: d.update(train_dataset=dict(d["val_dataset"])))
    weights = untrained_weights(cfg, str(tmp_path / "w.pdparams"))
    m, _ = _val(capfd, cfg, weights, str(tmp_path / "m.json"), "--oracle", "semantic,center,offset",
                "--stuff_area", "0")
    assert m["panoptic"]["All"]["pq"] == pytest.approx(1.0)
    assert m["panoptic"]["All"]["n"] == len(spec)


def test_aug_eval_tables_carry_the_custom_classes(street, capfd, tmp_path):
    _, cfg, weights, _ = street
    m, out = _val(capfd, cfg, weights, str(tmp_path / "m.json"), "--aug_eval", "--scales", "0.75", "1.0",
                  "--flip_horizontal", "--threshold", "0.0")
    assert m["num_images"] == 2 and "scales [0.75, 1.0], flip True" in out
    assert [(r["name"], r["category_id"]) for r in m["panoptic"]["per_class"].values()] == [
        ("pedestrian", 10000), ("road", 7), ("vehicle", 23), ("sky", 101), ("building", 205)]
    assert set(m["instance"]) == {"semantic", "semantic_x_instance"}  # COCO mask AP on the dataset's things


@pytest.mark.slow
def test_export_writes_the_custom_classes(street, tmp_path):
    _, cfg, weights, _ = street
    save = export_model(cfg, weights, str(tmp_path / "exported"))
    deploy = yaml.safe_load(open(os.path.join(save, "deploy.yaml")))["Deploy"]
    assert deploy["class_names"] == ["pedestrian", "road", "vehicle", "sky", "building"]
    assert deploy["num_classes"] == 5 and deploy["thing_ids"] == [0, 2]
    assert deploy["palette"][1] == [80, 147, 241]


@pytest.mark.slow
@pytest.mark.parametrize("name", [DEEPLAB, FCN])
def test_two_process_training_with_eval(street, tmp_path, name):
    root, _, _, _ = street
    cfg = custom_config(tmp_path, name, root)
    save = str(tmp_path / "out")
    args = ["--config", cfg, "--save_dir", save, "--device", "cpu", "--iters", "2", "--batch_size", "1",
            "--log_iters", "1", "--save_interval", "2", "--do_eval"]
    rc, out, _ = run_script(os.path.join(CONTRIB, "train.py"), args, cwd=str(tmp_path), timeout=600, launch=2,
                            log_dir=str(tmp_path / "log"), merge_output=True)
    log = out + "".join(open(os.path.join(tmp_path, "log", f)).read() for f in os.listdir(tmp_path / "log"))
    assert rc == 0, log[-3000:]
    assert os.path.isfile(os.path.join(save, "iter_2", "model.pdparams"))
    assert "[EVAL] iter 2: PQ" in log and "[TRAIN] done: 2 iterations" in log
    checksums = {ln.split("checksum:")[1].strip() for ln in log.splitlines() if "parameter checksum:" in ln}
    assert log.count("parameter checksum:") >= 2 and len(checksums) == 1  # the ranks hold the same weights
