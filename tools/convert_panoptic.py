"""Convert semantic + instance PNGs or labelme JSON files into the COCO panoptic layout of
CustomPanoptic. See `python tools/convert_panoptic.py --help` and docs/dataset_tools.md."""
from paddleseg_ext.cli.convert_panoptic import console_main

if __name__ == "__main__":
    console_main()
