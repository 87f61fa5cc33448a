"""Check a panoptic dataset in COCO panoptic format before training.

For every image: the image and its PNG exist and have the json's size, every PNG segment id is listed
once in segments_info, every listed id occurs, categories are known and areas right. Prints per-class
statistics (images, segments, pixel share, instance area percentiles, classes never seen in train) and
writes ground-truth pictures (image | semantic | instance | panoptic, drawn as predict.py draws) for
--num_pictures images per split. Exit status 1 with one line per problem (at most 20, then a count).

    python tools/check_dataset.py --config configs/custom/panoptic_deeplab_custom_demo_cpu.yml
    python tools/check_dataset.py --dataset_root data/my_dataset --split train val --num_pictures 4
"""
import os

from ..datasets.convert import check_split, split_paths
from ..datasets.convert.check import format_statistics
from ..runtime.config import load_config
from ..utils import UserInputError, log
from .common import console_entry, parser
from .convert_panoptic import progress_bar

MAX_PROBLEM_LINES = 20
#: dataset types whose files this command knows how to find, and their layout
LAYOUTS = {"CustomPanoptic": "custom", "CocoPanoptic": "coco"}


def splits_of_config(path):
    """[(name, image folder, json, PNG folder)] of the config's train and val datasets."""
    cfg = load_config(path)
    out = []
    for key, default_mode in (("train_dataset", "train"), ("val_dataset", "val")):
        d = cfg.dic.get(key)
        if not d:
            continue
        kind = d.get("type")
        if kind not in LAYOUTS:
            raise UserInputError("{}: {} type {!r} is not supported here (supported: {})".format(
                path, key, kind, ", ".join(LAYOUTS)))
        if not d.get("dataset_root"):
            raise UserInputError("{}: {} has no dataset_root".format(path, key))
        mode = d.get("mode", default_mode)
        paths = split_paths(d["dataset_root"], mode, d.get("image_dir"), d.get("json_file"), d.get("label_dir"),
                            layout=LAYOUTS[kind])
        out.append((mode,) + paths)
    if not out:
        raise UserInputError("{} has neither train_dataset nor val_dataset".format(path))
    return out


def _count(json_file):
    """Annotations in a json, for the progress bar (0 when unreadable: the check reports why)."""
    try:
        import json

        with open(json_file) as f:
            return len(json.load(f).get("annotations", []))
    except (OSError, ValueError, AttributeError):
        return 0


def main(argv=None):
    p = parser(__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="YAML config: checks its train_dataset and val_dataset (CustomPanoptic, "
                                      "CocoPanoptic)")
    src.add_argument("--dataset_root", help="root of the custom layout (images/<split>/, annotations/...)")
    p.add_argument("--split", nargs="+", default=None,
                   help="with --dataset_root: split names (default: train val, those present)")
    p.add_argument("--num_pictures", type=int, default=0, help="ground-truth pictures to write per split")
    p.add_argument("--save_dir", default="output/check_dataset", help="where pictures go (<save_dir>/<split>/)")
    args = p.parse_args(argv)
    if args.num_pictures < 0:
        raise UserInputError("--num_pictures must be >= 0, got {}".format(args.num_pictures))
    if args.config:
        splits = splits_of_config(args.config)
    else:
        if not os.path.isdir(args.dataset_root):
            raise UserInputError("--dataset_root folder not found: {}".format(args.dataset_root))
        splits = [(s,) + split_paths(args.dataset_root, s) for s in args.split or ("train", "val")]
        if args.split is None:  # the default `train val`: the splits present (a named split must exist)
            splits = [s for s in splits if os.path.exists(s[2])] or splits[:1]
    problems, results = [], []
    for name, image_dir, json_file, label_dir in splits:
        with progress_bar(_count(json_file)) as step:
            result = check_split(image_dir, json_file, label_dir, name, args.num_pictures,
                                 os.path.join(args.save_dir, name), progress=step)
        results.append(result)
        problems += result["problems"]
    train = next((r for r in results if r["name"] == "train" and "class_segments" in r), None)
    seen = train["class_segments"] > 0 if train is not None else None
    for r in results:
        text = format_statistics(r, seen)
        if text:
            log.info(text)
        for pic in r["pictures"]:
            log.info("wrote {}".format(pic))
    if seen is not None and not seen.all():
        names = [c.get("name") for c, s in zip(train["categories"], seen) if not s]
        log.info("classes that never occur in train: {}".format(", ".join(map(str, names))))
    if problems:
        for line in problems[:MAX_PROBLEM_LINES]:
            log.info("problem: {}".format(line))
        if len(problems) > MAX_PROBLEM_LINES:
            log.info("... and {} more problems".format(len(problems) - MAX_PROBLEM_LINES))
        log.info("{} problem(s) found".format(len(problems)))
        return 1
    log.info("dataset OK: {}".format(", ".join("{} ({} images)".format(r["name"], r["images"]) for r in results)))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
