"""Convert a Cityscapes tree in place for Panoptic-DeepLab.

Writes gtFine/<split>/<city>/*_labelTrainIds.png and, with cityscapesscripts' createPanopticImgs,
gtFine/cityscapes_panoptic_<split>_trainId.json (+ folder; what training reads) and
gtFine/cityscapes_panoptic_<split>.json (+ folder; what the official evaluation reads).
Existing outputs are skipped unless --force.

    python tools/prepare_cityscapes.py --root data/cityscapes
"""
from paddleseg_ext.cli.prepare_cityscapes import console_main

if __name__ == "__main__":
    console_main()
