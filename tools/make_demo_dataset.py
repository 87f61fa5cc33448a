"""Write the generated demo data: a Cityscapes-layout dataset, or (--format labelme | semantic-instance) the
same scenes as raw annotations for tools/convert_panoptic.py. See `python tools/make_demo_dataset.py --help`."""
from paddleseg_ext.cli.make_demo_dataset import console_main

if __name__ == "__main__":
    console_main()
