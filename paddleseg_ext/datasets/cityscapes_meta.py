"""Cityscapes class metadata: the 19 train ids, their colours, thing ids, label id -> train id.

Taken from cityscapesscripts' label table so the numbers match its converters and evaluator.
"""
import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

IGNORE_INDEX = 255
NUM_CLASSES = 19

_TRAIN_LABELS = sorted((l for l in _CS_LABELS if 0 <= l.trainId < IGNORE_INDEX), key=lambda l: l.trainId)

#: names of train ids 0..18
CLASS_NAMES = [l.name for l in _TRAIN_LABELS]
#: RGB colour of each train id (Cityscapes palette)
PALETTE = [list(l.color) for l in _TRAIN_LABELS]
#: train ids of the 'thing' classes (person, rider, car, truck, bus, train, motorcycle, bicycle)
THING_IDS = [l.trainId for l in _TRAIN_LABELS if l.hasInstances]
STUFF_IDS = [l.trainId for l in _TRAIN_LABELS if not l.hasInstances]
#: Cityscapes label id (0..33) -> train id; 255 for classes ignored in evaluation
LABEL_ID_TO_TRAIN_ID = {l.id: (l.trainId if 0 <= l.trainId < IGNORE_INDEX else IGNORE_INDEX)
                        for l in _CS_LABELS if l.id >= 0}
#: the same as a lookup table: ``lut[label_id_image]`` gives the train id image (uint8)
LABEL_ID_TO_TRAIN_ID_LUT = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _k, _v in LABEL_ID_TO_TRAIN_ID.items():
    LABEL_ID_TO_TRAIN_ID_LUT[_k] = _v
#: train id -> Cityscapes label id (for writing results in the official format)
TRAIN_ID_TO_LABEL_ID = {l.trainId: l.id for l in _TRAIN_LABELS}
#: the category ids of Cityscapes' panoptic json files are its label ids
TRAIN_ID_TO_CATEGORY_ID = TRAIN_ID_TO_LABEL_ID

assert len(CLASS_NAMES) == NUM_CLASSES and THING_IDS == list(range(11, 19))
