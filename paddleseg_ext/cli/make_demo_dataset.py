"""Write a small synthetic street-scene dataset in the Cityscapes layout, ready for training.

Frames have road, sidewalk, building, vegetation, terrain, sky (stuff), cars, trucks and people
(things), a crowd of cars and a void ego-vehicle strip, with real Cityscapes label ids; the tree is
then converted like a real one (tools/prepare_cityscapes.py). Same arguments, same bytes.

    python tools/make_demo_dataset.py --out contrib/PanopticDeepLab/data/demo_cityscapes
"""
import argparse

from ..datasets.demo_dataset import make_demo_dataset
from .common import console_entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output dataset root (created; a previous demo there is replaced)")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (default 0)")
    parser.add_argument("--num-train", type=int, default=8, help="training frames (default 8)")
    parser.add_argument("--num-val", type=int, default=4, help="validation frames (default 4)")
    parser.add_argument("--height", type=int, default=128, help="image height (default 128)")
    parser.add_argument("--width", type=int, default=256, help="image width (default 256)")
    args = parser.parse_args(argv)
    make_demo_dataset(args.out, seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                      height=args.height, width=args.width, verbose=True)
    print("demo dataset written to {}".format(args.out))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
