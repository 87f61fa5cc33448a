"""Convert annotations into the COCO panoptic layout of `CustomPanoptic`.

Writes ROOT/images/<split>/, ROOT/annotations/panoptic_<split>.json and ROOT/annotations/panoptic_<split>/
(PNGs of RGB-encoded segment ids), with your own category ids. A failed run leaves ROOT as it was.

  semantic-instance: per image a semantic PNG (8/16 bit, pixel = category id; other values are void)
      and an instance PNG (8/16 bit, positive id = one instance of the image, 0 = none), matched by stem.
      Thing pixels with instance 0 form one crowd segment per class; stuff pixels one segment per class.
  labelme: labelme JSON files (polygon, rectangle, circle shapes; label = category name) with their
      images; later shapes cover earlier ones; thing shapes with the same group_id form one instance.

The categories file is a json list of {"id", "name", "isthing", "color"} (train ids follow its order).

    python tools/convert_panoptic.py labelme --categories data/demo_labelme/categories.json \\
        --labelme data/demo_labelme/train --out data/my_dataset --split train
    python tools/convert_panoptic.py semantic-instance --categories cats.json --images imgs/ \\
        --semantic sem/ --instances inst/ --out data/my_dataset --split val
"""
import contextlib
import sys

from ..core.progress import Progress
from ..datasets.convert import convert_labelme, convert_semantic_instance, load_categories
from ..datasets.convert.output import find_by_stem, format_summary
from ..utils import log
from .common import console_entry, parser


@contextlib.contextmanager
def progress_bar(total):
    """A progress bar's `step`; on an error the bar's line is ended so that the error is a line of its own."""
    bar = Progress(total)
    try:
        yield bar.step
    except BaseException:
        if bar.n:
            sys.stderr.write("\n")
            sys.stderr.flush()
        raise


def build_parser():
    p = parser(__doc__)
    sub = p.add_subparsers(dest="format", metavar="{semantic-instance,labelme}")
    sub.required = True
    si = sub.add_parser("semantic-instance", help="semantic + instance id PNGs")
    si.add_argument("--images", required=True, help="image folder (searched recursively)")
    si.add_argument("--semantic", required=True, help="semantic PNG folder: pixel = category id")
    si.add_argument("--instances", required=True, help="instance id PNG folder: 0 = none")
    lm = sub.add_parser("labelme", help="labelme JSON files")
    lm.add_argument("--labelme", required=True, help="folder of labelme .json files (searched recursively)")
    for s in (si, lm):
        s.add_argument("--categories", required=True, help="json list of {id, name, isthing, color}")
        s.add_argument("--out", required=True, help="dataset root to write (its other splits are kept)")
        s.add_argument("--split", required=True, help="split name, e.g. train or val")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    categories = load_categories(args.categories)
    if args.format == "labelme":
        with progress_bar(len(find_by_stem(args.labelme, (".json",), "--labelme"))) as step:
            summary = convert_labelme(categories, args.labelme, args.out, args.split, progress=step)
    else:
        with progress_bar(len(find_by_stem(args.semantic, (".png",), "--semantic"))) as step:
            summary = convert_semantic_instance(categories, args.images, args.semantic, args.instances, args.out,
                                                args.split, progress=step)
    log.info(format_summary(summary))
    if summary.get("void_values"):
        log.info("semantic values that are no category id (void): {}".format(summary["void_values"]))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
