"""Small shared helpers: panoptic PNG encoding, checked file reading, user-facing errors."""
from .errors import UserInputError  # noqa: F401
from .files import check_writable_dir, load_json  # noqa: F401
from .panoptic_io import id2rgb, read_image, read_panoptic_png, rgb2id, write_panoptic_png  # noqa: F401
