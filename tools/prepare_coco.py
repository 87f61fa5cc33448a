"""Check a COCO panoptic tree and write the contiguous train-id category table.

Expects annotations/panoptic_{train,val}2017.json, annotations/panoptic_{train,val}2017/*.png and
{train,val}2017/*.jpg under --root; writes annotations/panoptic_coco_categories_trainId.json.

    python tools/prepare_coco.py --root data/coco
"""
from paddleseg_ext.cli.prepare_coco import console_main

if __name__ == "__main__":
    console_main()
