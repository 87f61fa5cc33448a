"""Panoptic quality (PQ, SQ, RQ) of predictions in COCO/Cityscapes panoptic format.

A faster drop-in for cityscapesscripts' csEvalPanopticSemanticLabeling: the same flags and
defaults, the same results JSON (All/Things/Stuff with pq, sq, rq, n, and per_class), the same
numbers. Example:

    python tools/eval_panoptic.py --gt-json-file data/cityscapes/gtFine/cityscapes_panoptic_val_trainId.json \\
        --gt-folder data/cityscapes/gtFine/cityscapes_panoptic_val_trainId \\
        --prediction-json-file output/result/panoptic.json --prediction-folder output/result/panoptic \\
        --results_file output/result/pq.json
"""
from panoptic_metrics.cli import console_main

if __name__ == "__main__":
    console_main()
