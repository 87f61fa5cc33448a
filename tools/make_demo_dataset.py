"""Write a small synthetic street-scene dataset in the Cityscapes layout, ready for training.

Frames have road, sidewalk, building, vegetation, terrain, sky (stuff), cars, trucks and people
(things), a crowd of cars and a void ego-vehicle strip, with real Cityscapes label ids; the tree is
then converted like a real one (tools/prepare_cityscapes.py). Same arguments, same bytes.

    python tools/make_demo_dataset.py --out contrib/PanopticDeepLab/data/demo_cityscapes
"""
from paddleseg_ext.cli.make_demo_dataset import console_main

if __name__ == "__main__":
    console_main()
