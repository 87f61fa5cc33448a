"""Write a small synthetic street-scene dataset in the Cityscapes layout, ready for training.

Frames have road, sidewalk, building, vegetation, terrain, sky (stuff), cars, trucks and people
(things), a crowd of cars and a void ego-vehicle strip, with real Cityscapes label ids; the tree is
then converted like a real one (tools/prepare_cityscapes.py). Same arguments, same bytes.
With --format labelme or semantic-instance the same scenes are written as raw annotations with
their own categories (ids 7, 23, 60, 101, 205, 318, 4000, 9999; car first), the input of
tools/convert_panoptic.py.

    python tools/make_demo_dataset.py --out contrib/PanopticDeepLab/data/demo_cityscapes
    python tools/make_demo_dataset.py --format labelme --out data/demo_labelme
    python tools/make_demo_dataset.py --format semantic-instance --out data/demo_semantic_instance
"""
from ..datasets.demo_dataset import make_demo_dataset, make_raw_demo
from ..utils import log
from .common import console_entry, parser as command_parser


def main(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument("--out", required=True, help="output dataset root (created; a previous demo there is replaced)")
    parser.add_argument("--format", default="cityscapes", choices=["cityscapes", "labelme", "semantic-instance"],
                        help="cityscapes: the converted Cityscapes-layout dataset (default); labelme / "
                             "semantic-instance: raw annotations for tools/convert_panoptic.py")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (default 0)")
    parser.add_argument("--num-train", type=int, default=8, help="training frames (default 8)")
    parser.add_argument("--num-val", type=int, default=4, help="validation frames (default 4)")
    parser.add_argument("--height", type=int, default=128, help="image height (default 128)")
    parser.add_argument("--width", type=int, default=256, help="image width (default 256)")
    args = parser.parse_args(argv)
    sizes = dict(seed=args.seed, num_train=args.num_train, num_val=args.num_val, height=args.height, width=args.width)
    if args.format != "cityscapes":
        make_raw_demo(args.out, args.format, **sizes)
        log.info("raw demo annotations ({}) written to {}".format(args.format, args.out))
        return 0
    make_demo_dataset(args.out, verbose=True, **sizes)
    log.info("demo dataset written to {}".format(args.out))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
