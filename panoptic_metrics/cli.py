"""Panoptic quality (PQ, SQ, RQ) of predictions in COCO/Cityscapes panoptic format.

A faster drop-in for cityscapesscripts' csEvalPanopticSemanticLabeling: the same flags and
defaults, the same results JSON (All/Things/Stuff with pq, sq, rq, n, and per_class), the same
numbers. Example:

    python tools/eval_panoptic.py  (or: panoptic-eval) --gt-json-file data/cityscapes/gtFine/cityscapes_panoptic_val_trainId.json \\
        --gt-folder data/cityscapes/gtFine/cityscapes_panoptic_val_trainId \\
        --prediction-json-file output/result/panoptic.json --prediction-folder output/result/panoptic \\
        --results_file output/result/pq.json
"""
import argparse
import os
import sys

from .errors import UserInputError
from .panoptic_files import evaluate_panoptic_files


def build_parser():
    dataset = os.environ.get("CITYSCAPES_DATASET", os.path.join("data", "cityscapes"))
    results = os.environ.get("CITYSCAPES_RESULTS", os.path.join(dataset, "results"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt-json-file", dest="gtJsonFile", type=str,
                        default=os.path.join(dataset, "gtFine", "cityscapes_panoptic_val.json"),
                        help="ground truth json in COCO panoptic format "
                             "(default: $CITYSCAPES_DATASET/gtFine/cityscapes_panoptic_val.json, "
                             "CITYSCAPES_DATASET defaulting to data/cityscapes)")
    parser.add_argument("--gt-folder", dest="gtFolder", type=str, default=None,
                        help="folder of the ground truth PNGs (default: the json path without '.json')")
    parser.add_argument("--prediction-json-file", dest="predictionJsonFile", type=str,
                        default=os.path.join(results, "cityscapes_panoptic_val.json"),
                        help="prediction json in COCO panoptic format "
                             "(default: $CITYSCAPES_RESULTS/cityscapes_panoptic_val.json, "
                             "CITYSCAPES_RESULTS defaulting to $CITYSCAPES_DATASET/results)")
    parser.add_argument("--prediction-folder", dest="predictionFolder", type=str, default=None,
                        help="folder of the predicted PNGs (default: the json path without '.json')")
    parser.add_argument("--results_file", dest="resultsFile", type=str, default="resultPanopticSemanticLabeling.json",
                        help="where to store the computed panoptic quality (default: %(default)s)")
    parser.add_argument("--num-workers", dest="numWorkers", type=int, default=None,
                        help="threads reading and scoring images (default: the usable CPUs, at most 8)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.gtJsonFile):
        print("error: could not find a ground truth json file in {}; see --help".format(args.gtJsonFile),
              file=sys.stderr)
        return 1
    if not os.path.isfile(args.predictionJsonFile):
        print("error: could not find a prediction json file in {}; see --help".format(args.predictionJsonFile),
              file=sys.stderr)
        return 1
    gt_folder = args.gtFolder or os.path.splitext(args.gtJsonFile)[0]
    pred_folder = args.predictionFolder or os.path.splitext(args.predictionJsonFile)[0]
    try:
        evaluate_panoptic_files(args.gtJsonFile, gt_folder, args.predictionJsonFile, pred_folder,
                                results_file=args.resultsFile, num_workers=args.numWorkers, verbose=True)
    except UserInputError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1
    return 0


def console_main():
    sys.exit(main())


console_main.main = main  # for tools that load a command shell and call its main(argv)
