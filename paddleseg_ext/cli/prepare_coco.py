"""Check a COCO panoptic tree and write the contiguous train-id category table.

Expects annotations/panoptic_{train,val}2017.json, annotations/panoptic_{train,val}2017/*.png and
{train,val}2017/*.jpg under --root; writes annotations/panoptic_coco_categories_trainId.json.

    python tools/prepare_coco.py --root data/coco
"""
from ..datasets.coco_prepare import prepare_coco
from .common import console_entry, parser as command_parser


def main(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument("--root", required=True, help="COCO root holding annotations/, train2017/, val2017/")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to check (default: train val)")
    args = parser.parse_args(argv)
    prepare_coco(args.root, splits=args.splits, verbose=True)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
