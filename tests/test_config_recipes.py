"""Every config trains the recipe that docs/config_audit.md claims for it.

The audit's recipe table (between the ``recipes:begin`` / ``recipes:end`` markers) is this test's
data: for every config under configs/ (after ``_base_``, loaded with paddleseg's ``Config``) the
recipe cells computed here must equal the table's row, every config must have a row, and a config
whose row reproduces nothing says so in its first comment. Changing a config's recipe without
changing its claim fails here. ``python -m tests.test_config_recipes`` prints the computed rows.
"""
import glob
import os

import pytest
from paddleseg.cvlibs import Config

from tests.conftest import CONFIG_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_ROOT = os.path.join(ROOT, "configs")
AUDIT = os.path.join(ROOT, "docs", "config_audit.md")
COLUMNS = ("config", "reproduces", "backbone", "crop", "scales", "batch/card", "optimizer, lr",
           "iters", "losses", "coef", "targets", "post-processing")
NONE = "none"


def all_configs():
    paths = glob.glob(os.path.join(CONFIG_DIR, "*.yml"))
    paths += glob.glob(os.path.join(CONFIGS_ROOT, "panoptic_fcn", "*.yml"))
    return sorted(os.path.relpath(p, CONFIGS_ROOT) for p in paths)


def _num(v):
    return "{:g}".format(float(v)) if isinstance(v, float) else str(v)


def _opts(d, skip=("type", "ignore_index")):
    return ", ".join("{}={}".format(k, _num(d[k])) for k in sorted(d) if k not in skip)


def recipe_row(rel):
    """The recipe cells of one config, formatted from its effective (merged) dictionary."""
    dic = Config(os.path.join(CONFIGS_ROOT, rel)).dic
    model, train = dic["model"], dic["train_dataset"]
    bb = model["backbone"]
    backbone = "{} OS{}".format(bb["type"], bb.get("output_stride", "-"))
    if model.get("use_dsconv"):
        backbone += " DSConv"
    backbone += " align_corners={}".format(model.get("align_corners", False))
    if model["type"] == "PanopticFCN":
        backbone += " pos_num={} encoder={}{}".format(model["pos_num"], model["encoder_channels"],
                                                      " DCN" if model.get("encoder_use_dcn") else "")
    crop, scales, flip_distort = "-", "-", []
    for t in train["transforms"]:
        kind = t["type"]
        if kind in ("PanopticRandomPaddingCrop", "RandomPaddingCrop"):
            crop = "{}x{} pad {}".format(*t["crop_size"], "random" if kind.startswith("Panoptic")
                                         else "bottom-right")
        elif kind == "ResizeStepScaling":
            scales = "{}-{} step {}".format(_num(t["min_scale_factor"]), _num(t["max_scale_factor"]),
                                           _num(t["scale_step_size"]))
        elif kind == "ResizeShortRange":
            s = t["short_sizes"]
            scales = "short {}..{} ({}) max {}".format(s[0], s[-1], len(s), t["max_size"])
        elif kind in ("RandomHorizontalFlip", "RandomDistort"):
            flip_distort.append("flip" if kind == "RandomHorizontalFlip" else "distort")
    scales = " + ".join([scales] + flip_distort)
    lr = dic["lr_scheduler"]
    opt = "{} {} {} power {}".format(dic["optimizer"]["type"], _num(lr["learning_rate"]),
                                     lr["type"], _num(lr.get("power", "-")))
    if lr.get("warmup_iters"):
        opt += " warmup {} from {}".format(lr["warmup_iters"], _num(lr["warmup_start_lr"]))
    loss = dic["loss"]
    losses = "; ".join("{}({})".format(t["type"], _opts(t)) for t in loss["types"])
    coef = " / ".join(_num(c) for c in loss["coef"])
    if "target_generator" in train:
        targets = _opts(train["target_generator"], skip=("type", "thing_ids"))
    else:
        targets = _opts({k: train[k] for k in ("sigma", "small_instance_area", "small_instance_weight",
                                                 "ignore_stuff_in_offset") if k in train})
    post = _opts(dic.get("postprocess", {}))
    return {"config": rel, "backbone": backbone, "crop": crop, "scales": scales,
            "batch/card": str(dic["batch_size"]), "optimizer, lr": opt, "iters": str(dic["iters"]),
            "losses": losses, "coef": coef, "targets": targets, "post-processing": post}


def audit_rows():
    text = open(AUDIT, encoding="utf-8").read()
    table = text.split("<!-- recipes:begin -->")[1].split("<!-- recipes:end -->")[0]
    lines = [ln.strip() for ln in table.strip().splitlines() if ln.strip().startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert tuple(header) == COLUMNS, header
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip().strip("`") for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


ROWS = audit_rows()


def test_every_config_has_one_audit_row():
    assert sorted(ROWS) == all_configs()


@pytest.mark.parametrize("rel", all_configs())
def test_config_recipe_matches_its_audit_row(rel):
    row = ROWS[rel]
    computed = recipe_row(rel)
    assert {k: row[k] for k in computed} == computed
    with open(os.path.join(CONFIGS_ROOT, rel), encoding="utf-8") as f:
        first_comment = f.readline()
    claims_nothing = row["reproduces"] == NONE
    assert first_comment.startswith("# Reproduces no published") == claims_nothing, first_comment
    if not claims_nothing:
        assert "PQ" in row["reproduces"]


if __name__ == "__main__":
    for rel in all_configs():
        r = recipe_row(rel)
        print("| " + " | ".join("`{}`".format(r[c]) if c == "config" else r.get(c, "?")
                               for c in COLUMNS) + " |")
