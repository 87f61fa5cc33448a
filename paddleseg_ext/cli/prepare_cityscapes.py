"""Convert a Cityscapes tree in place for Panoptic-DeepLab.

Writes gtFine/<split>/<city>/*_labelTrainIds.png and, with cityscapesscripts' createPanopticImgs,
gtFine/cityscapes_panoptic_<split>_trainId.json (+ folder; what training reads) and
gtFine/cityscapes_panoptic_<split>.json (+ folder; what the official evaluation reads).
Existing outputs are skipped unless --force.

    python tools/prepare_cityscapes.py --root data/cityscapes
"""
from ..datasets.cityscapes_prepare import prepare_cityscapes
from .common import console_entry, parser as command_parser


def main(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument("--root", required=True, help="Cityscapes root holding gtFine/ and leftImg8bit/")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits to convert (default: those of train/val/test with *_instanceIds.png)")
    parser.add_argument("--force", action="store_true", help="redo outputs that already exist")
    args = parser.parse_args(argv)
    prepare_cityscapes(args.root, force=args.force, splits=args.splits, verbose=True)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
