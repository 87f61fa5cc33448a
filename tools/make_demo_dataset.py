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
from paddleseg_ext.cli.make_demo_dataset import console_main

if __name__ == "__main__":
    console_main()
