"""The evaluation loop (`core.val`): val.py end to end on the demo dataset (the metrics table and json,
oracle runs, official-format predictions scored by cityscapesscripts, distributed evaluation equal to
one process, speed, TTA), and the strict-JSON results file."""
import json
import math
import os
import shutil

import pytest

from paddleseg_ext.core.val import format_metrics_table, run_val, save_metrics
from tests.conftest import CONTRIB, run_script

VAL = os.path.join(CONTRIB, "val.py")


def _val(demo, results, *extra, launch=None, log_dir=None):
    args = ["--config", demo.cfg, "--model_path", demo.weights, "--device", "cpu", "--results_file", results] + \
        list(extra)
    rc, out, _ = run_script(VAL, args, cwd=demo.tmp, timeout=600, launch=launch, log_dir=log_dir, merge_output=True)
    return rc, out


def _official_pq(root, pred_dir, out_json):
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    gt_json = os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId.json")
    gt_dir = os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId")
    return evaluatePanoptic(gt_json, gt_dir, os.path.join(pred_dir, "panoptic.json"),
                            os.path.join(pred_dir, "panoptic"), out_json)


@pytest.mark.slow
def test_full_oracle_gives_pq_100_and_official_scores_agree(demo, tmp_path):
    res = str(tmp_path / "m.json")
    pred = str(tmp_path / "pred")
    rc, out = _val(demo, res, "--oracle", "semantic,center,offset", "--stuff_area", "0",
                   "--save_predictions", pred)
    assert rc == 0, out
    for word in ("PQ", "SQ", "RQ", "All", "Things", "Stuff", "mIoU", "AP (semantic)", "AP (semantic_x_instance)"):
        assert word in out, word
    m = json.load(open(res))
    assert m["num_images"] == 4
    assert m["panoptic"]["All"]["pq"] == pytest.approx(1.0)
    assert m["semantic"]["mIoU"] == pytest.approx(1.0)
    official = _official_pq(demo.root, pred, str(tmp_path / "official.json"))
    for g in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert abs(official[g][k] - m["panoptic"][g][k]) < 1e-9, (g, k)
        assert official[g]["n"] == m["panoptic"][g]["n"]


@pytest.mark.slow
def test_partial_oracle_matches_cityscapesscripts_on_saved_predictions(demo, tmp_path):
    res = str(tmp_path / "m.json")
    pred = str(tmp_path / "pred")
    # ground-truth semantics with the untrained network's centres/offsets: an imperfect, non-trivial result
    rc, out = _val(demo, res, "--oracle", "semantic", "--threshold", "0.0", "--save_predictions", pred)
    assert rc == 0, out
    m = json.load(open(res))
    assert 0.0 < m["panoptic"]["All"]["pq"] < 1.0
    official = _official_pq(demo.root, pred, str(tmp_path / "official.json"))
    for g in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert abs(official[g][k] - m["panoptic"][g][k]) < 1e-9, (g, k)
    for cid, r in official["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert abs(r[k] - m["panoptic"]["per_class"][str(cid)][k]) < 1e-9


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(demo, tmp_path):
    # 3 images over 2 ranks: the split is uneven, nothing may be dropped or counted twice
    one = str(tmp_path / "one.json")
    two = str(tmp_path / "two.json")
    args = ["--oracle", "semantic", "--threshold", "0.0", "--max_images", "3"]
    rc, out = _val(demo, one, *args)
    assert rc == 0, out
    rc, out = _val(demo, two, *args, launch=2, log_dir=str(tmp_path / "log"))
    assert rc == 0, out + open(str(tmp_path / "log" / "workerlog.0")).read()
    a, b = json.load(open(one)), json.load(open(two))
    assert a["num_images"] == b["num_images"] == 3
    assert a["panoptic"] == b["panoptic"]
    assert a["semantic"] == b["semantic"]
    assert a["instance"] == b["instance"]


@pytest.mark.slow
def test_benchmark_network_speed_reports_both_times(demo, tmp_path):
    res = str(tmp_path / "m.json")
    rc, out = _val(demo, res, "--benchmark_network_speed", "--max_images", "1")
    assert rc == 0, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("speed per image:")]
    assert "network" in line and "postprocess" in line and "preprocess" in line
    speed = json.load(open(res))["speed"]
    assert speed["network_ms_per_image"] > 0 and speed["postprocess_ms_per_image"] > 0


@pytest.mark.slow
def test_tta_runs(demo, tmp_path):
    res = str(tmp_path / "m.json")
    rc, out = _val(demo, res, "--aug_eval", "--scales", "0.75", "1.0", "--flip_horizontal", "--max_images", "1")
    assert rc == 0, out
    assert "scales [0.75, 1.0], flip True" in out


def _strict_json(text):
    """json.loads that refuses NaN / Infinity (what strict parsers such as browsers' JSON.parse do)."""
    def refuse(name):
        raise ValueError("non-standard JSON constant {}".format(name))
    return json.loads(text, parse_constant=refuse)


def test_eval_results_json_is_strict_with_null_for_absent_classes(demo, tmp_path):
    """val.py's default results file (eval_results.json next to the weights) is standard JSON: metrics
    that are undefined (IoU and AP of a class absent from ground truth and predictions) are null."""
    weights = str(tmp_path / "model.pdparams")
    shutil.copy(demo.weights, weights)
    metrics = run_val(demo.cfg, weights, oracle=("semantic", "center", "offset"), postprocess={"stuff_area": 0},
                      max_images=1, device="cpu")
    with open(str(tmp_path / "eval_results.json")) as f:
        saved = _strict_json(f.read())
    assert saved["num_images"] == 1 and saved["panoptic"]["All"]["pq"] == pytest.approx(1.0)
    # the demo frames have cars, no train: "train" has no IoU and no AP, "car" has both
    sem = saved["semantic"]["per_class"]
    assert sem["train"]["iou"] is None and sem["car"]["iou"] == pytest.approx(1.0)
    assert saved["semantic"]["IoU"][16] is None and saved["semantic"]["IoU"][13] == pytest.approx(1.0)
    for mode in ("semantic", "semantic_x_instance"):
        ap = saved["instance"][mode]["per_class"]
        assert ap["train"]["AP"] is None and ap["train"]["AP50"] is None and ap["car"]["AP"] == pytest.approx(1.0)
    # in memory the same metrics are NaN
    assert math.isnan(metrics["semantic"]["per_class"]["train"]["iou"])
    assert "mIoU: 100.00" in format_metrics_table(metrics)


def test_save_metrics_writes_null_for_nan_and_inf(tmp_path):
    path = str(tmp_path / "sub" / "m.json")
    save_metrics({"a": float("nan"), "b": [1.0, float("inf"), -float("inf")], "c": {"d": 0.5, "e": 3}}, path)
    with open(path) as f:
        assert _strict_json(f.read()) == {"a": None, "b": [1.0, None, None], "c": {"d": 0.5, "e": 3}}
    assert [n for n in os.listdir(str(tmp_path / "sub"))] == ["m.json"]  # no temporary file left
