"""Small shared helpers, from the paddle-free `panoptic_metrics` package: panoptic PNG encoding,
checked image/json reading, writable folders, user-facing errors."""
from panoptic_metrics.arrays import to_numpy  # noqa: F401
from panoptic_metrics.errors import UserInputError  # noqa: F401
from panoptic_metrics.files import check_writable_dir, json_ready, load_json  # noqa: F401
from panoptic_metrics.panoptic_io import (id2rgb, imread_checked, read_image, read_panoptic_png, rgb2id,  # noqa: F401
                                          write_panoptic_png)
