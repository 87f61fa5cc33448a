"""`panoptic-eval` / tools/eval_panoptic.py (`panoptic_metrics.cli`): the official results file, one-line
errors, and a start without paddle or paddleseg."""
import json
import os
import subprocess
import sys

from panoptic_metrics.cli import main
from tests.conftest import ROOT, script_env
from tests.panoptic_metrics.conftest import assert_same_results


def test_tool_writes_the_official_results_file(pq_files, capsys):
    root, gt_json, gt_dir, pred_json, pred_dir, _, _ = pq_files
    out = os.path.join(root, "ours.json")
    assert main(["--gt-json-file", gt_json, "--gt-folder", gt_dir, "--prediction-json-file", pred_json,
                 "--prediction-folder", pred_dir, "--results_file", out]) == 0
    printed = capsys.readouterr().out
    assert "Things" in printed and "person" in printed
    with open(out) as f:
        ours = json.load(f)
    with open(os.path.join(root, "official.json")) as f:
        official = json.load(f)
    assert_same_results(ours, official)  # per_class keys are the category ids as strings in both

    # a missing prediction json is reported, not a traceback
    assert main(["--gt-json-file", gt_json, "--prediction-json-file", os.path.join(root, "nope.json")]) == 1
    assert "nope.json" in capsys.readouterr().err


# run with `python -c`: scores the files, then reports which of paddle / paddleseg got imported
PADDLE_FREE_RUN = r'''
import json, sys
from panoptic_metrics.cli import main
rc = main(sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("paddle", "paddleseg", "paddleseg_ext")})
print("RESULT " + json.dumps({"rc": rc, "loaded": loaded}))
'''


def test_scoring_files_imports_neither_paddle_nor_paddleseg(pq_files, tmp_path):
    root, gt_json, gt_dir, pred_json, pred_dir, _, _ = pq_files
    out = str(tmp_path / "pq.json")
    p = subprocess.run([sys.executable, "-c", PADDLE_FREE_RUN, "--gt-json-file", gt_json, "--gt-folder", gt_dir,
                        "--prediction-json-file", pred_json, "--prediction-folder", pred_dir, "--results_file", out],
                       cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert json.loads(line[len("RESULT "):]) == {"rc": 0, "loaded": []}
    with open(out) as f, open(os.path.join(root, "official.json")) as g:
        assert_same_results(json.load(f), json.load(g))
