"""val.py end to end on the demo dataset: the metrics table and json, oracle runs, official-format
predictions scored by cityscapesscripts, and distributed evaluation equal to one process."""
import json
import os
import subprocess
import sys

import pytest

from test_predict import CONTRIB, ROOT, make_config_and_weights

pytestmark = pytest.mark.slow
VAL = os.path.join(CONTRIB, "val.py")


@pytest.fixture(scope="module")
def setup(demo_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("val"))
    cfg, weights = make_config_and_weights(demo_root, out)
    return {"cfg": cfg, "weights": weights, "tmp": out, "root": demo_root}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _val(setup, results, *extra, launch=None, log_dir=None):
    args = [VAL, "--config", setup["cfg"], "--model_path", setup["weights"], "--device", "cpu",
            "--results_file", results] + list(extra)
    cmd = [sys.executable] + args
    if launch:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(launch),
               "--log_dir", log_dir] + args
    p = subprocess.run(cmd, cwd=setup["tmp"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600)
    return p.returncode, p.stdout


def _official_pq(root, pred_dir, out_json):
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    gt_json = os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId.json")
    gt_dir = os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId")
    return evaluatePanoptic(gt_json, gt_dir, os.path.join(pred_dir, "panoptic.json"),
                            os.path.join(pred_dir, "panoptic"), out_json)


def test_full_oracle_gives_pq_100_and_official_scores_agree(setup, tmp_path):
    res = str(tmp_path / "m.json")
    pred = str(tmp_path / "pred")
    rc, out = _val(setup, res, "--oracle", "semantic,center,offset", "--stuff_area", "0",
                   "--save_predictions", pred)
    assert rc == 0, out
    for word in ("PQ", "SQ", "RQ", "All", "Things", "Stuff", "mIoU", "AP (semantic)", "AP (semantic_x_instance)"):
        assert word in out, word
    m = json.load(open(res))
    assert m["num_images"] == 4
    assert m["panoptic"]["All"]["pq"] == pytest.approx(1.0)
    assert m["semantic"]["mIoU"] == pytest.approx(1.0)
    official = _official_pq(setup["root"], pred, str(tmp_path / "official.json"))
    for g in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert abs(official[g][k] - m["panoptic"][g][k]) < 1e-9, (g, k)
        assert official[g]["n"] == m["panoptic"][g]["n"]


def test_partial_oracle_matches_cityscapesscripts_on_saved_predictions(setup, tmp_path):
    res = str(tmp_path / "m.json")
    pred = str(tmp_path / "pred")
    # ground-truth semantics with the untrained network's centres/offsets: an imperfect, non-trivial result
    rc, out = _val(setup, res, "--oracle", "semantic", "--threshold", "0.0", "--save_predictions", pred)
    assert rc == 0, out
    m = json.load(open(res))
    assert 0.0 < m["panoptic"]["All"]["pq"] < 1.0
    official = _official_pq(setup["root"], pred, str(tmp_path / "official.json"))
    for g in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert abs(official[g][k] - m["panoptic"][g][k]) < 1e-9, (g, k)
    for cid, r in official["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert abs(r[k] - m["panoptic"]["per_class"][str(cid)][k]) < 1e-9


def test_two_process_evaluation_equals_one_process(setup, tmp_path):
    # 3 images over 2 ranks: the split is uneven, nothing may be dropped or counted twice
    one = str(tmp_path / "one.json")
    two = str(tmp_path / "two.json")
    args = ["--oracle", "semantic", "--threshold", "0.0", "--max_images", "3"]
    rc, out = _val(setup, one, *args)
    assert rc == 0, out
    rc, out = _val(setup, two, *args, launch=2, log_dir=str(tmp_path / "log"))
    assert rc == 0, out + open(str(tmp_path / "log" / "workerlog.0")).read()
    a, b = json.load(open(one)), json.load(open(two))
    assert a["num_images"] == b["num_images"] == 3
    assert a["panoptic"] == b["panoptic"]
    assert a["semantic"] == b["semantic"]
    assert a["instance"] == b["instance"]


def test_benchmark_network_speed_reports_both_times(setup, tmp_path):
    res = str(tmp_path / "m.json")
    rc, out = _val(setup, res, "--benchmark_network_speed", "--max_images", "1")
    assert rc == 0, out
    assert "network:" in out and "post-processing:" in out
    speed = json.load(open(res))["speed"]
    assert speed["network_ms_per_image"] > 0 and speed["postprocess_ms_per_image"] > 0


def test_tta_runs(setup, tmp_path):
    res = str(tmp_path / "m.json")
    rc, out = _val(setup, res, "--aug_eval", "--scales", "0.75", "1.0", "--flip_horizontal", "--max_images", "1")
    assert rc == 0, out
    assert "scales [0.75, 1.0], flip True" in out
